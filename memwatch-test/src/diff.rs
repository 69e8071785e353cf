//! `HeapDiff`: what was allocated and freed between two points, by tag.

use std::fmt;

use serde::Serialize;

use crate::allocator::{self, untracked, TagTotals};
use crate::cycle::run_collectors;
use crate::stats::counts;
use crate::tag;
use crate::units::format_bytes;

/// The heap at one point: totals and every tag's counters.
#[derive(Debug)]
struct Snapshot {
    live_bytes: u64,
    live_blocks: u64,
    tags: Vec<TagTotals>,
}

impl Snapshot {
    /// Runs the collectors, then reads the counters. Costs the same whatever
    /// the size of the heap: no block is visited.
    fn take() -> Snapshot {
        run_collectors();
        untracked(|| {
            let c = counts();
            let mut tags = Vec::new();
            allocator::tag_totals(&mut tags);
            Snapshot {
                live_bytes: c.live_bytes,
                live_blocks: c.live_blocks,
                tags,
            }
        })
    }
}

/// Compares the heap at two points, node-memwatch's `HeapDiff`.
///
/// [`HeapDiff::new`] and [`HeapDiff::end`] each run the
/// [collectors](crate::on_collect) first, but neither is a collection cycle:
/// no `stats` or `leak` callback runs, and the cycle count does not move.
/// The diff groups blocks by [tag](crate::tag); blocks allocated under no
/// tag form the row `(untagged)`.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// struct LeakingClass {
///     _data: [u64; 3],
/// }
///
/// fn main() {
///     let hd = memwatch_test::HeapDiff::new();
///     let leaked: Vec<Box<LeakingClass>> = memwatch_test::tag("LeakingClass", || {
///         (0..10).map(|_| Box::new(LeakingClass { _data: [0; 3] })).collect()
///     });
///     let diff = hd.end();
///     println!("{}", serde_json::to_string_pretty(&diff).unwrap());
///     let row = diff.change.details.iter().find(|r| r.what == "LeakingClass").unwrap();
///     // Ten boxes of 24 bytes, and the Vec of 10 pointers that holds them.
///     assert_eq!((row.allocated, row.freed, row.size_bytes), (11, 0, 320));
///     std::mem::forget(leaked);
/// }
/// ```
#[derive(Debug)]
#[must_use = "a HeapDiff does nothing until .end() is called"]
pub struct HeapDiff {
    before: Snapshot,
}

impl HeapDiff {
    /// Runs the collectors and records the heap as it is now.
    ///
    /// ```
    /// let hd = memwatch_test::HeapDiff::new();
    /// let diff = hd.end();
    /// assert_eq!(diff.change.details.len(), diff.change.details.len());
    /// ```
    pub fn new() -> Self {
        HeapDiff {
            before: Snapshot::take(),
        }
    }

    /// Runs the collectors, records the heap again and compares. Consumes
    /// the `HeapDiff`, so it cannot end twice.
    ///
    /// ```
    /// let hd = memwatch_test::HeapDiff::new();
    /// let diff = hd.end();
    /// println!("{diff}");
    /// ```
    pub fn end(self) -> Diff {
        let after = Snapshot::take();
        untracked(|| Diff::between(&self.before, &after))
    }
}

impl Default for HeapDiff {
    fn default() -> Self {
        Self::new()
    }
}

/// The heap's size at one end of a [`Diff`].
///
/// ```
/// let diff = memwatch_test::HeapDiff::new().end();
/// assert_eq!(diff.before.size, memwatch_test::format_bytes(diff.before.size_bytes as i64));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HeapSize {
    /// Live blocks.
    pub blocks: u64,
    /// Live bytes.
    pub size_bytes: u64,
    /// `size_bytes` written as memwatch does (`2.02 mb`).
    pub size: String,
}

/// The result of a [`HeapDiff`], in node-memwatch's JSON shape.
///
/// ```
/// let diff = memwatch_test::HeapDiff::new().end();
/// let json = serde_json::to_value(&diff).unwrap();
/// assert!(json["change"]["details"].is_array());
/// assert!(json["before"]["size_bytes"].is_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Diff {
    /// The heap when the `HeapDiff` was made.
    pub before: HeapSize,
    /// The heap when it ended.
    pub after: HeapSize,
    /// What changed in between.
    pub change: Change,
}

/// What changed between the two ends of a [`Diff`].
///
/// ```
/// let diff = memwatch_test::HeapDiff::new().end();
/// let change = &diff.change;
/// let plus: u64 = change.details.iter().map(|r| r.allocated).sum();
/// assert_eq!(plus, change.allocated_blocks);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// Net change of live bytes.
    pub size_bytes: i64,
    /// `size_bytes` written as memwatch does.
    pub size: String,
    /// Blocks freed in between (whenever they were allocated).
    pub freed_blocks: u64,
    /// Blocks allocated in between.
    pub allocated_blocks: u64,
    /// One row per tag that changed, largest net change in bytes first.
    pub details: Vec<DiffRow>,
}

/// One tag's row of a [`Diff`].
///
/// ```
/// let diff = memwatch_test::HeapDiff::new().end();
/// for row in &diff.change.details {
///     println!("{}: +{} -{} ({})", row.what, row.allocated, row.freed, row.size);
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DiffRow {
    /// The tag, or `(untagged)`.
    pub what: String,
    /// Net change of the tag's live bytes.
    pub size_bytes: i64,
    /// `size_bytes` written as memwatch does.
    pub size: String,
    /// Blocks allocated under the tag in between.
    #[serde(rename = "+")]
    pub allocated: u64,
    /// Blocks of the tag freed in between, by any thread.
    #[serde(rename = "-")]
    pub freed: u64,
}

impl HeapSize {
    fn of(s: &Snapshot) -> HeapSize {
        HeapSize {
            blocks: s.live_blocks,
            size_bytes: s.live_bytes,
            size: format_bytes(s.live_bytes as i64),
        }
    }
}

impl Diff {
    fn between(before: &Snapshot, after: &Snapshot) -> Diff {
        let mut details: Vec<DiffRow> = tag::names()
            .into_iter()
            .filter_map(|(id, what)| {
                let (b, a) = (before.tags[id as usize], after.tags[id as usize]);
                let allocated = a.allocs.wrapping_sub(b.allocs);
                let freed = a.frees.wrapping_sub(b.frees);
                let added = a.bytes_added.wrapping_sub(b.bytes_added);
                let removed = a.bytes_removed.wrapping_sub(b.bytes_removed);
                let size_bytes = added.wrapping_sub(removed) as i64;
                (allocated != 0 || freed != 0 || size_bytes != 0).then(|| DiffRow {
                    what,
                    size_bytes,
                    size: format_bytes(size_bytes),
                    allocated,
                    freed,
                })
            })
            .collect();
        details.sort_by(|x, y| {
            y.size_bytes
                .abs()
                .cmp(&x.size_bytes.abs())
                .then_with(|| x.what.cmp(&y.what))
        });
        let size_bytes = after.live_bytes as i64 - before.live_bytes as i64;
        Diff {
            before: HeapSize::of(before),
            after: HeapSize::of(after),
            change: Change {
                size_bytes,
                size: format_bytes(size_bytes),
                freed_blocks: details.iter().map(|r| r.freed).sum(),
                allocated_blocks: details.iter().map(|r| r.allocated).sum(),
                details,
            },
        }
    }
}

impl fmt::Display for Diff {
    /// A table for people: totals, then one line per tag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "heap: {} in {} blocks -> {} in {} blocks ({}{}, +{} -{} blocks)",
            self.before.size,
            self.before.blocks,
            self.after.size,
            self.after.blocks,
            if self.change.size_bytes >= 0 { "+" } else { "" },
            self.change.size,
            self.change.allocated_blocks,
            self.change.freed_blocks,
        )?;
        let width = self
            .change
            .details
            .iter()
            .map(|r| r.what.len())
            .max()
            .unwrap_or(0);
        for r in &self.change.details {
            writeln!(
                f,
                "  {:<width$}  {:>12}  +{:<8} -{}",
                r.what, r.size, r.allocated, r.freed
            )?;
        }
        Ok(())
    }
}
