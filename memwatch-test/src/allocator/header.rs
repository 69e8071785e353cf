//! The header in front of a headered block: what it says, where it sits,
//! and the layout asked of the inner allocator to make room for it.

use std::alloc::Layout;

/// Size of the header in front of a headered block, for alignments up to 16.
pub(super) const HEADER: usize = 16;
/// Header mark of a counted block.
pub(super) const TRACKED: u32 = 0x4d57_5431;
/// Header mark of a block allocated while counting was suspended.
pub(super) const UNTRACKED: u32 = 0x4d57_5530;

/// Set in a header's `site` when `dhat::Alloc` made the block: it must be
/// the one to free it.
pub(super) const VIA_DHAT: u32 = 1 << 31;
/// Set in a header's `site` when the block is in the census: it leaves it
/// when freed.
#[cfg_attr(
    not(all(feature = "harness", target_os = "linux", target_arch = "x86_64")),
    allow(dead_code)
)]
pub(super) const IN_CENSUS: u32 = 1 << 30;
/// Set in a header's `site` for every block of a scan process: it is zeroed
/// when freed (and when a realloc moves it), so that freed memory, which
/// the scan reads for pointers from memory it does not track, holds no
/// stale pointer.
pub(super) const SCRUB: u32 = 1 << 29;
/// The bits of a header's `site` that are the site id.
pub(super) const SITE_ID: u32 = SCRUB - 1;
/// What a headered block carries in front of it.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Header {
    pub(super) mark: u32,
    pub(super) epoch: u32,
    pub(super) tag: u32,
    /// 1 + the index of the block's site in [`SITES`], or 0: not captured.
    pub(super) site: u32,
}

#[inline(always)]
pub(super) fn header_offset(align: usize) -> usize {
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
pub(super) fn outer_align(align: usize) -> usize {
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
pub(super) fn outer_layout(size: usize, align: usize) -> Option<Layout> {
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
pub(super) unsafe fn header_of(user: *mut u8) -> *mut Header {
    debug_assert!(
        user as usize % HEADER == 0,
        "a block's header is 16-aligned"
    );
    // SAFETY: guaranteed by the caller; the header sits right before `user`
    // and is 16-aligned because the block is (see `outer_align`) and `user`
    // is 16 bytes or a multiple of 16 into it.
    unsafe { user.sub(HEADER).cast::<Header>() }
}

/// The inner allocator's block behind `user`, a pointer handed out for
/// `layout`: its start and the outer layout it was allocated with.
///
/// # Safety
/// `user` must have come from the counting allocator with `layout`.
#[inline(always)]
pub(super) unsafe fn block_of(user: *mut u8, layout: Layout) -> (*mut u8, Layout) {
    let offset = header_offset(layout.align());
    // SAFETY: the block starts `offset` bytes before `user`, and the outer
    // layout was valid when the block was allocated (`outer_layout`).
    unsafe {
        (
            user.sub(offset),
            Layout::from_size_align_unchecked(layout.size() + offset, outer_align(layout.align())),
        )
    }
}
