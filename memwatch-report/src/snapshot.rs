//! The snapshot file format: insta's, so that `cargo insta review` works
//! on memwatch's snapshots. A file is a YAML header of `key: value` lines
//! between `---` lines, then the body:
//!
//! ```text
//! ---
//! source: tests/leaks.rs
//! description: memwatch leak test parse_is_clean in tests/leaks.rs
//! ---
//! verdict: clean
//! ```
//!
//! An approved snapshot is `<name>.snap`; one waiting for review is
//! `<name>.snap.new` beside it.
//!
//! ```
//! use memwatch_report::snapshot;
//!
//! assert_eq!(snapshot::approved_file("parse"), "parse.snap");
//! assert_eq!(snapshot::pending_file("parse"), "parse.snap.new");
//! assert!(snapshot::parse("no header").is_err());
//! ```

/// The parts of a snapshot file memwatch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The header's `source`, when it has one.
    pub source: Option<String>,
    /// The body, without its trailing newlines.
    pub body: String,
}

/// Why a snapshot file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The file does not start with `---`.
    #[error("it does not start with insta's `---` header")]
    NoHeader,
    /// The header has no closing `---` line.
    #[error("its header has no closing `---` line")]
    UnclosedHeader,
    /// A header line is not `key: value` (or an indented continuation).
    #[error("its header is not `key: value` lines")]
    BadHeader,
}

/// Reads a snapshot file's text.
///
/// ```
/// let s = memwatch_report::snapshot::parse("---\nsource: a.rs\n---\nverdict: leak\n\n").unwrap();
/// assert_eq!((s.source.as_deref(), s.body.as_str()), (Some("a.rs"), "verdict: leak"));
/// ```
pub fn parse(text: &str) -> Result<Snapshot, SnapshotError> {
    let rest = text.strip_prefix("---\n").ok_or(SnapshotError::NoHeader)?;
    let end = rest
        .find("\n---\n")
        .or_else(|| rest.strip_suffix("\n---").map(|h| h.len()))
        .ok_or(SnapshotError::UnclosedHeader)?;
    let header = &rest[..end];
    let mut source = None;
    for line in header.lines() {
        if line.starts_with(' ') {
            continue;
        }
        let (key, value) = line.split_once(':').ok_or(SnapshotError::BadHeader)?;
        if key.trim().is_empty() || key.contains(' ') {
            return Err(SnapshotError::BadHeader);
        }
        if key == "source" {
            source = Some(value.trim().to_owned());
        }
    }
    if header.trim().is_empty() {
        return Err(SnapshotError::BadHeader);
    }
    let body = rest.get(end + 5..).unwrap_or("");
    Ok(Snapshot {
        source,
        body: body.trim_end_matches('\n').to_owned(),
    })
}

/// Writes a snapshot file's text: the header names `source` and carries
/// `description`, then the body.
///
/// ```
/// let text = memwatch_report::snapshot::render("tests/leaks.rs", "d", "verdict: clean");
/// assert_eq!(text, "---\nsource: tests/leaks.rs\ndescription: d\n---\nverdict: clean\n");
/// ```
pub fn render(source: &str, description: &str, body: &str) -> String {
    format!(
        "---\nsource: {source}\ndescription: {}\n---\n{}\n",
        description.replace('\n', " "),
        body.trim_end_matches('\n')
    )
}

/// The file name of the approved snapshot `name`.
pub fn approved_file(name: &str) -> String {
    format!("{name}.snap")
}

/// The file name of snapshot `name` waiting for review.
pub fn pending_file(name: &str) -> String {
    format!("{name}.snap.new")
}

/// What each iteration of a test keeps under one tag: net blocks and bytes
/// per measured iteration, over the test's last round. The harness counts
/// a tag's blocks only when the round kept at least two of them: a single
/// block (a table replaced once) is not kept by each iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// The tag's name, `(untagged)` for blocks allocated under none.
    pub what: String,
    /// Net blocks per iteration.
    pub blocks: f64,
    /// Net bytes per iteration.
    pub bytes: f64,
}

/// How many blocks each iteration allocates and frees under one tag, for a
/// test with `#[leak_test(count_allocations)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    /// The tag's name.
    pub what: String,
    /// Blocks allocated per iteration.
    pub allocations: f64,
    /// Blocks freed per iteration.
    pub frees: f64,
}

/// The snapshot body: the verdict, then what each iteration keeps by tag,
/// rounded by [`round`] so that noise cannot change it, then (when
/// `counts` is given) allocations and frees per iteration by tag. A clean
/// test keeps nothing, whatever its temporary allocations are.
///
/// ```
/// use memwatch_report::snapshot::{body, Kept};
///
/// assert_eq!(body("clean", &[], None), "verdict: clean\nkept per iteration: nothing\n");
/// let kept = [Kept { what: "Session".into(), blocks: 1.0, bytes: 96.3 }];
/// assert_eq!(
///     body("leak", &kept, None),
///     "verdict: leak\nkept per iteration, by tag:\n  Session  +1 block  +96 bytes\n"
/// );
/// ```
pub fn body(verdict: &str, kept: &[Kept], counts: Option<&[Counted]>) -> String {
    let mut s = format!("verdict: {verdict}\n");
    let rows: Vec<(String, String, String)> = kept
        .iter()
        // Less than a byte an iteration, in no new block, is not kept.
        .filter(|k| round(k.blocks) != 0.0 || round(k.bytes).abs() >= 1.0)
        .map(|k| (k.what.clone(), blocks(round(k.blocks)), bytes(k.bytes)))
        .collect();
    if rows.is_empty() {
        s.push_str(if verdict == "clean" {
            "kept per iteration: nothing\n"
        } else {
            "kept per iteration: nothing on the heap\n"
        });
    } else {
        s.push_str("kept per iteration, by tag:\n");
        table(&mut s, &rows);
    }
    if let Some(counts) = counts {
        s.push_str("allocations per iteration, by tag (count_allocations):\n");
        let rows: Vec<(String, String, String)> = counts
            .iter()
            .map(|c| {
                (
                    c.what.clone(),
                    format!("{} allocated", decimal(c.allocations)),
                    format!("{} freed", decimal(c.frees)),
                )
            })
            .collect();
        if rows.is_empty() {
            s.push_str("  (no allocations)\n");
        }
        table(&mut s, &rows);
    }
    s
}

/// Two snapshot bodies line by line, as the failure message and
/// `cargo memwatch review` show them: `-` for a line only in `old`, `+`
/// for one only in `new`, a space for both. Linear in practice (Myers'
/// diff, from `similar`), also for snapshots of thousands of lines.
///
/// ```
/// let d = memwatch_report::snapshot::diff("verdict: clean\na", "verdict: leak\na");
/// assert_eq!(d, "-verdict: clean\n+verdict: leak\n a\n");
/// ```
pub fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|c| {
            let sign = match c.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            format!("{sign}{}\n", c.value().trim_end_matches('\n'))
        })
        .collect()
}

/// The verdict a snapshot body records (its first line), if it has one.
///
/// ```
/// use memwatch_report::snapshot::verdict_of;
/// assert_eq!(verdict_of("verdict: leak\nkept per iteration: nothing on the heap"), Some("leak"));
/// assert_eq!(verdict_of("something else"), None);
/// ```
pub fn verdict_of(body: &str) -> Option<&str> {
    body.lines().next()?.strip_prefix("verdict: ")
}

fn table(s: &mut String, rows: &[(String, String, String)]) {
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (a, b, c) in rows {
        let pad = w0 - a.chars().count();
        s.push_str(&format!("  {a}{:pad$}  {b:<w1$}  {c}\n", ""));
    }
}

/// `x` rounded to two significant digits: what a snapshot records, so that
/// a difference of one part in a few hundred (one block more in a round of
/// 512 iterations, a resize that lands one iteration later) changes nothing.
///
/// ```
/// use memwatch_report::snapshot::round;
///
/// assert_eq!(round(208.0), 210.0);
/// assert_eq!(round(0.3346), 0.33);
/// assert_eq!(round(-1.004), -1.0);
/// assert_eq!(round(0.0), 0.0);
/// ```
pub fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return 0.0;
    }
    let exponent = x.abs().log10().floor() as i32 - 1;
    // Divide or multiply by an exact power of ten, so that 0.33 prints as
    // 0.33 and not as 0.33000000000000002.
    let r = if exponent < 0 {
        let scale = 10f64.powi(-exponent);
        (x * scale).round() / scale
    } else {
        let scale = 10f64.powi(exponent);
        (x / scale).round() * scale
    };
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{x}")
    } else {
        format!("{x}")
    }
}

fn blocks(x: f64) -> String {
    let unit = if x.abs() == 1.0 { "block" } else { "blocks" };
    format!("{} {unit}", signed(x))
}

/// Bytes rounded in the unit they are shown in (bytes, kb, mb).
fn bytes(x: f64) -> String {
    const KIB: f64 = 1024.0;
    let abs = round(x).abs();
    let (value, unit) = if abs >= KIB * KIB {
        (round(x / (KIB * KIB)), "mb")
    } else if abs >= KIB {
        (round(x / KIB), "kb")
    } else {
        (round(x), "bytes")
    };
    format!("{} {unit}", signed(value))
}

/// A count per iteration with at most two decimals.
fn decimal(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    format!("{}", if r == 0.0 { 0.0 } else { r })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines_and_stays_fast_on_big_snapshots() {
        let d = diff("verdict: clean\na\nb", "verdict: leak\na\nb");
        assert_eq!(d, "-verdict: clean\n+verdict: leak\n a\n b\n");
        // 10,000 lines a side, one in ten changed: a quadratic table would
        // take 10^8 cells; this is Myers' diff.
        let old: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        let new: String = (0..10_000)
            .map(|i| {
                if i % 10 == 0 {
                    format!("changed {i}\n")
                } else {
                    format!("line {i}\n")
                }
            })
            .collect();
        let d = diff(&old, &new);
        assert_eq!(d.lines().filter(|l| l.starts_with('-')).count(), 1000);
        assert_eq!(d.lines().filter(|l| l.starts_with('+')).count(), 1000);
    }

    #[test]
    fn bodies_round_away_noise() {
        let kept = |blocks, bytes| {
            body(
                "leak",
                &[Kept {
                    what: "(untagged)".into(),
                    blocks,
                    bytes,
                }],
                None,
            )
        };
        // One block more or less in a round of 512, a resize one iteration
        // later: the same body.
        assert_eq!(kept(1.0, 66.0), kept(513.0 / 512.0, 66.2));
        assert_eq!(kept(1.0, 1500.0), kept(1.0, 1510.0));
        assert!(kept(2.0, 66.0) != kept(1.0, 66.0), "twice the leak shows");
        assert!(kept(1.0, 1500.0).contains("+1.5 kb"));
        assert!(kept(0.0, 2.0 * 1024.0 * 1024.0).contains("+0 blocks  +2 mb"));
    }

    #[test]
    fn tags_that_keep_nothing_are_left_out() {
        let rows = [
            Kept {
                what: "Page".into(),
                blocks: 0.0,
                bytes: 0.4,
            },
            Kept {
                what: "(untagged)".into(),
                blocks: 0.0,
                bytes: 0.0,
            },
        ];
        assert_eq!(
            body("thread_leak", &rows, None),
            "verdict: thread_leak\nkept per iteration: nothing on the heap\n"
        );
    }

    #[test]
    fn counts_are_opt_in() {
        let counts = [Counted {
            what: "(untagged)".into(),
            allocations: 3.0,
            frees: 2.996,
        }];
        let text = body("clean", &[], Some(&counts));
        assert_eq!(
            text,
            "verdict: clean\nkept per iteration: nothing\n\
             allocations per iteration, by tag (count_allocations):\n\
             \x20 (untagged)  3 allocated  3 freed\n"
        );
    }

    #[test]
    fn what_is_rendered_parses_back() {
        let text = render("src/x.rs", "a\nb", "verdict: leak\nper iteration\n");
        let s = parse(&text).unwrap();
        assert_eq!(s.source.as_deref(), Some("src/x.rs"));
        assert_eq!(s.body, "verdict: leak\nper iteration");
    }

    #[test]
    fn insta_files_parse() {
        let insta = "---\nsource: memwatch-test/src/harness.rs\nassertion_line: 136\n\
                     description: memwatch leak test t in a.rs\nexpression: text\n---\nverdict: clean\n";
        assert_eq!(parse(insta).unwrap().body, "verdict: clean");
        let multi = "---\nsource: a.rs\ninfo:\n  k: v\n---\nbody\n";
        assert_eq!(parse(multi).unwrap().body, "body");
    }

    #[test]
    fn broken_files_say_why() {
        assert_eq!(parse("verdict: clean\n"), Err(SnapshotError::NoHeader));
        assert_eq!(
            parse("---\nsource: a\nbody\n"),
            Err(SnapshotError::UnclosedHeader)
        );
        assert_eq!(
            parse("---\nnot a header line\n---\nb\n"),
            Err(SnapshotError::BadHeader)
        );
        assert_eq!(parse("---\n\n---\nb\n"), Err(SnapshotError::BadHeader));
    }
}
