//! The counting global allocator: the only module of the crate with `unsafe`.
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

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

/// How many recent collection cycles keep their own survivor counters: at
/// least a leak test's default budget of measured iterations, so that the
/// decision sees every one of them. Older cycles are folded into one
/// "earlier" figure. A power of two.
pub(crate) const EPOCH_WINDOW: usize = 2048;
/// How many tags can be told apart (id 0 is "untagged"); a power of two.
pub(crate) const MAX_TAGS: usize = 256;

/// Size of the header in front of every block, for alignments up to 16.
const HEADER: usize = 16;
/// Header mark of a counted block.
const TRACKED: u32 = 0x4d57_5431;
/// Header mark of a block allocated while counting was suspended.
const UNTRACKED: u32 = 0x4d57_5530;

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
/// Set in a header's `site` when `dhat::Alloc` made the block: it must be
/// the one to free it.
const VIA_DHAT: u32 = 1 << 31;
/// Set in a header's `site` when the block is in the census: it leaves it
/// when freed.
const IN_CENSUS: u32 = 1 << 30;
/// Set in a header's `site` for every block of a scan process: it is zeroed
/// when freed (and when a realloc moves it), so that freed memory, which
/// the scan reads for pointers from memory it does not track, holds no
/// stale pointer.
const SCRUB: u32 = 1 << 29;
/// The bits of a header's `site` that are the site id.
const SITE_ID: u32 = SCRUB - 1;
/// Set once any block has been counted: the allocator is installed.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// One past the highest tag id handed out: readers sum only these rows.
static TAGS_IN_USE: AtomicU32 = AtomicU32::new(1);

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

/// What every block carries in front of it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    mark: u32,
    epoch: u32,
    tag: u32,
    /// 1 + the index of the block's site in [`SITES`], or 0: not captured.
    site: u32,
}

/// The four per-tag counters: blocks allocated and freed, and bytes added and
/// removed (a realloc adds or removes the difference).
#[repr(C)]
struct TagCells {
    allocs: AtomicU64,
    frees: AtomicU64,
    bytes_added: AtomicU64,
    bytes_removed: AtomicU64,
}

/// One thread's counters. Figures are two's-complement `i64`s stored in
/// `u64`s: a thread that frees what another allocated goes negative.
#[repr(C, align(128))]
pub(crate) struct Slot {
    /// The fallback slot is shared by threads without a slot of their own
    /// (during thread teardown, or when no memory is left for a slot); it
    /// uses atomic read-modify-write.
    shared: bool,
    in_use: AtomicBool,
    next: AtomicPtr<Slot>,
    /// Net live `[bytes, blocks]` by epoch, indexed by `epoch % EPOCH_WINDOW`.
    epochs: [[AtomicU64; 2]; EPOCH_WINDOW],
    /// Net `[bytes, blocks]` freed from blocks older than the window.
    old: [AtomicU64; 2],
    /// This thread's net bytes, and its high-water mark in `peak_epoch`.
    net: AtomicU64,
    peak: AtomicU64,
    peak_base: AtomicU64,
    peak_epoch: AtomicU32,
    tags: [TagCells; MAX_TAGS],
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_TAG: TagCells = TagCells {
    allocs: ZERO,
    frees: ZERO,
    bytes_added: ZERO,
    bytes_removed: ZERO,
};

static SHARED: Slot = Slot {
    shared: true,
    in_use: AtomicBool::new(true),
    next: AtomicPtr::new(ptr::null_mut()),
    epochs: [const { [ZERO; 2] }; EPOCH_WINDOW],
    old: [ZERO; 2],
    net: ZERO,
    peak: ZERO,
    peak_base: ZERO,
    peak_epoch: AtomicU32::new(0),
    tags: [ZERO_TAG; MAX_TAGS],
};

/// Head of the list of per-thread slots (the shared slot is not in it).
static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());

impl Slot {
    /// Adds to a counter. `SHARED` is the slot's kind, decided once per
    /// operation: the owner of a slot updates it with a load and a store,
    /// the shared slot with an atomic add.
    #[inline(always)]
    fn add<const SHARED: bool>(cell: &AtomicU64, value: u64) {
        if SHARED {
            cell.fetch_add(value, Relaxed);
        } else {
            cell.store(cell.load(Relaxed).wrapping_add(value), Relaxed);
        }
    }

    #[inline(always)]
    fn tag(&self, tag: u32) -> &TagCells {
        &self.tags[tag as usize & (MAX_TAGS - 1)]
    }

    /// The live counters of a block of `epoch`, as seen in epoch `now`.
    #[inline(always)]
    fn epoch_cells(&self, epoch: u32, now: u32) -> &[AtomicU64; 2] {
        if now.wrapping_sub(epoch) & EPOCH_MASK < EPOCH_WINDOW as u32 {
            &self.epochs[epoch as usize % EPOCH_WINDOW]
        } else {
            &self.old
        }
    }

    /// This thread's net bytes rose by `bytes` in `epoch`: track the peak.
    /// The shared slot does not track peaks (see [`peak_rise`]).
    #[inline(always)]
    fn grow<const SHARED: bool>(&self, epoch: u32, bytes: u64) {
        if SHARED {
            self.net.fetch_add(bytes, Relaxed);
            return;
        }
        let before = self.net.load(Relaxed);
        let net = before.wrapping_add(bytes);
        self.net.store(net, Relaxed);
        if self.peak_epoch.load(Relaxed) != epoch {
            self.peak_epoch.store(epoch, Relaxed);
            self.peak_base.store(before, Relaxed);
            self.peak.store(before, Relaxed);
        }
        if net as i64 > self.peak.load(Relaxed) as i64 {
            self.peak.store(net, Relaxed);
        }
    }

    #[inline(always)]
    fn on_alloc(&self, epoch: u32, tag: u32, size: u64) {
        if self.shared {
            self.alloc_as::<true>(epoch, tag, size)
        } else {
            self.alloc_as::<false>(epoch, tag, size)
        }
    }

    #[inline(always)]
    fn alloc_as<const SHARED: bool>(&self, epoch: u32, tag: u32, size: u64) {
        let cells = &self.epochs[epoch as usize % EPOCH_WINDOW];
        Self::add::<SHARED>(&cells[0], size);
        Self::add::<SHARED>(&cells[1], 1);
        let t = self.tag(tag);
        Self::add::<SHARED>(&t.allocs, 1);
        Self::add::<SHARED>(&t.bytes_added, size);
        self.grow::<SHARED>(epoch, size);
    }

    #[inline(always)]
    fn on_free(&self, epoch: u32, tag: u32, size: u64) {
        if self.shared {
            self.free_as::<true>(epoch, tag, size)
        } else {
            self.free_as::<false>(epoch, tag, size)
        }
    }

    #[inline(always)]
    fn free_as<const SHARED: bool>(&self, epoch: u32, tag: u32, size: u64) {
        let cells = self.epoch_cells(epoch, EPOCH.load(Relaxed) & !MODE_BITS);
        Self::add::<SHARED>(&cells[0], size.wrapping_neg());
        Self::add::<SHARED>(&cells[1], 1u64.wrapping_neg());
        let t = self.tag(tag);
        Self::add::<SHARED>(&t.frees, 1);
        Self::add::<SHARED>(&t.bytes_removed, size);
        Self::add::<SHARED>(&self.net, size.wrapping_neg());
    }

    #[inline(always)]
    fn on_realloc(&self, old_epoch: u32, epoch: u32, tag: u32, old: u64, new: u64) {
        if self.shared {
            self.realloc_as::<true>(old_epoch, epoch, tag, old, new)
        } else {
            self.realloc_as::<false>(old_epoch, epoch, tag, old, new)
        }
    }

    #[inline(always)]
    fn realloc_as<const SHARED: bool>(
        &self,
        old_epoch: u32,
        epoch: u32,
        tag: u32,
        old: u64,
        new: u64,
    ) {
        let from = self.epoch_cells(old_epoch, epoch);
        Self::add::<SHARED>(&from[0], old.wrapping_neg());
        Self::add::<SHARED>(&from[1], 1u64.wrapping_neg());
        let to = &self.epochs[epoch as usize % EPOCH_WINDOW];
        Self::add::<SHARED>(&to[0], new);
        Self::add::<SHARED>(&to[1], 1);
        let t = self.tag(tag);
        if new >= old {
            Self::add::<SHARED>(&t.bytes_added, new - old);
            self.grow::<SHARED>(epoch, new - old);
        } else {
            Self::add::<SHARED>(&t.bytes_removed, old - new);
            Self::add::<SHARED>(&self.net, (old - new).wrapping_neg());
        }
    }
}

/// The thread's state on the hot path: const-initialised, no `Drop`.
struct Local {
    slot: Cell<*const Slot>,
    /// Non-zero while counting is suspended on this thread.
    depth: Cell<u32>,
    /// The tag new blocks are allocated under (0: untagged).
    tag: Cell<u32>,
    /// A stack address in the frame that calls the test body (0: none):
    /// capture stops unwinding at the first frame above it, the harness's.
    stack_end: Cell<usize>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            slot: Cell::new(ptr::null()),
            depth: Cell::new(0),
            tag: Cell::new(0),
            stack_end: Cell::new(0),
        }
    };
}

/// Runs `f`, the test body, with capture unwinding this thread's stacks
/// only as far as this call: the frames of the harness and of `main` above
/// it are never a site, and cost time on every captured allocation.
#[cfg(feature = "harness")]
#[inline(never)]
pub(crate) fn with_stack_end<R>(f: impl FnOnce() -> R) -> R {
    let marker = 0u8;
    let local = local();
    let before = local.stack_end.get();
    // Frames of `f` and of what it calls lie below this local: their
    // canonical frame addresses are at most its address.
    local
        .stack_end
        .set(std::hint::black_box(&marker) as *const u8 as usize);
    let out = f();
    local.stack_end.set(before);
    out
}

/// This thread's [`Local`]. The closure is tiny so that `with` inlines: the
/// hot path then costs one thread-pointer-relative address computation.
#[inline(always)]
fn local() -> &'static Local {
    let ptr: *const Local = LOCAL.with(|l| l as *const Local);
    // SAFETY: a const-initialised thread-local without `Drop` lives as long
    // as its thread, and every use of the reference stays within the
    // current call on the current thread.
    unsafe { &*ptr }
}

/// Gives the thread's slot back when the thread exits. Touched only on the
/// cold path that claims a slot, never on the hot path.
struct Owner(Cell<*const Slot>);

impl Drop for Owner {
    fn drop(&mut self) {
        let slot = self.0.get();
        if slot.is_null() {
            return;
        }
        // Whatever this thread still frees from now on goes to the shared slot.
        let _ = LOCAL.try_with(|local| local.slot.set(&SHARED));
        // SAFETY: slots are never freed, so the pointer is valid for the
        // program's lifetime.
        unsafe { (*slot).in_use.store(false, Release) };
    }
}

thread_local! {
    static OWNER: Owner = const { Owner(Cell::new(ptr::null())) };
}

/// The thread's slot, claiming one on the thread's first counted operation.
#[inline(always)]
fn slot_of(local: &Local) -> &'static Slot {
    let slot = local.slot.get();
    if slot.is_null() {
        claim(local)
    } else {
        // SAFETY: `slot` is either `&SHARED` or a slot from `SLOTS`; neither
        // is ever freed.
        unsafe { &*slot }
    }
}

#[cold]
#[inline(never)]
fn claim(local: &Local) -> &'static Slot {
    // Registering the owner may allocate: those allocations are untracked.
    local.depth.set(local.depth.get() + 1);
    let slot = reuse_slot().or_else(new_slot);
    let slot: &'static Slot = match slot {
        Some(slot) => {
            let registered = OWNER.try_with(|owner| owner.0.set(slot)).is_ok();
            if registered {
                slot
            } else {
                slot.in_use.store(false, Release);
                &SHARED
            }
        }
        None => &SHARED,
    };
    local.slot.set(slot);
    local.depth.set(local.depth.get() - 1);
    COUNTING.store(true, Relaxed);
    // A scan process keeps every block from its first ones on: only the
    // very block whose allocation claims this first slot is left out.
    #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
    if census::requested() {
        EPOCH.fetch_or(SCAN_BIT, AcqRel);
    }
    slot
}

fn reuse_slot() -> Option<&'static Slot> {
    let mut cur = SLOTS.load(Acquire);
    while !cur.is_null() {
        // SAFETY: list entries are never freed.
        let slot = unsafe { &*cur };
        if !slot.in_use.load(Relaxed)
            && slot
                .in_use
                .compare_exchange(false, true, AcqRel, Relaxed)
                .is_ok()
        {
            return Some(slot);
        }
        cur = slot.next.load(Acquire);
    }
    None
}

fn new_slot() -> Option<&'static Slot> {
    let layout = Layout::new::<Slot>();
    // SAFETY: `Slot` has a non-zero size. All-zero bytes are a valid `Slot`
    // (atomics at zero, `shared: false`, a null `next`).
    let raw = unsafe { System.alloc_zeroed(layout) }.cast::<Slot>();
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` is a freshly allocated, valid and suitably aligned `Slot`
    // that nothing else references yet; it is never freed.
    let slot: &'static Slot = unsafe { &*raw };
    slot.in_use.store(true, Relaxed);
    let mut head = SLOTS.load(Relaxed);
    loop {
        slot.next.store(head, Relaxed);
        match SLOTS.compare_exchange_weak(head, raw, AcqRel, Relaxed) {
            Ok(_) => return Some(slot),
            Err(now) => head = now,
        }
    }
}

/// Calls `f` for every slot, the shared one included.
fn for_each_slot(mut f: impl FnMut(&Slot)) {
    f(&SHARED);
    let mut cur = SLOTS.load(Acquire);
    while !cur.is_null() {
        // SAFETY: list entries are never freed.
        let slot = unsafe { &*cur };
        f(slot);
        cur = slot.next.load(Acquire);
    }
}

#[inline(always)]
fn header_offset(align: usize) -> usize {
    if align <= HEADER {
        HEADER
    } else {
        align
    }
}

/// The alignment asked of the inner allocator for a block of `align`: at
/// least the header's 16, so that the header (16 bytes before the user's
/// pointer, which is `header_offset(align)` into the block) is aligned
/// whatever the inner allocator returns. An inner allocator may return
/// exactly the alignment asked for, no more (`GlobalAlloc` allows it);
/// `System` asked for 16 takes the same `malloc` path as for 1.
#[inline(always)]
fn outer_align(align: usize) -> usize {
    if align < HEADER {
        HEADER
    } else {
        align
    }
}

/// The layout asked of the inner allocator for a block of `size` bytes at
/// `align` (a power of two, as every `Layout` has), or `None` when it would
/// be too large for a `Layout`.
#[inline(always)]
fn outer_layout(size: usize, align: usize) -> Option<Layout> {
    let outer = outer_align(align);
    let limit = isize::MAX as usize - (outer - 1) - header_offset(align);
    if size > limit {
        return None;
    }
    // SAFETY: `outer` is a power of two (16, or `align`, which comes from a
    // `Layout`), and `size + offset` rounded up to it stays within
    // `isize::MAX`.
    Some(unsafe { Layout::from_size_align_unchecked(size + header_offset(align), outer) })
}

/// # Safety
/// `user` must point `header_offset(align)` bytes into a block from the inner
/// allocator, so that the 16 bytes before it belong to the block.
#[inline(always)]
unsafe fn header_of(user: *mut u8) -> *mut Header {
    debug_assert!(
        user as usize % HEADER == 0,
        "a block's header is 16-aligned"
    );
    // SAFETY: guaranteed by the caller; the header sits right before `user`
    // and is 16-aligned because the block is (see `outer_align`) and `user`
    // is 16 bytes or a multiple of 16 into it.
    unsafe { user.sub(HEADER).cast::<Header>() }
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
        let offset = header_offset(layout.align());
        // SAFETY: `ptr` came from `alloc_impl` with this layout, so a header
        // precedes it and the block starts `offset` bytes before it; the
        // outer layout was valid when the block was allocated.
        unsafe {
            let header = header_of(ptr).read();
            debug_assert!(header.mark == TRACKED || header.mark == UNTRACKED);
            let base = ptr.sub(offset);
            let outer = Layout::from_size_align_unchecked(
                layout.size() + offset,
                outer_align(layout.align()),
            );
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
            let base = ptr.sub(offset);
            let outer = Layout::from_size_align_unchecked(
                layout.size() + offset,
                outer_align(layout.align()),
            );
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

/// Records that tag ids up to `id` may be in use.
pub(crate) fn note_tag(id: u32) {
    TAGS_IN_USE.fetch_max(id + 1, AcqRel);
}

/// How many tag rows readers must sum.
fn tags_in_use() -> usize {
    (TAGS_IN_USE.load(Acquire) as usize).min(MAX_TAGS)
}

/// Sets the tag new blocks of this thread are allocated under; returns the
/// previous one.
pub(crate) fn swap_tag(tag: u32) -> u32 {
    LOCAL.with(|l| l.tag.replace(tag))
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

/// Most frames kept of an allocation's stack, from the allocation up to the
/// frame that calls the test body: enough for the user's frame under a deep
/// library stack (serde, regex, tokio, tracing).
pub(crate) const MAX_FRAMES: usize = 64;
/// Distinct allocation sites the table holds; beyond that, blocks go
/// unattributed (and are counted as such).
pub(crate) const SITE_SLOTS: usize = 8192;
/// How far an insertion probes before it gives up.
const MAX_PROBES: usize = 64;

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;
/// A window's start is checking whether the slot is still in use.
#[cfg(feature = "harness")]
const RECLAIMING: u32 = 3;

/// One allocation site: a stack of return addresses, and the live blocks
/// allocated from it. Written lock-free: a slot is claimed with a CAS, its
/// frames written, then published.
struct SiteSlot {
    state: AtomicU32,
    generation: AtomicU32,
    hash: AtomicU64,
    len: AtomicU32,
    frames: [AtomicUsize; MAX_FRAMES],
    live_blocks: AtomicU64,
    live_bytes: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SITE: SiteSlot = SiteSlot {
    state: AtomicU32::new(EMPTY),
    generation: AtomicU32::new(0),
    hash: AtomicU64::new(0),
    len: AtomicU32::new(0),
    frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
    live_blocks: AtomicU64::new(0),
    live_bytes: AtomicU64::new(0),
};

static SITES: [SiteSlot; SITE_SLOTS] = [EMPTY_SITE; SITE_SLOTS];
/// Each capture window has its own sites, so that frees of blocks from an
/// earlier window never blur the current one.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Blocks of the current window that found no room in the table.
static UNATTRIBUTED: AtomicU64 = AtomicU64::new(0);

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
    let mut site = if modes & CAPTURE_BIT != 0 {
        capture_site(local, size as u64)
    } else {
        0
    };
    #[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
    if modes & SCAN_BIT != 0 {
        if counted {
            let entered = census::lock().insert(census::Entry {
                addr: user as usize,
                size,
                epoch,
                tag,
                site,
            });
            if entered {
                site |= IN_CENSUS;
            } else {
                census::note_missing();
            }
        }
        site |= SCRUB;
    }
    #[cfg(not(all(feature = "harness", target_os = "linux", target_arch = "x86_64")))]
    let _ = (user, epoch, tag, counted);
    if modes & DHAT_BIT != 0 {
        site | VIA_DHAT
    } else {
        site
    }
}

/// Writes the return addresses of the current stack into `frames`, the
/// innermost first; returns how many it wrote.
#[cfg(feature = "harness")]
fn trace(frames: &mut [usize; MAX_FRAMES], stack_end: usize) -> usize {
    // On the body's thread, the fast unwinder when it can finish the walk.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if stack_end != 0 {
        if let unwind::Walk::Done(len) = unwind::trace(frames, stack_end) {
            return len;
        }
    }
    let mut len = 0;
    // SAFETY: `trace_unsynchronized` is unsafe only because some platforms'
    // unwinders are not thread-safe; on the platforms this crate supports
    // (the system unwinder of Linux, macOS and Windows) it is. The closure
    // only writes into a local array and never allocates or panics.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            // Past the frame that called the test body: the harness's.
            if stack_end != 0 && frame.sp() as usize > stack_end {
                return false;
            }
            frames[len] = frame.ip() as usize;
            len += 1;
            len < MAX_FRAMES
        });
    }
    len
}

/// Without the harness no capture window opens ([`begin_capture`] is the
/// harness's), so no stack is ever asked for.
#[cfg(not(feature = "harness"))]
fn trace(_frames: &mut [usize; MAX_FRAMES], _stack_end: usize) -> usize {
    0
}

/// Records the stack of an allocation of `size` bytes; returns its site id
/// (0 when the table is full). Cold: only while capturing.
#[cold]
#[inline(never)]
fn capture_site(local: &Local, size: u64) -> u32 {
    let mut frames = [0usize; MAX_FRAMES];
    // Unwinding might allocate: such allocations are left uncounted.
    local.depth.set(local.depth.get() + 1);
    let len = trace(&mut frames, local.stack_end.get());
    local.depth.set(local.depth.get() - 1);
    let generation = GENERATION.load(Relaxed);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ generation as u64;
    for &ip in &frames[..len] {
        hash = (hash ^ ip as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let hash = hash | 1;
    for probe in 0..MAX_PROBES {
        let index = (hash as usize).wrapping_add(probe) % SITE_SLOTS;
        let slot = &SITES[index];
        let mut state = slot.state.load(Acquire);
        if state == EMPTY {
            match slot
                .state
                .compare_exchange(EMPTY, WRITING, Acquire, Acquire)
            {
                Ok(_) => {
                    slot.generation.store(generation, Relaxed);
                    slot.hash.store(hash, Relaxed);
                    slot.len.store(len as u32, Relaxed);
                    for (cell, &ip) in slot.frames.iter().zip(&frames[..len]) {
                        cell.store(ip, Relaxed);
                    }
                    slot.state.store(READY, Release);
                    state = READY;
                }
                Err(now) => state = now,
            }
        }
        // A slot another thread is still writing is passed over: the same
        // stack may then take two slots, which the report merges.
        if state == READY
            && slot.hash.load(Relaxed) == hash
            && slot.generation.load(Relaxed) == generation
        {
            // Counted first, then checked again: a window's start may be
            // reclaiming the slot (see `reclaim_sites`), and either it sees
            // this block or this sees it reclaiming, never neither.
            slot.live_blocks.fetch_add(1, SeqCst);
            if slot.state.load(SeqCst) == READY && slot.generation.load(Relaxed) == generation {
                slot.live_bytes.fetch_add(size, Relaxed);
                return index as u32 + 1;
            }
            slot.live_blocks.fetch_sub(1, SeqCst);
        }
    }
    UNATTRIBUTED.fetch_add(1, Relaxed);
    0
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

/// The allocator of DHAT windows. Only the harness opens one
/// ([`begin_dhat`]); without it the DHAT bit is never set and the paths
/// through `DHAT_ALLOC` are never taken, so `System` stands in for
/// `dhat::Alloc` and the engine does not depend on dhat.
#[cfg(feature = "harness")]
const DHAT_ALLOC: dhat::Alloc = dhat::Alloc;
#[cfg(not(feature = "harness"))]
const DHAT_ALLOC: System = System;

/// Allocates through `dhat::Alloc` (a DHAT window); dhat's own bookkeeping
/// allocations come back here and are left uncounted.
#[cold]
#[inline(never)]
fn dhat_alloc(local: &Local, outer: Layout, zeroed: bool) -> *mut u8 {
    local.depth.set(local.depth.get() + 1);
    // SAFETY: `outer` has a non-zero size.
    let p = unsafe {
        if zeroed {
            GlobalAlloc::alloc_zeroed(&DHAT_ALLOC, outer)
        } else {
            GlobalAlloc::alloc(&DHAT_ALLOC, outer)
        }
    };
    local.depth.set(local.depth.get() - 1);
    p
}

/// Reallocates a block `dhat::Alloc` made, through it.
#[cold]
#[inline(never)]
fn dhat_realloc(local: &Local, base: *mut u8, outer: Layout, new_size: usize) -> *mut u8 {
    local.depth.set(local.depth.get() + 1);
    // SAFETY: the header says `dhat::Alloc` made this block with `outer`;
    // `new_size` was checked to make a valid layout.
    let p = unsafe { GlobalAlloc::realloc(&DHAT_ALLOC, base, outer, new_size) };
    local.depth.set(local.depth.get() - 1);
    p
}

#[cfg(feature = "harness")]
/// Starts sending allocations to `dhat::Alloc`.
pub(crate) fn begin_dhat() {
    EPOCH.fetch_or(DHAT_BIT, AcqRel);
}

#[cfg(feature = "harness")]
/// Stops; blocks dhat made are still freed through it.
pub(crate) fn end_dhat() {
    EPOCH.fetch_and(!DHAT_BIT, AcqRel);
}

/// A block of site `site` changed from `old` to `new` bytes (0: freed).
#[cold]
fn site_resize(site: u32, old: u64, new: u64) {
    let slot = &SITES[((site & SITE_ID) as usize - 1) % SITE_SLOTS];
    slot.live_bytes.fetch_add(new.wrapping_sub(old), Relaxed);
    // Last: once a slot's blocks are all gone, nothing of them touches it.
    if new == 0 {
        slot.live_blocks.fetch_sub(1, SeqCst);
    }
}

#[cfg(feature = "harness")]
/// Empties the slots of earlier windows that no live block refers to any
/// more, so that a process running many capture windows (a test binary
/// run in one process) never runs out of room. Slots whose blocks are
/// still live stay taken until those blocks are freed.
fn reclaim_sites() {
    for slot in &SITES {
        if slot.state.load(Acquire) == READY
            && slot.live_blocks.load(SeqCst) == 0
            && slot
                .state
                .compare_exchange(READY, RECLAIMING, SeqCst, Relaxed)
                .is_ok()
        {
            // A block counted in between keeps the slot (see
            // `capture_site`, which counts before it checks).
            if slot.live_blocks.load(SeqCst) == 0 {
                slot.live_bytes.store(0, Relaxed);
                slot.state.store(EMPTY, Release);
            } else {
                slot.state.store(READY, Release);
            }
        }
    }
}

#[cfg(feature = "harness")]
/// Starts capturing allocation sites in a new window.
pub(crate) fn begin_capture() {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    untracked(unwind::prepare);
    GENERATION.fetch_add(1, AcqRel);
    reclaim_sites();
    UNATTRIBUTED.store(0, Relaxed);
    EPOCH.fetch_or(CAPTURE_BIT, AcqRel);
}

#[cfg(feature = "harness")]
/// Stops capturing; blocks already captured keep their sites.
pub(crate) fn end_capture() {
    EPOCH.fetch_and(!CAPTURE_BIT, AcqRel);
}

#[cfg(feature = "harness")]
/// The return addresses of site `id` (a header's or the census's site id).
pub(crate) fn site_frames(id: u32) -> Vec<usize> {
    let Some(index) = ((id & SITE_ID) as usize).checked_sub(1) else {
        return Vec::new();
    };
    let s = &SITES[index % SITE_SLOTS];
    s.frames[..s.len.load(Relaxed) as usize]
        .iter()
        .map(|f| f.load(Relaxed))
        .collect()
}

#[cfg(feature = "harness")]
/// A site of the current window with live blocks.
#[derive(Debug, Clone)]
pub(crate) struct RawSite {
    pub frames: Vec<usize>,
    pub live_blocks: i64,
    pub live_bytes: i64,
}

#[cfg(feature = "harness")]
/// The sites of the current window that still have live blocks, and how
/// many blocks could not be attributed. Call under [`untracked`].
pub(crate) fn live_sites() -> (Vec<RawSite>, u64) {
    let generation = GENERATION.load(Acquire);
    let sites = SITES
        .iter()
        .filter(|s| s.state.load(Acquire) == READY && s.generation.load(Relaxed) == generation)
        .filter_map(|s| {
            let live_blocks = s.live_blocks.load(Relaxed) as i64;
            (live_blocks > 0).then(|| RawSite {
                frames: s.frames[..s.len.load(Relaxed) as usize]
                    .iter()
                    .map(|f| f.load(Relaxed))
                    .collect(),
                live_blocks,
                live_bytes: s.live_bytes.load(Relaxed) as i64,
            })
        })
        .collect();
    (sites, UNATTRIBUTED.load(Relaxed))
}

/// Whether any block has been counted, i.e. [`Alloc`] is the global allocator.
pub(crate) fn counting() -> bool {
    COUNTING.load(Relaxed)
}

/// Process-wide totals, summed over every slot.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub live_bytes: i64,
    pub live_blocks: i64,
    pub allocations: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    pub bytes_freed: u64,
}

pub(crate) fn totals() -> Totals {
    let tags = tags_in_use();
    let mut bytes = 0u64;
    let (mut allocs, mut frees, mut added, mut removed) = (0u64, 0u64, 0u64, 0u64);
    // Live bytes are each slot's net; live blocks are allocations less
    // frees. Both move with the epoch cells, so the window's buckets need
    // no summing here.
    for_each_slot(|slot| {
        bytes = bytes.wrapping_add(slot.net.load(Relaxed));
        for t in &slot.tags[..tags] {
            allocs = allocs.wrapping_add(t.allocs.load(Relaxed));
            frees = frees.wrapping_add(t.frees.load(Relaxed));
            added = added.wrapping_add(t.bytes_added.load(Relaxed));
            removed = removed.wrapping_add(t.bytes_removed.load(Relaxed));
        }
    });
    Totals {
        live_bytes: bytes as i64,
        live_blocks: allocs.wrapping_sub(frees) as i64,
        allocations: allocs,
        frees,
        bytes_allocated: added,
        bytes_freed: removed,
    }
}

/// Per-tag counters summed over every slot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagTotals {
    pub allocs: u64,
    pub frees: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

/// Fills `out` (cleared first) with the totals of every tag id.
pub(crate) fn tag_totals(out: &mut Vec<TagTotals>) {
    let tags = tags_in_use();
    out.clear();
    out.resize(MAX_TAGS, TagTotals::default());
    for_each_slot(|slot| {
        for (sum, t) in out[..tags].iter_mut().zip(&slot.tags[..tags]) {
            sum.allocs = sum.allocs.wrapping_add(t.allocs.load(Relaxed));
            sum.frees = sum.frees.wrapping_add(t.frees.load(Relaxed));
            sum.bytes_added = sum.bytes_added.wrapping_add(t.bytes_added.load(Relaxed));
            sum.bytes_removed = sum
                .bytes_removed
                .wrapping_add(t.bytes_removed.load(Relaxed));
        }
    });
}

/// Net live `(bytes, blocks)` summed over every slot in the ring bucket of
/// `epoch`, including what older epochs left in it (see `cycle::Ledger`).
pub(crate) fn bucket_totals(epoch: u32) -> (i64, i64) {
    let (mut bytes, mut blocks) = (0u64, 0u64);
    let b = epoch as usize % EPOCH_WINDOW;
    for_each_slot(|slot| {
        bytes = bytes.wrapping_add(slot.epochs[b][0].load(Relaxed));
        blocks = blocks.wrapping_add(slot.epochs[b][1].load(Relaxed));
    });
    (bytes as i64, blocks as i64)
}

/// How far live bytes rose above their level at the start of `epoch`, summed
/// over the threads that allocated in it: the peak within the cycle is at
/// most the starting level plus this, and exactly that when one thread
/// allocated.
pub(crate) fn peak_rise(epoch: u32) -> u64 {
    let mut rise = 0u64;
    for_each_slot(|slot| {
        if !slot.shared && slot.peak_epoch.load(Relaxed) == epoch {
            let peak = slot.peak.load(Relaxed) as i64;
            let base = slot.peak_base.load(Relaxed) as i64;
            rise = rise.saturating_add(peak.saturating_sub(base).max(0) as u64);
        }
    });
    rise
}
