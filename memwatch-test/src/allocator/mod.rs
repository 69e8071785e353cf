//! The counting global allocator: the only module of the crate with `unsafe`.
//!
//! This file holds [`Alloc`], its `GlobalAlloc` methods and the modes; each
//! other concern has a file of its own:
//!
//! - `header`: the 16 bytes in front of every block, and the layout asked
//!   of the inner allocator;
//! - `slots`: per-thread counters, the thread's hot-path state, and the
//!   totals readers sum;
//! - `sites`: the site table of capture windows;
//! - `dhat_bridge`: blocks made by `dhat::Alloc` in a DHAT window;
//! - `census`, `scan`: every live block of a scan process, and the reads
//!   of the retainer scan (Linux x86_64);
//! - `unwind`, `objects`: the fast unwinder, and the loaded objects it and
//!   the scan read (Linux x86_64).
//!
//! # Design
//!
//! Every block gets a 16-byte [`Header`] in front of it (or `align` bytes for
//! alignments above 16, so the user pointer keeps its alignment). The header
//! says whether the block is counted, the collection cycle (epoch) it was
//! allocated in and the tag it was allocated under. Because the block carries
//! this, a free is credited to the right cycle and tag from any thread.
//!
//! Counters live in per-thread [`Slot`]s. The owning thread updates them
//! with a relaxed load and store (no locked read-modify-write, no shared
//! cache line is written); readers sum every slot. The sums are exact at a
//! quiet point, when no thread is between an allocation and its bookkeeping.
//! Slots come from a lock-free list that only grows; a thread's slot is
//! released for reuse when the thread exits, and its figures stay in it (they
//! are partial sums, so whoever takes the slot next keeps adding to them).
//!
//! Allocations made while the thread's `depth` is non-zero are *untracked*:
//! those made re-entrantly from inside the inner allocator, those made while
//! a slot is being claimed, and those the engine makes for its own
//! bookkeeping ([`untracked`]). Their header says so, so their frees are not
//! counted either, whichever thread makes them.
//!
//! The hot path touches one const-initialised thread-local without `Drop`
//! ([`LOCAL`]), reads the global epoch with a relaxed load, takes no lock and
//! never allocates.
//!
//! Three modes ride on the epoch word, so the hot path learns them with the
//! same load: capture (each block's stack goes to the site table), DHAT
//! (blocks go to `dhat::Alloc`) and scan. Only a scan process (one the
//! harness starts to find what keeps a leak alive) has the scan mode, for
//! its whole life: each counted block is entered in the census ([`census`])
//! and every block is zeroed when freed, so that [`scan`] can walk the heap
//! at the end of the capture window. Those paths are cold and may take the
//! census's lock; a plain run never reaches them.

#[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod census;
#[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
mod objects;
#[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod scan;
#[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
mod unwind;

mod dhat_bridge;
mod header;
mod sites;
mod slots;

use dhat_bridge::*;
#[cfg(feature = "harness")]
pub(crate) use dhat_bridge::{begin_dhat, end_dhat};
use header::*;
use sites::*;
#[cfg(feature = "harness")]
pub(crate) use sites::{begin_capture, end_capture, live_sites, site_frames, RawSite};
#[cfg(feature = "harness")]
pub(crate) use sites::{MAX_FRAMES, SITE_SLOTS};
pub use slots::slots_summed_for_tests;
#[cfg(feature = "harness")]
pub(crate) use slots::with_stack_end;
use slots::*;
pub(crate) use slots::{
    bucket_totals, counting, note_tag, peak_rise, swap_tag, tag_totals, totals, TagTotals,
};

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};

/// How many recent collection cycles keep their own survivor counters: at
/// least a leak test's default budget of measured iterations, so that the
/// decision sees every one of them. Older cycles are folded into one
/// "earlier" figure. A power of two.
pub(crate) const EPOCH_WINDOW: usize = 2048;
/// How many tags can be told apart (id 0 is "untagged"); a power of two.
pub(crate) const MAX_TAGS: usize = 256;

/// The current collection cycle: blocks allocated now are stamped with it.
/// Starts at 1; collection cycle `n` moves it to `n + 1`. Its top bit is
/// [`CAPTURE_BIT`], so the hot path learns both with one load.
static EPOCH: AtomicU32 = AtomicU32::new(1);
/// Set in [`EPOCH`] while allocation sites are captured.
const CAPTURE_BIT: u32 = 1 << 31;
/// Set in [`EPOCH`] while allocations go to `dhat::Alloc`, for a DHAT file.
const DHAT_BIT: u32 = 1 << 30;
/// Set in [`EPOCH`] for the whole life of a scan process: every counted
/// block is entered in the census (see `census`).
const SCAN_BIT: u32 = 1 << 29;
/// The bits of [`EPOCH`] that are modes, not the epoch.
const MODE_BITS: u32 = CAPTURE_BIT | DHAT_BIT | SCAN_BIT;
/// The bits of [`EPOCH`] that are the epoch: it counts modulo 2^29 and
/// wraps there without touching the modes. 2^29 is a multiple of
/// [`EPOCH_WINDOW`], so the ring buckets follow the wrap.
const EPOCH_MASK: u32 = !MODE_BITS;
/// A global allocator that counts every block, for memwatch.
///
/// Install it in the binary whose heap you want to watch (a test binary, a
/// service); the library never installs it by itself.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let before = memwatch_test::counts();
///     let kept = vec![0u8; 100];
///     let after = memwatch_test::counts();
///     assert_eq!(after.live_bytes - before.live_bytes, 100);
///     assert_eq!(after.live_blocks - before.live_blocks, 1);
///     drop(kept);
/// }
/// ```
///
/// It wraps any other allocator with [`Alloc::new`]. Each block costs 16
/// bytes of header in the inner allocator (`align` bytes for alignments above
/// 16); the figures memwatch reports are the sizes your program asked for.
#[derive(Debug, Clone, Copy)]
pub struct Alloc<A = System> {
    inner: A,
    /// Whether the inner allocator may allocate through the global allocator
    /// (as `dhat::Alloc` does for its bookkeeping): then each call into it
    /// is guarded so that such nested allocations are left uncounted.
    /// `System` never does, and skips the guard's cost.
    reentrant: bool,
}

impl Default for Alloc<System> {
    fn default() -> Self {
        Self::system()
    }
}

impl Alloc<System> {
    /// A counting allocator over the system allocator.
    ///
    /// ```
    /// #[global_allocator]
    /// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
    /// # fn main() {}
    /// ```
    pub const fn system() -> Self {
        Alloc {
            inner: System,
            reentrant: false,
        }
    }
}

impl<A> Alloc<A> {
    /// A counting allocator over `inner`, such as `mimalloc::MiMalloc` or
    /// `dhat::Alloc`.
    ///
    /// `inner` may itself allocate through the global allocator (and so
    /// through this one): such nested allocations are not counted. Guarding
    /// against them costs about 1.5 ns per allocation and free, which
    /// [`Alloc::system`] does not pay since `System` never does so.
    ///
    /// ```
    /// use std::alloc::System;
    ///
    /// #[global_allocator]
    /// static ALLOC: memwatch_test::Alloc<System> = memwatch_test::Alloc::new(System);
    /// # fn main() {}
    /// ```
    pub const fn new(inner: A) -> Self {
        Alloc {
            inner,
            reentrant: true,
        }
    }

    /// Runs a call into the inner allocator, marking this thread busy when
    /// the inner allocator may come back here.
    #[inline(always)]
    fn guarded<R>(&self, local: &Local, depth: u32, call: impl FnOnce() -> R) -> R {
        if !self.reentrant {
            return call();
        }
        local.depth.set(depth + 1);
        let r = call();
        local.depth.set(depth);
        r
    }
}

impl<A: GlobalAlloc> Alloc<A> {
    /// A scan process's realloc: a new block, the bytes copied, the old
    /// block zeroed and freed (see [`SCRUB`]).
    ///
    /// # Safety
    /// `base` is a block of the inner allocator with layout `outer`;
    /// `new_outer` has the same alignment.
    #[cold]
    #[inline(never)]
    unsafe fn scrubbing_realloc(
        &self,
        local: &Local,
        depth: u32,
        base: *mut u8,
        outer: Layout,
        new_outer: Layout,
    ) -> *mut u8 {
        // SAFETY: `new_outer` has a non-zero size (it includes the header).
        let new = self.guarded(local, depth, || unsafe { self.inner.alloc(new_outer) });
        if new.is_null() {
            return new;
        }
        // SAFETY: both blocks are live, distinct, and at least this long;
        // the old one is then zeroed and freed once, with its layout.
        unsafe {
            ptr::copy_nonoverlapping(base, new, outer.size().min(new_outer.size()));
            ptr::write_bytes(base, 0, outer.size());
            self.guarded(local, depth, || self.inner.dealloc(base, outer));
        }
        new
    }

    /// `alloc` and `alloc_zeroed`.
    ///
    /// # Safety
    /// Same contract as [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn alloc_impl(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(outer) = outer_layout(layout.size(), layout.align()) else {
            return ptr::null_mut();
        };
        let offset = header_offset(layout.align());
        let local = local();
        let depth = local.depth.get();
        let word = EPOCH.load(Relaxed);
        // Capture and DHAT apply to counted allocations only; a scan
        // process scrubs every block.
        let modes = if depth == 0 {
            word & MODE_BITS
        } else {
            word & SCAN_BIT
        };
        let base = if modes & DHAT_BIT != 0 {
            dhat_alloc(local, outer, zeroed)
        } else {
            // SAFETY: `outer` has a non-zero size (it includes the header).
            self.guarded(local, depth, || unsafe {
                if zeroed {
                    self.inner.alloc_zeroed(outer)
                } else {
                    self.inner.alloc(outer)
                }
            })
        };
        if base.is_null() {
            return base;
        }
        // SAFETY: the block has `offset + size` bytes, `offset >= 16`.
        let user = unsafe { base.add(offset) };
        let epoch = word & !MODE_BITS;
        let tag = local.tag.get();
        let mark = if depth == 0 { TRACKED } else { UNTRACKED };
        let site = if modes == 0 {
            0
        } else {
            special_site(local, modes, depth == 0, user, layout.size(), epoch, tag)
        };
        // SAFETY: the header lies inside the block, before `user`.
        unsafe {
            header_of(user).write(Header {
                mark,
                epoch,
                tag,
                site,
            })
        };
        if depth == 0 {
            slot_of(local).on_alloc(epoch, tag, layout.size() as u64);
        }
        user
    }
}

// SAFETY: every method forwards to the inner allocator with a layout that
// has room for the header in front and an alignment of at least 16 and at
// least the caller's (the header offset is a multiple of the caller's
// alignment, so the pointer past the header keeps it), and hands out the
// pointer past the header. `dealloc` and `realloc` recompute the same
// offset and outer layout from the caller's layout.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Alloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc`.
        unsafe { self.alloc_impl(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc_zeroed`.
        unsafe { self.alloc_impl(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc_impl` with this layout, so a header
        // precedes it and `block_of` finds the block and its outer layout.
        unsafe {
            let header = header_of(ptr).read();
            debug_assert!(header.mark == TRACKED || header.mark == UNTRACKED);
            let (base, outer) = block_of(ptr, layout);
            let local = local();
            if header.mark == TRACKED {
                slot_of(local).on_free(header.epoch, header.tag, layout.size() as u64);
            }
            if header.site != 0 {
                site_free(local, header.site, ptr, layout.size() as u64, base, outer);
                if header.site & VIA_DHAT != 0 {
                    return;
                }
            }
            let depth = local.depth.get();
            self.guarded(local, depth, || self.inner.dealloc(base, outer));
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let offset = header_offset(layout.align());
        let Some(new_outer) = outer_layout(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: `ptr` came from `alloc_impl` with `layout`: a header
        // precedes it and the block starts `offset` bytes before it. The
        // inner realloc keeps the header bytes at the start of the block.
        unsafe {
            let old = header_of(ptr).read();
            debug_assert!(old.mark == TRACKED || old.mark == UNTRACKED);
            let (base, outer) = block_of(ptr, layout);
            let local = local();
            let depth = local.depth.get();
            // A block of the census moves in it under its lock, so that no
            // other thread is handed the old address while it is still there.
            #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
            let mut census = (old.site & IN_CENSUS != 0).then(census::lock);
            let moved = if old.site & VIA_DHAT != 0 {
                dhat_realloc(local, base, outer, new_outer.size())
            } else if old.site & SCRUB != 0 {
                self.scrubbing_realloc(local, depth, base, outer, new_outer)
            } else {
                self.guarded(local, depth, || {
                    self.inner.realloc(base, outer, new_outer.size())
                })
            };
            if moved.is_null() {
                return moved;
            }
            let user = moved.add(offset);
            if old.mark == TRACKED {
                // A realloc makes the block anew: it now belongs to this cycle.
                let epoch = EPOCH.load(Relaxed) & !MODE_BITS;
                (*header_of(user)).epoch = epoch;
                #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
                if let Some(census) = &mut census {
                    // The census keeps the block's birth: a leak's sites
                    // are those of blocks born in its window, as capture
                    // outside a scan process sees them.
                    let born = census.remove(ptr as usize).map_or(epoch, |e| e.epoch);
                    census.insert(census::Entry {
                        addr: user as usize,
                        size: new_size,
                        epoch: born,
                        tag: old.tag,
                        site: old.site & SITE_ID,
                    });
                }
                if old.site & SITE_ID != 0 {
                    site_resize(old.site, layout.size() as u64, new_size as u64);
                }
                slot_of(local).on_realloc(
                    old.epoch,
                    epoch,
                    old.tag,
                    layout.size() as u64,
                    new_size as u64,
                );
            }
            user
        }
    }
}

/// Runs `f` with counting suspended on this thread: blocks it allocates are
/// untracked for good (their frees are not counted either). Frees of counted
/// blocks inside `f` are still counted.
pub(crate) fn untracked<R>(f: impl FnOnce() -> R) -> R {
    struct Resume;
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = LOCAL.try_with(|l| l.depth.set(l.depth.get() - 1));
        }
    }
    let _ = LOCAL.try_with(|l| l.depth.set(l.depth.get() + 1));
    let _resume = Resume;
    f()
}

/// The current epoch (collection cycle in progress).
pub(crate) fn epoch() -> u32 {
    EPOCH.load(Relaxed) & !MODE_BITS
}

/// Moves to the next epoch, modulo 2^30, leaving the mode bits as they
/// are; returns the new one.
pub(crate) fn advance_epoch() -> u32 {
    let next = |word: u32| (word & MODE_BITS) | (word.wrapping_add(1) & EPOCH_MASK);
    let previous = EPOCH
        .fetch_update(AcqRel, Relaxed, |word| Some(next(word)))
        .unwrap_or_else(|word| word);
    next(previous) & EPOCH_MASK
}

/// How many epochs `later` is after `earlier`, across the wrap.
#[cfg(feature = "harness")]
pub(crate) fn epochs_between(earlier: u32, later: u32) -> u32 {
    later.wrapping_sub(earlier) & EPOCH_MASK
}

/// The epoch `k` epochs before `now`, across the wrap.
pub(crate) fn epoch_before(now: u32, k: u32) -> u32 {
    now.wrapping_sub(k) & EPOCH_MASK
}

/// Sets the epoch (the modes kept): for the test of the wrap, which would
/// otherwise take 2^30 collection cycles.
#[doc(hidden)]
pub fn set_epoch_for_tests(epoch: u32) {
    let _ = EPOCH.fetch_update(AcqRel, Relaxed, |word| {
        Some((word & MODE_BITS) | (epoch & EPOCH_MASK))
    });
}

/// Whether a mode bit is set (sites captured, or DHAT): for the test of
/// the wrap.
#[doc(hidden)]
pub fn modes_for_tests() -> u32 {
    EPOCH.load(Relaxed) & MODE_BITS
}

/// The header's `site` field for a block at `user` allocated in capture,
/// DHAT or scan mode.
#[cold]
#[allow(clippy::too_many_arguments)]
fn special_site(
    local: &Local,
    modes: u32,
    counted: bool,
    user: *mut u8,
    size: usize,
    epoch: u32,
    tag: u32,
) -> u32 {
    let site = if modes & CAPTURE_BIT != 0 {
        capture_site(local, size as u64)
    } else {
        0
    };
    // A scan process enters counted blocks in the census, and scrubs all.
    #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
    let site = if modes & SCAN_BIT == 0 {
        site
    } else if counted
        && !census::lock().insert(census::Entry {
            addr: user as usize,
            size,
            epoch,
            tag,
            site,
        })
    {
        census::note_missing();
        site | SCRUB
    } else if counted {
        site | IN_CENSUS | SCRUB
    } else {
        site | SCRUB
    };
    #[cfg(not(all(feature = "harness", target_os = "linux", target_arch = "x86_64")))]
    let _ = (user, epoch, tag, counted);
    if modes & DHAT_BIT != 0 {
        site | VIA_DHAT
    } else {
        site
    }
}

/// A block at `user` with a site, in the census or made by dhat is freed:
/// it leaves the census, its site's figures drop, and dhat frees what dhat
/// made.
#[cold]
fn site_free(local: &Local, site: u32, user: *mut u8, size: u64, base: *mut u8, outer: Layout) {
    #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
    if site & IN_CENSUS != 0 {
        census::lock().remove(user as usize);
    }
    #[cfg(not(all(feature = "harness", target_os = "linux", target_arch = "x86_64")))]
    let _ = user;
    if site & SCRUB != 0 {
        // SAFETY: `user` is the start of the block being freed, `size`
        // bytes long, and nothing uses it any more.
        unsafe { ptr::write_bytes(user, 0, size as usize) };
    }
    if site & SITE_ID != 0 {
        site_resize(site, size, 0);
    }
    if site & VIA_DHAT != 0 {
        local.depth.set(local.depth.get() + 1);
        // SAFETY: the header says `dhat::Alloc` made this block, with the
        // same outer layout; it is freed once, here.
        unsafe { GlobalAlloc::dealloc(&DHAT_ALLOC, base, outer) };
        local.depth.set(local.depth.get() - 1);
    }
}
