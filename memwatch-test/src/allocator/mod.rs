//! The counting global allocator: the only module of the crate with `unsafe`.
//!
//! This file holds [`Alloc`], its `GlobalAlloc` methods and the modes; each
//! other concern has a file of its own:
//!
//! - `header`: the 16 bytes in front of a headered block, and the layout
//!   asked of the inner allocator;
//! - `marks`: which blocks are headered, for the free to tell;
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
//! A block is *plain* or *headered*. Outside windows, a counted block is
//! plain: the inner allocator's block, handed out as it is, with no byte
//! added. Its allocation and free move the thread's totals (live bytes and
//! blocks, the peak); that is all `gc()`, the stats and the leak rule need.
//!
//! While a *window* is open (survivors tracked, a leak test, site capture,
//! DHAT, a scan process), under a [tag](crate::tag), and while counting is
//! suspended, a block gets a 16-byte [`Header`] in front of it (or `align`
//! bytes for alignments above 16, so the user pointer keeps its
//! alignment). The header says whether the block is counted, the collection
//! cycle (epoch) it was allocated in and its tag. Because the block carries
//! this, its free is credited to the right cycle and tag from any thread.
//!
//! A free tells the two kinds apart from the mark map (`marks`), memory the
//! allocator owns: it never reads in front of a block to find out. The map
//! is only consulted once some block got a header. A plain block
//! reallocated in a window becomes headered, stamped with the current cycle,
//! as a headered one is restamped. The processes the harness starts to run
//! one test or to scan header every block, decided at their first
//! allocation: they have no plain block and skip the map.
//!
//! Counters live in per-thread [`Slot`]s. The owning thread updates them
//! with a relaxed load and store (no locked read-modify-write, no shared
//! cache line is written); readers sum every slot. The sums are exact at a
//! quiet point, when no thread is between an allocation and its bookkeeping.
//! Slots come from a lock-free list that only grows; a thread that exits
//! folds its figures into the shared slot, and its slot is reused.
//!
//! Allocations made while the thread's `depth` is non-zero are *untracked*:
//! those made re-entrantly from inside the inner allocator, those made while
//! a slot is being claimed, and those the engine makes for its own
//! bookkeeping ([`untracked`]). Their header says so, so their frees are not
//! counted either, whichever thread makes them.
//!
//! The hot path touches only const-initialised thread-locals without `Drop`
//! ([`LOCAL`], and the mark map's last leaf), reads the global epoch word
//! with a relaxed load, takes no lock and never allocates. The headered
//! paths are out of line, so the plain one stays short.
//!
//! The epoch word also holds the flags the hot path needs, so it learns
//! them with the same load: a window is open, some block has a header, the
//! process headers every block (or has not decided yet), and three modes: capture (each block's stack goes to the site table), DHAT
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
mod marks;
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
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Mutex;

/// How many recent collection cycles keep their own survivor counters: at
/// least a leak test's default budget of measured iterations, so that the
/// decision sees every one of them. Older cycles are folded into one
/// "earlier" figure. A power of two.
pub(crate) const EPOCH_WINDOW: usize = 2048;
/// How many tags can be told apart (id 0 is "untagged"); a power of two.
pub(crate) const MAX_TAGS: usize = 256;

/// The current collection cycle: blocks allocated now are stamped with it.
/// Starts at 1; collection cycle `n` moves it to `n + 1`. Its top bits are
/// flags ([`FLAG_BITS`]), so the hot path learns them with the same load.
static EPOCH: AtomicU32 = AtomicU32::new(1 | UNDECIDED_BIT);
/// Set in [`EPOCH`] while allocation sites are captured.
const CAPTURE_BIT: u32 = 1 << 31;
/// Set in [`EPOCH`] while allocations go to `dhat::Alloc`, for a DHAT file.
const DHAT_BIT: u32 = 1 << 30;
/// Set in [`EPOCH`] for the whole life of a scan process: every counted
/// block is entered in the census (see `census`).
const SCAN_BIT: u32 = 1 << 29;
/// Set in [`EPOCH`] while a [`Window`] is open: new blocks get a header.
const WINDOW_BIT: u32 = 1 << 28;
/// Set in [`EPOCH`] once any block got a header, for good: from then on a
/// free asks the mark map whether its block has one.
const HEADERS_BIT: u32 = 1 << 27;
/// Set in [`EPOCH`] from the start until the first allocation decides
/// whether this process headers every block ([`ALWAYS_BIT`]): that first
/// allocation takes the headered path, which decides.
const UNDECIDED_BIT: u32 = 1 << 26;
/// Set in [`EPOCH`] for the whole life of a process the harness started to
/// run one test, or to scan: every block gets a header, from the very
/// first, so no block is plain and no free asks the mark map. Such a
/// process is mostly one window, the test's.
const ALWAYS_BIT: u32 = 1 << 25;
/// The modes: bits of [`EPOCH`] that send a block down a special path.
const MODE_BITS: u32 = CAPTURE_BIT | DHAT_BIT | SCAN_BIT;
/// The bits of [`EPOCH`] that give new blocks a header.
const HEADERED_BITS: u32 = MODE_BITS | WINDOW_BIT | UNDECIDED_BIT | ALWAYS_BIT;
/// The bits of [`EPOCH`] that are flags, not the epoch.
const FLAG_BITS: u32 = HEADERED_BITS | HEADERS_BIT;
/// The bits of [`EPOCH`] that are the epoch: it counts modulo 2^25 and
/// wraps there without touching the flags. 2^25 is a multiple of
/// [`EPOCH_WINDOW`], so the ring buckets follow the wrap.
const EPOCH_MASK: u32 = !FLAG_BITS;

/// How many windows are open; the first sets [`WINDOW_BIT`], the last
/// clears it.
static WINDOWS: Mutex<u32> = Mutex::new(0);

/// While one is alive, blocks get a header that stamps them with their
/// collection cycle and tag (see the module's design notes). Survivor
/// tracking and the harness's leak tests hold one.
#[derive(Debug)]
pub(crate) struct Window(());

impl Window {
    /// Opens a window: blocks allocated from now on are headered.
    pub(crate) fn open() -> Window {
        let mut open = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        if *open == 0 {
            EPOCH.fetch_or(WINDOW_BIT, AcqRel);
        }
        *open += 1;
        Window(())
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let mut open = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        *open -= 1;
        if *open == 0 {
            EPOCH.fetch_and(!WINDOW_BIT, AcqRel);
        }
    }
}

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
    /// The thread-local is only touched when guarding, so a path through
    /// `System` reads nothing for it.
    #[inline(always)]
    fn guarded<R>(&self, call: impl FnOnce() -> R) -> R {
        if !self.reentrant {
            return call();
        }
        let local = local();
        let depth = local.depth.get();
        local.depth.set(depth + 1);
        let r = call();
        local.depth.set(depth);
        r
    }
}

/// A headered block could not be marked (its address is above the mark
/// map, or no memory was left for the map): it was given back, and the
/// caller makes a plain block instead.
struct Unmarkable;

impl<A: GlobalAlloc> Alloc<A> {
    /// A scan process's realloc: a new block, the bytes copied, the old
    /// block zeroed and freed (see [`SCRUB`]).
    ///
    /// # Safety
    /// `base` is a block of the inner allocator with layout `outer`;
    /// `new_outer` has the same alignment.
    #[cold]
    #[inline(never)]
    unsafe fn scrubbing_realloc(&self, base: *mut u8, outer: Layout, new_outer: Layout) -> *mut u8 {
        // SAFETY: `new_outer` has a non-zero size (it includes the header).
        let new = self.guarded(|| unsafe { self.inner.alloc(new_outer) });
        if new.is_null() {
            return new;
        }
        // SAFETY: both blocks are live, distinct, and at least this long;
        // the old one is then zeroed and freed once, with its layout.
        unsafe {
            ptr::copy_nonoverlapping(base, new, outer.size().min(new_outer.size()));
            ptr::write_bytes(base, 0, outer.size());
            self.guarded(|| self.inner.dealloc(base, outer));
        }
        new
    }

    /// A plain block: the inner allocator's, as it is, counted as one.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn alloc_plain<const ZEROED: bool>(&self, word: u32, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` has a non-zero size.
        let block = self.guarded(|| unsafe {
            if ZEROED {
                self.inner.alloc_zeroed(layout)
            } else {
                self.inner.alloc(layout)
            }
        });
        if !block.is_null() {
            own_slot().on_plain_alloc(word & EPOCH_MASK, layout.size() as u64);
        }
        block
    }

    /// [`Self::make_headered`] out of line, for the paths with a mode on.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[cold]
    #[inline(never)]
    unsafe fn make_headered_cold(
        &self,
        local: &Local,
        word: u32,
        layout: Layout,
        zeroed: bool,
        counted: bool,
        tag: u32,
    ) -> Result<*mut u8, Unmarkable> {
        // SAFETY: same contract.
        unsafe { self.make_headered(local, word, layout, zeroed, counted, tag) }
    }

    /// A headered block for `layout`: allocated, marked, its header
    /// written (and, in a mode, its site taken, its census entry made).
    /// Counts nothing. A null pointer when the inner allocator has no
    /// memory. Inlined, so that where the caller knows no mode is on, the
    /// paths of the modes go.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn make_headered(
        &self,
        local: &Local,
        word: u32,
        layout: Layout,
        zeroed: bool,
        counted: bool,
        tag: u32,
    ) -> Result<*mut u8, Unmarkable> {
        let Some(outer) = outer_layout(layout.size(), layout.align()) else {
            return Ok(ptr::null_mut());
        };
        // Capture and DHAT apply to counted allocations only; a scan
        // process scrubs every block.
        let modes = if counted {
            word & MODE_BITS
        } else {
            word & SCAN_BIT
        };
        let base = if modes & DHAT_BIT != 0 {
            dhat_alloc(local, outer, zeroed)
        } else {
            // SAFETY: `outer` has a non-zero size (it includes the header).
            self.guarded(|| unsafe {
                if zeroed {
                    self.inner.alloc_zeroed(outer)
                } else {
                    self.inner.alloc(outer)
                }
            })
        };
        if base.is_null() {
            return Ok(base);
        }
        if word & HEADERS_BIT == 0 {
            EPOCH.fetch_or(HEADERS_BIT, AcqRel);
        }
        // SAFETY: the block has `offset + size` bytes, `offset >= 16`.
        let user = unsafe { base.add(header_offset(layout.align())) };
        // A process where every block is headered keeps no marks.
        if word & ALWAYS_BIT == 0 && !marks::mark(user) {
            if modes & DHAT_BIT != 0 {
                // SAFETY: just made by dhat with `outer`, never handed out.
                unsafe { dhat_dealloc(local, base, outer) };
            } else {
                // SAFETY: just allocated with `outer`, never handed out.
                self.guarded(|| unsafe { self.inner.dealloc(base, outer) });
            }
            return Err(Unmarkable);
        }
        let epoch = word & EPOCH_MASK;
        let site = if modes == 0 {
            0
        } else {
            special_site(local, modes, counted, user, layout.size(), epoch, tag)
        };
        // SAFETY: the header lies inside the block, before `user`.
        unsafe {
            header_of(user).write(Header {
                mark: if counted { TRACKED } else { UNTRACKED },
                epoch,
                tag,
                site,
            })
        };
        Ok(user)
    }

    /// `alloc` and `alloc_zeroed` of a headered block, counted under the
    /// thread's tag unless counting is suspended.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(never)]
    unsafe fn alloc_headered<const ZEROED: bool>(
        &self,
        local: &Local,
        word: u32,
        layout: Layout,
    ) -> *mut u8 {
        if word & UNDECIDED_BIT != 0 {
            decide();
            // SAFETY: same contract.
            return unsafe { self.alloc_impl::<ZEROED>(layout) };
        }
        let counted = local.depth.get() == 0;
        let tag = local.tag.get();
        // The common case, a counted block of an alignment up to 16 in a
        // window with no mode on, is inlined here with the modes' paths
        // gone, and the header's layout known.
        // SAFETY: same contract; up to 16, the header and outer layout do
        // not depend on the alignment (see `header_offset`, `outer_align`).
        let made = unsafe {
            if counted && word & MODE_BITS == 0 && layout.align() <= HEADER {
                let layout = Layout::from_size_align_unchecked(layout.size(), HEADER);
                self.make_headered(local, word & !MODE_BITS, layout, ZEROED, true, tag)
            } else {
                self.make_headered_cold(local, word, layout, ZEROED, counted, tag)
            }
        };
        match made {
            Ok(user) => {
                if counted && !user.is_null() {
                    own_slot().on_alloc(word & EPOCH_MASK, tag, layout.size() as u64);
                }
                user
            }
            // SAFETY: same contract.
            Err(Unmarkable) => unsafe { self.alloc_plain::<ZEROED>(word, layout) },
        }
    }

    /// `dealloc` of a headered block, whose mark is `mark`; `word` is the
    /// epoch word as read.
    ///
    /// # Safety
    /// `ptr` is a marked (headered) block from this allocator with `layout`.
    #[inline(never)]
    unsafe fn dealloc_headered(
        &self,
        ptr: *mut u8,
        layout: Layout,
        mark: Option<marks::Mark>,
        word: u32,
    ) {
        // SAFETY: a header precedes `ptr` and `block_of` finds the block
        // and its outer layout. The mark goes before the block does.
        unsafe {
            let header = header_of(ptr).read();
            debug_assert!(header.mark == TRACKED || header.mark == UNTRACKED);
            if let Some(mark) = &mark {
                mark.clear();
            }
            let (base, outer) = block_of(ptr, layout);
            let local = local();
            if header.mark == TRACKED {
                own_slot().on_free(header.epoch, header.tag, layout.size() as u64, word);
            }
            if header.site != 0 {
                site_free(local, header.site, ptr, layout.size() as u64, base, outer);
                if header.site & VIA_DHAT != 0 {
                    return;
                }
            }
            self.guarded(|| self.inner.dealloc(base, outer));
        }
    }

    /// `realloc` of a plain block in a window: it becomes a headered block
    /// of the current cycle (untagged, as it was), so that the window sees
    /// it as made now, as it sees a headered block reallocated.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract; `ptr` is a plain block.
    #[inline(never)]
    unsafe fn realloc_into_window(
        &self,
        local: &Local,
        word: u32,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: `realloc`'s contract makes `new_size` at `layout.align()`
        // a valid layout, of non-zero size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: same.
        let new = match unsafe { self.make_headered_cold(local, word, new_layout, false, true, 0) }
        {
            Ok(new) => new,
            // SAFETY: same contract.
            Err(Unmarkable) => return unsafe { self.realloc_plain(word, ptr, layout, new_size) },
        };
        if new.is_null() {
            return new;
        }
        // SAFETY: both blocks are live and distinct, each at least this
        // long; the old one is freed once, with its layout, as plain.
        unsafe {
            ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.guarded(|| self.inner.dealloc(ptr, layout));
        }
        own_slot().on_realloc_from_plain(word & EPOCH_MASK, layout.size() as u64, new_size as u64);
        new
    }

    /// `realloc` of a plain block that stays plain.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract; `ptr` is a plain block.
    #[inline(always)]
    unsafe fn realloc_plain(
        &self,
        word: u32,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded: a plain block is the
        // inner allocator's with this very layout.
        let new = self.guarded(|| unsafe { self.inner.realloc(ptr, layout, new_size) });
        if !new.is_null() {
            own_slot().on_plain_realloc(word & EPOCH_MASK, layout.size() as u64, new_size as u64);
        }
        new
    }

    /// `realloc` of a headered block, whose mark is `mark`.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract; `ptr` is a marked (headered)
    /// block.
    #[inline(never)]
    unsafe fn realloc_headered(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        mark: Option<marks::Mark>,
    ) -> *mut u8 {
        let offset = header_offset(layout.align());
        let Some(new_outer) = outer_layout(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: `ptr` came from `make_headered` with `layout`: a header
        // precedes it and the block starts `offset` bytes before it. The
        // inner realloc keeps the header bytes at the start of the block.
        // The mark goes before the inner allocator may take the block
        // back, and comes back if it does not.
        unsafe {
            let old = header_of(ptr).read();
            debug_assert!(old.mark == TRACKED || old.mark == UNTRACKED);
            let (base, outer) = block_of(ptr, layout);
            let local = local();
            // A block of the census moves in it under its lock, so that no
            // other thread is handed the old address while it is still there.
            #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
            let mut census = (old.site & IN_CENSUS != 0).then(census::lock);
            if let Some(mark) = &mark {
                mark.clear();
            }
            let moved = if old.site & VIA_DHAT != 0 {
                dhat_realloc(local, base, outer, new_outer.size())
            } else if old.site & SCRUB != 0 {
                self.scrubbing_realloc(base, outer, new_outer)
            } else {
                self.guarded(|| self.inner.realloc(base, outer, new_outer.size()))
            };
            if moved.is_null() {
                if let Some(mark) = &mark {
                    mark.restore();
                }
                return moved;
            }
            let user = moved.add(offset);
            if mark.is_some() && !marks::mark(user) {
                #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
                drop(census);
                return self.unheader(local, user, old, layout, new_size);
            }
            if old.mark == TRACKED {
                // A realloc makes the block anew: it now belongs to this cycle.
                let epoch = EPOCH.load(Relaxed) & EPOCH_MASK;
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
                own_slot().on_realloc(
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

    /// A headered block that a realloc moved where it cannot be marked
    /// (see [`Unmarkable`]): its bytes move to a plain block, and it is
    /// freed. Counted as its free and a plain block's allocation.
    ///
    /// # Safety
    /// `user` is the unmarked, moved headered block, now `new_size` bytes
    /// at `layout.align()`, with the header `old`.
    #[cold]
    #[inline(never)]
    unsafe fn unheader(
        &self,
        local: &Local,
        user: *mut u8,
        old: Header,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        let word = EPOCH.load(Relaxed);
        // SAFETY: `realloc`'s contract makes this a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size.
        let plain = unsafe { self.alloc_plain::<false>(word, new_layout) };
        if plain.is_null() {
            // The old pointer is gone and the moved block cannot be
            // handed out: out of memory, with nothing valid to return.
            std::alloc::handle_alloc_error(new_layout);
        }
        // SAFETY: both are live, distinct and at least `new_size` long.
        unsafe { ptr::copy_nonoverlapping(user, plain, new_size) };
        if old.mark == TRACKED {
            own_slot().on_free(old.epoch, old.tag, layout.size() as u64, word);
        }
        // Its site's figures drop as a free's would (by the size they hold).
        // A scan process headers every block, so none is in the census or
        // scrubbed here.
        debug_assert!(old.site & (IN_CENSUS | SCRUB) == 0);
        if old.site & SITE_ID != 0 {
            site_resize(old.site, layout.size() as u64, 0);
        }
        // SAFETY: the moved block, with the layout it now has.
        let (base, outer) = unsafe { block_of(user, new_layout) };
        if old.site & VIA_DHAT != 0 {
            // SAFETY: dhat made (and moved) it, with this outer layout; it
            // is freed once, here.
            unsafe { dhat_dealloc(local, base, outer) };
        } else {
            // SAFETY: the moved block, with its outer layout, freed once.
            self.guarded(|| unsafe { self.inner.dealloc(base, outer) });
        }
        plain
    }
}

// SAFETY: a plain block is the inner allocator's block for the caller's
// layout, forwarded as it is. A headered block is the inner allocator's
// block for a layout with room for the header in front and an alignment of
// at least 16 and at least the caller's (the header offset is a multiple of
// the caller's alignment, so the pointer past the header keeps it), handed
// out past the header. The mark map tells the two apart from the pointer
// alone (see `marks`), and `dealloc` and `realloc` recompute the same
// offset and outer layout from the caller's layout.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Alloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc`.
        unsafe { self.alloc_impl::<false>(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc_zeroed`.
        unsafe { self.alloc_impl::<true>(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let word = EPOCH.load(Relaxed);
        if word & (HEADERS_BIT | ALWAYS_BIT) != 0 {
            if word & ALWAYS_BIT != 0 {
                // SAFETY: in such a process every block is headered.
                return unsafe { self.dealloc_headered(ptr, layout, None, word) };
            }
            if let Some(mark) = marks::marked(ptr) {
                // SAFETY: a marked pointer is a headered block's.
                return unsafe { self.dealloc_headered(ptr, layout, Some(mark), word) };
            }
        }
        // Counted first, so that the inner free is the last call.
        own_slot().on_plain_free(layout.size() as u64);
        // SAFETY: an unmarked pointer is a plain block: the inner
        // allocator's, with this very layout.
        self.guarded(|| unsafe { self.inner.dealloc(ptr, layout) });
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let word = EPOCH.load(Relaxed);
        if word & (HEADERS_BIT | ALWAYS_BIT) != 0 {
            if word & ALWAYS_BIT != 0 {
                // SAFETY: in such a process every block is headered.
                return unsafe { self.realloc_headered(ptr, layout, new_size, None) };
            }
            if let Some(mark) = marks::marked(ptr) {
                // SAFETY: a marked pointer is a headered block's.
                return unsafe { self.realloc_headered(ptr, layout, new_size, Some(mark)) };
            }
        }
        if word & HEADERED_BITS != 0 {
            // SAFETY: same contract; an unmarked pointer is a plain block.
            return unsafe { self.realloc_into_window(local(), word, ptr, layout, new_size) };
        }
        // SAFETY: same contract; an unmarked pointer is a plain block.
        unsafe { self.realloc_plain(word, ptr, layout, new_size) }
    }
}

impl<A: GlobalAlloc> Alloc<A> {
    /// `alloc` and `alloc_zeroed`: a plain block outside windows, tags and
    /// suspended counting; a headered one otherwise.
    ///
    /// # Safety
    /// Same contract as [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn alloc_impl<const ZEROED: bool>(&self, layout: Layout) -> *mut u8 {
        let word = EPOCH.load(Relaxed);
        if word & HEADERED_BITS == 0 && untagged_and_counting() {
            // SAFETY: same contract.
            unsafe { self.alloc_plain::<ZEROED>(word, layout) }
        } else {
            // SAFETY: same contract.
            unsafe { self.alloc_headered::<ZEROED>(local(), word, layout) }
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
    EPOCH.load(Relaxed) & EPOCH_MASK
}

/// Moves to the next epoch, modulo 2^25, leaving the flags as they are;
/// returns the new one.
pub(crate) fn advance_epoch() -> u32 {
    let next = |word: u32| (word & FLAG_BITS) | (word.wrapping_add(1) & EPOCH_MASK);
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

/// Sets the epoch (the flags kept): for the test of the wrap, which would
/// otherwise take 2^25 collection cycles.
#[doc(hidden)]
pub fn set_epoch_for_tests(epoch: u32) {
    let _ = EPOCH.fetch_update(AcqRel, Relaxed, |word| {
        Some((word & FLAG_BITS) | (epoch & EPOCH_MASK))
    });
}

/// Whether a mode bit is set (sites captured, or DHAT): for the test of
/// the wrap.
#[doc(hidden)]
pub fn modes_for_tests() -> u32 {
    EPOCH.load(Relaxed) & MODE_BITS
}

/// How many epochs there are before the epoch wraps: for the test of the
/// wrap.
#[doc(hidden)]
pub fn epoch_period_for_tests() -> u32 {
    EPOCH_MASK + 1
}

/// Whether `ptr`, a live block from the counting allocator, carries a
/// header: for the tests that blocks outside windows cost no memory.
#[doc(hidden)]
pub fn headered_for_tests(ptr: *const u8) -> bool {
    let word = EPOCH.load(Relaxed);
    word & ALWAYS_BIT != 0 || (word & HEADERS_BIT != 0 && marks::is_marked(ptr.cast_mut()))
}

/// Whether this process headers every block (the harness's own test and
/// scan processes): for the test of that mode.
#[doc(hidden)]
pub fn every_block_headered_for_tests() -> bool {
    EPOCH.load(Relaxed) & ALWAYS_BIT != 0
}

/// The first allocation of the process decides whether every block gets a
/// header: yes in a process the harness started to run one test
/// (`MEMWATCH_CHILD`) or to scan (`MEMWATCH_SCAN`), read without
/// allocating. Before it, no block exists, so none is plain in such a
/// process.
#[cold]
#[inline(never)]
fn decide() {
    #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
    let always = census::env_is_set(memwatch_report::env::CHILD)
        || census::env_is_set(memwatch_report::env::SCAN);
    #[cfg(not(all(feature = "harness", target_os = "linux", target_arch = "x86_64")))]
    let always = false;
    let _ = EPOCH.fetch_update(AcqRel, Acquire, |word| {
        (word & UNDECIDED_BIT != 0).then(|| {
            let word = word & !UNDECIDED_BIT;
            if always {
                word | ALWAYS_BIT
            } else {
                word
            }
        })
    });
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
        // SAFETY: the header says `dhat::Alloc` made this block, with the
        // same outer layout; it is freed once, here.
        unsafe { dhat_dealloc(local, base, outer) };
    }
}
