//! Tags: names for the blocks allocated by a type, a function or a scope.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use crate::allocator::{self, MAX_TAGS};

/// Name of the row for blocks allocated under no tag.
pub(crate) const UNTAGGED: &str = "(untagged)";
/// Name of the row that gathers tags beyond the first `MAX_TAGS - 2`.
pub(crate) const OTHER_TAGS: &str = "(other tags)";
const OTHER_ID: u32 = MAX_TAGS as u32 - 1;

static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The id of `name`, registering it on first use. Ids are never reused.
pub(crate) fn intern(name: &str) -> u32 {
    allocator::untracked(|| {
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if names.is_empty() {
            names.push(UNTAGGED.to_owned());
        }
        if let Some(i) = names.iter().position(|n| n == name) {
            return i as u32;
        }
        if names.len() >= OTHER_ID as usize {
            allocator::note_tag(OTHER_ID);
            return OTHER_ID;
        }
        names.push(name.to_owned());
        let id = names.len() as u32 - 1;
        allocator::note_tag(id);
        id
    })
}

/// The name of each tag id in use, indexed by id (call under `untracked`).
pub(crate) fn names() -> Vec<(u32, String)> {
    let names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<(u32, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u32, n.clone()))
        .collect();
    if out.is_empty() {
        out.push((0, UNTAGGED.to_owned()));
    }
    out.push((OTHER_ID, OTHER_TAGS.to_owned()));
    out
}

/// Runs `f` with the blocks this thread allocates in it tagged `name`.
///
/// Tags show up as rows of a [`HeapDiff`](crate::HeapDiff). A block keeps
/// its tag for life: its free is credited to the tag whichever thread frees
/// it. Tags nest (the innermost wins) and are per thread: threads spawned
/// inside `f` do not inherit the tag. Up to 254 distinct names are told
/// apart; further names share the row `(other tags)`.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let diff = memwatch_test::HeapDiff::new();
///     let kept = memwatch_test::tag("Session", || vec![0u8; 64]);
///     let diff = diff.end();
///     let row = diff.change.details.iter().find(|r| r.what == "Session").unwrap();
///     assert_eq!((row.allocated, row.size_bytes), (1, 64));
///     drop(kept);
/// }
/// ```
pub fn tag<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let _guard = TagGuard::enter(intern(name));
    f()
}

/// A tag name whose id is looked up once; what `#[tagged]` emits.
#[doc(hidden)]
#[derive(Debug)]
pub struct TagKey {
    name: &'static str,
    id: AtomicU32,
}

impl TagKey {
    pub const fn new(name: &'static str) -> Self {
        TagKey {
            name,
            id: AtomicU32::new(0),
        }
    }

    fn id(&self) -> u32 {
        match self.id.load(Ordering::Relaxed) {
            0 => {
                let id = intern(self.name);
                self.id.store(id, Ordering::Relaxed);
                id
            }
            id => id,
        }
    }

    /// Tags this thread's allocations until the guard drops.
    pub fn enter(&self) -> TagGuard {
        TagGuard::enter(self.id())
    }
}

/// Restores the previous tag of the thread on drop (also on unwinding).
#[doc(hidden)]
#[derive(Debug)]
pub struct TagGuard {
    previous: u32,
}

impl TagGuard {
    fn enter(id: u32) -> Self {
        TagGuard {
            previous: allocator::swap_tag(id),
        }
    }
}

impl Drop for TagGuard {
    fn drop(&mut self) {
        allocator::swap_tag(self.previous);
    }
}

pin_project_lite::pin_project! {
    /// A future whose every poll runs under a tag: what `#[tagged]` makes of
    /// an `async fn` body.
    #[doc(hidden)]
    #[derive(Debug)]
    pub struct Tagged<F> {
        key: &'static TagKey,
        #[pin]
        future: F,
    }
}

impl<F> Tagged<F> {
    pub fn new(key: &'static TagKey, future: F) -> Self {
        Tagged { key, future }
    }
}

impl<F: Future> Future for Tagged<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.key.enter();
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable() {
        let a = intern("tag::tests::A");
        let b = intern("tag::tests::B");
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(intern("tag::tests::A"), a);
        assert!(names()
            .iter()
            .any(|(id, n)| *id == b && n == "tag::tests::B"));
    }

    #[test]
    fn guards_nest_and_restore() {
        let outer = TagKey::new("tag::tests::outer");
        let inner = TagKey::new("tag::tests::inner");
        let before = allocator::swap_tag(0);
        {
            let _a = outer.enter();
            {
                let _b = inner.enter();
                assert_eq!(allocator::swap_tag(inner.id()), inner.id());
            }
            assert_eq!(allocator::swap_tag(outer.id()), outer.id());
        }
        assert_eq!(allocator::swap_tag(before), 0);
    }
}
