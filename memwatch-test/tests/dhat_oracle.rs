//! dhat's heap profiler as the oracle: one workload, our live counts and
//! dhat's `HeapStats` agree at every checkpoint.
//!
//! Our `Alloc` wraps `dhat::Alloc`. Outside windows dhat sees each block as
//! we hand it out, so its byte count is ours, exactly. While survivors are
//! tracked it sees each block with our 16-byte header in front (every
//! alignment here is at most 16): its byte count is ours plus 16 per live
//! block, exactly. dhat's own bookkeeping allocates through our allocator
//! re-entrantly; we leave it uncounted, as dhat does.

use std::collections::{BTreeMap, HashMap};

use memwatch_test::{counts, Alloc, Counts};

mod common;

#[global_allocator]
static ALLOC: Alloc<dhat::Alloc> = Alloc::new(dhat::Alloc);

const HEADER: u64 = 16;

struct Oracle {
    start: Counts,
    /// The bytes dhat sees in front of each of our blocks.
    header: u64,
    checkpoints: usize,
}

impl Oracle {
    fn check(&mut self, label: &str) {
        let ours = counts();
        let theirs = dhat::HeapStats::get();
        let blocks = ours.live_blocks - self.start.live_blocks;
        let bytes = ours.live_bytes - self.start.live_bytes;
        assert_eq!(theirs.curr_blocks as u64, blocks, "{label}: live blocks");
        assert_eq!(
            theirs.curr_bytes as u64,
            bytes + self.header * blocks,
            "{label}: live bytes"
        );
        self.checkpoints += 1;
    }
}

fn live_counts_agree_with_dhat() {
    workload(0);
}

fn live_counts_agree_with_dhat_while_survivors_are_tracked() {
    let _tracking = memwatch_test::track_survivors();
    workload(HEADER);
}

fn workload(header: u64) {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut o = Oracle {
        start: counts(),
        header,
        checkpoints: 0,
    };
    o.check("empty");

    let mut boxes: Vec<Box<[u8; 24]>> = (0..1000).map(|i| Box::new([i as u8; 24])).collect();
    o.check("boxes");

    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&i.to_string()); // reallocs as it grows
    }
    o.check("string grown by realloc");

    let zeroed = vec![0u64; 10_000]; // alloc_zeroed
    o.check("zeroed");

    let mut map: HashMap<u64, Vec<u8>> = HashMap::new();
    for i in 0..2000u64 {
        map.insert(i, vec![i as u8; (i % 97) as usize + 1]);
    }
    let tree: BTreeMap<u64, String> = (0..3000).map(|i| (i, format!("v{i}"))).collect();
    o.check("maps");

    boxes.truncate(10);
    boxes.shrink_to_fit();
    text.truncate(100);
    text.shrink_to_fit(); // realloc down
    map.retain(|k, _| k % 3 == 0);
    o.check("after partial frees and shrinking reallocs");

    drop((boxes, text, zeroed, map, tree));
    o.check("all freed");
    assert_eq!(counts().live_blocks, o.start.live_blocks);

    assert_eq!(o.checkpoints, 7);
}

fn main() -> std::process::ExitCode {
    common::run(&[
        ("live_counts_agree_with_dhat", live_counts_agree_with_dhat),
        (
            "live_counts_agree_with_dhat_while_survivors_are_tracked",
            live_counts_agree_with_dhat_while_survivors_are_tracked,
        ),
    ])
}
