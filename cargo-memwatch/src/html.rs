//! `cargo memwatch report`: one self-contained HTML page (no network) from
//! a run's JSON reports, with an SVG chart of the heap per cycle for each
//! test, as in node-memwatch's graph.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use memwatch_report::report::{self, Cycle, Report};

use crate::output::bytes;

/// The JSON reports of a run, in test order.
pub fn read_reports(run: &Path) -> Result<Vec<Report>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run)
        .with_context(|| format!("could not read {}", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut reports = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(&path)?;
                let mut value = match report::read(&bytes) {
                    Ok(value) => value,
                    // Some other JSON file: not a test of the run.
                    Err(report::ReadError::NotAReport(why)) => {
                        eprintln!(
                            "warning: {} is not a memwatch report ({why}); left out",
                            path.display()
                        );
                        continue;
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("could not read {}", path.display()))
                    }
                };
                if let Ok(id) = std::fs::read_to_string(dir.join("id")) {
                    value.test = id;
                }
                reports.push(value);
            }
        }
    }
    Ok(reports)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const PAD: f64 = 40.0;

/// An SVG line chart of `current_base` and `estimated_base` per cycle.
fn chart(test: &str, cycles: &[Cycle]) -> String {
    let current: Vec<f64> = cycles.iter().map(|c| c.stats.current_base as f64).collect();
    let estimated: Vec<f64> = cycles.iter().map(|c| c.stats.estimated_base).collect();
    let all = current.iter().chain(&estimated);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if current.is_empty() {
        (0.0, 1.0)
    } else if hi - lo < 1.0 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let n = current.len().max(2) as f64 - 1.0;
    let points = |values: &[f64]| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = PAD + i as f64 / n * (WIDTH - 2.0 * PAD);
                let y = HEIGHT - PAD - (v - lo) / (hi - lo) * (HEIGHT - 2.0 * PAD);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" data-test="{t}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="live bytes per cycle of {t}">
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" class="bg"/>
<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" class="axis"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" class="axis"/>
<text x="{PAD}" y="{top}" class="label">{hi_label}</text><text x="{PAD}" y="{low}" class="label">{lo_label}</text>
<text x="{r}" y="{low}" class="label end">{count} cycles</text>
<polyline class="current" points="{current}"/>
<polyline class="estimated" points="{estimated}"/>
</svg>"#,
        t = esc(test),
        b = HEIGHT - PAD,
        r = WIDTH - PAD,
        top = PAD - 8.0,
        low = HEIGHT - PAD + 16.0,
        hi_label = bytes(hi),
        lo_label = bytes(lo),
        count = current.len(),
        current = points(&current),
        estimated = points(&estimated),
    );
    s
}

fn rows<T>(items: &[T], f: impl Fn(&T) -> String, limit: usize) -> String {
    items.iter().take(limit).map(f).collect()
}

/// A verdict's class and words on the page: a known leak is told apart.
/// An expected leak (`should_leak`, caught) is no failure: not in red.
fn verdict_cell(r: &Report) -> (&'static str, String) {
    let kind = r.verdict.kind();
    if r.known_leak() {
        ("known_leak", format!("{kind} (known leak)"))
    } else if r.should_leak && r.passed {
        ("expected_leak", format!("{kind} (expected: should_leak)"))
    } else {
        (kind, kind.to_owned())
    }
}

/// A figure per iteration as the terminal writes it: at most two decimals.
fn figure(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x}")
    } else {
        format!("{x:.2}")
    }
}

/// The page.
pub fn page(run: &Path, reports: &[Report]) -> String {
    let mut s = String::from(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>memwatch report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.leak, .thread_leak, .fd_leak, .task_leak, .panicked { color: #b00020; font-weight: bold; }
.clean { color: #1b7f3b; }
.known_leak { color: #8a5a00; font-weight: bold; }
.expected_leak { color: #555; font-weight: bold; }
pre.failure { background: #fff4f4; border-left: 3px solid #b00020; padding: 0.5em; white-space: pre-wrap; }
svg.chart .bg { fill: #fafafa; }
svg.chart .axis { stroke: #999; }
svg.chart .label { font-size: 11px; fill: #555; }
svg.chart .label.end { text-anchor: end; }
svg.chart .current { fill: none; stroke: #c62828; stroke-width: 2; }
svg.chart .estimated { fill: none; stroke: #1565c0; stroke-width: 1.5; stroke-dasharray: 4 3; }
.legend span { display: inline-block; width: 1.5em; height: 0.3em; vertical-align: middle; margin: 0 0.3em 0 1em; }
section.test { margin-bottom: 2em; }
</style></head><body>
<h1>memwatch leak report</h1>
"#,
    );
    let leaking = reports
        .iter()
        .filter(|r| r.verdict.kind() != "clean")
        .count();
    let known = reports.iter().filter(|r| r.known_leak()).count();
    let _ = writeln!(
        s,
        "<p>{} leak tests, {leaking} not clean ({known} of them known leaks, as approved in \
         their snapshots), from <code>{}</code>.</p>",
        reports.len(),
        esc(&run.display().to_string())
    );
    s.push_str(
        "<table class=\"summary\"><tr><th>test</th><th>verdict</th><th>growth per iteration</th>\
         <th>peak</th><th>cycles</th><th>time</th></tr>\n",
    );
    for r in reports {
        let (class, words) = verdict_cell(r);
        let g = r.growth_per_iteration;
        let _ = writeln!(
            s,
            "<tr><td><a href=\"#{id}\">{t}</a></td><td class=\"{class}\">{words}</td><td class=\"num\">{g}, {b:+.2} blocks</td><td class=\"num\">{p}</td><td class=\"num\">{c}</td><td class=\"num\">{ms:.1} ms</td></tr>",
            id = esc(&anchor(r)),
            t = esc(&r.test),
            g = bytes(g.bytes),
            b = g.blocks,
            p = bytes(r.peak_bytes as f64),
            c = r.num_cycles,
            ms = r.duration_ms,
        );
    }
    s.push_str("</table>\n");
    s.push_str(
        "<p class=\"legend\">Live bytes after each collection cycle:<span style=\"background:#c62828\"></span>current_base\
         <span style=\"background:#1565c0\"></span>estimated_base</p>\n",
    );
    for r in reports {
        let test = r.test.as_str();
        let (class, words) = verdict_cell(r);
        let _ = writeln!(
            s,
            "<section class=\"test\" id=\"{id}\"><h2>{t} <span class=\"{class}\">{words}</span></h2>",
            id = esc(&anchor(r)),
            t = esc(test),
        );
        if let Some(failure) = &r.failure {
            let _ = write!(s, "<pre class=\"failure\">{}</pre>", esc(failure));
        }
        if r.cycles.is_empty() {
            let _ = write!(
                s,
                "<p class=\"no-chart\">No heap chart: the run ended after {} iteration(s), \
                 before a collection cycle was recorded ({}).</p>",
                r.iterations_run,
                esc(r.verdict.kind())
            );
        } else {
            s.push_str(&chart(test, &r.cycles));
        }
        let tags = rows(
            &r.per_iteration,
            |row| {
                format!(
                    "<tr><td>{}</td><td class=\"num\">+{}</td><td class=\"num\">-{}</td><td class=\"num\">{}</td></tr>",
                    esc(&row.what),
                    figure(row.allocated),
                    figure(row.freed),
                    bytes(row.size_bytes),
                )
            },
            5,
        );
        if !tags.is_empty() {
            let _ = write!(
                s,
                "<table class=\"tags\"><tr><th>tag</th><th>+ per iteration</th><th>- per iteration</th><th>bytes per iteration</th></tr>{tags}</table>"
            );
        }
        let sites = rows(
            r.sites.as_ref().map_or(&[][..], |s| &s.sites),
            |site| {
                let f = &site.frame;
                format!(
                    "<tr><td>{}</td><td>{}:{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&f.function),
                    esc(f.file.as_deref().unwrap_or("?")),
                    f.line.unwrap_or(0),
                    figure(site.blocks_per_iteration),
                    bytes(site.bytes_per_iteration),
                )
            },
            5,
        );
        if !sites.is_empty() {
            let _ = write!(
                s,
                "<table class=\"sites\"><tr><th>allocated at</th><th>where</th><th>blocks per iteration</th><th>bytes per iteration</th></tr>{sites}</table>"
            );
        }
        s.push_str("</section>\n");
    }
    // Marks the page as drawn: one data point per chart line, counted.
    s.push_str(
        "<script>\n(function () {\n  var lines = document.querySelectorAll('svg.chart polyline.current');\n  var drawn = 0;\n  lines.forEach(function (l) { if (l.points.numberOfItems > 1) { drawn += 1; } });\n  document.body.setAttribute('data-charts', String(drawn));\n})();\n</script>\n</body></html>\n",
    );
    s
}

fn anchor(r: &Report) -> String {
    format!("test-{}", r.test.replace("::", "-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use memwatch_report::report::{Decision, Rate, SnapshotStatus, Verdict, VERSION};

    fn report(test: &str, verdict: Verdict, snapshot: SnapshotStatus) -> Report {
        Report {
            version: VERSION,
            test: test.to_owned(),
            file: "tests/leaks.rs".to_owned(),
            line: 3,
            verdict,
            should_leak: false,
            passed: true,
            snapshot,
            resources: "watched".to_owned(),
            warmup: 3,
            iterations: 32,
            iterations_run: 35,
            duration_ms: 1.0,
            num_cycles: 35,
            peak_bytes: 1024,
            growth_per_iteration: Rate {
                bytes: 24.0,
                blocks: 1.0,
            },
            per_iteration: Vec::new(),
            rounds: Vec::new(),
            decision: Decision {
                iterations: 32,
                max_iterations: 1024,
                time_limit_ms: 10_000.0,
                extended_ms: 0.0,
                call: Some("leak".to_owned()),
                reason: None,
                why: None,
                evidence: serde_json::Value::Null,
            },
            memwatch_leak: None,
            survivors: Vec::new(),
            sites: None,
            dhat_file: None,
            cycles: Vec::new(),
            failure: None,
        }
    }

    #[test]
    fn a_known_leak_is_shown_as_one() {
        let reports = [
            report("a::cache_leaks", Verdict::Leak, SnapshotStatus::KnownLeak),
            report("a::parse_is_clean", Verdict::Clean, SnapshotStatus::Matched),
        ];
        let page = page(Path::new("run"), &reports);
        assert!(
            page.contains("<td class=\"known_leak\">leak (known leak)</td>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"clean\">clean</td>"), "{page}");
        assert!(
            page.contains("1 not clean (1 of them known leaks"),
            "{page}"
        );
    }

    #[test]
    fn an_expected_leak_is_not_red_and_a_failure_shows_its_message() {
        let mut expected = report("a::demo_leaks", Verdict::Leak, SnapshotStatus::Matched);
        expected.should_leak = true;
        let mut failing = report("a::cache_leaks", Verdict::Leak, SnapshotStatus::Off);
        failing.passed = false;
        failing.failure = Some("memory leak: +24 bytes <per> iteration".to_owned());
        failing.per_iteration = vec![memwatch_report::report::TagRow {
            what: "(untagged)".to_owned(),
            allocated: 1.0 / 3.0,
            freed: 0.0,
            size_bytes: 8.0,
        }];
        let page = page(Path::new("run"), &[expected, failing]);
        assert!(
            page.contains("<td class=\"expected_leak\">leak (expected: should_leak)</td>"),
            "{page}"
        );
        assert!(
            page.contains(
                "<pre class=\"failure\">memory leak: +24 bytes &lt;per&gt; iteration</pre>"
            ),
            "{page}"
        );
        assert!(page.contains("<td class=\"num\">+0.33</td>"), "{page}");
        assert!(
            page.contains("No heap chart: the run ended after 35 iteration(s)"),
            "{page}"
        );
    }
}
