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

#[cfg(test)]
mod tests {
    use super::*;

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
