//! The contract between memwatch's leak-test harness (`memwatch-test`) and
//! `cargo memwatch`: what one side writes and the other reads, defined once.
//!
//! - [`env`]: the environment variables that configure a harness run;
//! - [`probe`]: how `cargo memwatch` recognises a harness binary;
//! - [`snapshot`]: the snapshot file format (insta's), read and written;
//! - [`format_bytes`]: byte counts as memwatch prints them.
//!
//! ```
//! use memwatch_report::{env, format_bytes, snapshot};
//!
//! assert_eq!(env::REPORT_DIR, "MEMWATCH_REPORT_DIR");
//! assert_eq!(format_bytes(2048.0), "2.00 kb");
//! let file = snapshot::render("tests/leaks.rs", "a test", "verdict: clean\n");
//! assert_eq!(snapshot::parse(&file).unwrap().body, "verdict: clean");
//! ```
#![warn(missing_docs)]

pub mod env;
pub mod probe;
pub mod snapshot;
mod units;

pub use units::format_bytes;
