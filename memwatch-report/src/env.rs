//! The environment variables a leak-test harness reads. `cargo memwatch`
//! sets them for the harness processes it starts.
//!
//! ```
//! assert!(memwatch_report::env::ALL.contains(&memwatch_report::env::SITES));
//! ```

/// A folder: each test writes its JSON report there.
pub const REPORT_DIR: &str = "MEMWATCH_REPORT_DIR";
/// A folder that holds the snapshots instead of the crate's
/// `tests/snapshots/`.
pub const SNAPSHOT_DIR: &str = "MEMWATCH_SNAPSHOT_DIR";
/// Set: every test captures its allocation sites.
pub const SITES: &str = "MEMWATCH_SITES";
/// A folder: every leaking test writes a DHAT viewer file there.
pub const DHAT: &str = "MEMWATCH_DHAT";
/// Set: `--list` starts with [`crate::probe::PROBE_HEADER`] and names every
/// test with its ignore flag.
pub const PROBE: &str = "MEMWATCH_PROBE";

/// Every variable above.
pub const ALL: [&str; 5] = [REPORT_DIR, SNAPSHOT_DIR, SITES, DHAT, PROBE];
