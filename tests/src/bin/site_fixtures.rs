//! Leaks made in different places of the user's code, for the tests of
//! allocation sites (`tests/sites.rs`). Each is `should_leak` and `sites`:
//! it passes, and its report names where the survivors were allocated.

use std::sync::Mutex;

use memwatch_test::leak_test;

// Boxed on purpose: each kept box is one block for the site to find.
#[allow(clippy::vec_box)]
static KEPT: Mutex<Vec<Box<[u8; 48]>>> = Mutex::new(Vec::new());

/// A helper that keeps what it makes.
fn remember(fill: u8) {
    let block = Box::new([fill; 48]);
    KEPT.lock().unwrap().push(block);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn helper_function_leaks() {
    remember(1);
}

struct Registry {
    entries: Mutex<Vec<String>>,
}

impl Registry {
    fn register(&self, name: &str) {
        let entry = format!("entry:{name}");
        self.entries.lock().unwrap().push(entry);
    }
}

static REGISTRY: Registry = Registry {
    entries: Mutex::new(Vec::new()),
};

#[leak_test(should_leak, sites, snapshot = false)]
fn method_leaks() {
    REGISTRY.register("a listener that is never removed");
}

#[leak_test(should_leak, sites, snapshot = false)]
fn closure_leaks() {
    let make = |n: usize| Box::leak(vec![7u8; n].into_boxed_slice());
    std::hint::black_box(make(24));
}

#[leak_test(should_leak, sites, snapshot = false)]
fn spawned_thread_leaks() {
    std::thread::spawn(|| {
        std::hint::black_box(Box::leak(Box::new([3u64; 5])));
    })
    .join()
    .unwrap();
}

#[leak_test(should_leak, sites, snapshot = false)]
async fn async_task_leaks() {
    tokio::spawn(async {
        std::hint::black_box(Box::leak(Box::new([9u8; 40])));
    })
    .await
    .unwrap();
}

static CHURN_KEPT: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// Eight threads allocate and free thousands of blocks at once while sites
/// are captured; one of them keeps one block per iteration.
#[leak_test(should_leak, sites, snapshot = false)]
fn many_threads_while_capturing_leaks() {
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    std::hint::black_box(vec![t; (i % 64) as usize + 1]);
                }
                if t == 3 {
                    CHURN_KEPT.lock().unwrap().push(vec![t; 8]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// A block of `N` bytes from a stack of its own: each `N` is a function of
/// its own.
#[inline(never)]
fn make<const N: usize>() -> Box<[u8; N]> {
    Box::new([0; N])
}

macro_rules! churn {
    ($($n:literal)*) => {
        $( std::hint::black_box(make::<$n>()); )*
    };
}

/// 90 temporaries, each from a stack of its own under the caller.
#[inline(never)]
fn churn() {
    churn!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90);
}

/// 100 capture windows in one process, each with 90 stacks of its own
/// under its test's frame: 9,000 sites in all, more than the site table
/// holds at once. Run with `--ignored window_` (`tests/sites.rs`).
macro_rules! windows {
    ($($name:ident $i:literal),* $(,)?) => {
        $(
            #[leak_test(sites, ignore, snapshot = false)]
            fn $name() {
                churn();
                std::hint::black_box($i);
            }
        )*
    };
}

windows!(
    window_000_is_clean 0,
    window_001_is_clean 1,
    window_002_is_clean 2,
    window_003_is_clean 3,
    window_004_is_clean 4,
    window_005_is_clean 5,
    window_006_is_clean 6,
    window_007_is_clean 7,
    window_008_is_clean 8,
    window_009_is_clean 9,
    window_010_is_clean 10,
    window_011_is_clean 11,
    window_012_is_clean 12,
    window_013_is_clean 13,
    window_014_is_clean 14,
    window_015_is_clean 15,
    window_016_is_clean 16,
    window_017_is_clean 17,
    window_018_is_clean 18,
    window_019_is_clean 19,
    window_020_is_clean 20,
    window_021_is_clean 21,
    window_022_is_clean 22,
    window_023_is_clean 23,
    window_024_is_clean 24,
    window_025_is_clean 25,
    window_026_is_clean 26,
    window_027_is_clean 27,
    window_028_is_clean 28,
    window_029_is_clean 29,
    window_030_is_clean 30,
    window_031_is_clean 31,
    window_032_is_clean 32,
    window_033_is_clean 33,
    window_034_is_clean 34,
    window_035_is_clean 35,
    window_036_is_clean 36,
    window_037_is_clean 37,
    window_038_is_clean 38,
    window_039_is_clean 39,
    window_040_is_clean 40,
    window_041_is_clean 41,
    window_042_is_clean 42,
    window_043_is_clean 43,
    window_044_is_clean 44,
    window_045_is_clean 45,
    window_046_is_clean 46,
    window_047_is_clean 47,
    window_048_is_clean 48,
    window_049_is_clean 49,
    window_050_is_clean 50,
    window_051_is_clean 51,
    window_052_is_clean 52,
    window_053_is_clean 53,
    window_054_is_clean 54,
    window_055_is_clean 55,
    window_056_is_clean 56,
    window_057_is_clean 57,
    window_058_is_clean 58,
    window_059_is_clean 59,
    window_060_is_clean 60,
    window_061_is_clean 61,
    window_062_is_clean 62,
    window_063_is_clean 63,
    window_064_is_clean 64,
    window_065_is_clean 65,
    window_066_is_clean 66,
    window_067_is_clean 67,
    window_068_is_clean 68,
    window_069_is_clean 69,
    window_070_is_clean 70,
    window_071_is_clean 71,
    window_072_is_clean 72,
    window_073_is_clean 73,
    window_074_is_clean 74,
    window_075_is_clean 75,
    window_076_is_clean 76,
    window_077_is_clean 77,
    window_078_is_clean 78,
    window_079_is_clean 79,
    window_080_is_clean 80,
    window_081_is_clean 81,
    window_082_is_clean 82,
    window_083_is_clean 83,
    window_084_is_clean 84,
    window_085_is_clean 85,
    window_086_is_clean 86,
    window_087_is_clean 87,
    window_088_is_clean 88,
    window_089_is_clean 89,
    window_090_is_clean 90,
    window_091_is_clean 91,
    window_092_is_clean 92,
    window_093_is_clean 93,
    window_094_is_clean 94,
    window_095_is_clean 95,
    window_096_is_clean 96,
    window_097_is_clean 97,
    window_098_is_clean 98,
    window_099_is_clean 99
);

memwatch_test::main!();
