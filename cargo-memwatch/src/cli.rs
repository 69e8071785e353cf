//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::partition::Partition;

/// Cargo passes the subcommand's own name as the first argument.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo")]
pub enum Cargo {
    /// Leak regression tests for a cargo workspace.
    #[command(version)]
    Memwatch(Memwatch),
}

#[derive(Debug, Args)]
pub struct Memwatch {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build and run every leak test of the workspace, each in a process of
    /// its own. Exit code 0: all clean and approved; 1: a leak, a failure or
    /// a snapshot change; 2: a usage or build error.
    Test(TestArgs),
    /// List the leak tests `test` would run.
    List(ListArgs),
    /// Show each pending snapshot beside the approved one and ask: accept,
    /// reject or skip.
    Review(SnapshotArgs),
    /// Accept pending snapshots, all or those whose name contains a filter.
    Accept(SnapshotArgs),
    /// Reject (delete) pending snapshots, all or by name.
    Reject(SnapshotArgs),
    /// Write one self-contained HTML page from the last run's reports: a
    /// summary, and a chart of the heap per cycle for each test.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Path to the workspace's (or a package's) Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// The target folder the run used (`cargo memwatch test --target-dir`).
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Where to write the page (default: target/memwatch/report.html).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// Which packages, features and profile to build: cargo's own flags.
#[derive(Debug, Args, Clone, Default)]
pub struct Selection {
    /// Package(s) to test.
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Test every package of the workspace.
    #[arg(long)]
    pub workspace: bool,
    /// Exclude packages from the test.
    #[arg(long, value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Features to activate (space or comma separated).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all features.
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub no_default_features: bool,
    /// Build in release mode.
    #[arg(short = 'r', long)]
    pub release: bool,
    /// Build with this profile.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Directory for all generated artifacts.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Path to the workspace's (or a package's) Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Run only tests whose name contains one of these.
    pub filters: Vec<String>,
    /// Filters and `--skip` patterns match whole test names.
    #[arg(long)]
    pub exact: bool,
    /// Leave out tests whose name contains this (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// After `--`: libtest's filters, `--exact`, `--skip` and
    /// `--include-ignored`, as `cargo test -- ...` takes them.
    #[arg(last = true, value_name = "HARNESS ARGS")]
    pub harness_args: Vec<String>,
    /// Split the tests across machines: `count:K/N` or `hash:K/N`.
    #[arg(long, value_name = "KIND:K/N")]
    pub partition: Option<Partition>,
    /// Also list tests marked `ignore`.
    #[arg(long)]
    pub include_ignored: bool,
    /// `human` or `json`.
    #[arg(long, value_name = "FMT", default_value = "human")]
    pub message_format: MessageFormat,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Tests to run at once (default: the number of cores).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Seconds a test may run before it is stopped and reported.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Capture allocation sites for every test, not only for failing leaks.
    #[arg(long)]
    pub sites: bool,
    /// Write a DHAT viewer file for each leaking test (under
    /// target/memwatch/dhat/).
    #[arg(long)]
    pub dhat: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Path to the workspace's (or a package's) Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Only snapshots whose name contains one of these.
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}
