//! Which blocks carry a header: a byte for every 16 bytes of address space,
//! set while a headered block's pointer lives there.
//!
//! Blocks get a [`Header`](super::header::Header) only while a window is
//! open (survivor tracking, a leak test, a tag, site capture, DHAT, a scan
//! process) or when counting is suspended; every other block is handed out
//! as the inner allocator made it. A free must tell the two apart without
//! reading memory that may not belong to the block, so the answer comes
//! from memory the allocator owns: this map.
//!
//! A headered block's pointer is always 16-aligned (see `header_offset`),
//! so one byte per 16 bytes of addresses tells every such pointer apart.
//! The map is a three-level radix tree, like a page table: a static root
//! over the 48-bit address space, tables of 256 leaves, and leaves of 16 MiB
//! covering 256 MiB of addresses each. Tables and leaves come from the
//! system allocator zeroed (the system maps them lazily), on the cold path
//! of the first headered block in their range, and are never freed. Each
//! thread remembers the last leaf it used, so a lookup is mostly two
//! thread-local loads and the mark's.
//!
//! A byte is set after the block is allocated and before its pointer is
//! handed out, and cleared before the block goes back to the inner
//! allocator. So whoever frees a pointer sees its byte set exactly when the
//! block is headered: the allocation of a block happens before its free,
//! and the inner allocator hands an address out again only after it got it
//! back. Distinct live blocks never share their first byte, so a plain
//! block never finds a headered block's mark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicPtr, AtomicU8};

/// A mark covers 16 bytes of addresses.
const GRANULE_SHIFT: u32 = 4;
/// A leaf covers 256 MiB of addresses (1 MiB under Miri, which keeps
/// metadata for every byte of a 16 MiB leaf).
#[cfg(not(miri))]
const LEAF_SHIFT: u32 = 28;
#[cfg(miri)]
const LEAF_SHIFT: u32 = 20;
/// A table covers 64 GiB of addresses.
const TABLE_SHIFT: u32 = 36;
/// The root covers the 48-bit address space every supported platform
/// hands out by default. A block above it is never headered (see [`mark`]).
const ADDRESS_BITS: u32 = 48;

const LEAF_LEN: usize = 1 << (LEAF_SHIFT - GRANULE_SHIFT);
const TABLE_LEN: usize = 1 << (TABLE_SHIFT - LEAF_SHIFT);
const ROOT_LEN: usize = 1 << (ADDRESS_BITS - TABLE_SHIFT);

struct Leaf([AtomicU8; LEAF_LEN]);
struct Table([AtomicPtr<Leaf>; TABLE_LEN]);

static ROOT: [AtomicPtr<Table>; ROOT_LEN] = [const { AtomicPtr::new(ptr::null_mut()) }; ROOT_LEN];

/// Where the mark of `addr` lives: root index, table index, leaf index.
#[inline(always)]
fn position(addr: usize) -> (usize, usize, usize) {
    (
        addr >> TABLE_SHIFT,
        (addr >> LEAF_SHIFT) & (TABLE_LEN - 1),
        (addr >> GRANULE_SHIFT) & (LEAF_LEN - 1),
    )
}

/// Addresses no headered block's pointer has: unaligned ones, and those
/// above the map.
const NEVER_MARKED: usize = !((1 << ADDRESS_BITS) - 1) | ((1 << GRANULE_SHIFT) - 1);

thread_local! {
    /// The leaf this thread found last, and its key (`addr >> LEAF_SHIFT`):
    /// a thread's blocks mostly come from one region of addresses, so most
    /// lookups skip the walk. Leaves are never freed or replaced, so an
    /// entry never goes stale.
    static LAST_LEAF: Cell<(usize, *const Leaf)> = const { Cell::new((usize::MAX, ptr::null())) };
}

/// The leaf of `addr`, an address below the map, if it exists.
#[inline(always)]
fn leaf(addr: usize) -> Option<&'static Leaf> {
    let key = addr >> LEAF_SHIFT;
    let (last, leaf) = LAST_LEAF.with(Cell::get);
    if last == key {
        // SAFETY: a published leaf, never freed.
        return Some(unsafe { &*leaf });
    }
    walk(addr)
}

/// The leaf of `addr` found from the root, remembered as the thread's last.
#[inline(never)]
fn walk(addr: usize) -> Option<&'static Leaf> {
    let (r, t, _) = position(addr);
    let table = ROOT[r].load(Acquire);
    if table.is_null() {
        return None;
    }
    // SAFETY: tables are published once, fully zeroed, and never freed.
    let leaf = unsafe { &(*table).0[t] }.load(Acquire);
    if leaf.is_null() {
        return None;
    }
    let _ = LAST_LEAF.try_with(|last| last.set((addr >> LEAF_SHIFT, leaf)));
    // SAFETY: leaves are published once, fully zeroed, and never freed.
    Some(unsafe { &*leaf })
}

/// The mark of `addr`, an address below the map, if its leaf exists.
#[inline(always)]
fn cell(addr: usize) -> Option<&'static AtomicU8> {
    leaf(addr).map(|leaf| &leaf.0[(addr >> GRANULE_SHIFT) & (LEAF_LEN - 1)])
}

/// A headered block's mark, found from its pointer.
pub(super) struct Mark(&'static AtomicU8);

impl Mark {
    /// Clears the mark, before the block goes back to the inner allocator.
    #[inline(always)]
    pub(super) fn clear(&self) {
        self.0.store(0, Relaxed);
    }

    /// Sets it again: the block stayed with its owner after all (a failed
    /// realloc).
    #[inline(always)]
    pub(super) fn restore(&self) {
        self.0.store(1, Relaxed);
    }
}

/// The mark of `user`, a pointer the counting allocator handed out, when
/// it is a headered block's.
#[inline(always)]
pub(super) fn marked(user: *mut u8) -> Option<Mark> {
    let addr = user as usize;
    if addr & NEVER_MARKED != 0 {
        return None;
    }
    cell(addr).filter(|c| c.load(Relaxed) != 0).map(Mark)
}

/// Whether `user`, a pointer the counting allocator handed out, is a
/// headered block's.
#[inline(always)]
pub(super) fn is_marked(user: *mut u8) -> bool {
    marked(user).is_some()
}

/// Marks `user` as a headered block's pointer. Returns `false`, marking
/// nothing, when it cannot: the address is above the map, or no memory is
/// left for the map. The caller then must not hand out a headered block
/// there.
#[inline(always)]
pub(super) fn mark(user: *mut u8) -> bool {
    let addr = user as usize;
    debug_assert!(addr & ((1 << GRANULE_SHIFT) - 1) == 0);
    if addr >> ADDRESS_BITS != 0 {
        return false;
    }
    match cell(addr).or_else(|| grow(addr)) {
        Some(c) => {
            c.store(1, Relaxed);
            true
        }
        None => false,
    }
}

/// Makes the table and leaf for `addr`, an address below the map; `None`
/// without memory.
#[cold]
#[inline(never)]
fn grow(addr: usize) -> Option<&'static AtomicU8> {
    let (r, t, l) = position(addr);
    let table = published(&ROOT[r])?;
    let leaf = published(&table.0[t])?;
    Some(&leaf.0[l])
}

/// The node behind `slot`, made zeroed and published when missing. Nodes
/// are all-zero atomics, valid when zeroed.
fn published<T>(slot: &AtomicPtr<T>) -> Option<&'static T> {
    let now = slot.load(Acquire);
    if !now.is_null() {
        // SAFETY: published nodes are zeroed and never freed.
        return Some(unsafe { &*now });
    }
    let layout = Layout::new::<T>();
    // SAFETY: `T` is a table or leaf, of non-zero size. `System` is never
    // this allocator, so this does not come back here.
    let fresh = unsafe { System.alloc_zeroed(layout) }.cast::<T>();
    if fresh.is_null() {
        return None;
    }
    match slot.compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
        // SAFETY: just published, zeroed, never freed.
        Ok(_) => Some(unsafe { &*fresh }),
        Err(theirs) => {
            // SAFETY: `fresh` came from `System` with `layout`, and no one
            // else has seen it.
            unsafe { System.dealloc(fresh.cast(), layout) };
            // SAFETY: published by another thread, zeroed, never freed.
            Some(unsafe { &*theirs })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_exact_to_the_pointer() {
        let block = Box::into_raw(Box::new([0u8; 64])).cast::<u8>();
        // A 16-aligned pointer inside the box stands in for a user pointer.
        let user = ((block as usize + 15) & !15) as *mut u8;
        assert!(!is_marked(user));
        assert!(mark(user));
        assert!(is_marked(user));
        marked(user).unwrap().clear();
        assert!(!is_marked(user));
        assert!(mark(user));
        // SAFETY: 16 bytes on stays inside the 64-byte box.
        let next = unsafe { user.add(16) };
        assert!(!is_marked(next), "a neighbour's mark is its own");
        // SAFETY: one byte on stays inside the box.
        assert!(!is_marked(unsafe { user.add(1) }), "never an unaligned one");
        marked(user).unwrap().clear();
        assert!(!is_marked(user));
        // SAFETY: made by `Box::into_raw` above.
        drop(unsafe { Box::from_raw(block.cast::<[u8; 64]>()) });
    }

    #[test]
    fn lookups_alternating_between_leaves_stay_exact() {
        // Two addresses a leaf apart, in a range no block of this process
        // has: the map is the allocator's own memory, so marking them
        // touches nothing else.
        let a = 0x7e00_0000_0000usize as *mut u8;
        let b = (0x7e00_0000_0000usize + (1 << LEAF_SHIFT)) as *mut u8;
        assert!(mark(a));
        assert!(!is_marked(b), "a's leaf is the thread's last now");
        assert!(mark(b));
        for _ in 0..3 {
            assert!(is_marked(a));
            assert!(is_marked(b));
        }
        marked(a).unwrap().clear();
        assert!(!is_marked(a));
        assert!(is_marked(b));
        marked(b).unwrap().clear();
        assert!(!is_marked(b));
    }

    #[test]
    fn addresses_above_the_map_are_never_marked() {
        let far = (1usize << ADDRESS_BITS) as *mut u8;
        assert!(!mark(far));
        assert!(!is_marked(far));
    }

    #[test]
    fn position_splits_the_address() {
        let addr = (3usize << TABLE_SHIFT) | (5 << LEAF_SHIFT) | (7 << GRANULE_SHIFT);
        assert_eq!(position(addr), (3, 5, 7));
        assert_eq!(ROOT_LEN, 4096);
        #[cfg(not(miri))]
        assert_eq!(std::mem::size_of::<Leaf>(), 16 << 20);
    }
}
