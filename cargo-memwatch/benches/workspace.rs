//! `cargo memwatch test` against `cargo test` on the same, already built,
//! leak test binaries.
//!
//! `cargo bench -p cargo-memwatch --bench workspace`
//!
//! Both commands run the leak tests of `memwatch-examples` (six tests) from
//! this workspace, with every binary already built (a first run of each
//! builds them), in interleaved rounds; reported are the medians and their
//! ratio. `cargo test` runs all six tests in one process; `cargo memwatch`
//! checks the build, finds the leak tests, and runs each in a process of
//! its own, two at a time.

use std::path::Path;
use std::process::Command;

mod common;
use common::{median, time};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { 11 };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let cargo_test = || {
        let mut c = Command::new(env!("CARGO"));
        c.args(["test", "-q", "-p", "memwatch-examples", "--test", "leaks"])
            .current_dir(&root)
            .env("CI", "true");
        c
    };
    let memwatch = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-memwatch"));
        c.args(["memwatch", "test", "-p", "memwatch-examples", "-j", "2"])
            .current_dir(&root)
            .env("CARGO", env!("CARGO"))
            .env("CI", "true");
        c
    };
    // Build everything once.
    time(cargo_test());
    time(memwatch());
    let (mut plain, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(time(cargo_test()));
        ours.push(time(memwatch()));
    }
    let (p, o) = (median(plain), median(ours));
    println!("median over {rounds} interleaved rounds, 6 leak tests, binaries already built");
    println!("cargo test --test leaks        {:>8.1} ms", p * 1000.0);
    println!("cargo memwatch test -j 2       {:>8.1} ms", o * 1000.0);
    println!("ratio                          {:>8.2}x", o / p);
}
