//! `cargo memwatch report`: one self-contained HTML page (no network) from
//! a run's JSON reports, with an SVG chart of the heap per cycle for each
//! test, as in node-memwatch's graph.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use memwatch_report::report::{self, Cycle, Report, Verdict};

use crate::output::{bytes, seconds};
use crate::runs;

/// One test of a run, as the page shows it.
#[derive(Debug)]
pub struct Entry {
    /// Its id in the workspace.
    pub id: String,
    /// The harness's report; `None` when the test left none (it crashed,
    /// timed out, or was not run).
    pub report: Option<Report>,
    /// What the terminal showed of it; `None` in a run stopped before the
    /// test ended.
    pub outcome: Option<runs::Outcome>,
}

/// The tests of a run, in test order: each that ended or left a report.
pub fn read_run(run: &Path) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for test in runs::tests_of(run)? {
        let mut report = None;
        for entry in std::fs::read_dir(&test.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(&path)?;
                match report::read(&bytes) {
                    Ok(value) => report = Some(value),
                    // Some other JSON file: not a test of the run.
                    Err(report::ReadError::NotAReport(why)) => {
                        eprintln!(
                            "warning: {} is not a memwatch report ({why}); left out",
                            path.display()
                        );
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("could not read {}", path.display()))
                    }
                }
            }
        }
        if report.is_none() && test.outcome.is_none() {
            continue;
        }
        let id = test
            .id
            .or_else(|| report.as_ref().map(|r| r.test.clone()))
            .unwrap_or_else(|| test.dir.display().to_string());
        entries.push(Entry {
            id,
            report,
            outcome: test.outcome,
        });
    }
    Ok(entries)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
/// Room on the left for the byte labels, and around the plot.
const LEFT: f64 = 72.0;
const PAD: f64 = 24.0;
const BOTTOM: f64 = 40.0;
/// The width of a character of a mark's label (10px), a little over.
const MARK_CHAR_WIDTH: f64 = 6.0;

/// About `n` round values spanning `lo..=hi`: steps of 1, 2 or 5 times a
/// power of ten, each tick inside the range.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let rough = span / n.saturating_sub(1).max(1) as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = match rough / power {
        f if f < 1.5 => 1.0,
        f if f < 3.0 => 2.0,
        f if f < 7.0 => 5.0,
        _ => 10.0,
    } * power;
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks for live bytes with their labels, round in the unit the page uses
/// (bytes, kb, mb, as `format_bytes`): `1 kb`, `1.2 kb`, `1.4 kb`.
fn byte_ticks(lo: f64, hi: f64, n: usize) -> Vec<(f64, String)> {
    const KIB: f64 = 1024.0;
    let (unit, name) = if hi > KIB * KIB {
        (KIB * KIB, "mb")
    } else if hi > KIB {
        (KIB, "kb")
    } else {
        (1.0, "bytes")
    };
    let values = ticks(lo / unit, hi / unit, n);
    let step = match values.as_slice() {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    let decimals = (-step.log10()).ceil().max(0.0) as usize;
    values
        .into_iter()
        .map(|v| {
            let label = if v == 0.0 {
                "0".to_owned()
            } else {
                format!("{v:.decimals$} {name}")
            };
            (v * unit, label)
        })
        .collect()
}

/// Where the phase or the round changes, as (index of the first cycle of
/// the new part, label): the end of the warm-up and the start of each
/// decision round.
fn marks(cycles: &[Cycle]) -> Vec<(usize, String)> {
    cycles
        .windows(2)
        .enumerate()
        .filter_map(|(i, w)| {
            if w[0].phase != w[1].phase {
                Some((i + 1, "warm-up ends".to_owned()))
            } else if w[0].round != w[1].round {
                Some((i + 1, format!("round {}", w[1].round)))
            } else {
                None
            }
        })
        .collect()
}

/// An SVG line chart of `current_base` and `estimated_base` per cycle, with
/// ticks on both axes and a mark where the warm-up ends and where each
/// decision round starts.
fn chart(test: &str, cycles: &[Cycle]) -> String {
    let current: Vec<f64> = cycles.iter().map(|c| c.stats.current_base as f64).collect();
    let estimated: Vec<f64> = cycles.iter().map(|c| c.stats.estimated_base).collect();
    let all = current.iter().chain(&estimated);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if current.is_empty() {
        (0.0, 1.0)
    } else if hi - lo < (hi.abs() / 100.0).max(1.0) {
        // A flat heap: drawn from zero, so that the ticks stay round.
        (0.0, (hi * 1.25).max(1.0))
    } else {
        (lo, hi)
    };
    let n = current.len().max(2) as f64 - 1.0;
    let (right, bottom) = (WIDTH - PAD, HEIGHT - BOTTOM);
    let x_of = |i: f64| LEFT + i / n * (right - LEFT);
    let y_of = |v: f64| bottom - (v - lo) / (hi - lo) * (bottom - PAD);
    let points = |values: &[f64]| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i as f64), y_of(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg class="chart" data-test="{t}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="live bytes per cycle of {t}">
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" class="bg"/>
<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/><line x1="{LEFT}" y1="{PAD}" x2="{LEFT}" y2="{bottom}" class="axis"/>"#,
        t = esc(test),
    );
    for (v, label) in byte_ticks(lo, hi, 5) {
        let y = y_of(v);
        let _ = writeln!(
            s,
            r#"<line x1="{x0}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" class="tick"/><line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" class="grid"/><text x="{lx}" y="{ty:.1}" class="label y">{label}</text>"#,
            x0 = LEFT - 4.0,
            lx = LEFT - 6.0,
            ty = y + 4.0,
        );
    }
    // Cycles are numbered from 1 on the axis, as the terminal counts them.
    for c in ticks(1.0, current.len().max(1) as f64, 8) {
        let x = x_of(c - 1.0);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{y1}" class="tick"/><text x="{x:.1}" y="{ty}" class="label x">{c}</text>"#,
            y1 = bottom + 4.0,
            ty = bottom + 16.0,
        );
    }
    // Where the last label ends: a label that would overlap it is left out
    // (early rounds are short), its line stays.
    let mut free_from = f64::MIN;
    for (i, label) in marks(cycles) {
        // The boundary sits between the last cycle of one part and the
        // first of the next.
        let x = x_of(i as f64 - 0.5);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{PAD}" x2="{x:.1}" y2="{bottom}" class="mark"/>"#
        );
        if x + 3.0 >= free_from {
            let _ = write!(
                s,
                r#"<text x="{tx:.1}" y="{ty}" class="label mark">{label}</text>"#,
                tx = x + 3.0,
                ty = PAD + 10.0,
            );
            free_from = x + 3.0 + MARK_CHAR_WIDTH * (label.len() as f64 + 1.0);
        }
        s.push('\n');
    }
    let _ = write!(
        s,
        r#"<text x="{right}" y="{ty}" class="label end">collection cycle ({count} in all)</text>
<polyline class="current" points="{current}"/>
<polyline class="estimated" points="{estimated}"/>
</svg>"#,
        ty = HEIGHT - 6.0,
        count = current.len(),
        current = points(&current),
        estimated = points(&estimated),
    );
    s
}

fn rows<T>(items: &[T], f: impl Fn(&T) -> String, limit: usize) -> String {
    items.iter().take(limit).map(f).collect()
}

/// A test's class and words on the page: a known leak is told apart, an
/// expected leak (`should_leak`, caught) is no failure and not in red, and
/// a test that left no report shows its status (`CRASHED`, `TIMED OUT`).
fn verdict_cell(e: &Entry) -> (&'static str, String) {
    let Some(r) = &e.report else {
        let status = e
            .outcome
            .as_ref()
            .map_or("no report", |o| o.status.as_str());
        return ("no_report", status.to_owned());
    };
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
pub fn page(run: &Path, entries: &[Entry]) -> String {
    let mut s = String::from(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>memwatch report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre.retention { margin: 0.3em 0 0; font-size: 12px; white-space: pre-wrap; }
.leak, .thread_leak, .fd_leak, .task_leak, .panicked, .no_report { color: #b00020; font-weight: bold; }
.clean { color: #1b7f3b; }
.known_leak { color: #8a5a00; font-weight: bold; }
.expected_leak { color: #555; font-weight: bold; }
pre.failure { background: #fff4f4; border-left: 3px solid #b00020; padding: 0.5em; white-space: pre-wrap; }
svg.chart .bg { fill: #fafafa; }
svg.chart .axis, svg.chart .tick { stroke: #999; }
svg.chart .grid { stroke: #eee; }
svg.chart .mark { stroke: #777; stroke-dasharray: 2 3; }
svg.chart .label { font-size: 11px; fill: #555; stroke: none; }
svg.chart .label.y, svg.chart .label.end { text-anchor: end; }
svg.chart .label.x { text-anchor: middle; }
svg.chart .label.mark { font-size: 10px; fill: #777; }
svg.chart .current { fill: none; stroke: #c62828; stroke-width: 2; }
svg.chart .estimated { fill: none; stroke: #1565c0; stroke-width: 1.5; stroke-dasharray: 4 3; }
.legend span { display: inline-block; width: 1.5em; height: 0.3em; vertical-align: middle; margin: 0 0.3em 0 1em; }
section.test { margin-bottom: 2em; }
</style></head><body>
<h1>memwatch leak report</h1>
"#,
    );
    let not_clean = entries
        .iter()
        .filter(|e| {
            e.report
                .as_ref()
                .is_none_or(|r| r.verdict.kind() != "clean")
        })
        .count();
    let known = entries
        .iter()
        .filter(|e| e.report.as_ref().is_some_and(Report::known_leak))
        .count();
    let failed = entries
        .iter()
        .filter(|e| e.outcome.as_ref().is_some_and(|o| !o.passed))
        .count();
    let _ = writeln!(
        s,
        "<p>{} leak test{}: {failed} failed; {not_clean} not clean ({known} of them known leaks, \
         as approved in their snapshots). From <code>{}</code>.</p>",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        esc(&run.display().to_string())
    );
    s.push_str(
        "<table class=\"summary\"><tr><th>test</th><th>verdict</th><th>growth per iteration</th>\
         <th>peak</th><th>cycles</th><th>time</th></tr>\n",
    );
    for e in entries {
        let (class, words) = verdict_cell(e);
        let (growth, peak, cycles) = match &e.report {
            // A panicked run's figures mean nothing, as in the terminal.
            Some(r) if !matches!(r.verdict, Verdict::Panicked { .. }) => {
                let g = r.growth_per_iteration;
                (
                    format!("{}, {:+.2} blocks", bytes(g.bytes), g.blocks),
                    bytes(r.peak_bytes as f64),
                    r.num_cycles.to_string(),
                )
            }
            _ => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        // The terminal's time: the test process's wall time.
        let time = match (&e.outcome, &e.report) {
            (Some(o), _) => seconds(Duration::from_secs_f64(o.seconds.max(0.0))),
            (None, Some(r)) => seconds(Duration::from_secs_f64(r.duration_ms.max(0.0) / 1000.0)),
            (None, None) => "-".to_owned(),
        };
        let _ = writeln!(
            s,
            "<tr><td><a href=\"#{id}\">{t}</a></td><td class=\"{class}\">{words}</td><td class=\"num\">{growth}</td><td class=\"num\">{peak}</td><td class=\"num\">{cycles}</td><td class=\"num\">{time}</td></tr>",
            id = esc(&anchor(&e.id)),
            t = esc(&e.id),
        );
    }
    s.push_str("</table>\n");
    s.push_str(
        "<p class=\"legend\">Live bytes after each collection cycle:<span style=\"background:#c62828\"></span>current_base\
         <span style=\"background:#1565c0\"></span>estimated_base; dotted lines mark the end of the warm-up and the start of each decision round.</p>\n",
    );
    for e in entries {
        let (class, words) = verdict_cell(e);
        let _ = writeln!(
            s,
            "<section class=\"test\" id=\"{id}\"><h2>{t} <span class=\"{class}\">{words}</span></h2>",
            id = esc(&anchor(&e.id)),
            t = esc(&e.id),
        );
        let failure = e
            .outcome
            .as_ref()
            .and_then(|o| o.message.clone())
            .or_else(|| e.report.as_ref().and_then(|r| r.failure.clone()));
        if let Some(failure) = failure {
            let _ = write!(s, "<pre class=\"failure\">{}</pre>", esc(&failure));
        }
        let Some(r) = &e.report else {
            s.push_str(
                "<p class=\"no-chart\">No heap chart: the test process left no report.</p>\n</section>\n",
            );
            continue;
        };
        if r.cycles.is_empty() {
            let _ = write!(
                s,
                "<p class=\"no-chart\">No heap chart: the run ended after {} iteration(s), \
                 before a collection cycle was recorded ({}).</p>",
                r.iterations_run,
                esc(r.verdict.kind())
            );
        } else {
            s.push_str(&chart(&e.id, &r.cycles));
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
                let mut via = site.allocated_in.as_ref().map_or(String::new(), |d| {
                    format!("<br><small>allocated in {}</small>", esc(&d.describe()))
                });
                if let Some(kind) = &site.kind {
                    let _ = write!(via, "<br><small>what: {}</small>", esc(kind));
                }
                // What keeps the blocks alive: the same lines as the
                // failure message, the path indented.
                if let Some(retention) = &site.retention {
                    let lines: Vec<String> = retention.lines().iter().map(|l| esc(l)).collect();
                    let _ = write!(via, "<pre class=\"retention\">{}</pre>", lines.join("\n"));
                }
                if let Some(preview) = &site.preview {
                    let _ = write!(
                        via,
                        "<br><small>preview of one: {}</small>",
                        esc(&preview.render())
                    );
                }
                format!(
                    "<tr><td>{}{via}</td><td>{}:{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&f.function),
                    esc(f.file.as_deref().unwrap_or("?")),
                    f.line.unwrap_or(0),
                    figure(site.blocks_per_iteration),
                    bytes(site.bytes_per_iteration),
                )
            },
            5,
        );
        if let Some(why) = &r.sites_error {
            let _ = write!(
                s,
                "<p class=\"note\">allocated at: not found: {}</p>",
                esc(why)
            );
        }
        let scanned = r
            .sites
            .as_ref()
            .is_some_and(|s| s.sites.iter().any(|site| site.retention.is_some()));
        if scanned {
            let _ = write!(
                s,
                "<p class=\"note\">{}</p>",
                esc(memwatch_report::report::CONSERVATIVE_SCAN)
            );
        }
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

fn anchor(id: &str) -> String {
    format!("test-{}", id.replace("::", "-").replace('/', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use memwatch_report::report::{CycleStats, Decision, Phase, Rate, SnapshotStatus, VERSION};

    fn entry(report: Report) -> Entry {
        Entry {
            id: format!("crate/{}", report.test),
            report: Some(report),
            outcome: None,
        }
    }

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
            sites_error: None,
            dhat_file: None,
            cycles: Vec::new(),
            failure: None,
        }
    }

    #[test]
    fn a_sites_retainer_path_is_shown_escaped() {
        use memwatch_report::report::{
            Frame, FrameKind, Retainer, Retention, Root, RootKind, Site, Sites, Step,
        };
        let frame = Frame {
            function: "app::remember<T>".to_owned(),
            file: Some("src/lib.rs".to_owned()),
            line: Some(16),
            kind: FrameKind::User,
        };
        let mut r = report("a::audit_leaks", Verdict::Leak, SnapshotStatus::Off);
        r.sites = Some(Sites {
            iterations: 32,
            unattributed_blocks: 0,
            sites: vec![Site {
                frame: frame.clone(),
                allocated_in: None,
                spawned_by: None,
                stack_cut: false,
                blocks_per_iteration: 1.0,
                bytes_per_iteration: 44.0,
                backtrace: vec![frame.clone()],
                kind: Some("String".to_owned()),
                retention: Some(Retention {
                    reachable: 32,
                    lost: 0,
                    unseen: None,
                    example: Retainer::Path {
                        root: Root {
                            kind: RootKind::Static,
                            name: "app::AUDIT".to_owned(),
                            thread: None,
                            offset: 16,
                        },
                        steps: vec![Step {
                            bytes: 44,
                            site: Some(frame),
                            allocated_in: None,
                            what: Some("String".to_owned()),
                            survivor: true,
                            next_at: None,
                        }],
                    },
                }),
                preview: None,
            }],
        });
        let page = page(Path::new("run"), &[entry(r)]);
        assert!(page.contains("what: String"), "{page}");
        assert!(
            page.contains("held (possibly): all 32 surviving blocks, from the static `app::AUDIT` (16 bytes into it)"),
            "{page}"
        );
        assert!(page.contains("a conservative scan of the heap"), "{page}");
        assert!(
            page.contains("-&gt; String of 44 bytes allocated at app::remember&lt;T&gt; (src/lib.rs:16) [leaked]"),
            "{page}"
        );
    }

    #[test]
    fn a_known_leak_is_shown_as_one() {
        let reports = [
            report("a::cache_leaks", Verdict::Leak, SnapshotStatus::KnownLeak),
            report("a::parse_is_clean", Verdict::Clean, SnapshotStatus::Matched),
        ];
        let page = page(Path::new("run"), &reports.map(entry));
        assert!(
            page.contains("<td class=\"known_leak\">leak (known leak)</td>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"clean\">clean</td>"), "{page}");
        assert!(
            page.contains("2 leak tests: 0 failed; 1 not clean (1 of them known leaks"),
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
        let page = page(Path::new("run"), &[entry(expected), entry(failing)]);
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

    fn cycle(phase: Phase, round: u32, iteration: u32, live: u64) -> Cycle {
        Cycle {
            phase,
            iteration,
            round,
            stats: CycleStats {
                num_cycles: iteration as u64,
                current_base: live,
                estimated_base: live as f64,
                usage_trend: 0.0,
                live_blocks: 1,
                allocations: 0,
                frees: 0,
                cycle_peak: live,
            },
        }
    }

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(ticks(0.0, 100.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(
            ticks(1.0, 35.0, 8),
            vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
        );
        assert_eq!(ticks(1030.0, 1290.0, 4), vec![1100.0, 1200.0]);
        assert_eq!(ticks(3.0, 3.0, 4), vec![3.0], "an empty range has one tick");
        // 0.98 to 1.89 kb: round in kb.
        let kb: Vec<String> = byte_ticks(1000.0, 1940.0, 5)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(kb, ["1.0 kb", "1.2 kb", "1.4 kb", "1.6 kb", "1.8 kb"]);
        let b: Vec<String> = byte_ticks(0.0, 600.0, 5).into_iter().map(|t| t.1).collect();
        assert_eq!(b, ["0", "200 bytes", "400 bytes", "600 bytes"]);
    }

    #[test]
    fn the_chart_has_ticks_and_marks_the_warm_up_and_each_round() {
        let mut cycles: Vec<Cycle> = (1..=3).map(|i| cycle(Phase::Warmup, 0, i, 1000)).collect();
        cycles.extend((4..=19).map(|i| cycle(Phase::Measured, 1, i, 1000 + 24 * i as u64)));
        cycles.extend((20..=35).map(|i| cycle(Phase::Measured, 2, i, 1000 + 24 * i as u64)));
        assert_eq!(
            marks(&cycles),
            vec![(3, "warm-up ends".to_owned()), (19, "round 2".to_owned())]
        );
        let svg = chart("t", &cycles);
        // Byte ticks on the y axis, cycle numbers on the x axis.
        for label in [">1.0 kb<", ">1.6 kb<", ">5<", ">35<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
        assert_eq!(svg.matches("class=\"mark\"").count(), 2, "{svg}");
        assert!(svg.contains(">warm-up ends</text>"), "{svg}");
        assert!(svg.contains(">round 2</text>"), "{svg}");
        assert!(svg.contains("collection cycle (35 in all)"), "{svg}");
    }

    #[test]
    fn close_marks_keep_their_lines_and_drop_overlapping_labels() {
        let mut cycles = vec![cycle(Phase::Warmup, 0, 1, 100)];
        cycles.extend((2..=3).map(|i| cycle(Phase::Measured, 1, i, 100)));
        cycles.extend((4..=200).map(|i| cycle(Phase::Measured, 2, i, 100 + i as u64)));
        let svg = chart("t", &cycles);
        assert_eq!(svg.matches("class=\"mark\"").count(), 2, "{svg}");
        assert!(svg.contains(">warm-up ends</text>"), "{svg}");
        assert!(!svg.contains(">round 2</text>"), "two cycles apart: {svg}");
    }

    #[test]
    fn a_flat_heap_is_drawn_from_zero_with_round_ticks() {
        let cycles: Vec<Cycle> = (1..=35)
            .map(|i| cycle(Phase::Measured, 1, i, 2278))
            .collect();
        let svg = chart("t", &cycles);
        for label in [">0<", ">0.5 kb<", ">2.5 kb<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
    }

    #[test]
    fn a_crashed_test_is_on_the_page_with_the_terminal_s_status_and_time() {
        let crashed = Entry {
            id: "crate/leaks::aborts".to_owned(),
            report: None,
            outcome: Some(runs::Outcome {
                status: "CRASHED".to_owned(),
                passed: false,
                seconds: 0.0312,
                message: Some("the test process crashed (signal 6: SIGABRT, an abort)".to_owned()),
            }),
        };
        let mut clean = entry(report("leaks::ok", Verdict::Clean, SnapshotStatus::Matched));
        clean.outcome = Some(runs::Outcome {
            status: "ok".to_owned(),
            passed: true,
            seconds: 1.5,
            message: None,
        });
        let page = page(Path::new("run"), &[crashed, clean]);
        assert!(
            page.contains("<td class=\"no_report\">CRASHED</td>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"num\">0.03s</td>"), "{page}");
        assert!(page.contains("<td class=\"num\">1.50s</td>"), "{page}");
        assert!(
            page.contains("<pre class=\"failure\">the test process crashed (signal 6: SIGABRT, an abort)</pre>"),
            "{page}"
        );
        assert!(page.contains("the test process left no report"), "{page}");
        assert!(
            page.contains("2 leak tests: 1 failed; 1 not clean"),
            "{page}"
        );
    }
}
