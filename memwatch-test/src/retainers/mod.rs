//! Why a leak's blocks are still alive: the shortest retainer path from a
//! root to one of them, or the cycle or forgotten block that loses them.
//!
//! A leak's sites are found in a process of their own, started from the
//! test binary with [`memwatch_report::env::SCAN`] set: its allocator keeps
//! every live block (the census), its capture window names where each was
//! allocated, and at the window's end [`scan`] stops the process's other
//! threads and walks the heap from its roots, conservatively: any word
//! that points into a block is taken for a pointer.
//!
//! - `allocator::scan` stops the threads, finds the roots and reads memory;
//! - [`graph`] works out the paths, as a pure function of what it reads;
//! - [`symbols`] names the statics and thread-locals the paths start from.
//!
//! Linux on x86_64.

mod graph;
mod symbols;

use std::collections::HashMap;

use memwatch_report::report::{
    Element, Position, Preview, Retainer, Retention, Root, RootKind, Step,
};

use crate::allocator::scan::{self, Prepared, RegionKind, World};
use crate::allocator::{self, census, untracked, RawSite};
use crate::sites::{Resolver, SiteEvidence};

/// Whether this process keeps every block, to be scanned.
pub(crate) fn active() -> bool {
    census::active()
}

/// The heap as the analysis sees it: the census's blocks, those of the
/// window (first allocated in its epochs) being the survivors.
struct Census<'w> {
    world: &'w World<'w>,
    first_epoch: u32,
    epochs: u32,
}

impl Census<'_> {
    fn survivor(&self, e: &census::Entry) -> bool {
        e.site != 0 && allocator::epochs_between(self.first_epoch, e.epoch) < self.epochs
    }
}

impl graph::Heap for Census<'_> {
    fn blocks(&self) -> usize {
        self.world.nodes.len()
    }
    fn block(&self, i: usize) -> graph::Block {
        let e = &self.world.nodes[i];
        graph::Block {
            addr: e.addr,
            size: e.size,
            site: e.site,
            survivor: self.survivor(e),
        }
    }
    fn block_at(&self, word: usize) -> Option<usize> {
        self.world.node_at(word)
    }
    fn word(&self, i: usize, offset: usize) -> Option<usize> {
        self.world.node_word(i, offset)
    }
    fn block_words(&self, i: usize, f: &mut dyn FnMut(usize, usize)) {
        self.world.node_words(i, f)
    }
    fn roots(&self) -> usize {
        self.world.regions.len()
    }
    fn is_fallback(&self, r: usize) -> bool {
        self.world.regions[r].kind == RegionKind::Foreign
    }
    fn root_words(&self, r: usize, f: &mut dyn FnMut(usize, usize)) {
        self.world.region_words(r, f)
    }
    fn head(&self, i: usize, out: &mut [u8]) -> usize {
        self.world.head(i, out)
    }
}

/// Per site id: surviving blocks, bytes, and the tag of one of them.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    blocks: u64,
    bytes: u64,
    tag: u32,
}

/// What a scan asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    /// The epoch the window's first iteration allocated in, and how many
    /// epochs the window spans.
    pub first_epoch: u32,
    pub epochs: u32,
    /// Walk the heap for what keeps each site's blocks (a leak's scan);
    /// otherwise only tally the survivors by site.
    pub retainers: bool,
    /// Keep the first bytes of one block of each site.
    pub preview: bool,
    /// The scanning thread's roots.
    pub own: scan::OwnRoots,
}

/// Scans this process now: the survivors of the window by site, with
/// what keeps them alive when asked. Returns the sites' evidence and the
/// surviving blocks with no site.
pub(crate) fn scan(ask: Ask, resolver: &mut Resolver<'_>) -> (Vec<SiteEvidence>, u64) {
    let (mut prepared, mut buffers, mut tally, mut chosen) = untracked(|| {
        let prepared = scan::prepare();
        let capacity = prepared.room();
        (
            prepared,
            graph::Buffers::new(if ask.retainers { capacity } else { 0 }),
            vec![Tally::default(); allocator::SITE_SLOTS + 1],
            Vec::<u32>::with_capacity(graph::MAX_SITES),
        )
    });
    let (complete, because, unattributed) = untracked(|| {
        scan::stopped(&mut prepared, ask.own, |world| {
            let heap = Census {
                world,
                first_epoch: ask.first_epoch,
                epochs: ask.epochs,
            };
            let mut unattributed = 0u64;
            for e in world.nodes {
                if !heap.survivor(e) {
                    if e.site == 0
                        && allocator::epochs_between(ask.first_epoch, e.epoch) < ask.epochs
                    {
                        unattributed += 1;
                    }
                    continue;
                }
                let t = &mut tally[(e.site as usize).min(allocator::SITE_SLOTS)];
                t.blocks += 1;
                t.bytes += e.size as u64;
                t.tag = e.tag;
            }
            if ask.retainers {
                // The sites with the most surviving bytes first.
                while chosen.len() < chosen.capacity() {
                    let best = (1..tally.len())
                        .filter(|&s| tally[s].blocks > 0 && !chosen.contains(&(s as u32)))
                        .max_by_key(|&s| (tally[s].bytes, std::cmp::Reverse(s)));
                    match best {
                        Some(s) => chosen.push(s as u32),
                        None => break,
                    }
                }
                graph::analyse(&heap, &chosen, &mut buffers, ask.preview);
            }
            (world.complete, world.incomplete_because, unattributed)
        })
    });

    untracked(|| {
        let tags: HashMap<u32, String> = crate::tag::names().into_iter().collect();
        let mut names = Names {
            prepared: &prepared,
            symbols: HashMap::new(),
            resolver,
            tags: &tags,
            first_epoch: ask.first_epoch,
            epochs: ask.epochs,
        };
        let findings: HashMap<u32, &graph::Finding> =
            buffers.findings.iter().map(|f| (f.site, f)).collect();
        let evidence = tally
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, t)| t.blocks > 0)
            .map(|(site, t)| {
                let finding = findings.get(&(site as u32));
                SiteEvidence {
                    raw: RawSite {
                        frames: allocator::site_frames(site as u32),
                        live_blocks: t.blocks as i64,
                        live_bytes: t.bytes as i64,
                    },
                    tag: (t.tag != 0).then(|| tags.get(&t.tag).cloned()).flatten(),
                    retention: finding.map(|f| names.retention(f, complete, because)),
                    preview: finding.filter(|f| f.preview_len > 0).map(|f| Preview {
                        bytes: prepared.nodes()[f.survivor as usize].size as u64,
                        head: f.preview[..f.preview_len].to_vec(),
                    }),
                }
            })
            .collect();
        (evidence, unattributed)
    })
}

/// Turns the analysis's indices into what people read.
struct Names<'p, 'r, 'a> {
    prepared: &'p Prepared,
    symbols: HashMap<usize, symbols::Symbols>,
    resolver: &'r mut Resolver<'a>,
    tags: &'p HashMap<u32, String>,
    first_epoch: u32,
    epochs: u32,
}

impl Names<'_, '_, '_> {
    fn retention(&mut self, f: &graph::Finding, complete: bool, because: &str) -> Retention {
        let example = match f.example {
            graph::Example::Path {
                root,
                offset,
                steps,
            } => Retainer::Path {
                root: self.root(root, offset),
                steps: self.steps(&steps, false),
            },
            _ if !complete => Retainer::Unknown {
                why: format!("no path was found, but the scan did not see everything: {because}"),
            },
            graph::Example::Cycle(steps) => Retainer::Cycle {
                steps: self.steps(&steps, true),
            },
            graph::Example::HeldByLost(steps) => Retainer::HeldByLost {
                steps: self.steps(&steps, false),
            },
            graph::Example::Unreferenced => Retainer::Unreferenced,
            graph::Example::Lost => Retainer::Lost,
        };
        Retention {
            reachable: f.reachable,
            lost: f.lost,
            example,
            unseen: (!complete).then(|| because.to_owned()),
        }
    }

    fn thread(&self, tid: i32) -> String {
        let pid = std::process::id() as i32;
        // The kernel names the main thread after the program; Rust, `main`.
        if tid == pid {
            return "main".to_owned();
        }
        // Read now, after the scan: a thread stopped as it started may
        // not have named itself yet when the threads were listed.
        let name_of = |tid: i32| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .map(|s| s.trim_end().to_owned())
                .ok()
                .or_else(|| {
                    self.prepared
                        .threads
                        .iter()
                        .find(|(t, _)| *t == tid)
                        .map(|(_, name)| name.clone())
                })
        };
        // A thread without a name of its own has the program's.
        match name_of(tid) {
            Some(name) if !name.is_empty() && Some(&name) != name_of(pid).as_ref() => name,
            _ => format!("#{tid}"),
        }
    }

    fn symbols(&mut self, module: usize) -> &symbols::Symbols {
        let path = &self.prepared.modules[module].path;
        self.symbols
            .entry(module)
            .or_insert_with(|| symbols::Symbols::load(path))
    }

    fn root(&mut self, region: usize, offset: usize) -> Root {
        let r = self.prepared.regions()[region];
        let address = r.start.wrapping_add(offset);
        let known = offset != usize::MAX;
        match r.kind {
            RegionKind::Static { module } => {
                let bias = self.prepared.modules[module].bias;
                let file = self.prepared.modules[module].path.clone();
                let found = known
                    .then(|| {
                        self.symbols(module)
                            .static_at(address.wrapping_sub(bias) as u64)
                            .map(|(name, off)| (name.to_owned(), off))
                    })
                    .flatten();
                let (name, offset) = found.unwrap_or_else(|| {
                    let object = if file == "/proc/self/exe" {
                        "the test binary".to_owned()
                    } else {
                        file
                    };
                    (format!("a static of {object}"), 0)
                });
                Root {
                    kind: RootKind::Static,
                    name,
                    thread: None,
                    offset,
                }
            }
            RegionKind::ThreadLocal { tid } => {
                let module = self
                    .prepared
                    .modules
                    .iter()
                    .position(|m| m.tls.is_some())
                    .unwrap_or(0);
                let found = known
                    .then(|| {
                        self.symbols(module)
                            .thread_local_at(offset as u64)
                            .map(|(name, off)| (name.to_owned(), off))
                    })
                    .flatten();
                let (name, offset) =
                    found.unwrap_or_else(|| ("a thread-local".to_owned(), offset as u64));
                Root {
                    kind: RootKind::ThreadLocal,
                    name,
                    thread: Some(self.thread(tid)),
                    offset,
                }
            }
            RegionKind::Foreign => Root {
                kind: RootKind::Foreign,
                name: "the C allocator's heap".to_owned(),
                thread: None,
                offset: address as u64,
            },
            RegionKind::Stack { tid } => Root {
                kind: RootKind::Stack,
                name: self.thread(tid),
                thread: Some(self.thread(tid)),
                offset: 0,
            },
        }
    }

    fn steps(&mut self, steps: &graph::Steps, cycle: bool) -> Vec<Step> {
        let raw = steps.as_slice();
        raw.iter()
            .enumerate()
            .map(|(k, s)| {
                let node = self.prepared.nodes()[s.block as usize];
                let stack = (node.site != 0)
                    .then(|| self.resolver.stack(&allocator::site_frames(node.site)));
                let (site, allocated_in) = match &stack {
                    Some(stack) => {
                        let (frame, dependency) = stack.site();
                        (Some(frame), dependency)
                    }
                    None => (None, None),
                };
                let last = k + 1 == raw.len();
                Step {
                    bytes: node.size as u64,
                    site,
                    allocated_in,
                    what: crate::sites::what(
                        stack.as_ref().and_then(|s| s.kind()),
                        self.tags
                            .get(&node.tag)
                            .filter(|_| node.tag != 0)
                            .map(String::as_str),
                    ),
                    survivor: node.site != 0
                        && allocator::epochs_between(self.first_epoch, node.epoch) < self.epochs,
                    next_at: (cycle || !last).then_some(Position {
                        offset: s.next_at as u64,
                        element: s.element.map(|(index, size)| Element {
                            index: index as u64,
                            size: size as u64,
                        }),
                    }),
                }
            })
            .collect()
    }
}
