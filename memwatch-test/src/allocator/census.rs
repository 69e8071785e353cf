//! Every live counted block of a scan process, with its address and size:
//! the heap a retainer scan walks ([`super::scan`]).
//!
//! Only a process the harness starts to scan a leak ([`env::SCAN`] set)
//! keeps it: the first slot claimed (at the process's first allocations,
//! before `main`) sets the scan mode, and from then on every counted block
//! is entered here on allocation and removed before it is freed. Plain runs
//! never touch it: the mode is a bit of the epoch word the hot path loads
//! anyway.
//!
//! The table is an open-addressing hash map from the block's address,
//! behind a spin lock: the scan process is a diagnostic run, and the lock
//! keeps the table and the blocks it describes in step (a block leaves the
//! table before the inner allocator can hand its address to another
//! thread). Its memory is mapped on its own (`mmap`), never from the
//! counting allocator nor the C allocator's heap, so nothing here comes
//! back through the allocator and no stale copy of it lies in the heap the
//! scan reads.

use std::cell::UnsafeCell;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use memwatch_report::env;

/// One live block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    /// The address the program got (past the header); 0 in an empty slot.
    pub addr: usize,
    pub size: usize,
    /// The epoch it was first allocated in (a realloc keeps it).
    pub epoch: u32,
    pub tag: u32,
    /// Its site id in the site table (0: not captured).
    pub site: u32,
}

struct Table {
    entries: *mut Entry,
    /// A power of two, or 0 before the first insertion.
    capacity: usize,
    len: usize,
}

struct Census {
    locked: AtomicBool,
    table: UnsafeCell<Table>,
}

// SAFETY: `table` is only reached through a `Guard`, which holds `locked`.
unsafe impl Sync for Census {}

static CENSUS: Census = Census {
    locked: AtomicBool::new(false),
    table: UnsafeCell::new(Table {
        entries: std::ptr::null_mut(),
        capacity: 0,
        len: 0,
    }),
};

/// Whether this process was started to scan (read once, at the first slot
/// claimed).
pub(super) fn requested() -> bool {
    static CHECKED: AtomicBool = AtomicBool::new(false);
    if CHECKED.swap(true, AcqRel) {
        return false;
    }
    env_is_set(env::SCAN)
}

/// Whether the environment variable `name` is set, read without
/// allocating: the allocator asks before its first block.
pub(super) fn env_is_set(name: &str) -> bool {
    let mut buf = [0u8; 32];
    let bytes = name.as_bytes();
    if bytes.len() >= buf.len() {
        return false;
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: `buf` is NUL-terminated (the name is shorter than it);
    // `getenv` neither allocates nor keeps the pointer.
    !unsafe { libc::getenv(buf.as_ptr().cast()) }.is_null()
}

/// Exclusive access to the table.
pub(crate) struct Guard {
    _private: (),
}

/// Takes the table's lock.
pub(crate) fn lock() -> Guard {
    while CENSUS
        .locked
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    Guard { _private: () }
}

impl Drop for Guard {
    fn drop(&mut self) {
        CENSUS.locked.store(false, Release);
    }
}

#[inline]
fn home(addr: usize, capacity: usize) -> usize {
    ((addr >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> (usize::BITS - capacity.trailing_zeros())
}

impl Guard {
    fn table(&mut self) -> &mut Table {
        // SAFETY: the guard holds the lock, so no other reference to the
        // table exists while this one lives.
        unsafe { &mut *CENSUS.table.get() }
    }

    fn slots(&mut self) -> &mut [Entry] {
        let t = self.table();
        if t.capacity == 0 {
            return &mut [];
        }
        // SAFETY: `entries` holds `capacity` initialised entries, allocated
        // by `grow` and owned by the table, which the guard has to itself.
        unsafe { std::slice::from_raw_parts_mut(t.entries, t.capacity) }
    }

    /// Live blocks in the table.
    pub(crate) fn len(&mut self) -> usize {
        self.table().len
    }

    /// Enters a block; `false` when no memory was left for the table (the
    /// block is then unknown to the scan, which says so).
    pub(crate) fn insert(&mut self, entry: Entry) -> bool {
        let t = self.table();
        if (t.len + 1) * 2 > t.capacity && !self.grow() {
            return false;
        }
        let capacity = self.table().capacity;
        let slots = self.slots();
        let mut i = home(entry.addr, capacity);
        loop {
            if slots[i].addr == 0 || slots[i].addr == entry.addr {
                let new = slots[i].addr == 0;
                slots[i] = entry;
                if new {
                    self.table().len += 1;
                }
                return true;
            }
            i = (i + 1) & (capacity - 1);
        }
    }

    /// Removes the block at `addr`; returns it.
    pub(crate) fn remove(&mut self, addr: usize) -> Option<Entry> {
        let capacity = self.table().capacity;
        if capacity == 0 {
            return None;
        }
        let slots = self.slots();
        let mut i = home(addr, capacity);
        while slots[i].addr != addr {
            if slots[i].addr == 0 {
                return None;
            }
            i = (i + 1) & (capacity - 1);
        }
        let removed = slots[i];
        // Backward-shift deletion: later entries of the run move up into
        // the hole when their home is not between the hole and them.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & (capacity - 1);
            if slots[j].addr == 0 {
                break;
            }
            let h = home(slots[j].addr, capacity);
            let between = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !between {
                slots[hole] = slots[j];
                hole = j;
            }
        }
        slots[hole] = Entry::default();
        self.table().len -= 1;
        Some(removed)
    }

    /// The table's own memory (it holds every block's address, so a scan
    /// must not read it as a root).
    pub(crate) fn memory(&mut self) -> (usize, usize) {
        let t = self.table();
        let start = t.entries as usize;
        (start, start + t.capacity * std::mem::size_of::<Entry>())
    }

    /// Calls `f` with every live block.
    pub(crate) fn for_each(&mut self, mut f: impl FnMut(&Entry)) {
        for e in self.slots().iter().filter(|e| e.addr != 0) {
            f(e);
        }
    }

    /// Doubles the table; `false` when no memory is left for it. The table
    /// is mapped on its own, never taken from the C allocator's heap: an
    /// old table left there, freed but not cleared, would hold the address
    /// of every block, and the scan reads that heap for pointers.
    fn grow(&mut self) -> bool {
        let old_capacity = self.table().capacity;
        let capacity = (old_capacity * 2).max(1 << 12);
        let bytes = capacity * std::mem::size_of::<Entry>();
        // SAFETY: an anonymous private mapping of `bytes` bytes, zero-filled
        // (all-zero bytes are empty entries), owned by the table alone.
        let entries = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if entries == libc::MAP_FAILED {
            return false;
        }
        let old_entries = self.table().entries;
        let t = self.table();
        t.entries = entries.cast();
        t.capacity = capacity;
        t.len = 0;
        if old_capacity > 0 {
            // SAFETY: the old mapping holds `old_capacity` entries; the
            // table no longer refers to it, and it is only read until it is
            // unmapped.
            let slice = unsafe { std::slice::from_raw_parts(old_entries, old_capacity) };
            for e in slice.iter().filter(|e| e.addr != 0) {
                self.insert(*e);
            }
            // SAFETY: mapped by this function with this size, unmapped once.
            unsafe {
                libc::munmap(
                    old_entries.cast(),
                    old_capacity * std::mem::size_of::<Entry>(),
                )
            };
        }
        true
    }
}

/// Blocks that could not be entered (no memory for the table).
static MISSING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A block could not be entered.
pub(super) fn note_missing() {
    MISSING.fetch_add(1, Relaxed);
}

/// How many blocks could not be entered: the scan cannot call anything
/// lost when one did not.
pub(crate) fn missing() -> u64 {
    MISSING.load(Relaxed)
}

/// Whether this process keeps the census.
pub(crate) fn active() -> bool {
    super::EPOCH.load(Relaxed) & super::SCAN_BIT != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks at made-up addresses: the table is only read by a scan, which
    /// no unit test starts.
    fn entry(k: usize) -> Entry {
        Entry {
            addr: 0x7000_0000_0000 + k * 48,
            size: k,
            epoch: k as u32,
            tag: 0,
            site: 1,
        }
    }

    #[test]
    fn entries_survive_growth_and_removal_in_any_order() {
        let mut census = lock();
        let before = census.len();
        let n = 20_000;
        for k in 0..n {
            assert!(census.insert(entry(k)));
        }
        assert_eq!(census.len(), before + n);
        // Remove every third, from the end, so runs shift backwards.
        for k in (0..n).rev().filter(|k| k % 3 == 0) {
            assert_eq!(census.remove(entry(k).addr), Some(entry(k)));
        }
        assert_eq!(census.remove(entry(0).addr), None, "removed once");
        let mut left = Vec::new();
        census.for_each(|e| {
            if e.addr >= entry(0).addr && e.addr <= entry(n).addr {
                left.push(*e);
            }
        });
        left.sort_by_key(|e| e.addr);
        let expected: Vec<Entry> = (0..n).filter(|k| k % 3 != 0).map(entry).collect();
        assert_eq!(left, expected);
        // Re-entering an address replaces its entry.
        assert!(census.insert(Entry {
            size: 1,
            ..entry(1)
        }));
        assert_eq!(census.remove(entry(1).addr).map(|e| e.size), Some(1));
        for e in expected.iter().skip(1) {
            assert!(census.remove(e.addr).is_some());
        }
        assert_eq!(census.len(), before);
        let (start, end) = census.memory();
        assert!(end > start, "the table lives in a mapping of its own");
    }
}
