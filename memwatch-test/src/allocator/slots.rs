//! Per-thread counters (slots), the thread's state on the hot path, and
//! the totals readers sum over every slot.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};

use super::*;

/// Set once any block has been counted: the allocator is installed.
pub(super) static COUNTING: AtomicBool = AtomicBool::new(false);
/// One past the highest tag id handed out: readers sum only these rows.
pub(super) static TAGS_IN_USE: AtomicU32 = AtomicU32::new(1);

/// The four per-tag counters: blocks allocated and freed, and bytes added and
/// removed (a realloc adds or removes the difference).
#[repr(C)]
pub(super) struct TagCells {
    allocs: AtomicU64,
    frees: AtomicU64,
    bytes_added: AtomicU64,
    bytes_removed: AtomicU64,
}

/// One thread's counters. Figures are two's-complement `i64`s stored in
/// `u64`s: a thread that frees what another allocated goes negative.
///
/// What a plain block's allocation and free touch (the kind of slot, the
/// net and peak, the untagged row) is in the slot's first 64 bytes: one
/// cache line.
#[repr(C, align(128))]
pub(crate) struct Slot {
    /// The fallback slot is shared by threads without a slot of their own
    /// (during thread teardown, or when no memory is left for a slot); it
    /// uses atomic read-modify-write.
    shared: bool,
    in_use: AtomicBool,
    /// Its figures were moved into the shared slot when its thread exited,
    /// and no thread has taken it since: readers pass it by.
    folded: AtomicBool,
    peak_epoch: AtomicU32,
    /// This thread's net bytes, and its high-water mark in `peak_epoch`.
    net: AtomicU64,
    peak: AtomicU64,
    peak_base: AtomicU64,
    /// Per tag; row 0 (untagged) ends the first cache line.
    tags: [TagCells; MAX_TAGS],
    next: AtomicPtr<Slot>,
    /// Net live `[bytes, blocks]` by epoch, indexed by `epoch % EPOCH_WINDOW`.
    epochs: [[AtomicU64; 2]; EPOCH_WINDOW],
    /// Net `[bytes, blocks]` freed from blocks older than the window.
    old: [AtomicU64; 2],
}

// The hot fields and the untagged row fill the first cache line exactly.
const _: () = assert!(std::mem::offset_of!(Slot, tags) + std::mem::size_of::<TagCells>() == 64);

#[allow(clippy::declare_interior_mutable_const)]
pub(super) const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
pub(super) const ZERO_TAG: TagCells = TagCells {
    allocs: ZERO,
    frees: ZERO,
    bytes_added: ZERO,
    bytes_removed: ZERO,
};

pub(super) static SHARED: Slot = Slot {
    shared: true,
    in_use: AtomicBool::new(true),
    folded: AtomicBool::new(false),
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
pub(super) static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());

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
    pub(super) fn on_alloc(&self, epoch: u32, tag: u32, size: u64) {
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

    /// A plain block of `size` bytes was allocated in `epoch`: it counts
    /// as untagged and in no cycle's bucket.
    #[inline(always)]
    pub(super) fn on_plain_alloc(&self, epoch: u32, size: u64) {
        if self.shared {
            self.plain_alloc_as::<true>(epoch, size)
        } else {
            self.plain_alloc_as::<false>(epoch, size)
        }
    }

    #[inline(always)]
    fn plain_alloc_as<const SHARED: bool>(&self, epoch: u32, size: u64) {
        let t = &self.tags[0];
        Self::add::<SHARED>(&t.allocs, 1);
        Self::add::<SHARED>(&t.bytes_added, size);
        self.grow::<SHARED>(epoch, size);
    }

    /// A plain block of `size` bytes was freed.
    #[inline(always)]
    pub(super) fn on_plain_free(&self, size: u64) {
        if self.shared {
            self.plain_free_as::<true>(size)
        } else {
            self.plain_free_as::<false>(size)
        }
    }

    #[inline(always)]
    fn plain_free_as<const SHARED: bool>(&self, size: u64) {
        let t = &self.tags[0];
        Self::add::<SHARED>(&t.frees, 1);
        Self::add::<SHARED>(&t.bytes_removed, size);
        Self::add::<SHARED>(&self.net, size.wrapping_neg());
    }

    /// A plain block went from `old` to `new` bytes in `epoch`, and stayed
    /// plain.
    #[inline(always)]
    pub(super) fn on_plain_realloc(&self, epoch: u32, old: u64, new: u64) {
        if self.shared {
            self.resize_as::<true>(epoch, 0, old, new)
        } else {
            self.resize_as::<false>(epoch, 0, old, new)
        }
    }

    /// A plain block of `old` bytes became a headered block of `new` bytes
    /// in `epoch` (a realloc in a window): it enters that epoch's bucket.
    #[inline(always)]
    pub(super) fn on_realloc_from_plain(&self, epoch: u32, old: u64, new: u64) {
        if self.shared {
            self.unplain_as::<true>(epoch, old, new)
        } else {
            self.unplain_as::<false>(epoch, old, new)
        }
    }

    #[inline(always)]
    fn unplain_as<const SHARED: bool>(&self, epoch: u32, old: u64, new: u64) {
        let to = &self.epochs[epoch as usize % EPOCH_WINDOW];
        Self::add::<SHARED>(&to[0], new);
        Self::add::<SHARED>(&to[1], 1);
        self.resize_as::<SHARED>(epoch, 0, old, new);
    }

    /// A block of `tag` went from `old` to `new` bytes in `epoch`: the
    /// tag's bytes and the thread's net (and peak) follow.
    #[inline(always)]
    fn resize_as<const SHARED: bool>(&self, epoch: u32, tag: u32, old: u64, new: u64) {
        let t = self.tag(tag);
        if new >= old {
            Self::add::<SHARED>(&t.bytes_added, new - old);
            self.grow::<SHARED>(epoch, new - old);
        } else {
            Self::add::<SHARED>(&t.bytes_removed, old - new);
            Self::add::<SHARED>(&self.net, (old - new).wrapping_neg());
        }
    }

    /// A headered block of `epoch` and `tag` was freed; `word` is the
    /// epoch word as read now.
    #[inline(always)]
    pub(super) fn on_free(&self, epoch: u32, tag: u32, size: u64, word: u32) {
        if self.shared {
            self.free_as::<true>(epoch, tag, size, word)
        } else {
            self.free_as::<false>(epoch, tag, size, word)
        }
    }

    #[inline(always)]
    fn free_as<const SHARED: bool>(&self, epoch: u32, tag: u32, size: u64, word: u32) {
        let cells = self.epoch_cells(epoch, word & EPOCH_MASK);
        Self::add::<SHARED>(&cells[0], size.wrapping_neg());
        Self::add::<SHARED>(&cells[1], 1u64.wrapping_neg());
        let t = self.tag(tag);
        Self::add::<SHARED>(&t.frees, 1);
        Self::add::<SHARED>(&t.bytes_removed, size);
        Self::add::<SHARED>(&self.net, size.wrapping_neg());
    }

    #[inline(always)]
    pub(super) fn on_realloc(&self, old_epoch: u32, epoch: u32, tag: u32, old: u64, new: u64) {
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
        self.resize_as::<SHARED>(epoch, tag, old, new);
    }
}

/// The thread's state on the hot path: const-initialised, no `Drop`.
pub(super) struct Local {
    pub(super) slot: Cell<*const Slot>,
    /// Non-zero while counting is suspended on this thread.
    pub(super) depth: Cell<u32>,
    /// The tag new blocks are allocated under (0: untagged).
    pub(super) tag: Cell<u32>,
    /// A stack address in the frame that calls the test body (0: none):
    /// capture stops unwinding at the first frame above it, the harness's.
    pub(super) stack_end: Cell<usize>,
}

thread_local! {
    pub(super) static LOCAL: Local = const {
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
pub(super) fn local() -> &'static Local {
    let ptr: *const Local = LOCAL.with(|l| l as *const Local);
    // SAFETY: a const-initialised thread-local without `Drop` lives as long
    // as its thread, and every use of the reference stays within the
    // current call on the current thread.
    unsafe { &*ptr }
}

/// Gives the thread's slot back when the thread exits. Touched only on the
/// cold path that claims a slot, never on the hot path.
pub(super) struct Owner(Cell<*const Slot>);

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
        let slot = unsafe { &*slot };
        // Its figures go to the shared slot, so that readers need not sum
        // the slots of threads that are gone.
        fold(slot);
        slot.in_use.store(false, Release);
    }
}

thread_local! {
    static OWNER: Owner = const { Owner(Cell::new(ptr::null())) };
}

/// This thread's slot, claiming one on the thread's first counted
/// operation. Read without the thread-local's address, so the hot path
/// loads no thread pointer for it.
#[inline(always)]
pub(super) fn own_slot() -> &'static Slot {
    let slot = LOCAL.with(|l| l.slot.get());
    if slot.is_null() {
        claim(local())
    } else {
        // SAFETY: `slot` is either `&SHARED` or a slot from `SLOTS`; neither
        // is ever freed.
        unsafe { &*slot }
    }
}

/// Whether counting on this thread is plain: not suspended, no tag.
#[inline(always)]
pub(super) fn untagged_and_counting() -> bool {
    LOCAL.with(|l| l.depth.get() | l.tag.get()) == 0
}

#[cold]
#[inline(never)]
pub(super) fn claim(local: &Local) -> &'static Slot {
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

pub(super) fn reuse_slot() -> Option<&'static Slot> {
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
            // Readers count it again before its new owner adds to it.
            slot.folded.store(false, Release);
            return Some(slot);
        }
        cur = slot.next.load(Acquire);
    }
    None
}

pub(super) fn new_slot() -> Option<&'static Slot> {
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
pub(super) fn for_each_slot(mut f: impl FnMut(&Slot)) {
    f(&SHARED);
    let mut cur = SLOTS.load(Acquire);
    while !cur.is_null() {
        // SAFETY: list entries are never freed.
        let slot = unsafe { &*cur };
        // A folded slot holds nothing: its figures are in the shared slot.
        if !slot.folded.load(Acquire) {
            f(slot);
        }
        cur = slot.next.load(Acquire);
    }
}

/// Counts folds, as a sequence lock: odd while one is moving figures.
/// Readers that sum the slots read it before and after, and sum again when
/// a fold ran meanwhile, so that no figure is seen twice or not at all.
static FOLDS: AtomicU64 = AtomicU64::new(0);
/// Held by the one thread folding its slot.
static FOLDING: AtomicBool = AtomicBool::new(false);
/// The rise of the live bytes (see [`peak_rise`]) of threads that exited
/// during the epoch in `RETIRED_EPOCH`.
static RETIRED_RISE: AtomicU64 = AtomicU64::new(0);
static RETIRED_EPOCH: AtomicU32 = AtomicU32::new(u32::MAX);
/// Never an epoch (they are below 2^25): a folded slot's peak is stale.
const NO_EPOCH: u32 = u32::MAX;

/// Moves the figures of `slot`, whose thread is exiting and adds to it no
/// more, into the shared slot, and marks it folded.
fn fold(slot: &Slot) {
    while FOLDING
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    FOLDS.fetch_add(1, Relaxed);
    std::sync::atomic::fence(Release);
    let moved = |from: &AtomicU64, to: &AtomicU64| {
        if from.load(Relaxed) != 0 {
            to.fetch_add(from.swap(0, Relaxed), Relaxed);
        }
    };
    for (from, to) in slot.epochs.iter().zip(&SHARED.epochs) {
        moved(&from[0], &to[0]);
        moved(&from[1], &to[1]);
    }
    moved(&slot.old[0], &SHARED.old[0]);
    moved(&slot.old[1], &SHARED.old[1]);
    moved(&slot.net, &SHARED.net);
    let tags = tags_in_use();
    for (from, to) in slot.tags[..tags].iter().zip(&SHARED.tags[..tags]) {
        moved(&from.allocs, &to.allocs);
        moved(&from.frees, &to.frees);
        moved(&from.bytes_added, &to.bytes_added);
        moved(&from.bytes_removed, &to.bytes_removed);
    }
    // Its rise in the current cycle stays counted.
    let epoch = slot.peak_epoch.load(Relaxed);
    let rise = (slot.peak.load(Relaxed) as i64)
        .saturating_sub(slot.peak_base.load(Relaxed) as i64)
        .max(0) as u64;
    if epoch != NO_EPOCH && rise > 0 {
        if RETIRED_EPOCH.load(Relaxed) == epoch {
            RETIRED_RISE.fetch_add(rise, Relaxed);
        } else if epoch == (EPOCH.load(Relaxed) & EPOCH_MASK) {
            RETIRED_EPOCH.store(epoch, Relaxed);
            RETIRED_RISE.store(rise, Relaxed);
        }
    }
    slot.peak_epoch.store(NO_EPOCH, Relaxed);
    slot.peak.store(0, Relaxed);
    slot.peak_base.store(0, Relaxed);
    slot.folded.store(true, Relaxed);
    FOLDS.fetch_add(1, Release);
    FOLDING.store(false, Release);
}

/// How many slots readers sum now (the shared one included): for the test
/// that the slots of exited threads cost nothing.
#[doc(hidden)]
pub fn slots_summed_for_tests() -> usize {
    let mut n = 0;
    for_each_slot(|_| n += 1);
    n
}

/// Runs `read`, a sum over the slots, again until no fold ran during it.
fn consistent<T>(mut read: impl FnMut() -> T) -> T {
    loop {
        let before = FOLDS.load(Acquire);
        if before % 2 == 0 {
            let out = read();
            std::sync::atomic::fence(Acquire);
            if FOLDS.load(Relaxed) == before {
                return out;
            }
        }
        std::hint::spin_loop();
    }
}

/// Records that tag ids up to `id` may be in use.
pub(crate) fn note_tag(id: u32) {
    TAGS_IN_USE.fetch_max(id + 1, AcqRel);
}

/// How many tag rows readers must sum.
pub(super) fn tags_in_use() -> usize {
    (TAGS_IN_USE.load(Acquire) as usize).min(MAX_TAGS)
}

/// Sets the tag new blocks of this thread are allocated under; returns the
/// previous one.
pub(crate) fn swap_tag(tag: u32) -> u32 {
    LOCAL.with(|l| l.tag.replace(tag))
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
    consistent(sum_totals)
}

fn sum_totals() -> Totals {
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
    consistent(|| sum_tag_totals(out))
}

fn sum_tag_totals(out: &mut Vec<TagTotals>) {
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
    consistent(|| sum_bucket(epoch))
}

fn sum_bucket(epoch: u32) -> (i64, i64) {
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
    consistent(|| sum_rise(epoch))
}

fn sum_rise(epoch: u32) -> u64 {
    let mut rise = if RETIRED_EPOCH.load(Relaxed) == epoch {
        RETIRED_RISE.load(Relaxed)
    } else {
        0
    };
    for_each_slot(|slot| {
        if !slot.shared && slot.peak_epoch.load(Relaxed) == epoch {
            let peak = slot.peak.load(Relaxed) as i64;
            let base = slot.peak_base.load(Relaxed) as i64;
            rise = rise.saturating_add(peak.saturating_sub(base).max(0) as u64);
        }
    });
    rise
}
