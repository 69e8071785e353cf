//! What one test's run tells the harness that runs it, and the summary
//! table printed after all of them.

use serde::{Deserialize, Serialize};

/// How one test ended, as the harness process that ran it (the test's own
/// process, or this one) says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrialResult {
    /// The failure message, `None` when it passed.
    pub failure: Option<String>,
    pub row: SummaryRow,
}

/// One line of the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SummaryRow {
    pub name: String,
    pub verdict: String,
    pub growth: String,
    pub iterations: u32,
    pub passed: bool,
    /// What else to say: caught as expected, a known leak, a snapshot
    /// recorded.
    pub note: Option<String>,
}

impl SummaryRow {
    /// The row of a test that ended without a verdict.
    pub(crate) fn without_verdict(name: String, verdict: &str) -> SummaryRow {
        SummaryRow {
            name,
            verdict: verdict.to_owned(),
            growth: String::new(),
            iterations: 0,
            passed: false,
            note: None,
        }
    }
}

/// Prints the table after the run.
pub(crate) fn print(rows: &[SummaryRow]) {
    if rows.is_empty() {
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    println!("memwatch leak tests:");
    for r in rows {
        let pad = width - r.name.chars().count();
        let end = match (&r.note, r.passed) {
            (_, false) => "  FAILED".to_owned(),
            (Some(note), true) => format!("  {note}"),
            (None, true) => String::new(),
        };
        println!(
            "  {}{:pad$}  {:<11}  {:<36}  {:>4} iterations{end}",
            r.name, "", r.verdict, r.growth, r.iterations,
        );
    }
    println!();
}
