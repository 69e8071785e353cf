//! What `cargo memwatch test` shows: a summary table for people, JSON lines
//! for machines, a JUnit file, GitHub Actions annotations.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use memwatch_report::report::SnapshotStatus;

use crate::run::{Status, TestResult};

/// A byte count as memwatch writes it: `N bytes`, `X.XX kb`, `X.XX mb`.
pub(crate) use memwatch_report::format_bytes as bytes;

/// The status column of the table.
pub fn status_word(r: &TestResult) -> String {
    match &r.status {
        Status::Passed => match r.report.as_ref().map(|v| v.snapshot) {
            Some(SnapshotStatus::Recorded) => "recorded".to_owned(),
            _ => "ok".to_owned(),
        },
        Status::KnownLeak => "known leak".to_owned(),
        Status::Failed => "FAILED".to_owned(),
        Status::SnapshotChanged => match r.report.as_ref().map(|v| v.snapshot) {
            Some(SnapshotStatus::New) => "SNAPSHOT NEW".to_owned(),
            _ => "SNAPSHOT CHANGED".to_owned(),
        },
        Status::Crashed(_) => "CRASHED".to_owned(),
        Status::TimedOut => "TIMED OUT".to_owned(),
    }
}

/// Growth per iteration, peak and cycles, from the report.
fn figures(r: &TestResult) -> (String, String, String) {
    let Some(v) = &r.report else {
        return ("-".into(), "-".into(), "-".into());
    };
    if matches!(v.verdict, memwatch_report::report::Verdict::Panicked { .. }) {
        // A panicked run's figures mean nothing.
        return ("-".into(), "-".into(), "-".into());
    }
    let g = v.growth_per_iteration;
    let growth = format!("{}, {:+.2} blocks", bytes(g.bytes), g.blocks);
    let peak = bytes(v.peak_bytes as f64);
    let cycles = v.num_cycles.to_string();
    (growth, peak, cycles)
}

/// The time column of the table.
pub fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// The table and the failures, for people.
pub fn summary(results: &[TestResult], elapsed: Duration) -> String {
    let mut s = String::new();
    let failed: Vec<&TestResult> = results.iter().filter(|r| !r.ok()).collect();
    for r in &failed {
        let _ = writeln!(
            s,
            "\n---- {} ({}) ----\n{}",
            r.test.id,
            status_word(r),
            r.message()
        );
    }
    let rows: Vec<[String; 7]> = results
        .iter()
        .map(|r| {
            let (growth, peak, cycles) = figures(r);
            [
                r.test.id.clone(),
                r.verdict.clone(),
                status_word(r),
                growth,
                peak,
                cycles,
                seconds(r.duration),
            ]
        })
        .collect();
    let head = [
        "test",
        "verdict",
        "status",
        "growth per iteration",
        "peak",
        "cycles",
        "time",
    ];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let _ = writeln!(s);
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i >= 3 {
                let _ = write!(l, "  {c:>w$}");
            } else {
                let _ = write!(l, "{}{c:<w$}", if i == 0 { "" } else { "  " });
            }
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(s, "{}", line(&head.map(str::to_owned)));
    for row in &rows {
        let _ = writeln!(s, "{}", line(row));
    }
    let dhat: Vec<(&str, String)> = results
        .iter()
        .filter_map(|r| {
            let file = r.report.as_ref()?.dhat_file.as_deref()?;
            Some((r.test.id.as_str(), file.display().to_string()))
        })
        .collect();
    if !dhat.is_empty() {
        let _ = writeln!(
            s,
            "\nDHAT profiles (open them in DHAT's viewer, dh_view.html):"
        );
        for (id, file) in dhat {
            let _ = writeln!(s, "  {id}: {file}");
        }
    }
    let passed = results.len() - failed.len();
    let known = results
        .iter()
        .filter(|r| r.status == Status::KnownLeak)
        .count();
    let known = if known > 0 {
        format!(" ({known} of them known leaks, as approved in their snapshots)")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "\n{} leak test{}: {passed} passed{known}, {} failed ({})",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        failed.len(),
        seconds(elapsed)
    );
    let recorded: Vec<&TestResult> = results
        .iter()
        .filter(|r| {
            r.report
                .as_ref()
                .is_some_and(|v| v.snapshot == SnapshotStatus::Recorded)
        })
        .collect();
    if !recorded.is_empty() {
        let _ = writeln!(
            s,
            "{} new snapshot{} recorded (clean tests): commit {} with your change",
            recorded.len(),
            if recorded.len() == 1 { "" } else { "s" },
            if recorded.len() == 1 { "it" } else { "them" },
        );
    }
    if failed.iter().any(|r| r.status == Status::SnapshotChanged) {
        let _ = writeln!(
            s,
            "snapshots changed: review them with `cargo memwatch review` (or accept/reject)"
        );
    }
    s
}

/// One JSON object for a test, as `--message-format json` prints it.
pub fn json_line(r: &TestResult) -> Value {
    let report = r.report.as_ref();
    json!({
        "type": "test",
        "id": r.test.id,
        "name": r.test.name,
        "verdict": r.verdict,
        "status": match &r.status {
            Status::Passed => "passed",
            Status::KnownLeak => "known_leak",
            Status::Failed => "failed",
            Status::SnapshotChanged => "snapshot_changed",
            Status::Crashed(_) => "crashed",
            Status::TimedOut => "timed_out",
        },
        "known_leak": r.status == Status::KnownLeak,
        "snapshot": report.map(|v| v.snapshot),
        "growth_per_iteration": report.map(|v| v.growth_per_iteration),
        "peak_bytes": report.map(|v| v.peak_bytes),
        "num_cycles": report.map(|v| v.num_cycles),
        "duration_ms": r.duration.as_secs_f64() * 1000.0,
        "sites": report.and_then(|v| v.sites.as_ref()).map(|s| {
            s.sites.iter().take(5).collect::<Vec<_>>()
        }),
        "dhat_file": report.map(|v| v.dhat_file.as_ref()),
        "message": (!r.ok()).then(|| r.message()),
    })
}

/// The closing JSON object.
pub fn json_summary(results: &[TestResult], exit_code: u8) -> Value {
    let failed = results.iter().filter(|r| !r.ok()).count();
    json!({
        "type": "summary",
        "total": results.len(),
        "passed": results.len() - failed,
        "failed": failed,
        "exit_code": exit_code,
    })
}

/// Escapes `s` for XML text and attributes; a character XML 1.0 forbids
/// (control characters but tab, newline and return, U+FFFE, U+FFFF)
/// becomes U+FFFD, so that the file stays well-formed.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Fails unless `path` can be written (its folder made, the file opened);
/// leaves an existing file as it is.
pub fn check_writable(path: &Path) -> Result<()> {
    let context = || format!("cannot write the JUnit file {}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(context)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(context)?;
    Ok(())
}

/// Writes a JUnit XML file: one suite per test binary.
pub fn junit(results: &[TestResult], path: &Path) -> Result<()> {
    let mut suites: Vec<(String, Vec<&TestResult>)> = Vec::new();
    for r in results {
        let suite = r
            .test
            .id
            .rsplit_once("::")
            .map_or("", |(s, _)| s)
            .to_owned();
        match suites.iter_mut().find(|(s, _)| *s == suite) {
            Some((_, list)) => list.push(r),
            None => suites.push((suite, vec![r])),
        }
    }
    let failures = results.iter().filter(|r| !r.ok()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"cargo-memwatch\" tests=\"{}\" failures=\"{failures}\">",
        results.len()
    );
    for (suite, list) in &suites {
        let f = list.iter().filter(|r| !r.ok()).count();
        let time: f64 = list.iter().map(|r| r.duration.as_secs_f64()).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" time=\"{time:.3}\">",
            xml_escape(suite),
            list.len()
        );
        for r in list {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                xml_escape(&r.test.name),
                xml_escape(suite),
                r.duration.as_secs_f64()
            );
            if r.ok() {
                let _ = writeln!(x, "/>");
            } else {
                let _ = writeln!(
                    x,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    xml_escape(&status_word(r)),
                    xml_escape(&format!("{}: {}", status_word(r), r.verdict)),
                    xml_escape(&r.message())
                );
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    let _ = writeln!(x, "</testsuites>");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, x).with_context(|| format!("could not write {}", path.display()))
}

/// `text` made safe to print under GitHub Actions: the runner reads any
/// line that starts with `::` as a workflow command, and a panic message or
/// a tag name may hold one. Commands are stopped around the text with a
/// token the text cannot know.
pub fn github_safe(text: &str) -> String {
    let token = format!(
        "memwatch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    format!("::stop-commands::{token}\n{text}::{token}::\n")
}

/// GitHub Actions workflow commands, one `::error` per failed test, pointing
/// at the test's file and line.
pub fn github_annotations(results: &[TestResult]) -> String {
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let prop = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for r in results.iter().filter(|r| !r.ok()) {
        let mut location = String::new();
        if let Some(v) = &r.report {
            location = format!("file={},line={},", prop(&v.file), v.line);
        }
        let _ = writeln!(
            out,
            "::error {location}title={}::{}",
            prop(&format!(
                "memwatch: {} in {}",
                status_word(r).to_lowercase(),
                r.test.id
            )),
            escape(&r.message())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_forbidden_characters_are_replaced() {
        let s = xml_escape("a\u{FFFE}b\u{FFFF}c\u{1}d\te<f>");
        assert_eq!(s, "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\te&lt;f&gt;");
    }

    #[test]
    fn raw_text_cannot_issue_workflow_commands() {
        let evil = "panic: boom\n::error file=src/lib.rs::forged\n";
        let safe = github_safe(evil);
        let mut lines = safe.lines();
        let first = lines.next().unwrap();
        let token = first.strip_prefix("::stop-commands::").unwrap();
        assert!(!token.is_empty() && !evil.contains(token));
        assert_eq!(safe.lines().last().unwrap(), format!("::{token}::"));
        assert!(safe.contains("::error file=src/lib.rs::forged"));
    }
}
