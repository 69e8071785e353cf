//! Resources beyond the heap: the process's threads and open file
//! descriptors, sampled from `/proc` on Linux.

use serde::{Deserialize, Serialize};

use crate::allocator::untracked;

/// The process's threads and open file descriptors at one moment.
///
/// ```
/// match memwatch_test::resources() {
///     Some(r) => assert!(r.threads >= 1 && r.open_fds >= 3),
///     None => println!("not supported on this platform"),
/// }
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resources {
    /// Threads of the process.
    pub threads: u64,
    /// Open file descriptors (files, sockets, pipes, ...).
    pub open_fds: u64,
}

/// Samples the process's threads and open file descriptors; `None` where
/// that is not supported (everywhere but Linux, for now).
pub fn resources() -> Option<Resources> {
    untracked(sample)
}

#[cfg(target_os = "linux")]
fn sample() -> Option<Resources> {
    use std::io::Read;
    // `/proc/self/stat` is one short line; field 20 is the thread count.
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open("/proc/self/stat")
        .ok()?
        .read(&mut buf)
        .ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    // The command name (field 2) may hold spaces: count fields after it.
    let after_name = &text[text.rfind(')')? + 1..];
    let threads = after_name.split_whitespace().nth(17)?.parse().ok()?;
    // The directory listing holds a descriptor of its own while it runs.
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .count()
        .checked_sub(1)? as u64;
    Some(Resources { threads, open_fds })
}

#[cfg(not(target_os = "linux"))]
fn sample() -> Option<Resources> {
    None
}
