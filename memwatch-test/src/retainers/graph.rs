//! What keeps each leaking site's blocks alive, worked out from a heap and
//! its roots: a pure function of them, tested on made-up heaps.
//!
//! It runs while the process is stopped, so it never allocates: every
//! buffer is made by [`Buffers::new`] before, and [`analyse`] only writes
//! within their capacity.
//!
//! - A breadth-first walk from every root, statics first, then
//!   thread-locals, then stacks, gives each reachable block the shortest
//!   path to it (ties go to the earlier root).
//! - A survivor no path reaches is lost. Among a site's lost survivors, one
//!   in a cycle of lost blocks is shown with that cycle (the shortest
//!   through it); else one nothing points at; else one held only by lost
//!   blocks, with the chain from a lost block that nothing points at.

/// A block of the heap, as the analysis needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub addr: usize,
    pub size: usize,
    /// Its site id (0: none): survivors are grouped by it.
    pub site: u32,
    /// Whether it survived the window (a leak's block).
    pub survivor: bool,
}

/// A heap and its roots. The blocks are sorted by address.
pub(crate) trait Heap {
    fn blocks(&self) -> usize;
    fn block(&self, i: usize) -> Block;
    /// The block `word` points into, at its start or inside it.
    fn block_at(&self, word: usize) -> Option<usize>;
    /// The aligned word `offset` bytes into block `i`, when inside it.
    fn word(&self, i: usize, offset: usize) -> Option<usize>;
    /// Calls `f(offset, word)` for each aligned word of block `i`.
    fn block_words(&self, i: usize, f: &mut dyn FnMut(usize, usize));
    fn roots(&self) -> usize;
    /// Whether root `r` is a fallback: memory that may hold pointers but
    /// may as well be stale (freed memory). Blocks are reached from
    /// fallback roots only when no other root reaches them.
    fn is_fallback(&self, r: usize) -> bool;
    /// Calls `f(offset, word)` for each aligned word of root `r`.
    fn root_words(&self, r: usize, f: &mut dyn FnMut(usize, usize));
    /// Copies the first bytes of block `i` into `out`; returns how many.
    fn head(&self, i: usize, out: &mut [u8]) -> usize;
}

/// Most steps a path or a cycle keeps (its nearest to the survivor).
pub(crate) const MAX_STEPS: usize = 16;
/// Most sites analysed, the first ones asked for.
pub(crate) const MAX_SITES: usize = 64;
/// Bytes of a survivor kept for a preview.
pub(crate) const PREVIEW_BYTES: usize = 64;
/// Lost survivors of a site tried for a cycle.
const CYCLE_CANDIDATES: usize = 8;
/// Most blocks one search for a cycle visits: a cycle that long is not
/// shown whole anyway, and the search stays bounded on a heap of millions
/// of lost blocks.
const MAX_CYCLE_WALK: usize = 1 << 16;

const UNSEEN: u32 = u32::MAX;
const FROM_ROOT: u32 = 1 << 31;

/// A block on a path, and where in it the pointer to the next one sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RawStep {
    pub block: u32,
    /// Offset of the pointer to the next step's block (the first step's
    /// for a cycle's last); unused for a path's last step.
    pub next_at: usize,
    /// `(index, size)` when the block looks like an array of equal
    /// elements.
    pub element: Option<(usize, usize)>,
}

/// The steps of a path or cycle, in a fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steps {
    pub len: usize,
    /// Steps dropped at the far end (a path longer than [`MAX_STEPS`]).
    pub cut: usize,
    pub steps: [RawStep; MAX_STEPS],
}

impl Steps {
    const EMPTY: Steps = Steps {
        len: 0,
        cut: 0,
        steps: [RawStep {
            block: 0,
            next_at: 0,
            element: None,
        }; MAX_STEPS],
    };

    pub(crate) fn as_slice(&self) -> &[RawStep] {
        &self.steps[..self.len]
    }
}

/// How one survivor is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Example {
    /// From root `root`, whose word at `offset` points to the first step.
    Path {
        root: usize,
        offset: usize,
        steps: Steps,
    },
    /// In a cycle of lost blocks.
    Cycle(Steps),
    /// Lost, and held only by lost blocks: the chain from one that nothing
    /// points at.
    HeldByLost(Steps),
    /// Lost; nothing points at it.
    Unreferenced,
    /// Lost, held by lost blocks the analysis did not trace.
    Lost,
}

/// What the analysis found for one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finding {
    pub site: u32,
    pub reachable: u64,
    pub lost: u64,
    /// The survivor the example is about.
    pub survivor: u32,
    pub example: Example,
    pub preview_len: usize,
    pub preview: [u8; PREVIEW_BYTES],
}

/// The analysis's memory, made before the world stops.
pub(crate) struct Buffers {
    /// For each block: the block (or root, with [`FROM_ROOT`]) the walk
    /// reached it from.
    via: Vec<u32>,
    /// Where in that block or root the pointer sits.
    at: Vec<usize>,
    /// When the walk reached it, in order.
    order: Vec<u32>,
    queue: Vec<u32>,
    /// For the walks over lost blocks: the block each was reached from,
    /// and their queue.
    mark: Vec<u32>,
    walk: Vec<u32>,
    /// The walk from unreferenced lost blocks over lost blocks (made once,
    /// when a site first needs it): where each block was reached from.
    held: Vec<u32>,
    held_queue: Vec<u32>,
    held_walked: bool,
    /// Pointers to each block from lost blocks.
    indegree: Vec<u32>,
    pub findings: Vec<Finding>,
}

impl Buffers {
    /// Room for a heap of up to `blocks` blocks.
    pub(crate) fn new(blocks: usize) -> Buffers {
        Buffers {
            via: Vec::with_capacity(blocks),
            at: Vec::with_capacity(blocks),
            order: Vec::with_capacity(blocks),
            queue: Vec::with_capacity(blocks),
            mark: Vec::with_capacity(blocks),
            walk: Vec::with_capacity(blocks),
            held: Vec::with_capacity(blocks),
            held_queue: Vec::with_capacity(blocks),
            held_walked: false,
            indegree: Vec::with_capacity(blocks),
            findings: Vec::with_capacity(MAX_SITES),
        }
    }
}

/// Fills `v` with `n` copies of `x`, within its capacity.
fn fill<T: Copy>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    let n = n.min(v.capacity());
    v.resize(n, x);
}

/// Analyses `heap` for the sites in `sites` (at most [`MAX_SITES`] of
/// them); the findings are in `buffers.findings`, in the order of `sites`.
/// Without `complete` (a root or block unseen), no survivor is called
/// lost: the example of a site none of whose survivors is reachable is
/// then [`Example::Lost`] with its `lost` count, and the caller says the
/// scan could not tell.
pub(crate) fn analyse(heap: &dyn Heap, sites: &[u32], buffers: &mut Buffers, preview: bool) {
    let n = heap.blocks().min(buffers.via.capacity());
    let b = buffers;
    fill(&mut b.via, n, UNSEEN);
    fill(&mut b.at, n, 0);
    fill(&mut b.order, n, UNSEEN);
    fill(&mut b.mark, n, UNSEEN);
    b.queue.clear();
    b.walk.clear();
    b.held_walked = false;
    b.findings.clear();

    // The walk from the roots; from the fallback roots only once every
    // other root's walk is done.
    let mut seen = 0u32;
    let mut head = 0;
    for phase in [false, true] {
        for r in (0..heap.roots()).filter(|&r| heap.is_fallback(r) == phase) {
            heap.root_words(r, &mut |offset, word| {
                // From a fallback root, only a pointer to a block's start: the
                // C allocator's own pointers to chunk headers land in the last
                // bytes of the block before (a chunk's tail overlaps the next
                // chunk's header), while what holds a Rust value from there (a
                // thread's name, a C library's user data) holds its start.
                let at = heap
                    .block_at(word)
                    .filter(|&i| i < n && (!phase || heap.block(i).addr == word));
                if let Some(i) = at {
                    if b.via[i] == UNSEEN {
                        b.via[i] = FROM_ROOT | r as u32;
                        b.at[i] = offset;
                        b.order[i] = seen;
                        seen += 1;
                        b.queue.push(i as u32);
                    }
                }
            });
        }
        while head < b.queue.len() {
            let from = b.queue[head] as usize;
            head += 1;
            heap.block_words(from, &mut |offset, word| {
                if let Some(i) = heap.block_at(word).filter(|&i| i < n) {
                    if b.via[i] == UNSEEN {
                        b.via[i] = from as u32;
                        b.at[i] = offset;
                        b.order[i] = seen;
                        seen += 1;
                        b.queue.push(i as u32);
                    }
                }
            });
        }
    }

    // Pointers to lost blocks from lost blocks.
    fill(&mut b.indegree, n, 0);
    for from in 0..n {
        if b.via[from] != UNSEEN {
            continue;
        }
        heap.block_words(from, &mut |_, word| {
            if let Some(i) = heap.block_at(word).filter(|&i| i < n && i != from) {
                if b.via[i] == UNSEEN {
                    b.indegree[i] = b.indegree[i].saturating_add(1);
                }
            }
        });
    }

    for &site in sites.iter().take(MAX_SITES) {
        let mut finding = Finding {
            site,
            reachable: 0,
            lost: 0,
            survivor: UNSEEN,
            example: Example::Unreferenced,
            preview_len: 0,
            preview: [0; PREVIEW_BYTES],
        };
        let mut nearest: Option<usize> = None;
        let mut candidates = [0u32; CYCLE_CANDIDATES];
        let mut found = 0;
        let mut unreferenced = None;
        for i in 0..n {
            let block = heap.block(i);
            if !block.survivor || block.site != site {
                continue;
            }
            if b.via[i] == UNSEEN {
                finding.lost += 1;
                if found < CYCLE_CANDIDATES {
                    candidates[found] = i as u32;
                    found += 1;
                }
                if b.indegree[i] == 0 && unreferenced.is_none() {
                    unreferenced = Some(i);
                }
            } else {
                finding.reachable += 1;
                if nearest.is_none_or(|k| b.order[i] < b.order[k]) {
                    nearest = Some(i);
                }
            }
        }
        if let Some(i) = nearest {
            finding.survivor = i as u32;
            finding.example = path_to(heap, b, i);
        } else if found > 0 {
            let cycle = candidates[..found]
                .iter()
                .find_map(|&c| cycle_through(heap, b, c as usize).map(|s| (c, s)));
            (finding.survivor, finding.example) = match (cycle, unreferenced) {
                (Some((c, steps)), _) => (c, Example::Cycle(steps)),
                (None, Some(u)) => (u as u32, Example::Unreferenced),
                (None, None) => {
                    let c = candidates[0];
                    (c, held_by_lost(heap, b, c as usize))
                }
            };
        }
        if preview && finding.survivor != UNSEEN {
            finding.preview_len = heap.head(finding.survivor as usize, &mut finding.preview);
        }
        if b.findings.len() < b.findings.capacity() {
            b.findings.push(finding);
        }
    }
}

/// The path the walk took to block `i`, the root's word first.
fn path_to(heap: &dyn Heap, b: &mut Buffers, i: usize) -> Example {
    // Walk back to the root, keeping the last MAX_STEPS blocks.
    let mut chain = Steps::EMPTY;
    let mut reversed = [0u32; MAX_STEPS];
    let mut len = 0;
    let mut cut = 0;
    let mut cur = i as u32;
    let (root, offset) = loop {
        if len < MAX_STEPS {
            reversed[len] = cur;
            len += 1;
        } else {
            cut += 1;
        }
        let via = b.via[cur as usize];
        if via & FROM_ROOT != 0 {
            break ((via & !FROM_ROOT) as usize, b.at[cur as usize]);
        }
        cur = via;
    };
    // With a long path, the steps nearest the survivor are kept.
    chain.len = len;
    chain.cut = cut;
    for k in 0..len {
        let block = reversed[len - 1 - k];
        chain.steps[k].block = block;
    }
    for k in 0..len.saturating_sub(1) {
        let next = chain.steps[k + 1].block as usize;
        let at = b.at[next];
        chain.steps[k].next_at = at;
        chain.steps[k].element = element(heap, chain.steps[k].block as usize, at, next);
    }
    if cut > 0 {
        // The root does not point at the first kept step.
        return Example::Path {
            root,
            offset: usize::MAX,
            steps: chain,
        };
    }
    Example::Path {
        root,
        offset,
        steps: chain,
    }
}

/// Largest element stride tried (bytes).
const MAX_STRIDE: usize = 1024;

/// Whether `block`, which holds a pointer to `next` at `at`, looks like an
/// array of equal elements: the smallest stride `s` such that the words
/// `s` and `2s` bytes before and after `at` (those inside the block) point,
/// more often than not and at least once, to blocks like `next` (of the
/// same site; of the same size when `next` has no site). Then the
/// pointer's element index (counted from the block's start) and `s`.
fn element(heap: &dyn Heap, block: usize, at: usize, next: usize) -> Option<(usize, usize)> {
    let like = heap.block(next);
    let size = heap.block(block).size;
    let alike = |offset: usize| {
        heap.word(block, offset)
            .and_then(|w| heap.block_at(w))
            .map(|i| {
                let other = heap.block(i);
                if like.site != 0 {
                    other.site == like.site
                } else {
                    other.size == like.size
                }
            })
    };
    (8..=MAX_STRIDE.min(size / 2))
        .step_by(8)
        .find(|&stride| {
            let (mut yes, mut no) = (0, 0);
            let neighbours = [
                at.checked_sub(2 * stride),
                at.checked_sub(stride),
                Some(at + stride),
                Some(at + 2 * stride),
            ];
            for offset in neighbours.into_iter().flatten() {
                if offset + 8 > size {
                    continue;
                }
                match alike(offset) {
                    Some(true) => yes += 1,
                    _ => no += 1,
                }
            }
            yes > 0 && yes > no
        })
        .map(|stride| (at / stride, stride))
}

/// The shortest cycle of lost blocks through lost block `start`, found by
/// a walk over lost blocks from it.
fn cycle_through(heap: &dyn Heap, b: &mut Buffers, start: usize) -> Option<Steps> {
    let n = b.mark.len();
    for &q in &b.walk {
        if (q as usize) < n {
            b.mark[q as usize] = UNSEEN;
        }
    }
    b.walk.clear();
    b.walk.push(start as u32);
    let mut head = 0;
    let mut closing = None;
    while head < b.walk.len() && head < MAX_CYCLE_WALK && closing.is_none() {
        let from = b.walk[head] as usize;
        head += 1;
        let (order, queue, via) = (&mut b.mark, &mut b.walk, &b.via);
        heap.block_words(from, &mut |offset, word| {
            if closing.is_some() {
                return;
            }
            let Some(i) = heap.block_at(word).filter(|&i| i < n && via[i] == UNSEEN) else {
                return;
            };
            if i == start {
                closing = Some((from, offset));
            } else if order[i] == UNSEEN && i != start && queue.len() < queue.capacity() {
                order[i] = from as u32;
                queue.push(i as u32);
            }
        });
    }
    let (last, last_at) = closing?;
    // start -> ... -> last -> start; walk back from `last`.
    let mut reversed = [0u32; MAX_STEPS];
    let mut len = 0;
    let mut cur = last;
    while cur != start && len < MAX_STEPS - 1 {
        reversed[len] = cur as u32;
        len += 1;
        cur = b.mark[cur] as usize;
    }
    let mut steps = Steps::EMPTY;
    steps.steps[0].block = start as u32;
    for k in 0..len {
        steps.steps[k + 1].block = reversed[len - 1 - k];
    }
    steps.len = len + 1;
    for k in 0..steps.len {
        let here = steps.steps[k].block as usize;
        let (next, at) = if k + 1 < steps.len {
            let next = steps.steps[k + 1].block as usize;
            (next, offset_of(heap, here, next))
        } else {
            (start, last_at)
        };
        steps.steps[k].next_at = at;
        steps.steps[k].element = element(heap, here, at, next);
    }
    Some(steps)
}

/// The offset of the first word of block `from` that points into `to`.
fn offset_of(heap: &dyn Heap, from: usize, to: usize) -> usize {
    let mut found = usize::MAX;
    heap.block_words(from, &mut |offset, word| {
        if found == usize::MAX && heap.block_at(word) == Some(to) {
            found = offset;
        }
    });
    found
}

/// For a lost block held only by lost blocks: the chain to it from a lost
/// block that nothing points at, by a walk over lost blocks from all such;
/// for one held only from a cycle, the chain from a block of that cycle.
fn held_by_lost(heap: &dyn Heap, b: &mut Buffers, target: usize) -> Example {
    let n = b.via.len();
    // One walk serves every site: from all lost blocks nothing points at,
    // over lost blocks, each reached block noting where from.
    if !b.held_walked {
        b.held_walked = true;
        fill(&mut b.held, n, UNSEEN);
        b.held_queue.clear();
        for i in 0..n {
            if b.via[i] == UNSEEN
                && b.indegree[i] == 0
                && b.held_queue.len() < b.held_queue.capacity()
            {
                b.held[i] = i as u32;
                b.held_queue.push(i as u32);
            }
        }
        // Then from the lost blocks still unreached, in address order: they
        // are held only by cycles, and start chains of their own.
        let mut head = 0;
        let mut next_seed = 0;
        loop {
            while head < b.held_queue.len() {
                let from = b.held_queue[head] as usize;
                head += 1;
                let (held, queue, via) = (&mut b.held, &mut b.held_queue, &b.via);
                heap.block_words(from, &mut |_, word| {
                    if let Some(i) = heap.block_at(word).filter(|&i| i < n && via[i] == UNSEEN) {
                        if held[i] == UNSEEN && queue.len() < queue.capacity() {
                            held[i] = from as u32;
                            queue.push(i as u32);
                        }
                    }
                });
            }
            while next_seed < n && (b.via[next_seed] != UNSEEN || b.held[next_seed] != UNSEEN) {
                next_seed += 1;
            }
            if next_seed == n || b.held_queue.len() == b.held_queue.capacity() {
                break;
            }
            b.held[next_seed] = next_seed as u32;
            b.held_queue.push(next_seed as u32);
        }
    }
    if b.held.get(target).is_none_or(|&h| h == UNSEEN) {
        return Example::Lost;
    }
    let mut reversed = [0u32; MAX_STEPS];
    let mut len = 0;
    let mut cut = 0;
    let mut cur = target;
    loop {
        if len < MAX_STEPS {
            reversed[len] = cur as u32;
            len += 1;
        } else {
            cut += 1;
        }
        let from = b.held[cur] as usize;
        if from == cur {
            break;
        }
        cur = from;
    }
    let mut steps = Steps::EMPTY;
    steps.len = len;
    steps.cut = cut;
    for k in 0..len {
        steps.steps[k].block = reversed[len - 1 - k];
    }
    for k in 0..len.saturating_sub(1) {
        let (here, next) = (
            steps.steps[k].block as usize,
            steps.steps[k + 1].block as usize,
        );
        let at = offset_of(heap, here, next);
        steps.steps[k].next_at = at;
        steps.steps[k].element = element(heap, here, at, next);
    }
    Example::HeldByLost(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up heap: blocks at fixed addresses with their words, and
    /// roots as lists of words.
    #[derive(Default)]
    struct Fake {
        blocks: Vec<(Block, Vec<usize>)>,
        roots: Vec<Vec<usize>>,
        /// Roots from this index on are fallback roots.
        fallback_from: Option<usize>,
    }

    impl Fake {
        /// Adds a block of `words` words at the next free address; returns
        /// its address.
        fn add(&mut self, site: u32, survivor: bool, words: usize) -> usize {
            let addr = 0x1000 + self.blocks.len() * 0x1000;
            self.blocks.push((
                Block {
                    addr,
                    size: words * 8,
                    site,
                    survivor,
                },
                vec![0; words],
            ));
            addr
        }
        fn set(&mut self, addr: usize, word: usize, value: usize) {
            let b = self.blocks.iter_mut().find(|b| b.0.addr == addr).unwrap();
            b.1[word] = value;
        }
        fn run(&self, sites: &[u32]) -> Vec<Finding> {
            let mut buffers = Buffers::new(self.blocks.len());
            analyse(self, sites, &mut buffers, true);
            buffers.findings
        }
        fn index(&self, addr: usize) -> u32 {
            self.blocks.iter().position(|b| b.0.addr == addr).unwrap() as u32
        }
    }

    impl Heap for Fake {
        fn blocks(&self) -> usize {
            self.blocks.len()
        }
        fn block(&self, i: usize) -> Block {
            self.blocks[i].0
        }
        fn block_at(&self, word: usize) -> Option<usize> {
            self.blocks
                .iter()
                .position(|b| (b.0.addr..b.0.addr + b.0.size).contains(&word))
        }
        fn word(&self, i: usize, offset: usize) -> Option<usize> {
            self.blocks[i].1.get(offset / 8).copied()
        }
        fn block_words(&self, i: usize, f: &mut dyn FnMut(usize, usize)) {
            for (k, &w) in self.blocks[i].1.iter().enumerate() {
                f(k * 8, w);
            }
        }
        fn roots(&self) -> usize {
            self.roots.len()
        }
        fn is_fallback(&self, r: usize) -> bool {
            self.fallback_from.is_some_and(|from| r >= from)
        }
        fn root_words(&self, r: usize, f: &mut dyn FnMut(usize, usize)) {
            for (k, &w) in self.roots[r].iter().enumerate() {
                f(k * 8, w);
            }
        }
        fn head(&self, i: usize, out: &mut [u8]) -> usize {
            let bytes: Vec<u8> = self.blocks[i]
                .1
                .iter()
                .flat_map(|w| w.to_ne_bytes())
                .collect();
            let n = out.len().min(bytes.len());
            out[..n].copy_from_slice(&bytes[..n]);
            n
        }
    }

    #[test]
    fn a_static_vec_of_strings_is_a_path_through_the_buffer_with_the_index() {
        let mut h = Fake::default();
        // A Vec's buffer of 4 elements of 3 words (cap, ptr, len), the
        // pointer in the middle word; its strings are survivors of site 7.
        let buffer = h.add(1, false, 12);
        let strings: Vec<usize> = (0..4).map(|_| h.add(7, true, 2)).collect();
        for (k, &s) in strings.iter().enumerate() {
            h.set(buffer, k * 3 + 1, s + 3); // interior pointers count too
        }
        // The static: a mutex word, then the Vec (cap, ptr, len).
        h.roots.push(vec![0, 4, buffer, 4]);
        let f = h.run(&[7]);
        assert_eq!((f[0].reachable, f[0].lost), (4, 0));
        let Example::Path {
            root,
            offset,
            steps,
        } = f[0].example
        else {
            panic!("{:?}", f[0].example)
        };
        assert_eq!(
            (root, offset),
            (0, 16),
            "the Vec's pointer word in the static"
        );
        let steps = steps.as_slice();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].block, h.index(buffer));
        assert_eq!(steps[1].block, f[0].survivor);
        // Whichever string is the example, its index and the stride of 24.
        let k = strings
            .iter()
            .position(|&s| h.index(s) == f[0].survivor)
            .unwrap();
        assert_eq!(steps[0].element, Some((k, 24)));
        assert_eq!(steps[0].next_at, k * 24 + 8);
    }

    #[test]
    fn the_shortest_path_wins_and_a_static_beats_a_stack_at_equal_length() {
        let mut h = Fake::default();
        let outer = h.add(1, false, 1);
        let leaked = h.add(9, true, 1);
        h.set(outer, 0, leaked);
        h.roots.push(vec![outer]); // a static, through one block
        h.roots.push(vec![leaked]); // a stack, directly
        let f = h.run(&[9]);
        let Example::Path { root, steps, .. } = f[0].example else {
            panic!()
        };
        assert_eq!((root, steps.len), (1, 1), "the direct path is shorter");

        let mut h = Fake::default();
        let leaked = h.add(9, true, 1);
        h.roots.push(vec![leaked]);
        h.roots.push(vec![leaked]);
        let f = h.run(&[9]);
        let Example::Path { root, .. } = f[0].example else {
            panic!()
        };
        assert_eq!(root, 0, "the earlier root at equal length");
    }

    #[test]
    fn a_cycle_of_three_is_lost_and_shown_in_order() {
        let mut h = Fake::default();
        let a = h.add(5, true, 2);
        let b = h.add(5, true, 2);
        let c = h.add(6, true, 2);
        h.set(a, 1, b);
        h.set(b, 1, c);
        h.set(c, 0, a);
        h.roots.push(vec![0x42, 7]); // integers, not pointers
        let f = h.run(&[5, 6]);
        assert_eq!((f[0].reachable, f[0].lost), (0, 2));
        let Example::Cycle(steps) = f[0].example else {
            panic!("{:?}", f[0].example)
        };
        let order: Vec<u32> = steps.as_slice().iter().map(|s| s.block).collect();
        let start = f[0].survivor;
        assert_eq!(order[0], start);
        assert_eq!(order.len(), 3);
        // Each points at the next, the last at the first.
        let at: Vec<usize> = steps.as_slice().iter().map(|s| s.next_at).collect();
        let expected_next = |x: u32| {
            let addr = h.blocks[x as usize].0.addr;
            if addr == a {
                (h.index(b), 8)
            } else if addr == b {
                (h.index(c), 8)
            } else {
                (h.index(a), 0)
            }
        };
        for k in 0..3 {
            let (next, offset) = expected_next(order[k]);
            assert_eq!(order[(k + 1) % 3], next);
            assert_eq!(at[k], offset);
        }
    }

    #[test]
    fn a_forgotten_block_is_unreferenced_and_what_it_holds_is_held_by_lost() {
        let mut h = Fake::default();
        let forgotten = h.add(3, true, 2);
        let inner = h.add(4, true, 1);
        h.set(forgotten, 1, inner);
        let f = h.run(&[3, 4]);
        assert_eq!(f[0].example, Example::Unreferenced);
        assert_eq!(f[0].lost, 1);
        let Example::HeldByLost(steps) = f[1].example else {
            panic!("{:?}", f[1].example)
        };
        let chain: Vec<u32> = steps.as_slice().iter().map(|s| s.block).collect();
        assert_eq!(chain, vec![h.index(forgotten), h.index(inner)]);
        assert_eq!(steps.steps[0].next_at, 8);
    }

    #[test]
    fn what_a_cycle_holds_is_held_by_lost_from_a_block_of_the_cycle() {
        let mut h = Fake::default();
        let a = h.add(5, true, 2);
        let b = h.add(5, true, 2);
        let name = h.add(6, true, 1);
        h.set(a, 0, b);
        h.set(b, 0, a);
        h.set(b, 1, name);
        let f = h.run(&[6]);
        let Example::HeldByLost(steps) = f[0].example else {
            panic!("{:?}", f[0].example)
        };
        let chain: Vec<u32> = steps.as_slice().iter().map(|s| s.block).collect();
        assert_eq!(*chain.last().unwrap(), h.index(name));
        assert!(chain.len() >= 2, "{chain:?}");
        assert!(
            chain[..chain.len() - 1]
                .iter()
                .all(|&c| c == h.index(a) || c == h.index(b)),
            "from the cycle: {chain:?}"
        );
    }

    #[test]
    fn only_survivors_of_the_site_count_and_a_preview_is_their_bytes() {
        let mut h = Fake::default();
        let kept = h.add(2, false, 1); // same site, made before the window
        let text = h.add(2, true, 1);
        h.set(text, 0, usize::from_ne_bytes(*b"secret!!"));
        h.roots.push(vec![kept]);
        let f = h.run(&[2]);
        assert_eq!((f[0].reachable, f[0].lost), (0, 1));
        assert_eq!(&f[0].preview[..f[0].preview_len], b"secret!!");
    }

    #[test]
    fn a_fallback_root_holds_only_what_nothing_else_reaches() {
        let mut h = Fake::default();
        let buffer = h.add(1, false, 2);
        let held = h.add(4, true, 1);
        let orphan = h.add(5, true, 1);
        h.set(buffer, 1, held);
        let inside = h.add(6, true, 2);
        h.roots.push(vec![0, 0, buffer]); // a static, through the buffer
                                          // Memory with pointers to both, listed first, and one into the
                                          // last word of another block (as a chunk header would be).
        h.roots.insert(0, vec![held, orphan, inside + 8]);
        h.fallback_from = None;
        let mut stale_first = Fake {
            fallback_from: Some(1),
            ..Fake::default()
        };
        std::mem::swap(&mut stale_first.blocks, &mut h.blocks);
        stale_first.roots = vec![h.roots[1].clone(), h.roots[0].clone()];
        let f = stale_first.run(&[4, 5, 6]);
        assert_eq!(
            f[2].example,
            Example::Unreferenced,
            "not held by a pointer inside it"
        );
        let Example::Path { root, steps, .. } = f[0].example else {
            panic!("{:?}", f[0].example)
        };
        assert_eq!(
            (root, steps.len),
            (0, 2),
            "the static's path, though longer"
        );
        let Example::Path { root, steps, .. } = f[1].example else {
            panic!("{:?}", f[1].example)
        };
        assert_eq!((root, steps.len), (1, 1), "only the fallback holds it");
        assert_eq!((f[1].reachable, f[1].lost), (1, 0));
    }

    #[test]
    fn a_long_path_keeps_the_steps_nearest_the_survivor() {
        let mut h = Fake::default();
        let chain: Vec<usize> = (0..MAX_STEPS + 3).map(|_| h.add(1, false, 1)).collect();
        let leaked = h.add(8, true, 1);
        for w in chain.windows(2) {
            h.set(w[0], 0, w[1]);
        }
        h.set(*chain.last().unwrap(), 0, leaked);
        h.roots.push(vec![chain[0]]);
        let f = h.run(&[8]);
        let Example::Path { steps, offset, .. } = f[0].example else {
            panic!()
        };
        assert_eq!(steps.len, MAX_STEPS);
        assert_eq!(steps.cut, 4);
        assert_eq!(offset, usize::MAX);
        assert_eq!(steps.as_slice().last().unwrap().block, h.index(leaked));
    }
}
