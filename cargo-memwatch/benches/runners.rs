//! `cargo nextest run` and `cargo memwatch test` against `cargo test` on a
//! generated workspace of 200 leak tests in 4 crates, on the same built
//! binaries.
//!
//! `cargo bench -p cargo-memwatch --bench runners`
//!
//! The workspace (in `target/bench-runners/`) has 4 crates of 50 clean leak
//! tests each, of a few kinds (string work, a map, a boxed tree). The first
//! run of each command builds and records the snapshots; then the three run
//! in interleaved rounds, outside CI and with every snapshot approved, and
//! the medians and their ratios to `cargo test` are printed. Every command
//! runs the same 4 leak-test targets and nothing else (`--workspace --test
//! leaks`: no unit tests or doctests, which `cargo test` alone would add).
//! Under `cargo test` the harness starts one process per test; nextest
//! starts one per test too, and the harness within it runs the test in
//! place.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{median, time};

const CRATES: usize = 4;
const TESTS_PER_CRATE: usize = 50;

/// Writes the generated workspace; returns its root.
fn generate(repo: &Path) -> PathBuf {
    let root = repo.join("target").join("bench-runners").join("ws");
    let names: Vec<String> = (0..CRATES).map(|c| format!("many{c}")).collect();
    let members: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    )
    .expect("write");
    std::fs::copy(repo.join("Cargo.lock"), root.join("Cargo.lock")).expect("lock file");
    for (c, name) in names.iter().enumerate() {
        let krate = root.join(name);
        std::fs::create_dir_all(krate.join("tests")).expect("mkdir");
        std::fs::create_dir_all(krate.join("src")).expect("mkdir");
        std::fs::write(
            krate.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [dev-dependencies]\nmemwatch-test = {{ path = {:?} }}\n\n\
                 [[test]]\nname = \"leaks\"\nharness = false\n",
                repo.join("memwatch-test").display().to_string()
            ),
        )
        .expect("write");
        std::fs::write(krate.join("src/lib.rs"), "//! Generated.\n").expect("write");
        let mut tests = String::from("use memwatch_test::leak_test;\n\n");
        for t in 0..TESTS_PER_CRATE {
            let i = c * TESTS_PER_CRATE + t;
            let body = match i % 3 {
                0 => format!("std::hint::black_box(format!(\"{{}}-{i}\", {i}).to_uppercase());"),
                1 => format!(
                    "let m: std::collections::HashMap<u32, String> = (0..{}).map(|k| (k, k.to_string())).collect();\n    std::hint::black_box(m.len());",
                    i % 17 + 1
                ),
                _ => format!("std::hint::black_box(Box::new([{i}u64; 8]));"),
            };
            tests.push_str(&format!(
                "#[leak_test]\nfn test_{i:03}_is_clean() {{\n    {body}\n}}\n\n"
            ));
        }
        tests.push_str("memwatch_test::main!();\n");
        std::fs::write(krate.join("tests/leaks.rs"), tests).expect("write");
    }
    root
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { 7 };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let root = generate(&repo);
    let target = repo.join("target").join("bench-runners").join("target");
    let cargo = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO"));
        c.args(args)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("CI");
        c
    };
    let memwatch = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-memwatch"));
        c.args(["memwatch", "test", "--workspace"])
            .current_dir(&root)
            .env("CARGO", env!("CARGO"))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("CI");
        c
    };
    let plain = || cargo(&["test", "-q", "--workspace", "--test", "leaks"]);
    let nextest = || {
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--test",
            "leaks",
            "--no-fail-fast",
        ])
    };
    // Build, and record the snapshots, once.
    time(plain());
    time(nextest());
    time(memwatch());
    let (mut p, mut n, mut m) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        p.push(time(plain()));
        n.push(time(nextest()));
        m.push(time(memwatch()));
    }
    let (p, n, m) = (median(p), median(n), median(m));
    println!(
        "median over {rounds} interleaved rounds, {} leak tests in {CRATES} crates, binaries already built",
        CRATES * TESTS_PER_CRATE
    );
    println!("cargo test --test leaks        {:>8.1} ms", p * 1000.0);
    println!(
        "cargo nextest run              {:>8.1} ms  {:>5.2}x",
        n * 1000.0,
        n / p
    );
    println!(
        "cargo memwatch test            {:>8.1} ms  {:>5.2}x",
        m * 1000.0,
        m / p
    );
}
