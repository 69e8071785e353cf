//! The fast unwinder of site capture: framehop, with the DWARF unwind
//! rules of every return address cached after its first lookup, over the
//! `.eh_frame` sections of the objects loaded in the process, read in
//! place. It unwinds the thread that runs the test body, up to the frame
//! that calls the body; it allocates nothing and takes no lock while it
//! unwinds (its one cache is claimed with a compare-and-swap, and a thread
//! that finds it taken uses the system unwinder instead).
//!
//! Linux on x86_64 only; elsewhere, and on any stack it cannot finish,
//! capture uses the system unwinder (`backtrace`). The unwinder is built
//! when a capture window opens and again when objects were loaded or
//! unloaded since; an object unloaded and another loaded in its place
//! while a window is open is not seen until the next window.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use super::objects;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, MustNotAllocateDuringUnwind, Unwinder,
};

type Data = &'static [u8];

/// The most stack the fast walk reads: a body's stack up to its caller is
/// far less; an address further away is not on this thread's stack.
const MAX_WALK: u64 = 256 << 20;

/// The unwinder of the loaded objects, and its one cache.
struct Fast {
    unwinder: UnwinderX86_64<Data, MustNotAllocateDuringUnwind>,
    cache: UnsafeCell<CacheX86_64<MustNotAllocateDuringUnwind>>,
    busy: AtomicBool,
    /// The loader's counts of objects loaded and unloaded when it was built.
    loads: (u64, u64),
}

// SAFETY: the unwinder is only read after it is built; the cache is used
// only by the thread that set `busy` from false to true, until it clears it.
unsafe impl Sync for Fast {}

/// The current unwinder; null before the first capture window. One that is
/// replaced is never freed: a thread may still be walking with it.
static FAST: AtomicPtr<Fast> = AtomicPtr::new(std::ptr::null_mut());

/// Builds the unwinder when a capture window opens: on the first window,
/// and again when objects were loaded or unloaded since (`dlopen`,
/// `dlclose`). It may allocate there (under `untracked`).
pub(super) fn prepare() {
    let loads = loader_counts();
    let current = FAST.load(Ordering::Acquire);
    // SAFETY: a non-null `FAST` points to a leaked, never-freed `Fast`.
    if !current.is_null() && unsafe { (*current).loads } == loads {
        return;
    }
    let mut unwinder = UnwinderX86_64::new();
    for module in modules() {
        unwinder.add_module(module);
    }
    let fast = Box::new(Fast {
        unwinder,
        cache: UnsafeCell::new(CacheX86_64::new_in()),
        busy: AtomicBool::new(false),
        loads,
    });
    FAST.store(Box::into_raw(fast), Ordering::Release);
}

/// glibc's counts of objects loaded and unloaded so far.
fn loader_counts() -> (u64, u64) {
    let mut counts = (0, 0);
    objects::for_each(|object| {
        counts = object.loads;
        false
    });
    counts
}

/// How an unwind ended.
pub(super) enum Walk {
    /// It reached `stack_end` or filled `frames`: this many frames.
    Done(usize),
    /// It could not finish (no unwinder, its cache in use, an address with
    /// no unwind rule): use the system unwinder.
    Fallback,
}

/// Writes the return addresses of the caller's stack into `frames`, the
/// innermost first, up to the first frame above `stack_end` (an address on
/// this thread's stack, in the frame that calls the test body).
#[inline(never)]
pub(super) fn trace(frames: &mut [usize], stack_end: usize) -> Walk {
    let fast = FAST.load(Ordering::Acquire);
    if fast.is_null() {
        return Walk::Fallback;
    }
    // SAFETY: a non-null `FAST` points to a leaked, never-freed `Fast`.
    let fast = unsafe { &*fast };
    if fast
        .busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Walk::Fallback;
    }
    let (pc, sp, bp): (u64, u64, u64);
    // SAFETY: reads this function's own instruction pointer, stack pointer
    // and frame pointer; writes nothing else, touches no memory.
    unsafe {
        std::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    let low = sp;
    let high = stack_end as u64;
    // `stack_end` must be on this stack, above this frame, and near it: on
    // another stack (a signal handler's) nothing between would be known to
    // be mapped.
    if high <= low || high - low > MAX_WALK {
        fast.busy.store(false, Ordering::Release);
        return Walk::Fallback;
    }
    let mut past_end = false;
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        if addr < low || addr % 8 != 0 {
            return Err(());
        }
        if addr + 8 > high {
            past_end = true;
            return Err(());
        }
        // SAFETY: `addr` is 8-aligned and lies between this function's stack
        // pointer and `stack_end`, a local of the frame that runs the test
        // body on this thread (`with_stack_end`), live while the body runs:
        // the stack between is this thread's, mapped. (Not so in a signal
        // handler on an alternate stack, where allocating is not allowed at
        // all; a `stack_end` below `sp` or `MAX_WALK` away is refused.)
        Ok(unsafe { (addr as *const u64).read() })
    };
    // SAFETY: `busy` was set by this thread above: no other thread uses the
    // cache until it is cleared below.
    let cache = unsafe { &mut *fast.cache.get() };
    let mut regs = UnwindRegsX86_64::new(pc, sp, bp);
    let mut address = FrameAddress::from_instruction_pointer(pc);
    let mut len = 0;
    let outcome = loop {
        if len == frames.len() {
            break Walk::Done(len);
        }
        match fast
            .unwinder
            .unwind_frame(address, &mut regs, cache, &mut read_stack)
        {
            Ok(Some(return_address)) => {
                if regs.sp() > high {
                    break Walk::Done(len);
                }
                frames[len] = return_address as usize;
                len += 1;
                match FrameAddress::from_return_address(return_address) {
                    Some(next) => address = next,
                    None => break Walk::Fallback,
                }
            }
            // The frame that calls the body, or one above it, needed a
            // read past `stack_end`: the walk is complete.
            Err(_) if past_end => break Walk::Done(len),
            Ok(None) | Err(_) => break Walk::Fallback,
        }
    };
    fast.busy.store(false, Ordering::Release);
    outcome
}

/// The loaded objects with unwind information, as framehop modules whose
/// sections are read in place.
fn modules() -> Vec<Module<Data>> {
    let mut out = Vec::new();
    objects::for_each(|object| {
        out.extend(module_of(object));
        true
    });
    out
}

/// The framehop module of one loaded object, when it has `.eh_frame_hdr`.
fn module_of(object: &objects::Object<'_>) -> Option<Module<Data>> {
    let (base, headers) = (object.bias, object.headers);
    let hdr = headers.iter().find(|h| h.p_type == libc::PT_GNU_EH_FRAME)?;
    let loads: Vec<&libc::Elf64_Phdr> = headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD)
        .collect();
    let text: Range<u64> = loads
        .iter()
        .filter(|h| h.p_flags & libc::PF_X != 0)
        .map(|h| h.p_vaddr..h.p_vaddr + h.p_memsz)
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))?;
    let hdr_svma = hdr.p_vaddr..hdr.p_vaddr + hdr.p_memsz;
    // SAFETY: the PT_GNU_EH_FRAME segment lies within a loaded segment of
    // the object, mapped at `base + p_vaddr` and unchanging while the object
    // is loaded. framehop reads a module's sections only to unwind an
    // address inside it, and no live stack holds an address inside an
    // unloaded object; the one case left, another object loaded at the
    // same addresses while a window is open, is in the module docs.
    let hdr_data: Data = unsafe { bytes(base + hdr_svma.start, hdr.p_memsz) };
    let eh_frame_start = eh_frame_address(hdr_svma.start, hdr_data)?;
    // `.eh_frame` ends with its segment's file-backed bytes at the latest;
    // the lookup table of `.eh_frame_hdr` says where each entry starts.
    let segment = loads
        .iter()
        .find(|h| (h.p_vaddr..h.p_vaddr + h.p_filesz).contains(&eh_frame_start))?;
    let eh_frame_svma = eh_frame_start..segment.p_vaddr + segment.p_filesz;
    // SAFETY: that range lies within a loaded segment of the object, read
    // under the same terms as `.eh_frame_hdr` above.
    let eh_frame: Data = unsafe {
        bytes(
            base + eh_frame_svma.start,
            eh_frame_svma.end - eh_frame_svma.start,
        )
    };
    let name = object.name.clone();
    let sections = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(text.clone()),
        eh_frame_svma: Some(eh_frame_svma),
        eh_frame: Some(eh_frame),
        eh_frame_hdr_svma: Some(hdr_svma),
        eh_frame_hdr: Some(hdr_data),
        ..Default::default()
    };
    Some(Module::new(
        name,
        base + text.start..base + text.end,
        base,
        sections,
    ))
}

/// The address of `.eh_frame`, from the `eh_frame_ptr` field of the
/// `.eh_frame_hdr` at `hdr_svma`, in the encodings linkers write.
fn eh_frame_address(hdr_svma: u64, hdr: &[u8]) -> Option<u64> {
    const PCREL_SDATA4: u8 = 0x1b;
    const UDATA4: u8 = 0x03;
    const SDATA4: u8 = 0x0b;
    const UDATA8: u8 = 0x04;
    let (version, encoding) = (*hdr.first()?, *hdr.get(1)?);
    if version != 1 {
        return None;
    }
    let field = hdr.get(4..)?;
    let word = |n: usize| -> Option<&[u8]> { field.get(..n) };
    match encoding {
        PCREL_SDATA4 => {
            let v = i32::from_le_bytes(word(4)?.try_into().ok()?);
            Some((hdr_svma + 4).wrapping_add_signed(v as i64))
        }
        UDATA4 => Some(u32::from_le_bytes(word(4)?.try_into().ok()?) as u64),
        SDATA4 => Some(i32::from_le_bytes(word(4)?.try_into().ok()?) as i64 as u64),
        UDATA8 => Some(u64::from_le_bytes(word(8)?.try_into().ok()?)),
        _ => None,
    }
}

/// The `len` bytes at `addr`.
///
/// # Safety
/// They must be mapped and unchanging for the rest of the process (a
/// section of an object that is never unloaded).
unsafe fn bytes(addr: u64, len: u64) -> Data {
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eh_frame_pointers_decode_as_linkers_write_them() {
        // version 1, pcrel|sdata4, then -0x20 relative to the field at +4.
        let mut hdr = vec![1, 0x1b, 0x03, 0x3b];
        hdr.extend_from_slice(&(-0x20i32).to_le_bytes());
        assert_eq!(eh_frame_address(0x1000, &hdr), Some(0x1004 - 0x20));
        let mut abs = vec![1, 0x03, 0x03, 0x3b];
        abs.extend_from_slice(&0x4000u32.to_le_bytes());
        assert_eq!(eh_frame_address(0x1000, &abs), Some(0x4000));
        assert_eq!(eh_frame_address(0x1000, &[2, 0x1b, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(eh_frame_address(0x1000, &[1, 0x1b]), None);
    }

    /// The fast walk agrees with the system unwinder on this thread's
    /// stack, frame for frame, up to the end it was given.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "walks the real stack and the loaded objects, which Miri does not model"
    )]
    fn the_fast_walk_matches_the_system_unwinder() {
        prepare();
        let marker = 0u8;
        let end = std::hint::black_box(&marker) as *const u8 as usize;
        let (fast, system) = nested(5, end);
        assert!(fast.len() > 5, "{fast:x?}");
        // The first frames differ (each walk starts in its own function);
        // from the callers of `nested` on they are the same return addresses.
        let tail = |v: &[usize]| v[v.len() - 6..].to_vec();
        assert_eq!(tail(&fast), tail(&system), "{fast:x?}\n{system:x?}");
    }

    #[inline(never)]
    fn nested(depth: u32, end: usize) -> (Vec<usize>, Vec<usize>) {
        if depth > 0 {
            let out = nested(depth - 1, end);
            return std::hint::black_box(out);
        }
        let mut frames = [0usize; 64];
        let fast = match trace(&mut frames, end) {
            Walk::Done(len) => frames[..len].to_vec(),
            Walk::Fallback => panic!("the fast walk did not finish"),
        };
        let mut system = Vec::new();
        backtrace::trace(|frame| {
            if frame.sp() as usize > end {
                return false;
            }
            system.push(frame.ip() as usize);
            true
        });
        (fast, system)
    }
}
