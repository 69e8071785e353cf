//! The environment variables a leak-test harness reads. `cargo memwatch`
//! sets them for the harness processes it starts.
//!
//! A relative folder in [`REPORT_DIR`], [`SNAPSHOT_DIR`] or [`DHAT`] is
//! relative to the root of the package whose tests run (the folder of its
//! `Cargo.toml`, where `cargo test` and `cargo nextest run` start a test
//! binary): both the harness and `cargo memwatch` resolve it with
//! [`folder`], so `MEMWATCH_SNAPSHOT_DIR=snaps` is `<package>/snaps` for
//! either, and never a folder inside memwatch's own sources.
//!
//! ```
//! use std::path::Path;
//! use memwatch_report::env;
//!
//! assert!(env::ALL.contains(&env::SITES));
//! let dir = env::resolve(env::SNAPSHOT_DIR, Some("snaps".as_ref()), Path::new("/ws/app"));
//! assert_eq!(dir.unwrap(), Some(Path::new("/ws/app/snaps").to_path_buf()));
//! ```

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A folder: each test writes its JSON report there.
pub const REPORT_DIR: &str = "MEMWATCH_REPORT_DIR";
/// A folder that holds the snapshots instead of the package's
/// `tests/snapshots/`.
pub const SNAPSHOT_DIR: &str = "MEMWATCH_SNAPSHOT_DIR";
/// Set: every test captures its allocation sites.
pub const SITES: &str = "MEMWATCH_SITES";
/// A folder: every leaking test writes a DHAT viewer file there.
pub const DHAT: &str = "MEMWATCH_DHAT";
/// Set: `--list` starts with [`crate::probe::PROBE_HEADER`] and names every
/// test with its ignore flag.
pub const PROBE: &str = "MEMWATCH_PROBE";
/// Set by the harness for the process it starts to run one test in
/// isolation: the file that process writes its result to. Not for users.
pub const CHILD: &str = "MEMWATCH_CHILD";
/// Set to `1`: run every test in the harness's own process instead of one
/// process each (for a debugger; earlier tests can then change what a
/// later test records).
pub const IN_PROCESS: &str = "MEMWATCH_IN_PROCESS";
/// Set to `1`: a leak's report shows the first bytes of one leaked block of
/// each site. Off by default: leaked memory can hold secrets, and CI logs
/// are often public.
pub const PREVIEW: &str = "MEMWATCH_PREVIEW";
/// Set by the harness for the process it starts to find what keeps a
/// leak's blocks alive: the file that process reads its request from and
/// writes its findings to. The allocator reads it before `main`, to keep
/// every block of that process. Not for users.
pub const SCAN: &str = "MEMWATCH_SCAN";

/// Every variable above.
pub const ALL: [&str; 9] = [
    REPORT_DIR,
    SNAPSHOT_DIR,
    SITES,
    DHAT,
    PROBE,
    CHILD,
    IN_PROCESS,
    PREVIEW,
    SCAN,
];

/// A folder variable that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The variable is set to the empty string.
    #[error("{0} is set but empty: give it a folder, or unset it")]
    Empty(&'static str),
}

/// Resolves the folder variable `name`, whose value is `value`, for the
/// package whose root is `package_root`: `None` when unset, the value when
/// absolute, else the value under `package_root`. An empty value is an
/// error, not the current folder.
///
/// ```
/// use std::path::Path;
/// use memwatch_report::env::{resolve, EnvError, REPORT_DIR};
///
/// let root = Path::new("/ws/app");
/// assert_eq!(resolve(REPORT_DIR, None, root), Ok(None));
/// assert_eq!(resolve(REPORT_DIR, Some("/tmp/r".as_ref()), root), Ok(Some("/tmp/r".into())));
/// assert_eq!(resolve(REPORT_DIR, Some("".as_ref()), root), Err(EnvError::Empty(REPORT_DIR)));
/// ```
pub fn resolve(
    name: &'static str,
    value: Option<&OsStr>,
    package_root: &Path,
) -> Result<Option<PathBuf>, EnvError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(EnvError::Empty(name)),
        Some(v) => Ok(Some(package_root.join(v))),
    }
}

/// [`resolve`] with the variable's value in this process's environment.
///
/// ```
/// use std::path::Path;
/// let dir = memwatch_report::env::folder("MEMWATCH_TEST_UNSET_VARIABLE", Path::new("/ws"));
/// assert_eq!(dir, Ok(None));
/// ```
pub fn folder(name: &'static str, package_root: &Path) -> Result<Option<PathBuf>, EnvError> {
    resolve(name, std::env::var_os(name).as_deref(), package_root)
}
