//! Watching a long-running program: collection cycles on a timer.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cycle::gc;

/// Runs a collection cycle ([`gc()`](crate::gc)) at a set interval on a
/// thread of its own, so that the [`on_stats`](crate::on_stats) and
/// [`on_leak`](crate::on_leak) callbacks watch a service the way
/// node-memwatch did. Dropping the monitor (or [`Monitor::stop`]) stops it.
///
/// A program with natural quiet points (between requests, after a batch)
/// gets steadier figures by calling `gc()` there itself: these are its
/// checkpoints. The monitor suits programs without them; its samples fall
/// wherever the program is, so give the [`LeakRule`](crate::LeakRule)
/// thresholds above the program's normal swing.
///
/// ```
/// use std::time::Duration;
///
/// let _ = memwatch_test::on_leak(|leak| eprintln!("memwatch: {}", leak.reason));
/// let monitor = memwatch_test::Monitor::every(Duration::from_secs(60));
/// // ... serve ...
/// monitor.stop();
/// ```
#[derive(Debug)]
#[must_use = "dropping the Monitor stops it"]
pub struct Monitor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts a thread that runs a collection cycle every `interval`.
    ///
    /// ```
    /// let monitor = memwatch_test::Monitor::every(std::time::Duration::from_millis(5));
    /// std::thread::sleep(std::time::Duration::from_millis(20));
    /// drop(monitor);
    /// ```
    pub fn every(interval: Duration) -> Monitor {
        let stop: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("memwatch-monitor".to_owned())
            .spawn(move || {
                let (lock, wake) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    // A stop that came before this thread first waited, or
                    // while it ran a cycle, woke nobody: seen here.
                    if *stopped {
                        return;
                    }
                    let (now, timeout) = wake
                        .wait_timeout(stopped, interval)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = now;
                    if *stopped {
                        return;
                    }
                    if timeout.timed_out() {
                        drop(stopped);
                        gc();
                        stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                    }
                }
            })
            .ok();
        Monitor { stop, thread }
    }

    /// Stops the monitor and waits for its thread to finish, at once,
    /// whatever the interval (this example would wait an hour if the stop
    /// were missed).
    ///
    /// ```
    /// memwatch_test::Monitor::every(std::time::Duration::from_secs(3600)).stop();
    /// ```
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shut_down();
    }
}
