//! Why a decision was made: the evidence it rests on, and one sentence.

use serde::Serialize;

use super::{Call, Evidence, Exhausted, Growth, Round, LEAK_ROUNDS};
use crate::units::format_bytes;

/// How the run ended, as far as growth goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct WhyEnd {
    /// New blocks kept arriving: the floor rose over the run's last quarter
    /// and blocks of at least two of its iterations are still live.
    pub accumulating: bool,
    /// The last round's growth came from a resize: one iteration's survivors
    /// hold at least half of it.
    pub resizing: bool,
    /// The iteration whose survivors hold the most of the last round.
    pub resized_in: Option<u32>,
    /// Iterations of the last quarter with blocks still live.
    pub recent_survivor_iterations: u32,
    /// The last quarter is the iterations after this one.
    pub quarter_from: u32,
}

/// The evidence behind a decision, for the failure text and the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Why {
    /// Measured iterations the decision saw.
    pub measured: u32,
    /// The first checkpoint: a clean test stops here.
    pub first_checkpoint: u32,
    /// Measured iterations run past the first checkpoint because the
    /// evidence was ambiguous.
    pub extra_iterations: u32,
    /// Measured iterations with blocks still live at the end.
    pub survivor_iterations: u32,
    /// The oldest of them.
    pub oldest_survivor: Option<u32>,
    /// Where the last round's growth came from.
    pub growth: Growth,
    /// The latest iteration after which the heap still gained a
    /// threshold's worth (`None`: it never did).
    pub still_gaining_after: Option<u32>,
    pub end: WhyEnd,
    /// Why the run could not go on, when it could not.
    pub exhausted: Option<Exhausted>,
    /// The decision in a sentence.
    pub reason: String,
}

impl Why {
    pub(super) fn new(
        e: &Evidence<'_>,
        rounds: &[Round],
        call: Call,
        end: WhyEnd,
        still_gaining_after: Option<u32>,
    ) -> Why {
        let measured = e.samples.last().map_or(0, |s| s.iteration);
        let live = || e.survivors.iter().filter(|s| s.blocks > 0);
        let first_checkpoint = e.checkpoints.first().map_or(0, |c| c.iteration);
        let mut why = Why {
            measured,
            first_checkpoint,
            extra_iterations: measured.saturating_sub(first_checkpoint),
            survivor_iterations: live().count() as u32,
            oldest_survivor: live().map(|s| s.iteration).min(),
            growth: rounds.last().map_or(Growth::None, |r| r.growth),
            still_gaining_after,
            end,
            exhausted: e.exhausted,
            reason: String::new(),
        };
        why.reason = why.sentence(rounds, call);
        why
    }

    fn sentence(&self, rounds: &[Round], call: Call) -> String {
        let k = rounds.len().min(LEAK_ROUNDS);
        let tail = &rounds[rounds.len() - k..];
        let span = match (tail.first(), tail.last()) {
            (Some(a), Some(b)) => format!("iterations {}-{}", a.first, b.last),
            _ => "no iterations".to_owned(),
        };
        let last = rounds.last();
        let stopped = match self.still_gaining_after {
            Some(i) => format!("its last growth came after iteration {i}"),
            None => "it never grew".to_owned(),
        };
        match call {
            Call::Continue => format!(
                "the heap grew over iterations {}-{}: not yet told apart from a bounded \
                 structure still filling, so the run goes on",
                last.map_or(0, |r| r.first),
                last.map_or(0, |r| r.last)
            ),
            Call::ThreadLeak { .. } => {
                format!("the process's threads grew in each of the last {k} rounds ({span})")
            }
            Call::FdLeak { .. } => format!(
                "the process's open file descriptors grew in each of the last {k} rounds ({span})"
            ),
            Call::Leak if self.end.accumulating => format!(
                "the heap grew in each of the last {k} rounds ({span}) and was still growing at \
                 the end: blocks from {} of the last {} iterations are still live",
                self.end.recent_survivor_iterations,
                self.measured - self.end.quarter_from
            ),
            Call::Leak => {
                let gain = last.map_or(0, |r| {
                    r.floor_after.bytes as i64 - r.floor_before.bytes as i64
                });
                format!(
                    "the heap grew in each of the last {k} rounds ({span}) by resizing blocks it \
                     already had (a buffer or table that kept growing: {} in the last round, \
                     most of it kept by a block resized in iteration {})",
                    format_bytes(gain),
                    self.end.resized_in.unwrap_or(0)
                )
            }
            Call::Clean => match last {
                None => "no round was run".to_owned(),
                Some(_)
                    if self
                        .still_gaining_after
                        .is_none_or(|i| i <= self.measured / 3) =>
                {
                    format!(
                        "the heap stopped growing: it gained nothing after iteration {} of {}, \
                         the first third of the run; {stopped}",
                        self.measured / 3,
                        self.measured
                    )
                }
                Some(_) if !tail.iter().all(|r| r.grew) => format!(
                    "the heap did not grow in each of the last {k} rounds ({span}): growth that \
                     came and went, not a leak; {stopped}"
                ),
                Some(_) => format!(
                    "new blocks stopped arriving before the last quarter of the run (after \
                     iteration {}): a bounded structure that filled up; {stopped}",
                    self.end.quarter_from
                ),
            },
        }
    }
}
