//! The site table: each capture window's allocation stacks, and the live
//! blocks allocated from each, written lock-free.

#[cfg(feature = "harness")]
use std::sync::atomic::Ordering::AcqRel;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

use super::*;

/// Most frames kept of an allocation's stack, from the allocation up to the
/// frame that calls the test body: enough for the user's frame under a deep
/// library stack (serde, regex, tokio, tracing).
pub(crate) const MAX_FRAMES: usize = 64;
/// Distinct allocation sites the table holds; beyond that, blocks go
/// unattributed (and are counted as such).
pub(crate) const SITE_SLOTS: usize = 8192;
/// How far an insertion probes before it gives up.
pub(super) const MAX_PROBES: usize = 64;

pub(super) const EMPTY: u32 = 0;
pub(super) const WRITING: u32 = 1;
pub(super) const READY: u32 = 2;
/// A window's start is checking whether the slot is still in use.
#[cfg(feature = "harness")]
pub(super) const RECLAIMING: u32 = 3;

/// One allocation site: a stack of return addresses, and the live blocks
/// allocated from it. Written lock-free: a slot is claimed with a CAS, its
/// frames written, then published.
pub(super) struct SiteSlot {
    state: AtomicU32,
    generation: AtomicU32,
    hash: AtomicU64,
    len: AtomicU32,
    frames: [AtomicUsize; MAX_FRAMES],
    live_blocks: AtomicU64,
    live_bytes: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
pub(super) const EMPTY_SITE: SiteSlot = SiteSlot {
    state: AtomicU32::new(EMPTY),
    generation: AtomicU32::new(0),
    hash: AtomicU64::new(0),
    len: AtomicU32::new(0),
    frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
    live_blocks: AtomicU64::new(0),
    live_bytes: AtomicU64::new(0),
};

pub(super) static SITES: [SiteSlot; SITE_SLOTS] = [EMPTY_SITE; SITE_SLOTS];
/// Each capture window has its own sites, so that frees of blocks from an
/// earlier window never blur the current one.
pub(super) static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Blocks of the current window that found no room in the table.
pub(super) static UNATTRIBUTED: AtomicU64 = AtomicU64::new(0);

/// Writes the return addresses of the current stack into `frames`, the
/// innermost first; returns how many it wrote.
#[cfg(feature = "harness")]
pub(super) fn trace(frames: &mut [usize; MAX_FRAMES], stack_end: usize) -> usize {
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
pub(super) fn trace(_frames: &mut [usize; MAX_FRAMES], _stack_end: usize) -> usize {
    0
}

/// Records the stack of an allocation of `size` bytes; returns its site id
/// (0 when the table is full). Cold: only while capturing.
#[cold]
#[inline(never)]
pub(super) fn capture_site(local: &Local, size: u64) -> u32 {
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

/// A block of site `site` changed from `old` to `new` bytes (0: freed).
#[cold]
pub(super) fn site_resize(site: u32, old: u64, new: u64) {
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
pub(super) fn reclaim_sites() {
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
