//! The DHAT bridge: in a DHAT window, counted blocks are made by
//! `dhat::Alloc`, which must then be the one to free them.

#[cfg(not(feature = "harness"))]
use std::alloc::System;
use std::alloc::{GlobalAlloc, Layout};
#[cfg(feature = "harness")]
use std::sync::atomic::Ordering::AcqRel;

use super::*;

/// The allocator of DHAT windows. Only the harness opens one
/// ([`begin_dhat`]); without it the DHAT bit is never set and the paths
/// through `DHAT_ALLOC` are never taken, so `System` stands in for
/// `dhat::Alloc` and the engine does not depend on dhat.
#[cfg(feature = "harness")]
pub(super) const DHAT_ALLOC: dhat::Alloc = dhat::Alloc;
#[cfg(not(feature = "harness"))]
pub(super) const DHAT_ALLOC: System = System;

/// Allocates through `dhat::Alloc` (a DHAT window); dhat's own bookkeeping
/// allocations come back here and are left uncounted.
#[cold]
#[inline(never)]
pub(super) fn dhat_alloc(local: &Local, outer: Layout, zeroed: bool) -> *mut u8 {
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

/// Frees a block `dhat::Alloc` made, through it.
///
/// # Safety
/// `dhat::Alloc` made `base` with `outer`, and nothing uses it any more.
#[cold]
#[inline(never)]
pub(super) unsafe fn dhat_dealloc(local: &Local, base: *mut u8, outer: Layout) {
    local.depth.set(local.depth.get() + 1);
    // SAFETY: the caller's contract.
    unsafe { GlobalAlloc::dealloc(&DHAT_ALLOC, base, outer) };
    local.depth.set(local.depth.get() - 1);
}

/// Reallocates a block `dhat::Alloc` made, through it.
#[cold]
#[inline(never)]
pub(super) fn dhat_realloc(
    local: &Local,
    base: *mut u8,
    outer: Layout,
    new_size: usize,
) -> *mut u8 {
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
