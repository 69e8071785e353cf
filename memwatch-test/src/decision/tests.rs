//! The decision on recorded runs (`traces/`, written by real fixture runs)
//! and on model heaps that play each pattern out to the budget.

use std::collections::{BTreeMap, VecDeque};

use super::*;

const T: Thresholds = Thresholds {
    bytes: 64,
    blocks: 1,
};
const SCHEDULE: Schedule = Schedule {
    iterations: 32,
    max_iterations: DEFAULT_MAX_ITERATIONS,
};

/// A model heap that keeps what the engine keeps: every block's size and
/// the iteration that made it (a realloc makes it anew).
#[derive(Default)]
struct Heap {
    blocks: BTreeMap<u64, (u32, u64)>,
    next: u64,
    now: u32,
}

impl Heap {
    fn alloc(&mut self, size: u64) -> u64 {
        self.next += 1;
        self.blocks.insert(self.next, (self.now, size));
        self.next
    }
    fn free(&mut self, id: u64) {
        self.blocks.remove(&id);
    }
    fn realloc(&mut self, id: u64, size: u64) {
        self.blocks.insert(id, (self.now, size));
    }
    fn level(&self) -> (u64, u64) {
        let bytes = self.blocks.values().map(|b| b.1).sum();
        (bytes, self.blocks.len() as u64)
    }
    fn survivors(&self) -> Vec<Survivor> {
        let mut by: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
        for &(it, size) in self.blocks.values() {
            if it > 0 {
                let e = by.entry(it).or_default();
                e.0 += 1;
                e.1 += size as i64;
            }
        }
        by.into_iter()
            .map(|(iteration, (blocks, bytes))| Survivor {
                iteration,
                blocks,
                bytes,
            })
            .collect()
    }
}

/// Plays `body` through warm-up and the rounds of [`SCHEDULE`] the way the
/// runner does; returns the call and the measured iterations it took.
fn play(mut body: impl FnMut(&mut Heap, u32)) -> (Call, u32, Why) {
    let mut heap = Heap::default();
    for call in 1..=3 {
        body(&mut heap, call);
    }
    let (bytes, blocks) = heap.level();
    let start = Level { bytes, blocks };
    let mut samples = Vec::new();
    let mut checkpoints = Vec::new();
    let mut next = SCHEDULE.first();
    let mut i = 0;
    loop {
        i += 1;
        heap.now = i;
        body(&mut heap, i + 3);
        let (bytes, blocks) = heap.level();
        samples.push(Sample {
            iteration: i,
            bytes,
            blocks,
        });
        if i < next {
            continue;
        }
        checkpoints.push(Checkpoint {
            iteration: i,
            resources: None,
        });
        let following = SCHEDULE.after(i);
        let survivors = heap.survivors();
        let e = Evidence {
            start,
            samples: &samples,
            first_round_after: SCHEDULE.first_round_after(),
            first_resources: None,
            checkpoints: &checkpoints,
            survivors: &survivors,
            thresholds: T,
            exhausted: following.is_none().then_some(Exhausted::Iterations),
        };
        let j = decide(&e);
        if j.call != Call::Continue {
            return (j.call, i, j.why);
        }
        next = following.expect("a due decision never continues");
    }
}

/// A `Vec` of `item`-byte elements in the model heap, growing as std's does.
#[derive(Default)]
struct Buffer {
    id: Option<u64>,
    cap: u64,
    len: u64,
}

impl Buffer {
    fn push(&mut self, heap: &mut Heap, n: u64, item: u64) {
        self.len += n;
        if self.len > self.cap {
            self.cap = (self.cap * 2).max(self.len).max(8);
            match self.id {
                Some(id) => heap.realloc(id, self.cap * item),
                None => self.id = Some(heap.alloc(self.cap * item)),
            }
        }
    }
}

/// An LRU cache of `bound` entries of `size` bytes, `per_call` new keys a call.
fn lru(bound: usize, per_call: usize, size: u64) -> impl FnMut(&mut Heap, u32) {
    let mut order: VecDeque<u64> = VecDeque::new();
    let mut table = Buffer::default();
    move |heap, _| {
        for _ in 0..per_call {
            order.push_back(heap.alloc(size));
            table.push(heap, 1, 16);
            if order.len() > bound {
                let old = order.pop_front().unwrap();
                heap.free(old);
                table.len -= 1;
            }
        }
    }
}

#[test]
fn the_schedule_doubles_up_to_the_budget() {
    let mut at = vec![SCHEDULE.first()];
    while let Some(n) = SCHEDULE.after(*at.last().unwrap()) {
        at.push(n);
    }
    assert_eq!(at, [32, 64, 128, 256, 512, 1024]);
    assert_eq!(SCHEDULE.first_round_after(), 16);
    let odd = Schedule {
        iterations: 10,
        max_iterations: 50,
    };
    assert_eq!(odd.after(40), Some(50));
    assert_eq!(odd.after(50), None);
    let tight = Schedule {
        iterations: 10,
        max_iterations: 4,
    };
    assert_eq!((tight.first(), tight.after(4)), (4, None));
}

#[test]
fn a_block_per_iteration_is_a_leak_at_the_budget() {
    let (call, at, why) = play(|h, _| {
        h.alloc(8);
    });
    assert_eq!((call, at), (Call::Leak, 1024));
    assert!(why.end.accumulating);
    assert_eq!(why.survivor_iterations, 1024);
    assert_eq!(why.extra_iterations, 992);
    assert!(
        why.reason.contains("still growing at the end"),
        "{}",
        why.reason
    );
}

#[test]
fn sparse_and_tiny_leaks_are_leaks() {
    let every_third = play(|h, call| {
        if call % 3 == 0 {
            h.alloc(16);
        }
    });
    assert_eq!(every_third.0, Call::Leak);
    let one_byte = play(|h, _| {
        h.alloc(1);
    });
    assert_eq!(one_byte.0, Call::Leak);
    let late = play(|h, call| {
        if call > 20 {
            h.alloc(8);
        }
    });
    assert_eq!((late.0, late.1), (Call::Leak, 1024));
}

#[test]
fn a_vec_appended_forever_is_a_leak_by_its_resizes() {
    let mut v = Buffer::default();
    let (call, _, why) = play(move |h, _| v.push(h, 3, 1));
    assert_eq!(call, Call::Leak);
    assert!(why.end.resizing && !why.end.accumulating);
    assert_eq!(why.growth, Growth::Resizes);
    assert!(why.reason.contains("by resizing blocks"), "{}", why.reason);
    let mut q = Buffer::default();
    assert_eq!(play(move |h, _| q.push(h, 1, 8)).0, Call::Leak);
}

#[test]
fn a_partly_pruned_waiter_list_is_a_leak() {
    // Two waiters a call, the oldest one pruned: old blocks die, the list
    // grows all the same.
    let mut list: VecDeque<u64> = VecDeque::new();
    let (call, ..) = play(move |h, _| {
        list.push_back(h.alloc(24));
        list.push_back(h.alloc(24));
        let old = list.pop_front().unwrap();
        h.free(old);
    });
    assert_eq!(call, Call::Leak);
}

#[test]
fn bounded_caches_are_clean() {
    let (call, at, why) = play(lru(128, 2, 64));
    assert_eq!((call, at), (Call::Clean, 256), "{}", why.reason);
    let (call, at, why) = play(lru(256, 1, 64));
    assert_eq!((call, at), (Call::Clean, 1024), "{}", why.reason);
    assert!(why.still_gaining_after.unwrap() < 256);
    assert_eq!(why.exhausted, Some(Exhausted::Iterations));
    assert_eq!(play(lru(16, 1, 100)).0, Call::Clean);
}

#[test]
fn a_cache_that_fills_late_in_the_last_round_stops_being_a_leak() {
    // 600 entries, one a call: growth in each of the last three rounds,
    // but no new block in the last quarter.
    let (call, at, why) = play(lru(600, 1, 64));
    assert_eq!((call, at), (Call::Clean, 1024), "{}", why.reason);
    assert!(!why.end.accumulating);
    assert!(why.reason.contains("bounded structure"), "{}", why.reason);
}

#[test]
fn a_full_cache_whose_table_resizes_late_is_clean() {
    // What the `lru` crate did with 300 entries in one run of ten: full by
    // iteration 300, then its hash table reallocated once, in iteration
    // 900, as its deleted slots ran out. Survivors in every recent
    // iteration (the cache turns over) and a rising byte floor, but no new
    // block.
    let mut cache = lru(300, 1, 48);
    let mut table: Option<u64> = None;
    let (call, at, why) = play(move |h, call| {
        cache(h, call);
        match table {
            None => table = Some(h.alloc(4352)),
            Some(id) if call == 903 => h.realloc(id, 8704),
            Some(_) => {}
        }
    });
    assert_eq!((call, at), (Call::Clean, 1024), "{}", why.reason);
    assert!(!why.end.accumulating && !why.end.resizing);
}

#[test]
fn a_buffer_growing_to_a_ceiling_is_clean() {
    let mut buf = Buffer::default();
    let (call, at, why) = play(move |h, call| {
        let want = 37 * u64::from(call.min(100)) + u64::from(call * 7919 % 13);
        let have = buf.len;
        if want > have {
            buf.push(h, want - have, 1);
        }
    });
    assert_eq!((call, at), (Call::Clean, 256), "{}", why.reason);
}

#[test]
fn a_pool_and_a_late_table_step_are_clean() {
    let mut pool: Vec<u64> = Vec::new();
    let (call, _, why) = play(move |h, call| {
        let need = (call / 4).min(16) as usize;
        while pool.len() < need {
            pool.push(h.alloc(1024));
        }
    });
    assert_eq!(call, Call::Clean, "{}", why.reason);
    assert!(why.still_gaining_after.unwrap() >= 58, "{}", why.reason);
    // A table made for 28 keys that gets its 29th in call 29 and then
    // only overwrites.
    let mut table = Buffer::default();
    let (call, at, why) = play(move |h, call| {
        if table.id.is_none() {
            table.push(h, 28, 16);
        } else if call == 29 {
            table.push(h, 1, 16);
        }
    });
    assert_eq!((call, at), (Call::Clean, 128), "{}", why.reason);
}

#[test]
fn initialisation_and_jitter_are_clean_at_the_first_checkpoint() {
    let mut init = false;
    let (call, at, _) = play(move |h, _| {
        if !init {
            h.alloc(4000);
            init = true;
        }
    });
    assert_eq!((call, at), (Call::Clean, 32));
    let mut held = None;
    let (call, at, _) = play(move |h, call| match call % 3 {
        0 => held = Some(h.alloc(700)),
        1 => {
            if let Some(id) = held.take() {
                h.free(id);
            }
        }
        _ => {}
    });
    assert_eq!((call, at), (Call::Clean, 32));
}

#[test]
fn a_one_off_resize_in_a_round_runs_one_round_longer() {
    let mut buf = Buffer::default();
    let (call, at, why) = play(move |h, call| {
        if call == 30 {
            buf.push(h, 1024, 1);
        }
    });
    assert_eq!((call, at), (Call::Clean, 128), "{}", why.reason);
}

fn evidence_with_threads<'a>(
    samples: &'a [Sample],
    checkpoints: &'a [Checkpoint],
    exhausted: Option<Exhausted>,
) -> Evidence<'a> {
    Evidence {
        start: Level::default(),
        samples,
        first_round_after: 16,
        first_resources: Some(Resources {
            threads: 1,
            open_fds: 4,
        }),
        checkpoints,
        survivors: &[],
        thresholds: T,
        exhausted,
    }
}

#[test]
fn threads_that_grow_in_three_rounds_leak_before_the_budget() {
    let samples: Vec<Sample> = (1..=128)
        .map(|i| Sample {
            iteration: i,
            bytes: 100 * u64::from(i),
            blocks: u64::from(i),
        })
        .collect();
    let at = |iteration: u32| Checkpoint {
        iteration,
        resources: Some(Resources {
            threads: 1 + u64::from(iteration) - 16,
            open_fds: 4,
        }),
    };
    let checkpoints = [at(32), at(64), at(128)];
    let j = decide(&evidence_with_threads(
        &samples[..64],
        &checkpoints[..2],
        None,
    ));
    assert_eq!(j.call, Call::Continue);
    let j = decide(&evidence_with_threads(&samples, &checkpoints, None));
    assert_eq!(j.call, Call::ThreadLeak { per_iteration: 1.0 });
}

#[test]
fn a_time_limit_decides_on_what_was_seen() {
    let samples: Vec<Sample> = (1..=64)
        .map(|i| Sample {
            iteration: i,
            bytes: 8 * u64::from(i),
            blocks: u64::from(i),
        })
        .collect();
    let survivors: Vec<Survivor> = (1..=64)
        .map(|i| Survivor {
            iteration: i,
            blocks: 1,
            bytes: 8,
        })
        .collect();
    let checkpoints = [
        Checkpoint {
            iteration: 32,
            resources: None,
        },
        Checkpoint {
            iteration: 64,
            resources: None,
        },
    ];
    let e = Evidence {
        survivors: &survivors,
        exhausted: Some(Exhausted::Time),
        ..evidence_with_threads(&samples, &checkpoints, None)
    };
    let j = decide(&e);
    assert_eq!(j.call, Call::Leak, "{}", j.why.reason);
    assert_eq!(j.why.exhausted, Some(Exhausted::Time));
}

#[test]
fn jitter_at_the_end_cannot_lift_the_floor_of_older_rounds() {
    // Flat, but the last three samples hold a 4 KiB buffer of a
    // background thread.
    let mut samples: Vec<Sample> = (1..=64)
        .map(|i| Sample {
            iteration: i,
            bytes: 10_000,
            blocks: 10,
        })
        .collect();
    for s in &mut samples[61..] {
        s.bytes += 4096;
        s.blocks += 1;
    }
    let checkpoints = [32, 64].map(|iteration| Checkpoint {
        iteration,
        resources: None,
    });
    let e = Evidence {
        exhausted: Some(Exhausted::Iterations),
        start: Level {
            bytes: 10_000,
            blocks: 10,
        },
        ..evidence_with_threads(&samples, &checkpoints, None)
    };
    let j = decide(&e);
    assert!(!j.rounds[0].grew && j.rounds[1].grew);
    assert_eq!(j.call, Call::Clean, "{}", j.why.reason);
}

/// Recorded runs of the fixtures in `tests/src/bin/verdict_fixtures.rs`:
/// each file is the `decision.evidence` of a JSON report, with the verdict
/// the run got.
#[test]
fn recorded_runs_replay_to_their_verdicts() {
    let traces: &[(&str, &str)] = &include!("traces/index.rs");
    assert!(traces.len() >= 18, "{} traces", traces.len());
    for (name, json) in traces {
        let recorded: serde_json::Value = serde_json::from_str(json).unwrap();
        let trace: Trace = serde_json::from_value(recorded["evidence"].clone()).unwrap();
        let expected = recorded["verdict"].as_str().unwrap();
        assert_eq!(recorded["test"], *name);
        let e = trace.evidence();
        let j = decide(&e);
        let got = match j.call {
            Call::Continue => "continue",
            Call::Clean => "clean",
            Call::Leak => "leak",
            Call::ThreadLeak { .. } => "thread_leak",
            Call::FdLeak { .. } => "fd_leak",
        };
        assert_eq!(got, expected, "{name}: {}", j.why.reason);
        // Every earlier checkpoint of a counted run called for more (a soak
        // test is decided at its end only).
        let counted = trace.exhausted != Some(Exhausted::Duration);
        for k in (1..trace.checkpoints.len()).filter(|_| counted) {
            let upto = trace.checkpoints[k - 1].iteration;
            let samples: Vec<Sample> = trace
                .samples
                .iter()
                .copied()
                .filter(|s| s.iteration <= upto)
                .collect();
            let earlier = Evidence {
                samples: &samples,
                checkpoints: &trace.checkpoints[..k],
                exhausted: None,
                ..e
            };
            assert_eq!(
                decide(&earlier).call,
                Call::Continue,
                "{name}: checkpoint {upto} already decided"
            );
        }
    }
}
