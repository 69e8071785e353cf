//! The contract between memwatch's leak-test harness (`memwatch-test`) and
//! `cargo memwatch`: what one side writes and the other reads, defined once.
//!
//! - [`env`]: the environment variables that configure a harness run, and
//!   how a relative folder in them is resolved;
//! - [`probe`]: how `cargo memwatch` recognises a harness binary;
//! - [`report`]: the JSON report of one test, its types and its version;
//! - [`snapshot`]: the snapshot file format (insta's) and its body, read
//!   and written;
//! - [`naming`]: the file names of snapshots and reports, and the check that
//!   no two tests share one;
//! - [`format_bytes`]: byte counts as memwatch prints them;
//! - [`describe_exit`]: how a test process ended, as both sides say it.
//!
//! ```
//! use memwatch_report::{env, format_bytes, snapshot};
//!
//! assert_eq!(env::REPORT_DIR, "MEMWATCH_REPORT_DIR");
//! assert_eq!(format_bytes(2048.0), "2.00 kb");
//! let file = snapshot::render("tests/leaks.rs", "a test", "verdict: clean\n");
//! assert_eq!(snapshot::parse(&file).unwrap().body, "verdict: clean");
//! assert!(memwatch_report::report::read(b"{}").is_err());
//! ```
#![warn(missing_docs)]

pub mod env;
mod exit;
pub mod naming;
pub mod probe;
pub mod report;
pub mod snapshot;
mod units;

pub use exit::describe_exit;
pub use units::format_bytes;
