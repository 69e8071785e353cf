//! How a test process ended, in words.

use std::process::ExitStatus;

/// `exit code N`, or `signal N: NAME` for a process a signal ended: what
/// the harness (for a test's own process) and `cargo memwatch` say of a
/// test process that ended without a report.
///
/// ```
/// use std::process::Command;
/// let status = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
/// assert_eq!(memwatch_report::describe_exit(&status), "exit code 3");
/// ```
pub fn describe_exit(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                4 => "SIGILL",
                6 => "SIGABRT, an abort",
                7 => "SIGBUS",
                9 => "SIGKILL",
                11 => "SIGSEGV, a segmentation fault",
                15 => "SIGTERM",
                _ => "a signal",
            };
            return format!("signal {signal}: {name}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => "no exit code".to_owned(),
    }
}
