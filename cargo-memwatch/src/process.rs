//! The test processes: each in a process group of its own, so that a test
//! that times out is stopped with everything it started (SIGTERM, then
//! SIGKILL after a grace period), and Ctrl-C stops every running test
//! before `cargo memwatch` exits.

use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a stopped test has to end after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// Process groups of the running tests.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set once Ctrl-C (or SIGTERM) arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the run was interrupted: its results are not a verdict.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Starts `command` in a process group of its own, remembered until
/// [`finish`] or [`stop`].
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let child = command.spawn()?;
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.id());
    Ok(child)
}

fn forget(child: &Child) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&id| id != child.id());
}

/// Waits for `child` until `deadline`; `None` if it had to be stopped.
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            // Whatever the test started and left behind goes with it.
            signal_group(child.id(), Signal::Kill);
            forget(child);
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            stop(child);
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops `child` and its group: SIGTERM, then SIGKILL after [`GRACE`].
pub fn stop(child: &mut Child) {
    signal_group(child.id(), Signal::Term);
    let until = Instant::now() + GRACE;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal_group(child.id(), Signal::Kill);
    let _ = child.kill();
    let _ = child.wait();
    forget(child);
}

/// On Ctrl-C (or SIGTERM): stops every running test's group and marks
/// the run as interrupted, so that it ends with exit code 130, as a shell
/// does for an interrupted command; exits by itself if the run does not
/// end within two grace periods.
pub fn stop_all_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        let groups: Vec<u32> = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for &g in &groups {
            signal_group(g, Signal::Term);
        }
        std::thread::sleep(GRACE);
        for &g in &groups {
            signal_group(g, Signal::Kill);
        }
        std::thread::sleep(GRACE);
        eprintln!("interrupted");
        std::process::exit(i32::from(INTERRUPTED_EXIT));
    });
}

/// The exit code of an interrupted run.
pub const INTERRUPTED_EXIT: u8 = 130;

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

#[cfg(unix)]
fn signal_group(group: u32, signal: Signal) {
    use nix::sys::signal::{killpg, Signal as S};
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(group) else {
        return;
    };
    let s = match signal {
        Signal::Term => S::SIGTERM,
        Signal::Kill => S::SIGKILL,
    };
    // The group may be gone already: nothing to stop then.
    let _ = killpg(Pid::from_raw(pid), s);
}

#[cfg(not(unix))]
fn signal_group(_group: u32, _signal: Signal) {}
