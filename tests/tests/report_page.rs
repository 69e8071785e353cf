//! `cargo memwatch report` checked in a real headless browser (Debian's
//! chromium, which `.ci/run` installs): the page loads from a file, the DOM
//! the browser renders has a chart with drawn data for every test, no
//! script fails, and a screenshot of it is not blank.

use std::path::{Path, PathBuf};
use std::process::Command;

use memwatch_e2e::{stderr, stdout, Crate, Fixture, CLEAN, LEAKY};

/// A test whose process dies before it writes a report.
const ABORTS: &str = r#"
#[memwatch_test::leak_test(snapshot = false)]
fn aborts() {
    std::process::abort();
}

memwatch_test::main!();
"#;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
    })
}

/// Runs headless chromium on `page` with `args`; returns (stdout, stderr).
fn browse(browser: &Path, profile: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    (stdout(&out), stderr(&out))
}

/// The `points` of every `polyline class="current"` in the DOM, by the
/// `data-test` of its chart.
fn charts(dom: &str) -> Vec<(String, usize)> {
    dom.split("<svg class=\"chart\"")
        .skip(1)
        .map(|svg| {
            let test = svg
                .split("data-test=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_owned();
            let points = svg
                .split("class=\"current\" points=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(|p| p.split_whitespace().count())
                .unwrap_or(0);
            (test, points)
        })
        .collect()
}

#[test]
fn the_report_page_draws_every_test_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required under CI: .ci/run installs it"
        );
        eprintln!("skipped: no chromium here (apt-get install chromium)");
        return;
    };
    let f = Fixture::new(&[
        Crate {
            name: "alpha",
            leaks: Some(CLEAN),
            ..Crate::default()
        },
        Crate {
            name: "beta",
            leaks: Some(LEAKY),
            ..Crate::default()
        },
        Crate {
            name: "gamma",
            leaks: Some(ABORTS),
            ..Crate::default()
        },
    ]);
    let run = f.command(&["test"]).env("CI", "true").output().unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "a leak and new snapshots: {}",
        stdout(&run)
    );
    let report = f.memwatch(&["report"]);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let page = PathBuf::from(
        stdout(&report)
            .trim()
            .strip_prefix("report: ")
            .expect("it says where the page is"),
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    // A crash is a result: on the page with the terminal's status and why.
    assert!(
        html.contains("<td class=\"no_report\">CRASHED</td>"),
        "{html}"
    );
    assert!(
        html.contains("the test process crashed (signal 6: SIGABRT, an abort)"),
        "{html}"
    );
    // The time column is the terminal's, in seconds.
    let terminal_time = stdout(&run)
        .lines()
        .find(|l| l.starts_with("beta/leaks::cache_leaks "))
        .and_then(|l| l.split_whitespace().last())
        .expect("the table has the leak's row")
        .to_owned();
    assert!(
        html.contains(&format!("<td class=\"num\">{terminal_time}</td>")),
        "{terminal_time} in {html}"
    );
    // Ticks on the axes, and the warm-up's end marked.
    assert!(html.contains("class=\"label x\""), "{html}");
    assert!(html.contains(">warm-up ends</text>"), "{html}");

    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = browse(&browser, profile.path(), &page, &["--dump-dom"]);
    let drawn = charts(&dom);
    let mut tests: Vec<&str> = drawn.iter().map(|(t, _)| t.as_str()).collect();
    tests.sort();
    assert_eq!(
        tests,
        vec![
            "alpha/leaks::format_is_clean",
            "alpha/leaks::parse_is_clean",
            "beta/leaks::cache_leaks",
            "beta/leaks::parse_is_clean",
        ],
        "one chart per test"
    );
    for (test, points) in &drawn {
        assert!(*points >= 13, "{test}: {points} points drawn");
    }
    // The page's script ran to its end and counted the drawn charts.
    assert!(dom.contains("data-charts=\"4\""), "{dom}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .collect();
    assert!(errors.is_empty(), "script errors: {errors:?}");

    let shot = profile.path().join("report.png");
    browse(
        &browser,
        profile.path(),
        &page,
        &[
            "--window-size=1000,1400",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let first = &pixels[..step];
    let differing = pixels.chunks(step).filter(|p| p != &first).count();
    let total = pixels.len() / step;
    assert!(
        differing * 100 > total,
        "the screenshot is blank: {differing} of {total} pixels differ from the first"
    );
    let reds = pixels
        .chunks(step)
        .filter(|p| p[0] > 150 && p[1] < 80 && p[2] < 80)
        .count();
    assert!(
        reds > 200,
        "the red current_base lines are drawn ({reds} red pixels)"
    );
}
