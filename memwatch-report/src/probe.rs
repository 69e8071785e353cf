//! How `cargo memwatch` tells a memwatch harness from any other test
//! binary: a marker in the binary, then a probed `--list`.
//!
//! ```
//! use memwatch_report::probe::{MARKER, PROBE_HEADER};
//!
//! assert!(MARKER.starts_with(b"memwatch-harness-marker"));
//! assert!(PROBE_HEADER.starts_with("memwatch-harness "));
//! ```

/// Bytes every binary that links the harness contains.
pub const MARKER: &[u8] = b"memwatch-harness-marker:v1";
/// The first line a harness prints for `--list` when [`crate::env::PROBE`]
/// is set.
pub const PROBE_HEADER: &str = "memwatch-harness 1";
