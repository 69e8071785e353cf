//! The JSON report a leak test writes to `MEMWATCH_REPORT_DIR`, and
//! `cargo memwatch` reads: one [`Report`] per test, in a file named by
//! [`file_name`].
//!
//! The harness serialises these types and `cargo memwatch` deserialises
//! them; neither has a copy. [`VERSION`] is bumped on every incompatible
//! change, and [`read`] refuses a report of another version with a clear
//! error instead of reading zeros.
//!
//! ```
//! use memwatch_report::report::{read, ReadError, VERSION};
//!
//! let err = read(br#"{"version": 99}"#).unwrap_err();
//! assert_eq!(err, ReadError::Version { found: 99, expected: VERSION });
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The version of the report format this crate reads and writes.
pub const VERSION: u32 = 3;

/// The report file of the test whose file stem is `stem`
/// ([`crate::naming::file_stem`]).
///
/// ```
/// assert_eq!(memwatch_report::report::file_name("parse__clean"), "parse__clean.json");
/// ```
pub fn file_name(stem: &str) -> String {
    format!("{stem}.json")
}

/// One leak test's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`VERSION`].
    pub version: u32,
    /// The test's path within its binary (`module::name`).
    pub test: String,
    /// The source file of the test, as `file!()` gives it.
    pub file: String,
    /// The line of `#[leak_test]`.
    pub line: u32,
    /// What the run found.
    pub verdict: Verdict,
    /// `#[leak_test(should_leak)]`.
    pub should_leak: bool,
    /// Whether the test passed: its verdict is what it expects (or is a
    /// known leak, as approved), and its snapshot matched or was recorded.
    pub passed: bool,
    /// What happened to the test's snapshot.
    pub snapshot: SnapshotStatus,
    /// Threads and open descriptors: `watched`, `off` (`resources =
    /// false`) or `not supported on this platform`.
    pub resources: String,
    /// Warm-up iterations.
    pub warmup: u32,
    /// Measured iterations before the first checkpoint.
    pub iterations: u32,
    /// Iterations run, warm-up included.
    pub iterations_run: u32,
    /// Wall-clock time of the run, in milliseconds.
    pub duration_ms: f64,
    /// Collection cycles the test ran (warm-up included).
    pub num_cycles: usize,
    /// Highest live bytes seen during the test.
    pub peak_bytes: u64,
    /// Live heap growth per measured iteration, from the first measured
    /// iteration to the last.
    pub growth_per_iteration: Rate,
    /// The heap diff of the last round per iteration, by tag: allocated and
    /// freed blocks, net bytes.
    pub per_iteration: Vec<TagRow>,
    /// The rounds the decision judged.
    pub rounds: Vec<Round>,
    /// The decision, its budget and its evidence.
    pub decision: Decision,
    /// node-memwatch's rule (heap growth over 5 consecutive cycles), when
    /// it fired on the measured cycles: its sentence.
    pub memwatch_leak: Option<String>,
    /// Blocks of each measured cycle still live at the end of the run.
    pub survivors: Vec<Survivors>,
    /// Where the survivors were allocated, when sites were captured.
    pub sites: Option<Sites>,
    /// Why sites were asked for and there are none (the scan process
    /// failed or ran out of time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites_error: Option<String>,
    /// The DHAT viewer file of a leaking test, with `MEMWATCH_DHAT`.
    pub dhat_file: Option<PathBuf>,
    /// The collection cycles of the test, at most 1024, evenly thinned in
    /// a long soak test.
    pub cycles: Vec<Cycle>,
    /// The failure message, as the harness printed it, when the test failed.
    pub failure: Option<String>,
}

impl Report {
    /// Whether the test leaks and passes because its approved snapshot
    /// records this very leak.
    ///
    /// ```
    /// # use memwatch_report::report::{Report, SnapshotStatus};
    /// # fn check(r: &Report) {
    /// assert_eq!(r.known_leak(), r.snapshot == SnapshotStatus::KnownLeak);
    /// # }
    /// ```
    pub fn known_leak(&self) -> bool {
        self.snapshot == SnapshotStatus::KnownLeak
    }

    /// Whether the verdict is what the test expects, its snapshot aside: a
    /// leak for a `should_leak` test, clean for any other.
    ///
    /// ```
    /// # use memwatch_report::report::{Report, Verdict};
    /// # fn check(r: &Report) {
    /// if r.verdict == Verdict::Clean && !r.should_leak {
    ///     assert!(r.verdict_expected());
    /// }
    /// # }
    /// ```
    pub fn verdict_expected(&self) -> bool {
        self.verdict.expected(self.should_leak)
    }
}

/// Why a report cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// It is not JSON, or it has no `version`.
    #[error("it is not a memwatch report: {0}")]
    NotAReport(String),
    /// It was written by a harness of another report version.
    #[error(
        "it is a version {found} report, and this cargo memwatch reads version {expected}: \
         use the cargo-memwatch release that matches your memwatch-test"
    )]
    Version {
        /// The version in the file.
        found: u32,
        /// [`VERSION`].
        expected: u32,
    },
    /// It has this version but not its shape.
    #[error("it is a broken version {VERSION} report: {0}")]
    Broken(String),
}

/// Reads a report file's bytes: its version first, then the whole report.
///
/// ```
/// assert!(memwatch_report::report::read(b"not json").is_err());
/// ```
pub fn read(bytes: &[u8]) -> Result<Report, ReadError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned =
        serde_json::from_slice(bytes).map_err(|e| ReadError::NotAReport(e.to_string()))?;
    if v.version != VERSION {
        return Err(ReadError::Version {
            found: v.version,
            expected: VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ReadError::Broken(e.to_string()))
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Verdict {
    /// Nothing stayed.
    Clean,
    /// The heap kept growing.
    Leak,
    /// Tasks spawned by an async body were still pending after an
    /// iteration, with nothing left for the runtime to do.
    TaskLeak {
        /// Tasks still pending.
        pending: usize,
        /// The iteration after which they were.
        iteration: u32,
    },
    /// Threads of the process grew in each of the last rounds.
    ThreadLeak {
        /// Threads per measured iteration.
        per_iteration: f64,
    },
    /// Open file descriptors grew in each of the last rounds.
    FdLeak {
        /// Descriptors per measured iteration.
        per_iteration: f64,
    },
    /// The body panicked: no verdict.
    Panicked {
        /// The iteration it panicked in (warm-up counted).
        iteration: u32,
        /// The panic's message.
        message: String,
    },
}

impl Verdict {
    /// The verdict's id, as the JSON's `kind`, the summaries and the
    /// snapshots write it (`task_leak`).
    ///
    /// ```
    /// use memwatch_report::report::Verdict;
    /// assert_eq!(Verdict::TaskLeak { pending: 1, iteration: 4 }.kind(), "task_leak");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Leak => "leak",
            Verdict::TaskLeak { .. } => "task_leak",
            Verdict::ThreadLeak { .. } => "thread_leak",
            Verdict::FdLeak { .. } => "fd_leak",
            Verdict::Panicked { .. } => "panicked",
        }
    }

    /// Whether it is what a test expects: a leak for a `should_leak` test,
    /// clean for any other; a panic never is.
    ///
    /// ```
    /// use memwatch_report::report::Verdict;
    /// assert!(Verdict::Clean.expected(false) && Verdict::Leak.expected(true));
    /// assert!(!Verdict::Panicked { iteration: 1, message: String::new() }.expected(true));
    /// ```
    pub fn expected(&self, should_leak: bool) -> bool {
        match self {
            Verdict::Panicked { .. } => false,
            Verdict::Clean => !should_leak,
            _ => should_leak,
        }
    }

    /// Whether it is a leak of any kind (memory, task, thread, descriptor).
    ///
    /// ```
    /// use memwatch_report::report::Verdict;
    /// assert!(Verdict::Leak.is_leak() && !Verdict::Clean.is_leak());
    /// ```
    pub fn is_leak(&self) -> bool {
        !matches!(self, Verdict::Clean | Verdict::Panicked { .. })
    }
}

/// What happened to a test's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    /// `snapshot = false`, or no verdict to record (the body panicked).
    Off,
    /// It matched the approved snapshot.
    Matched,
    /// The test leaks, and its approved snapshot records this very leak:
    /// a known leak, accepted by review. The test passes.
    KnownLeak,
    /// A clean test had no snapshot yet; outside CI it was recorded as
    /// approved.
    Recorded,
    /// No approved snapshot yet, and it was not recorded (under CI, or it
    /// leaks): it waits for review as `.snap.new`.
    New,
    /// It differs from the approved snapshot.
    Changed,
}

impl SnapshotStatus {
    /// Whether this status fails the test.
    ///
    /// ```
    /// use memwatch_report::report::SnapshotStatus;
    /// assert!(SnapshotStatus::Changed.fails() && !SnapshotStatus::Recorded.fails());
    /// ```
    pub fn fails(self) -> bool {
        matches!(self, SnapshotStatus::New | SnapshotStatus::Changed)
    }
}

/// Bytes and blocks per iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Bytes per iteration.
    pub bytes: f64,
    /// Blocks per iteration.
    pub blocks: f64,
}

/// One tag's row of the heap diff, per iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRow {
    /// The tag's name, `(untagged)` for blocks allocated under none.
    pub what: String,
    /// Blocks allocated under the tag, per iteration.
    #[serde(rename = "+")]
    pub allocated: f64,
    /// Blocks of the tag freed, per iteration.
    #[serde(rename = "-")]
    pub freed: f64,
    /// Net bytes per iteration.
    pub size_bytes: f64,
}

/// Live bytes and blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// Live bytes.
    pub bytes: u64,
    /// Live blocks.
    pub blocks: u64,
}

/// Where a round's growth came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthKind {
    /// It did not grow.
    None,
    /// More live blocks.
    NewBlocks,
    /// More bytes in as many blocks: blocks that grew.
    Resizes,
}

/// Threads and open file descriptors of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Threads of the process.
    pub threads: u64,
    /// Open file descriptors (files, sockets, pipes, ...).
    pub open_fds: u64,
}

/// One round of the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Measured iterations `first..=last`.
    pub first: u32,
    /// See `first`.
    pub last: u32,
    /// The floor (least live heap from then on) at the round's start.
    pub floor_before: Level,
    /// The floor at the round's end.
    pub floor_after: Level,
    /// The heap grew over the round.
    pub grew: bool,
    /// Where the growth came from.
    pub growth: GrowthKind,
    /// Threads and descriptors at the round's end.
    pub resources: Option<Resources>,
    /// Threads grew over the round.
    pub threads_grew: bool,
    /// Descriptors grew over the round.
    pub fds_grew: bool,
}

/// The decision of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Measured iterations before the first checkpoint.
    pub iterations: u32,
    /// The budget: at most this many measured iterations.
    pub max_iterations: u32,
    /// The budget: no round starts that would end past this time.
    pub time_limit_ms: f64,
    /// Time spent past the first checkpoint because the evidence there was
    /// ambiguous.
    pub extended_ms: f64,
    /// `clean`, `leak`, `thread_leak`, ... or `None` when no decision was
    /// reached (a panic, a task leak before the first checkpoint).
    pub call: Option<String>,
    /// The decision's sentence.
    pub reason: Option<String>,
    /// What the decision rested on, in memwatch-test's decision terms.
    pub why: Option<serde_json::Value>,
    /// The evidence the decision read (memwatch-test's decision trace: it
    /// replays to the same call).
    pub evidence: serde_json::Value,
}

/// Blocks allocated in one collection cycle and still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survivors {
    /// The cycle the blocks were allocated in; `0` gathers every cycle
    /// older than the engine's window.
    pub cycle: u64,
    /// Blocks allocated in that cycle and still live.
    pub blocks: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// Warm-up or measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Iterations before the measurement.
    Warmup,
    /// Iterations the decision reads.
    Measured,
}

/// One collection cycle of a test: after one iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cycle {
    /// Warm-up or measured.
    pub phase: Phase,
    /// The iteration it followed (warm-up counted, from 1).
    pub iteration: u32,
    /// The decision round it belongs to (0 for warm-up).
    pub round: u32,
    /// The heap after it.
    pub stats: CycleStats,
}

/// The heap after one collection cycle (memwatch's `stats` event).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CycleStats {
    /// Collection cycles so far.
    pub num_cycles: u64,
    /// Live bytes right after the cycle.
    pub current_base: u64,
    /// memwatch's smoothed base.
    pub estimated_base: f64,
    /// How far `estimated_base` stands above the long-term base, in percent.
    pub usage_trend: f64,
    /// Live blocks right after the cycle.
    pub live_blocks: u64,
    /// Blocks allocated since the start.
    pub allocations: u64,
    /// Blocks freed since the start.
    pub frees: u64,
    /// Highest live bytes within the cycle.
    pub cycle_peak: u64,
}

/// Whose code a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// The code under test: a file of a package of the workspace (not its
    /// `target/` or `vendor/` folder).
    User,
    /// A dependency's code: a registry or git crate, a vendored crate, a
    /// path dependency outside the workspace, or a crate std vendors
    /// (`/rust/deps/`, such as hashbrown).
    Dependency,
    /// std, core, alloc, the allocator, memwatch, and frames with no file.
    Runtime,
}

/// One resolved stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The function, demangled.
    pub function: String,
    /// Its source file, when known.
    pub file: Option<String>,
    /// Its line, when known.
    pub line: Option<u32>,
    /// Whose code it is.
    pub kind: FrameKind,
}

impl Frame {
    /// `function (file:line)`.
    ///
    /// ```
    /// use memwatch_report::report::{Frame, FrameKind};
    /// let f = Frame { function: "app::f".into(), file: Some("src/lib.rs".into()), line: Some(4), kind: FrameKind::User };
    /// assert_eq!(f.describe(), "app::f (src/lib.rs:4)");
    /// ```
    pub fn describe(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{} ({file}:{line})", self.function),
            (Some(file), None) => format!("{} ({file})", self.function),
            _ => self.function.clone(),
        }
    }
}

/// Where surviving blocks were allocated, per iteration of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// The innermost frame of the user's code: a package of the workspace
    /// under test. When no frame of the user's code is on the stack (a
    /// dependency's own background work), the outermost frame of a
    /// dependency, with `kind` `dependency`: the code the user's code
    /// called or spawned.
    pub frame: Frame,
    /// The innermost dependency frame under `frame`: the library code that
    /// made the blocks for the user's code (`None` when the user's code
    /// allocated itself, through std).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_in: Option<Frame>,
    /// The spawn function (a thread's or a task's: `std::thread::spawn`,
    /// `tokio::task::spawn::spawn`, ...) the blocks were allocated in, when
    /// they were: then `frame` is where the user's code spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned_by: Option<String>,
    /// The stack was deeper than capture keeps (64 frames): a site that
    /// names no frame of the user's code may then have one further out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stack_cut: bool,
    /// Surviving blocks allocated there, per iteration.
    pub blocks_per_iteration: f64,
    /// Their bytes, per iteration.
    pub bytes_per_iteration: f64,
    /// The frames from the allocation outwards.
    pub backtrace: Vec<Frame>,
    /// What the blocks are, when it can be known: a `#[tagged]` name, or
    /// the value std's allocating frames make (`Rc<_>`, `Box<_>`, `String`,
    /// a `Vec`'s buffer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// What keeps the blocks alive, from a scan of the heap (leaks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The first bytes of one of the blocks, only when asked for
    /// (`MEMWATCH_PREVIEW=1`): leaked memory can hold secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
}

/// What keeps a site's surviving blocks alive, as a conservative scan of
/// the heap found it: every word that points into a block, at its start or
/// inside it, is taken for a pointer. An integer can look like one, so a
/// path found is what *possibly* holds the blocks; a block no path reaches
/// is certainly lost (when the scan saw every root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Surviving blocks of the site a path from a root reaches.
    pub reachable: u64,
    /// Surviving blocks of the site no path from a root reaches: lost,
    /// unless `unseen` says the scan missed a root.
    pub lost: u64,
    /// One surviving block's story: the shortest path to a reachable one,
    /// or the cycle of a lost one.
    pub example: Retainer,
    /// Why the scan did not see every root, when it did not (a thread it
    /// could not stop): then a block it did not reach may be held from
    /// what it missed, and is not called lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<String>,
}

/// How one surviving block is kept, or why nothing keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Retainer {
    /// The shortest path from a root: each step's block holds a pointer to
    /// the next one's; the last step is the surviving block.
    Path {
        /// Where the path starts.
        root: Root,
        /// The blocks on the way, the survivor last.
        steps: Vec<Step>,
    },
    /// Lost: the block is in a cycle of blocks that point at each other
    /// (a reference-count cycle), and nothing else points at them. Each
    /// step points at the next, the last at the first, which is the
    /// surviving block.
    Cycle {
        /// The blocks of the shortest such cycle.
        steps: Vec<Step>,
    },
    /// Lost: nothing points at the block (forgotten, or leaked and its
    /// reference dropped).
    Unreferenced,
    /// Lost: only other lost blocks point at the block. The chain starts
    /// at a lost block nothing points at (a forgotten `Vec`'s buffer, say)
    /// and ends at the surviving block.
    HeldByLost {
        /// The blocks of the chain.
        steps: Vec<Step>,
    },
    /// Lost, held by other lost blocks the scan did not trace back.
    Lost,
    /// The scan could not see every root, so it cannot say.
    Unknown {
        /// Why.
        why: String,
    },
}

/// Where a retainer path starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// What kind of memory it is.
    pub kind: RootKind,
    /// The static's or the thread-local's path (`appcore::AUDIT`), when
    /// the symbol table names it; for a stack, the thread's name.
    pub name: String,
    /// The thread, for a thread-local or a stack: its name, or `#` and its
    /// id for a thread without a name (`#2606`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// How far into the static or thread-local the pointer sits, in bytes.
    pub offset: u64,
}

/// The kinds of memory a retainer path can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    /// A static of a loaded object (its writable data).
    Static,
    /// A thread-local of the test binary, in one thread.
    ThreadLocal,
    /// A thread's stack (its locals, and its saved registers).
    Stack,
    /// Memory of the C allocator's heap that the counting allocator did
    /// not give out: blocks allocated with `System` or `malloc` directly
    /// (std's thread handles, C libraries), and freed memory whose stale
    /// words still look like pointers. A path is only shown from it when
    /// no other root reaches the block; `offset` is then the address.
    Foreign,
}

/// One block on a retainer path or in a cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The block's size, in bytes.
    pub bytes: u64,
    /// Where it was allocated (the user's frame, as a site names it), when
    /// its stack was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Frame>,
    /// The dependency frame that made it for the user's code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_in: Option<Frame>,
    /// What it is, when it can be known (as [`Site::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// Whether it survived the test's iterations (it is one of the leak's).
    pub survivor: bool,
    /// Where in this block the pointer to the next step's block sits (none
    /// for the last step of a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Position>,
}

/// Where a pointer sits in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Its offset from the block's start, in bytes.
    pub offset: u64,
    /// When the block is an array of equal elements (a `Vec`'s buffer, a
    /// hash table's buckets): the element's index and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<Element>,
}

/// An element of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Element {
    /// Its index, from 0.
    pub index: u64,
    /// The array's stride, in bytes.
    pub size: u64,
}

impl Retention {
    /// The retention as lines a person reads, the first one a headline;
    /// the failure message and the report page both show these.
    ///
    /// ```
    /// use memwatch_report::report::{Retention, Retainer};
    /// let r = Retention { reachable: 0, lost: 3, example: Retainer::Unreferenced, unseen: None };
    /// assert_eq!(
    ///     r.lines()[0],
    ///     "lost: all 3 surviving blocks; nothing points at this one (forgotten, or leaked and its pointer dropped)"
    /// );
    /// ```
    pub fn lines(&self) -> Vec<String> {
        let total = self.reachable + self.lost;
        let counts = |what: &str, n: u64| {
            if n == total && total == 1 {
                "the 1 surviving block".to_owned()
            } else if n == total {
                format!("all {total} surviving blocks")
            } else {
                format!("{n} of {total} surviving block{} {what}", plural(total))
            }
        };
        let lost = counts("lost", self.lost);
        let chain = |out: &mut Vec<String>, steps: &[Step]| {
            out.extend(steps.iter().map(|s| format!("  -> {}", s.describe())));
        };
        match &self.example {
            Retainer::Path { root, steps } => {
                let mut out = vec![format!(
                    "held (possibly): {}, from {}",
                    counts("reachable", self.reachable),
                    root.describe()
                )];
                chain(&mut out, steps);
                match &self.unseen {
                    Some(why) if self.lost > 0 => out.push(format!(
                        "  ({} more not reached, and not lost for certain: the scan did not see everything: {why})",
                        self.lost
                    )),
                    _ if self.lost > 0 => out.push(format!(
                        "  ({} more lost: no path reaches them)",
                        self.lost
                    )),
                    _ => {}
                }
                out
            }
            Retainer::Cycle { steps } => {
                let mut out = vec![format!(
                    "lost: {lost}; this one is in a cycle of {} block{} that point at each other, and nothing else points at them",
                    steps.len(),
                    plural(steps.len() as u64)
                )];
                chain(&mut out, steps);
                out.push("  -> back to the first".to_owned());
                out
            }
            Retainer::HeldByLost { steps } => {
                let mut out = vec![format!(
                    "lost: {lost}; only lost blocks point at this one (a forgotten block's, or a cycle's)"
                )];
                chain(&mut out, steps);
                out
            }
            Retainer::Unreferenced => vec![format!(
                "lost: {lost}; nothing points at this one (forgotten, or leaked and its pointer dropped)"
            )],
            Retainer::Lost => vec![format!(
                "lost: {lost}; only other lost blocks point at them"
            )],
            Retainer::Unknown { why } => vec![format!(
                "{}; {why}",
                counts("reachable", self.reachable)
            )],
        }
    }
}

/// What a retention's "possibly" means, said once where paths are shown.
pub const CONSERVATIVE_SCAN: &str = "what keeps blocks alive comes from a conservative scan of the heap: a word that looks like a pointer is taken for one, so a path is what possibly holds them; a block no path reaches is certainly lost";

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Root {
    /// `the static appcore::AUDIT`, `the thread-local appcore::CACHE of
    /// thread main`, `the stack of thread main`.
    ///
    /// ```
    /// use memwatch_report::report::{Root, RootKind};
    /// let r = Root { kind: RootKind::Static, name: "appcore::AUDIT".into(), thread: None, offset: 8 };
    /// assert_eq!(r.describe(), "the static `appcore::AUDIT` (8 bytes into it)");
    /// ```
    pub fn describe(&self) -> String {
        let into = if self.offset > 0 {
            format!(" ({} bytes into it)", self.offset)
        } else {
            String::new()
        };
        let thread = match self.thread.as_deref() {
            Some(id) if id.starts_with('#') => format!("an unnamed thread ({id})"),
            Some(name) => format!("thread `{name}`"),
            None => "a thread".to_owned(),
        };
        match self.kind {
            RootKind::Static => format!("the static `{}`{into}", self.name),
            RootKind::ThreadLocal => {
                format!("the thread-local `{}` of {thread}{into}", self.name)
            }
            RootKind::Stack => format!("a local on the stack of {thread}"),
            RootKind::Foreign => format!(
                "memory memwatch does not track, at {:#x} (a block from `System` or `malloc`, such as std's thread handles, or freed memory)",
                self.offset
            ),
        }
    }
}

impl Step {
    /// `element 41 (24 bytes each) of a Vec's buffer of 1.00 kb allocated
    /// at app::f (src/lib.rs:56)`: where the pointer to the next step sits
    /// in this block, then the block.
    ///
    /// ```
    /// use memwatch_report::report::{Element, Position, Step};
    /// let s = Step {
    ///     bytes: 96, site: None, allocated_in: None, what: Some("a Vec's buffer".into()),
    ///     survivor: false,
    ///     next_at: Some(Position { offset: 32, element: Some(Element { index: 1, size: 24 }) }),
    /// };
    /// assert_eq!(s.describe(), "element 1 (24 bytes each) of a Vec's buffer of 96 bytes (made before sites were captured)");
    /// ```
    pub fn describe(&self) -> String {
        let what = self.what.as_deref().unwrap_or("a block");
        let mut out = match self.next_at {
            Some(Position {
                element: Some(e), ..
            }) => format!(
                "element {} ({} each) of ",
                e.index,
                crate::format_bytes(e.size as f64)
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{what} of {}",
            crate::format_bytes(self.bytes as f64)
        ));
        match (&self.site, &self.allocated_in) {
            (Some(site), Some(dependency)) => out.push_str(&format!(
                " allocated at {} in {}",
                site.describe(),
                dependency.function
            )),
            (Some(site), None) => out.push_str(&format!(" allocated at {}", site.describe())),
            _ => out.push_str(" (made before sites were captured)"),
        }
        if self.survivor {
            out.push_str(" [leaked]");
        }
        if let Some(Position {
            offset,
            element: None,
        }) = self.next_at
        {
            if offset > 0 {
                out.push_str(&format!(" (via its field at byte {offset})"));
            }
        }
        out
    }
}

/// The first bytes of a leaked block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// The block's size.
    pub bytes: u64,
    /// Its first bytes (at most 64).
    pub head: Vec<u8>,
}

impl Preview {
    /// The bytes as text when they are (printable UTF-8, a few NULs or
    /// control bytes aside), else as hex.
    ///
    /// ```
    /// use memwatch_report::report::Preview;
    /// let text = Preview { bytes: 5, head: b"hello".to_vec() };
    /// assert_eq!(text.render(), "\"hello\" (5 bytes)");
    /// let spare = Preview { bytes: 8, head: b"hi\0\0\0\0\0\0".to_vec() };
    /// assert_eq!(spare.render(), "\"hi\" ... (8 bytes)");
    /// let binary = Preview { bytes: 40, head: vec![0, 1, 2, 0xff] };
    /// assert_eq!(binary.render(), "00 01 02 ff ... (40 bytes)");
    /// ```
    pub fn render(&self) -> String {
        let more = if (self.head.len() as u64) < self.bytes {
            " ..."
        } else {
            ""
        };
        let printable = |c: char| !c.is_control() || c == '\n' || c == '\t';
        // A `String`'s spare capacity follows its text: NULs at the end
        // (when the memory was fresh) do not make it binary.
        let end = self.head.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let more = if end < self.head.len() { " ..." } else { more };
        match std::str::from_utf8(&self.head[..end]) {
            Ok(text) if !text.is_empty() && text.chars().all(printable) => {
                format!("{text:?}{more} ({} bytes)", self.bytes)
            }
            _ => {
                let hex: Vec<String> = self.head.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}{more} ({} bytes)", hex.join(" "), self.bytes)
            }
        }
    }
}

/// The allocation sites of a capture run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sites {
    /// Iterations of the capture run.
    pub iterations: u32,
    /// Sites, the most bytes per iteration first.
    pub sites: Vec<Site>,
    /// Surviving blocks that found no room in the site table.
    pub unattributed_blocks: u64,
}
