//! `cargo memwatch`: runs every leak test of a workspace, each in a process
//! of its own, and reviews their heap-diff snapshots.
//!
//! Exit codes: 0 every test clean and approved; 1 a leak, a failure, a
//! crash or a snapshot change; 2 a usage or build error.

use std::process::ExitCode;

use clap::Parser;

mod cargo;
mod cli;
mod commands;
mod filter;
mod html;
mod output;
mod partition;
mod process;
mod run;
mod runs;
mod snapshots;

/// Exit code: a usage or build error.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli::Cargo::Memwatch(args) = cli::Cargo::parse();
    let result = match &args.command {
        cli::Command::Test(a) => commands::test(a),
        cli::Command::List(a) => commands::list(a),
        cli::Command::Review(a) => commands::review(a),
        cli::Command::Accept(a) => commands::accept_or_reject(a, true),
        cli::Command::Reject(a) => commands::accept_or_reject(a, false),
        cli::Command::Report(a) => commands::report(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // Filters that match nothing fail like a failing test: exit 1.
        Err(e) if e.downcast_ref::<commands::NoMatch>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        // cargo has printed its `error:` lines: no second one.
        Err(e) if e.downcast_ref::<cargo::CompileFailed>().is_some() => {
            eprintln!("{e:#}");
            ExitCode::from(USAGE_ERROR)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}
