//! Runs a file's tests one after another on the main thread.
//!
//! The counts are process-wide: libtest's worker threads would allocate
//! while another test measures. libtest-mimic with one test thread keeps
//! every test alone, as the leak harness itself does.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};

pub fn run(tests: &[(&'static str, fn())]) -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .iter()
        .map(|&(name, f)| {
            Trial::test(name, move || {
                f();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
