//! CPU time for the benchmarks: on a shared machine, other tenants and
//! steal stretch wall time far more than the time the measured code
//! itself ran.

use std::time::Duration;

/// Which clock to read.
#[allow(dead_code)] // each bench reads one of them
#[derive(Clone, Copy)]
pub enum Clock {
    /// The calling thread's CPU time.
    Thread,
    /// The whole process's CPU time.
    Process,
}

/// CPU time so far on `clock` (wall time since the first call where the
/// platform has no CPU clock).
#[cfg(unix)]
pub fn cpu_time(clock: Clock) -> Duration {
    let id = match clock {
        Clock::Thread => libc::CLOCK_THREAD_CPUTIME_ID,
        Clock::Process => libc::CLOCK_PROCESS_CPUTIME_ID,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids are the
    // platform's own.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time so far on `clock` (wall time since the first call where the
/// platform has no CPU clock).
#[cfg(not(unix))]
pub fn cpu_time(_clock: Clock) -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}
