//! `cargo memwatch`: the workspace runner for memwatch leak tests.
//!
//! This release only lays the command down; `cargo memwatch test`, `list`
//! and `review` are still to come (see CHANGELOG.md).

use std::process::ExitCode;

use clap::Parser;

/// Cargo passes the subcommand's own name as the first argument.
#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum Cargo {
    /// Leak regression tests for a cargo workspace.
    #[command(version)]
    Memwatch(Args),
}

#[derive(clap::Args)]
struct Args {}

fn main() -> ExitCode {
    let Cargo::Memwatch(Args {}) = Cargo::parse();
    eprintln!(
        "cargo memwatch {}: no subcommand is available in this release yet; \
         run leak tests with `cargo test`.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
