//! The unsafe half of the retainer scan: stopping the process's other
//! threads, finding the memory that can hold pointers (the roots), and
//! reading words of it and of the census's blocks. What the words mean is
//! worked out in safe code, in `crate::retainers`, through [`World`].
//!
//! Linux, x86_64, in a scan process only (see `census`).
//!
//! # Stopping the world
//!
//! Every other thread is sent a real-time signal; its handler notes the
//! thread's stack pointer (the interrupted registers are saved on the
//! stack above it) and an address in its thread-local block, then waits
//! until the scan is over. The census's lock is taken first, so no thread
//! stops while it holds it. While the world is stopped the scanning
//! thread does not allocate (a stopped thread may hold the inner
//! allocator's lock): whatever the scan needs is allocated before.
//!
//! # Roots
//!
//! - the writable segments (`PT_LOAD` with `PF_W`) of every loaded object:
//!   its statics;
//! - each thread's block of the test binary's thread-locals;
//! - each stack, from the stopped thread's stack pointer to the end of its
//!   mapping (for threads glibc started, that mapping also holds their
//!   thread-local blocks); for the scanning thread, from a frame above
//!   every frame that ran the test body, plus what the harness keeps below
//!   it (see [`OwnRoots`]).

use std::hint::black_box;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize};
use std::time::{Duration, Instant};

use super::census::{self, Entry};
use super::HEADER;

/// A live block of the heap, as the census had it.
pub(crate) type Node = Entry;

/// What a root region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionKind {
    /// The writable data of loaded object `module` (an index into
    /// [`Prepared::modules`]).
    Static { module: usize },
    /// The thread-locals of the test binary, in thread `tid`.
    ThreadLocal { tid: i32 },
    /// The stack of thread `tid`.
    Stack { tid: i32 },
    /// A mapping of the C allocator's heap, but for the blocks of the
    /// census: memory given out without the counting allocator (std's
    /// thread handles are allocated with `System`; C libraries call
    /// `malloc`), and freed memory. Read after every other root, so that a
    /// path from it is only shown when no other exists.
    Foreign,
}

/// A range of memory that is a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Region {
    pub start: usize,
    pub end: usize,
    pub kind: RegionKind,
}

/// A loaded object.
#[derive(Debug, Clone)]
pub(crate) struct Module {
    /// Its file (the test binary's own is `/proc/self/exe`).
    pub path: String,
    /// What its addresses were moved by when it was loaded.
    pub bias: usize,
    /// Its writable segments.
    pub writable: Vec<(usize, usize)>,
    /// This thread's block of its thread-locals, when it has some.
    pub tls: Option<(usize, usize)>,
}

/// Everything the scan allocates, made before the world stops.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub modules: Vec<Module>,
    /// Whether `/proc/self/task` could be read: without it the other
    /// threads are unknown, and not stopped.
    threads_listed: bool,
    /// The threads to stop, with their names.
    pub threads: Vec<(i32, String)>,
    /// Readable mappings, sorted, as they are while the world is stopped.
    maps: Vec<(usize, usize)>,
    /// Room to read `/proc/self/maps` into without allocating.
    maps_text: Vec<u8>,
    nodes: Vec<Node>,
    regions: Vec<Region>,
}

impl Prepared {
    /// The most blocks the scan has room for.
    pub(crate) fn room(&self) -> usize {
        self.nodes.capacity()
    }

    /// The census as the scan took it, sorted by address.
    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The roots the scan read.
    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions
    }
}

/// Most threads a scan stops.
const MAX_THREADS: usize = 1024;
/// How long the scan waits for every thread to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Gathers what the scan needs while other threads still run: the loaded
/// objects, the threads and the mappings, and room for every block of the
/// census (with some to spare for blocks allocated until the stop).
pub(crate) fn prepare() -> Prepared {
    let modules = modules();
    let mut threads = Vec::new();
    let listed = std::fs::read_dir("/proc/self/task");
    let threads_listed = listed.is_ok();
    if let Ok(dir) = listed {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|s| s.trim_end().to_owned())
                .unwrap_or_default();
            threads.push((tid, name));
        }
    }
    // The mappings are read again once the world is stopped (one freed
    // block can make the C allocator give memory back meanwhile): room for
    // them, judged from their size now.
    let (bytes, lines) = std::fs::read_to_string("/proc/self/maps")
        .map(|text| (text.len(), text.lines().count()))
        .unwrap_or((0, 0));
    let maps_text = vec![0u8; 2 * bytes + (64 << 10)];
    let maps = Vec::with_capacity(2 * lines + 256);
    let blocks = census::lock().len();
    Prepared {
        threads_listed,
        regions: Vec::with_capacity(
            modules.iter().map(|m| m.writable.len()).sum::<usize>()
                + 2 * threads.len()
                + maps.capacity()
                + 8,
        ),
        nodes: Vec::with_capacity(blocks + blocks / 4 + 4096),
        modules,
        threads,
        maps,
        maps_text,
    }
}

/// The stopped process, as the scan may read it.
pub(crate) struct World<'a> {
    /// Every live block, sorted by address.
    pub nodes: &'a [Node],
    /// The roots.
    pub regions: &'a [Region],
    /// Whether the scan sees every root and every block: all threads
    /// stopped, no thread started since, no block missing from the census.
    pub complete: bool,
    /// Why not, when not.
    pub incomplete_because: &'static str,
    /// Memory inside foreign regions that is not a root: the census's
    /// table and the scan's copy of it, which hold every block's address.
    skip: [(usize, usize); 2],
}

impl World<'_> {
    /// The index of the block that `word` points into, at its start or
    /// inside it. Two kinds of words are not taken for pointers:
    ///
    /// - an address that is not 8-aligned: a pointer to a byte in the
    ///   middle of a block (a `&str` into a `String`) is kept with one to
    ///   its start, while an enum's tag byte under stale padding (left by
    ///   a move from the stack) reads as such an address;
    /// - a 16-aligned address in a block's last 16 bytes: the C allocator's
    ///   chunks overlap there, and its own pointers to the next chunk's
    ///   header (left in memory it hands out, not yet written) land on one.
    #[inline]
    pub(crate) fn node_at(&self, word: usize) -> Option<usize> {
        let nodes = self.nodes;
        let first = nodes.first()?;
        if word < first.addr {
            return None;
        }
        let i = nodes.partition_point(|n| n.addr <= word) - 1;
        let n = &nodes[i];
        points_into(word, n.addr, n.size).then_some(i)
    }

    /// The aligned word `offset` bytes into block `node`, when inside it.
    #[inline]
    pub(crate) fn node_word(&self, node: usize, offset: usize) -> Option<usize> {
        let n = &self.nodes[node];
        let p = n.addr.checked_add(offset)?;
        if p % 8 != 0 || p + 8 > n.addr + n.size {
            return None;
        }
        // SAFETY: `p..p + 8` lies inside the live block `node` (see
        // `node_words`), and `p` is 8-aligned.
        Some(unsafe { read_word(p) })
    }

    /// Calls `f(offset, word)` for every aligned word of block `node`.
    #[inline]
    pub(crate) fn node_words(&self, node: usize, f: impl FnMut(usize, usize)) {
        let n = &self.nodes[node];
        // SAFETY: the block is live: the census holds it, and no thread can
        // free or move it during the scan, since that takes the census's
        // lock, which the scanning thread holds. The range lies inside it.
        unsafe { words(n.addr, n.addr + n.size, f) }
    }

    /// Calls `f(offset, word)` for every aligned word of root `region`;
    /// in a foreign region, only the words outside the census's blocks
    /// (and their headers) and outside the scan's own tables.
    #[inline]
    pub(crate) fn region_words(&self, region: usize, mut f: impl FnMut(usize, usize)) {
        let r = &self.regions[region];
        if r.kind != RegionKind::Foreign {
            // SAFETY: a region is a writable segment of a loaded object, a
            // thread's thread-local block, or a part of a stack mapping
            // that `prepare` found readable and writable; none can be
            // unmapped while the world is stopped.
            unsafe { words(r.start, r.end, f) };
            return;
        }
        let mut next = self.nodes.partition_point(|n| n.addr + n.size <= r.start);
        let mut p = r.start;
        while p < r.end {
            // The next gap: up to the next block's header.
            let (gap_end, resume) = match self.nodes.get(next) {
                Some(n) if n.addr.saturating_sub(HEADER) < r.end => {
                    (n.addr.saturating_sub(HEADER).max(p), n.addr + n.size)
                }
                _ => (r.end, r.end),
            };
            for &(a, b) in &self.skip {
                if a < gap_end && b > p {
                    // SAFETY: as below, for the part of the gap before it.
                    unsafe { words(p, a.max(p), |o, w| f(p - r.start + o, w)) };
                    p = b.min(gap_end);
                }
            }
            // SAFETY: the gap lies inside a readable and writable mapping
            // of the C allocator's heap, which `prepare` read and which no
            // stopped thread can unmap.
            unsafe { words(p, gap_end.max(p), |o, w| f(p - r.start + o, w)) };
            p = resume.max(gap_end);
            next += 1;
        }
    }

    /// Copies the first bytes of block `node` into `out`; returns how many.
    pub(crate) fn head(&self, node: usize, out: &mut [u8]) -> usize {
        let n = &self.nodes[node];
        let len = out.len().min(n.size);
        let mut written = 0;
        self.node_words(node, |offset, word| {
            for (k, byte) in word.to_ne_bytes().iter().enumerate() {
                if offset + k < len {
                    out[offset + k] = *byte;
                    written = written.max(offset + k + 1);
                }
            }
        });
        written
    }
}

/// Whether `word`, at least `addr`, is taken for a pointer into the block
/// of `size` bytes at `addr` (see [`World::node_at`]). Any word may come
/// here, up to `usize::MAX`: nothing overflows.
#[inline]
fn points_into(word: usize, addr: usize, size: usize) -> bool {
    let end = addr.saturating_add(size.max(1));
    let chunk_header = word % 16 == 0 && word > addr && end.saturating_sub(word) < 16;
    word % 8 == 0 && word < end && !chunk_header
}

/// Calls `f(offset from start, word)` for each 8-aligned word inside
/// `[start, end)`.
///
/// # Safety
/// `[start, end)` must be mapped and readable for the whole call.
#[inline]
unsafe fn words(start: usize, end: usize, mut f: impl FnMut(usize, usize)) {
    let mut p = (start + 7) & !7;
    while p + 8 <= end {
        // SAFETY: `p..p + 8` lies inside `[start, end)`, which the caller
        // guarantees readable.
        f(p - start, unsafe { read_word(p) });
        p += 8;
    }
}

/// Reads the word at `p` as the machine sees it. The bytes may be
/// uninitialised (padding, a buffer's spare capacity) or written by a
/// stopped thread: Rust's reads would be undefined for the first, so the
/// load is an instruction the compiler cannot see through.
///
/// # Safety
/// `p` must be 8-aligned, mapped and readable.
#[inline(always)]
unsafe fn read_word(p: usize) -> usize {
    let word: usize;
    // SAFETY: guaranteed by the caller; the instruction only loads.
    unsafe {
        std::arch::asm!(
            "mov {word}, qword ptr [{p}]",
            p = in(reg) p,
            word = lateout(reg) word,
            options(nostack, readonly, preserves_flags),
        );
    }
    word
}

// --- Stopping the world -----------------------------------------------

/// The threads that have stopped: tid, stack pointer, and an address in
/// their thread-local block (that of [`super::LOCAL`]).
static STOPPED: [[AtomicUsize; 3]; MAX_THREADS] =
    [const { [const { AtomicUsize::new(0) }; 3] }; MAX_THREADS];
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
static RECORDED: AtomicUsize = AtomicUsize::new(0);
static RELEASED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The stop signal's handler: records the thread, waits for the release.
/// Only atomics and system calls that cannot fail, and `errno` is kept.
extern "C" fn on_stop(_signal: libc::c_int) {
    // SAFETY: `__errno_location` gives this thread's errno, valid for the
    // thread's life.
    let errno = unsafe { *libc::__errno_location() };
    let mark = 0usize;
    let sp = black_box(&mark) as *const usize as usize;
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as usize;
    let tls = super::local() as *const super::Local as usize;
    let i = ARRIVED.fetch_add(1, AcqRel);
    if i < MAX_THREADS {
        STOPPED[i][0].store(tid, Relaxed);
        STOPPED[i][1].store(sp, Relaxed);
        STOPPED[i][2].store(tls, Relaxed);
    }
    RECORDED.fetch_add(1, Release);
    while !RELEASED.load(Acquire) {
        std::hint::spin_loop();
        // SAFETY: `sched_yield` takes no arguments and cannot fail.
        unsafe { libc::sched_yield() };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Installs the handler on the last real-time signal not in use.
fn install() -> Option<libc::c_int> {
    let signal = SIGNAL.load(Relaxed);
    if signal != 0 {
        return Some(signal);
    }
    for signal in (libc::SIGRTMIN() + 4..=libc::SIGRTMAX()).rev() {
        // SAFETY: a zeroed `sigaction` is a valid value to fill in;
        // `sigaction` with a null new action only reads the current one.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0
            || current.sa_sigaction != libc::SIG_DFL
        {
            continue;
        }
        // SAFETY: as above; the handler is an `extern "C" fn(c_int)`, what
        // `sa_sigaction` holds without `SA_SIGINFO`. It stays installed for
        // good, so that a signal arriving late never kills the process.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_stop as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } == 0 {
            SIGNAL.store(signal, Relaxed);
            return Some(signal);
        }
    }
    None
}

/// The threads of the process now, read without allocating (for the check
/// that none started while the world was stopped): `num_threads` in
/// `/proc/self/stat`.
fn thread_count() -> Option<usize> {
    let mut buf = [0u8; 1024];
    // SAFETY: the path is NUL-terminated; `buf` is writable for its length;
    // the descriptor is closed once.
    let len = unsafe {
        let fd = libc::open(
            c"/proc/self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let text = buf.get(..usize::try_from(len).ok()?)?;
    // Fields after the command's closing parenthesis; num_threads is the
    // 20th field, the 18th after it.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// Reads the readable mappings of the process into `maps`
/// (cleared first), through `text`, without allocating: for a stopped
/// world. `false` when they did not fit or could not be read.
fn read_maps(text: &mut [u8], maps: &mut Vec<(usize, usize)>) -> bool {
    maps.clear();
    // SAFETY: the path is NUL-terminated; each read writes into the part of
    // `text` not yet filled, within its length; the descriptor is closed
    // once.
    let len = unsafe {
        let fd = libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let mut len = 0usize;
        loop {
            let n = libc::read(fd, text[len..].as_mut_ptr().cast(), text.len() - len);
            if n <= 0 || len + n as usize == text.len() {
                len += n.max(0) as usize;
                break;
            }
            len += n as usize;
        }
        libc::close(fd);
        len
    };
    if len == text.len() {
        return false;
    }
    for line in text[..len].split(|&b| b == b'\n') {
        // `start-end perms ...`, addresses in hex.
        let mut fields = line.split(|&b| b == b' ');
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let mut ends = range.split(|&b| b == b'-');
        let (Some(a), Some(b)) = (ends.next().and_then(hex), ends.next().and_then(hex)) else {
            continue;
        };
        if perms.starts_with(b"r") {
            if maps.len() == maps.capacity() {
                return false;
            }
            maps.push((a, b));
        }
    }
    maps.sort_unstable();
    true
}

/// A hexadecimal number, without allocating.
fn hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n << 4 | v as usize)
    })
}

/// Whether `[start, end)` lies in readable mappings, one after another.
fn covered(maps: &[(usize, usize)], start: usize, end: usize) -> bool {
    let Some(mut m) = mapping(maps, start) else {
        return false;
    };
    while m.1 < end {
        match mapping(maps, m.1) {
            Some(next) if next.0 == m.1 => m = next,
            _ => return false,
        }
    }
    true
}

/// The mapping that holds `addr`.
fn mapping(maps: &[(usize, usize)], addr: usize) -> Option<(usize, usize)> {
    let i = maps.partition_point(|m| m.0 <= addr).checked_sub(1)?;
    let m = maps[i];
    (addr < m.1).then_some(m)
}

/// This thread's own roots: its stack from `stack_from` (an address in a
/// frame above every frame that ran the test body, whose dead locals
/// would read as pointers) to the stack's end, and `held`, the bytes of
/// what the harness keeps below that (an async body's runtime).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnRoots {
    pub stack_from: usize,
    pub held: (usize, usize),
}

/// Stops every other thread, takes the census into `prepared`, and calls
/// `f` with the stopped process; the threads go on when it returns. `f`
/// must not allocate, nor panic (a panic allocates): its arithmetic on
/// words read from memory saturates. Call under [`super::untracked`].
#[inline(never)]
pub(crate) fn stopped<R>(
    prepared: &mut Prepared,
    own: OwnRoots,
    f: impl FnOnce(&World<'_>) -> R,
) -> R {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let this_tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let mut census = census::lock();

    let mut complete = true;
    let mut because = "";
    let signal = install();
    let mut signalled = 0usize;
    for &(tid, _) in &prepared.threads {
        if tid == this_tid {
            continue;
        }
        match signal {
            // SAFETY: `tgkill` on a thread of this process with a signal
            // whose handler is installed.
            Some(sig) => {
                if unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) } == 0 {
                    signalled += 1;
                }
            }
            None => {
                complete = false;
                because = "no real-time signal was free to stop the other threads";
            }
        }
    }
    let waiting = Instant::now();
    while RECORDED.load(Acquire) < signalled {
        if waiting.elapsed() > STOP_TIMEOUT {
            complete = false;
            because = "a thread did not stop (it blocks signals, or was exiting)";
            break;
        }
        std::thread::yield_now();
    }
    if thread_count().is_some_and(|n| n > signalled + 1) {
        complete = false;
        because = "a thread started while the others were being stopped";
    }
    if !read_maps(&mut prepared.maps_text, &mut prepared.maps) {
        complete = false;
        because = "the process's mappings could not be read";
    }
    if !prepared.threads_listed {
        complete = false;
        because = "the process's threads could not be listed (no /proc)";
    }
    if RECORDED.load(Acquire) > MAX_THREADS {
        complete = false;
        because = "more threads stopped than the scan keeps (1024)";
    }
    if census::missing() > 0 {
        complete = false;
        because = "some blocks could not be entered in the census (out of memory)";
    }

    // The census, in the room made for it.
    let nodes = &mut prepared.nodes;
    nodes.clear();
    let room = nodes.capacity();
    census.for_each(|e| {
        if nodes.len() < room {
            nodes.push(*e);
        } else {
            complete = false;
            because = "more blocks were live than the scan had room for";
        }
    });
    nodes.sort_unstable_by_key(|n| n.addr);

    // The roots: statics, thread-locals, stacks.
    let regions = &mut prepared.regions;
    regions.clear();
    let room = regions.capacity();
    let add = |regions: &mut Vec<Region>, r: Region| {
        if regions.len() < room && r.start < r.end {
            regions.push(r);
        }
    };
    for (module, m) in prepared.modules.iter().enumerate() {
        if is_c_runtime(&m.path) {
            continue;
        }
        for &(start, end) in &m.writable {
            // An object unloaded since its segments were listed.
            if !covered(&prepared.maps, start, end) {
                complete = false;
                because = "an object's data was not mapped when the threads were stopped";
                continue;
            }
            add(
                regions,
                Region {
                    start,
                    end,
                    kind: RegionKind::Static { module },
                },
            );
        }
    }
    // Where this thread's `LOCAL` sits in the test binary's thread-local
    // block: the same offset in every thread.
    let own_local = super::local() as *const super::Local as usize;
    let tls = prepared
        .modules
        .iter()
        .filter_map(|m| m.tls)
        .find(|&(start, len)| (start..start + len).contains(&own_local));
    let arrived = RECORDED.load(Acquire).min(MAX_THREADS);
    let threads = (0..arrived)
        .map(|i| {
            (
                STOPPED[i][0].load(Relaxed) as i32,
                STOPPED[i][1].load(Relaxed),
                STOPPED[i][2].load(Relaxed),
            )
        })
        .chain(std::iter::once((this_tid, own.stack_from, own_local)));
    for (tid, sp, local) in threads {
        if let Some((start, len)) = tls {
            let block = local.wrapping_sub(own_local - start);
            // Read only if it lies in memory known to be there.
            match mapping(&prepared.maps, block) {
                Some((_, end)) if block.checked_add(len).is_some_and(|b| b <= end) => add(
                    regions,
                    Region {
                        start: block,
                        end: block + len,
                        kind: RegionKind::ThreadLocal { tid },
                    },
                ),
                _ => {
                    complete = false;
                    because =
                        "a thread's thread-locals were not among the mappings read before the stop";
                }
            }
        }
        match mapping(&prepared.maps, sp) {
            Some((_, end)) => add(
                regions,
                Region {
                    start: sp,
                    end,
                    kind: RegionKind::Stack { tid },
                },
            ),
            None => {
                complete = false;
                because = "a thread's stack was not among the mappings read before the stop";
            }
        }
    }

    // What the harness keeps on this thread's stack below `stack_from`.
    let (start, end) = own.held;
    match mapping(&prepared.maps, start) {
        Some((_, mapped)) if start < end && end <= mapped => add(
            regions,
            Region {
                start,
                end,
                kind: RegionKind::Stack { tid: this_tid },
            },
        ),
        _ if start < end => {
            complete = false;
            because = "what the harness holds was not among the mappings read before the stop";
        }
        _ => {}
    }
    // Last, the C allocator's heap: the mappings that hold blocks. Only
    // with every other thread stopped: one still running could free C
    // memory, and the C allocator give a mapping back, while it is read.
    // (It cannot free a block of the census: that waits for the census's
    // lock, which this thread holds.)
    for &(start, end) in prepared.maps.iter().filter(|_| complete) {
        let first = prepared.nodes.partition_point(|n| n.addr < start);
        if prepared.nodes.get(first).is_some_and(|n| n.addr < end) {
            add(
                regions,
                Region {
                    start,
                    end,
                    kind: RegionKind::Foreign,
                },
            );
        }
    }
    let nodes_memory = (
        prepared.nodes.as_ptr() as usize,
        prepared.nodes.as_ptr() as usize + prepared.nodes.capacity() * std::mem::size_of::<Node>(),
    );
    let mut skip = [census.memory(), nodes_memory];
    skip.sort_unstable();
    let world = World {
        nodes: &prepared.nodes,
        regions: &prepared.regions,
        complete,
        incomplete_because: because,
        skip,
    };
    let out = f(&world);
    RELEASED.store(true, Release);
    drop(census);
    out
}

// --- Loaded objects ------------------------------------------------------

/// Whether the object is the C runtime (libc, the dynamic loader and their
/// companions). Their data is not a root: it is mostly the C allocator's
/// bookkeeping, whose pointers to the top of the heap and to free chunks
/// land inside live blocks (a chunk's last bytes overlap the next chunk's
/// header), and it holds no Rust value.
fn is_c_runtime(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    [
        "libc.so",
        "libc.musl",
        "ld-linux",
        "ld-musl",
        "libpthread.so",
        "libm.so",
        "libdl.so",
        "librt.so",
        "libgcc_s.so",
    ]
    .iter()
    .any(|name| file.starts_with(name))
}

/// The loaded objects, their writable segments and thread-local blocks.
fn modules() -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    super::objects::for_each(|object| {
        let bias = object.bias as usize;
        let writable = object
            .headers
            .iter()
            .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W != 0)
            .map(|h| {
                let start = bias + h.p_vaddr as usize;
                (start, start + h.p_memsz as usize)
            })
            .collect();
        let tls = object
            .headers
            .iter()
            .find(|h| h.p_type == libc::PT_TLS)
            .filter(|_| object.tls_data != 0)
            .map(|h| (object.tls_data, h.p_memsz as usize));
        // The first object, with an empty name, is the program itself.
        let path = if object.name.is_empty() && out.is_empty() {
            "/proc/self/exe".to_owned()
        } else {
            object.name.clone()
        };
        out.push(Module {
            path,
            bias,
            writable,
            tls,
        });
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::points_into;

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/self/maps, which Miri isolates")]
    fn mappings_are_read_without_allocating_and_hold_this_stack() {
        let mut text = vec![0u8; 1 << 20];
        let mut maps = Vec::with_capacity(4096);
        assert!(super::read_maps(&mut text, &mut maps));
        let local = 0u8;
        let here = std::hint::black_box(&local) as *const u8 as usize;
        assert!(super::mapping(&maps, here).is_some(), "{maps:x?}");
        assert!(maps.windows(2).all(|w| w[0].0 < w[1].0));
        let mut small = vec![0u8; 16];
        assert!(
            !super::read_maps(&mut small, &mut maps),
            "too small a buffer"
        );
        assert_eq!(super::hex(b"7ffd551c3f80"), Some(0x7ffd_551c_3f80));
        assert_eq!(super::hex(b"xyz"), None);
        let maps = [(0x1000, 0x2000), (0x2000, 0x3000), (0x4000, 0x5000)];
        assert!(super::covered(&maps, 0x1800, 0x2800), "across two mappings");
        assert!(!super::covered(&maps, 0x2800, 0x4800), "a hole");
    }

    #[test]
    fn what_is_taken_for_a_pointer_into_a_block() {
        let (addr, size) = (0x1000, 48);
        assert!(points_into(0x1000, addr, size), "its start");
        assert!(points_into(0x1018, addr, size), "an aligned word inside");
        assert!(!points_into(0x1005, addr, size), "an odd address");
        assert!(!points_into(0x1030, addr, size), "one past its end");
        // The next chunk's header overlaps the block's last 16 bytes.
        assert!(!points_into(0x1030, addr, size + 8));
        assert!(
            points_into(0x1000, addr, 8),
            "a small block's start is never a header"
        );
        // Words near the top of the address space do not overflow.
        assert!(!points_into(usize::MAX - 7, addr, size));
        assert!(!points_into(usize::MAX - 7, usize::MAX - 31, 16));
    }
}
