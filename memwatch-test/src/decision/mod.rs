//! The verdict of a leak test: a pure function of what the run recorded.
//!
//! Nothing here runs a body or reads the allocator. The runner records the
//! live heap after every measured iteration, the threads and descriptors at
//! the edges of each round, and, at each checkpoint, which measured
//! iterations still have blocks alive (the engine stamps every block with
//! the cycle that made it, and a realloc moves a block to the cycle of the
//! realloc). [`decide`] reads that [`Evidence`] and says: clean, leak, or run
//! longer. The rule, in the words of the README:
//!
//! - **Floors.** The *floor* at iteration `i` is the least live heap (bytes,
//!   and blocks, apart) seen from `i` to the end of the run. It never
//!   falls, a buffer that comes and goes cannot lift it, and what it gains
//!   is memory that stayed.
//! - **Rounds.** The run is cut in rounds that double it: after
//!   `iterations` measured iterations, the first round is its second half;
//!   each checkpoint after that doubles the run, up to `max_iterations`. A
//!   round *grew* when the floor rose over it by `threshold_bytes`, or rose
//!   at all while live blocks rose by `threshold_blocks`; from new blocks
//!   when live blocks rose, from resizes when only bytes did.
//! - **Clean** when the heap gained nothing after the first third of the
//!   run, and threads and descriptors did not grow in the last round. A
//!   buffer that doubles is never quiet this way: it steps again each time
//!   the run doubles.
//! - **Run longer** otherwise, while the budget lasts: a cache still
//!   filling, a buffer still doubling and a leak look alike until a bounded
//!   structure reaches its bound.
//! - **Threads or descriptors** that grew in each of the last three rounds
//!   are a thread or fd leak at once: they are scarce, and a pool opens its
//!   threads and files early.
//! - **Leak**, once the budget is spent, when new blocks kept arriving (the
//!   heap grew in each of the last three rounds, the floor rose over the
//!   run's last quarter with more live blocks, and blocks from at least two of its iterations are
//!   still alive), or when the heap grew by resizing (growth by resizes in
//!   at least two of the last three rounds, the latest held at least half
//!   by one iteration's survivors: the block that was resized). Growth from new
//!   blocks that stopped before the last quarter is a bounded structure
//!   that filled up: clean.

mod why;

#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::resources::Resources;

pub(crate) use why::{Why, WhyEnd};

/// The defaults of the budget: how long the harness may run a test whose
/// evidence is ambiguous.
pub(crate) const DEFAULT_MAX_ITERATIONS: u32 = 1024;
/// See [`DEFAULT_MAX_ITERATIONS`].
pub(crate) const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Growth of the live heap, since the first measured iteration, past which
/// the harness stops and decides: a leak of a megabyte per iteration must
/// not take the machine down before its verdict.
pub(crate) const MAX_GROWTH_BYTES: u64 = 512 << 20;
/// How many rounds in a row must grow for a leak.
pub(crate) const LEAK_ROUNDS: usize = 3;

/// Live bytes and blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Level {
    pub bytes: u64,
    pub blocks: u64,
}

/// The live heap after one measured iteration; `[iteration, bytes, blocks]`
/// in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u32, u64, u64)", into = "(u32, u64, u64)")]
pub(crate) struct Sample {
    /// 1-based, counting measured iterations only.
    pub iteration: u32,
    pub bytes: u64,
    pub blocks: u64,
}

/// Blocks allocated (or last resized) in one measured iteration and still
/// live at the checkpoint; `[iteration, blocks, bytes]` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u32, i64, i64)", into = "(u32, i64, i64)")]
pub(crate) struct Survivor {
    pub iteration: u32,
    pub blocks: i64,
    pub bytes: i64,
}

impl From<(u32, u64, u64)> for Sample {
    fn from((iteration, bytes, blocks): (u32, u64, u64)) -> Self {
        Sample {
            iteration,
            bytes,
            blocks,
        }
    }
}

impl From<Sample> for (u32, u64, u64) {
    fn from(s: Sample) -> Self {
        (s.iteration, s.bytes, s.blocks)
    }
}

impl From<(u32, i64, i64)> for Survivor {
    fn from((iteration, blocks, bytes): (u32, i64, i64)) -> Self {
        Survivor {
            iteration,
            blocks,
            bytes,
        }
    }
}

impl From<Survivor> for (u32, i64, i64) {
    fn from(s: Survivor) -> Self {
        (s.iteration, s.blocks, s.bytes)
    }
}

/// When the rounds end: after `iterations` measured iterations (the first
/// round is their second half), then each time the run has doubled, up to
/// `max_iterations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub iterations: u32,
    pub max_iterations: u32,
}

impl Schedule {
    /// The first round starts after this measured iteration.
    pub(crate) fn first_round_after(&self) -> u32 {
        self.first() / 2
    }

    /// The first checkpoint (a budget under `iterations` wins).
    pub(crate) fn first(&self) -> u32 {
        self.iterations.min(self.max_iterations).max(1)
    }

    /// The checkpoint after `current`, if the budget allows one.
    pub(crate) fn after(&self, current: u32) -> Option<u32> {
        let max = self.max_iterations.max(1);
        (current < max).then(|| current.saturating_mul(2).min(max))
    }
}

/// The end of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// The last measured iteration of the round.
    pub iteration: u32,
    /// Threads and descriptors then (`None`: not watched).
    pub resources: Option<Resources>,
}

/// Growth that makes a round count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Thresholds {
    pub bytes: u64,
    pub blocks: u64,
}

/// Why no further round may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Exhausted {
    /// `max_iterations` were run.
    Iterations,
    /// The next round would have ended past `time_limit`.
    Time,
    /// The heap grew by [`MAX_GROWTH_BYTES`].
    Memory,
    /// A soak test ran its `duration`.
    Duration,
}

/// Everything a run recorded up to its latest checkpoint. The JSON report
/// carries it whole, so a run's decision can be replayed (the unit tests
/// replay recorded runs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evidence<'a> {
    /// The live heap before the first measured iteration.
    pub start: Level,
    /// The live heap after each measured iteration, in order (a soak test's
    /// may have gaps).
    pub samples: &'a [Sample],
    /// The first round starts after this measured iteration.
    pub first_round_after: u32,
    /// Threads and descriptors at `first_round_after`.
    pub first_resources: Option<Resources>,
    /// The ends of the rounds so far; the last is the latest sample.
    pub checkpoints: &'a [Checkpoint],
    /// Survivors of the measured iterations at the latest checkpoint.
    pub survivors: &'a [Survivor],
    pub thresholds: Thresholds,
    /// Set when no further round may run: the verdict is due now.
    pub exhausted: Option<Exhausted>,
}

/// An [`Evidence`] read back from JSON: a recorded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Trace {
    pub start: Level,
    pub samples: Vec<Sample>,
    pub first_round_after: u32,
    pub first_resources: Option<Resources>,
    pub checkpoints: Vec<Checkpoint>,
    pub survivors: Vec<Survivor>,
    pub thresholds: Thresholds,
    pub exhausted: Option<Exhausted>,
}

impl Trace {
    pub(crate) fn evidence(&self) -> Evidence<'_> {
        Evidence {
            start: self.start,
            samples: &self.samples,
            first_round_after: self.first_round_after,
            first_resources: self.first_resources,
            checkpoints: &self.checkpoints,
            survivors: &self.survivors,
            thresholds: self.thresholds,
            exhausted: self.exhausted,
        }
    }
}

/// What the decision calls for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub(crate) enum Call {
    /// Run the next round: the evidence is still ambiguous.
    Continue,
    Clean,
    Leak,
    ThreadLeak {
        per_iteration: f64,
    },
    FdLeak {
        per_iteration: f64,
    },
}

/// Where a round's growth came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Growth {
    None,
    /// More live blocks.
    NewBlocks,
    /// More bytes in as many blocks: blocks that grew.
    Resizes,
}

/// One round of the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Round {
    /// Measured iterations `first..=last`.
    pub first: u32,
    pub last: u32,
    /// The floor at the round's start and end.
    pub floor_before: Level,
    pub floor_after: Level,
    /// The heap grew over the round.
    pub grew: bool,
    pub growth: Growth,
    /// Threads and descriptors at the round's end.
    pub resources: Option<Resources>,
    pub threads_grew: bool,
    pub fds_grew: bool,
}

/// The decision and the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Judgement {
    pub call: Call,
    /// In the report's `rounds`.
    #[serde(skip)]
    pub rounds: Vec<Round>,
    pub why: Why,
}

fn grew(before: Level, after: Level, t: Thresholds) -> bool {
    let bytes = after.bytes as i128 - before.bytes as i128;
    let blocks = after.blocks as i128 - before.blocks as i128;
    bytes >= t.bytes.max(1) as i128 || (bytes > 0 && blocks >= t.blocks.max(1) as i128)
}

/// The floors of a run: `at(i)` is the least live heap from the end of
/// measured iteration `i` on (the start's level included for `i = 0`).
struct Floors {
    /// Suffix minima of the samples, bytes and blocks apart.
    min: Vec<Level>,
    iterations: Vec<u32>,
    start: Level,
}

impl Floors {
    fn new(start: Level, samples: &[Sample]) -> Floors {
        let mut min = vec![Level::default(); samples.len()];
        let mut acc = Level {
            bytes: u64::MAX,
            blocks: u64::MAX,
        };
        for (i, s) in samples.iter().enumerate().rev() {
            acc.bytes = acc.bytes.min(s.bytes);
            acc.blocks = acc.blocks.min(s.blocks);
            min[i] = acc;
        }
        Floors {
            min,
            iterations: samples.iter().map(|s| s.iteration).collect(),
            start,
        }
    }

    /// The floor at the end of measured iteration `i`.
    fn at(&self, i: u32) -> Level {
        let k = self.iterations.partition_point(|&it| it < i);
        let Some(&min) = self.min.get(k) else {
            return self.start;
        };
        if i == 0 {
            Level {
                bytes: min.bytes.min(self.start.bytes),
                blocks: min.blocks.min(self.start.blocks),
            }
        } else {
            min
        }
    }

    /// The latest measured iteration after which the heap still gained a
    /// threshold's worth, up to the floor at `end`.
    fn still_gaining_after(&self, end: Level, t: Thresholds) -> Option<u32> {
        if grew(self.at(0), end, t) {
            let mut last = 0;
            for (i, &it) in self.iterations.iter().enumerate() {
                if grew(self.min[i], end, t) {
                    last = it;
                }
            }
            Some(last)
        } else {
            None
        }
    }
}

/// Decides a run on its evidence.
pub(crate) fn decide(e: &Evidence<'_>) -> Judgement {
    let t = e.thresholds;
    let floors = Floors::new(e.start, e.samples);
    let measured = e.samples.last().map_or(0, |s| s.iteration);
    let mut rounds = Vec::with_capacity(e.checkpoints.len());
    let mut after = e.first_round_after;
    let mut resources_before = e.first_resources;
    for c in e.checkpoints {
        let floor_before = floors.at(after);
        let floor_after = floors.at(c.iteration);
        let round_grew = grew(floor_before, floor_after, t);
        let growth = if !round_grew {
            Growth::None
        } else if floor_after.blocks >= floor_before.blocks + t.blocks.max(1) {
            Growth::NewBlocks
        } else {
            Growth::Resizes
        };
        let (threads_grew, fds_grew) = match (resources_before, c.resources) {
            (Some(a), Some(b)) => (b.threads > a.threads, b.open_fds > a.open_fds),
            _ => (false, false),
        };
        rounds.push(Round {
            first: after + 1,
            last: c.iteration,
            floor_before,
            floor_after,
            grew: round_grew,
            growth,
            resources: c.resources,
            threads_grew,
            fds_grew,
        });
        after = c.iteration;
        resources_before = c.resources;
    }

    let end = floors.at(measured);
    let quarter_from = measured - measured / 4;
    let recent = e
        .survivors
        .iter()
        .filter(|s| s.iteration > quarter_from && s.blocks > 0)
        .count() as u32;
    let last_round = rounds.last();
    // The latest round that grew, and the iteration whose survivors hold
    // the most of it.
    let growing = rounds.iter().rev().find(|r| r.grew);
    let largest = growing.map_or((0, 0), |r| {
        e.survivors
            .iter()
            .filter(|s| (r.first..=r.last).contains(&s.iteration))
            .map(|s| (s.iteration, s.bytes))
            .max_by_key(|&(_, bytes)| bytes)
            .unwrap_or((0, 0))
    });
    let gain = growing.map_or(0, |r| {
        r.floor_after.bytes as i64 - r.floor_before.bytes as i64
    });
    let still_gaining_after = floors.still_gaining_after(end, t);
    let recent_rounds = &rounds[rounds.len() - rounds.len().min(LEAK_ROUNDS)..];
    let end_state = WhyEnd {
        // New blocks: the block floor itself rose over the last quarter. A
        // cache turning over leaves survivors in every recent iteration,
        // and a one-off table resize lifts the byte floor; neither adds
        // blocks.
        accumulating: grew(floors.at(quarter_from), end, t)
            && end.blocks >= floors.at(quarter_from).blocks + t.blocks.max(1)
            && recent >= 2,
        resizing: recent_rounds
            .iter()
            .filter(|r| r.growth == Growth::Resizes)
            .count()
            >= 2
            && gain > 0
            && largest.1 * 2 >= gain,
        resized_in: (largest.1 > 0).then_some(largest.0),
        recent_survivor_iterations: recent,
        quarter_from,
    };

    let all_recent =
        |f: fn(&Round) -> bool| !recent_rounds.is_empty() && recent_rounds.iter().all(f);
    let due = e.exhausted.is_some();
    let resource_leak =
        |f: fn(&Round) -> bool| all_recent(f) && (rounds.len() >= LEAK_ROUNDS || due);
    let rate = |f: fn(&Resources) -> u64| match (
        e.first_resources,
        last_round.and_then(|r| r.resources),
    ) {
        (Some(a), Some(b)) => {
            (f(&b) as f64 - f(&a) as f64) / (measured - e.first_round_after).max(1) as f64
        }
        _ => 0.0,
    };
    // Quiet: what the heap gained after the first third of the run is
    // under the thresholds. A buffer that doubles gains in every stretch
    // whose end is over twice its start, so it is never quiet this way.
    let quiet = still_gaining_after.is_none_or(|i| i <= measured / 3);
    let resources_quiet = last_round.is_none_or(|r| !r.threads_grew && !r.fds_grew);

    let call = if resource_leak(|r| r.threads_grew) {
        Call::ThreadLeak {
            per_iteration: rate(|r| r.threads),
        }
    } else if resource_leak(|r| r.fds_grew) {
        Call::FdLeak {
            per_iteration: rate(|r| r.open_fds),
        }
    } else if quiet && resources_quiet {
        Call::Clean
    } else if !due {
        Call::Continue
    } else if (all_recent(|r| r.grew) && end_state.accumulating) || end_state.resizing {
        Call::Leak
    } else {
        Call::Clean
    };

    let why = Why::new(e, &rounds, call, end_state, still_gaining_after);
    Judgement { call, rounds, why }
}
