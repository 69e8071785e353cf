//! File names: a test's snapshot and report files are named after the test,
//! and no two tests of a binary may share one.
//!
//! A test path becomes a file stem by turning `::` into `__` and any
//! character that is neither alphanumeric (in any script) nor `-` or `_`
//! into `_`. Two different tests can still end up with one stem (`a::t` and
//! a test with `snapshot = "a__t"`; `Parse` and `parse` on a file system
//! that ignores case), so the harness checks every stem of a binary with
//! [`collisions`] before it runs a test, and fails the tests that share one.
//!
//! ```
//! use memwatch_report::naming::{collisions, file_stem};
//!
//! assert_eq!(file_stem("odd2::тест"), "odd2__тест");
//! assert_ne!(file_stem("odd2::тест"), file_stem("odd2::тесю"));
//! let shared = collisions([("a::t", "a__t".to_owned()), ("b", "a__t".to_owned())]);
//! assert_eq!(shared[0].tests, ["a::t", "b"]);
//! ```

use std::collections::BTreeMap;

/// The file stem for test path `test`: `a::b` becomes `a__b`.
///
/// ```
/// assert_eq!(memwatch_report::naming::file_stem("parse::is clean"), "parse__is_clean");
/// ```
pub fn file_stem(test: &str) -> String {
    test.replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why a snapshot name given in `#[leak_test(snapshot = "...")]` cannot be
/// a file name, or `None` when it can.
///
/// ```
/// use memwatch_report::naming::invalid_name;
///
/// assert_eq!(invalid_name("parse_v2"), None);
/// assert!(invalid_name("../x").is_some());
/// assert!(invalid_name("").is_some());
/// ```
pub fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a snapshot name cannot be empty")
    } else if name.len() > 200 {
        Some("a snapshot name is a file name: at most 200 bytes")
    } else if !name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        Some("a snapshot name is a file name: use letters, digits, `_` and `-` only")
    } else {
        None
    }
}

/// Tests that share one file stem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The stem as the first of them writes it.
    pub stem: String,
    /// The tests' names, in the order given.
    pub tests: Vec<String>,
}

/// Every stem that more than one of `(test, stem)` would write, compared
/// without case (a file system may ignore it).
///
/// ```
/// use memwatch_report::naming::collisions;
///
/// assert!(collisions([("a", "a".to_owned()), ("b", "b".to_owned())]).is_empty());
/// assert_eq!(collisions([("P", "P".to_owned()), ("p", "p".to_owned())]).len(), 1);
/// ```
pub fn collisions<'a>(stems: impl IntoIterator<Item = (&'a str, String)>) -> Vec<Collision> {
    let mut by_stem: BTreeMap<String, Collision> = BTreeMap::new();
    for (test, stem) in stems {
        by_stem
            .entry(stem.to_lowercase())
            .or_insert_with(|| Collision {
                stem,
                tests: Vec::new(),
            })
            .tests
            .push(test.to_owned());
    }
    by_stem
        .into_values()
        .filter(|c| c.tests.len() > 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_keep_letters_of_every_script_apart() {
        assert_eq!(file_stem("a::b::c"), "a__b__c");
        assert_eq!(file_stem("x<T>"), "x_T_");
        assert_ne!(file_stem("odd2::тест"), file_stem("odd2::тесю"));
    }

    #[test]
    fn default_and_named_stems_collide_and_are_found() {
        let found = collisions([
            ("a::t", file_stem("a::t")),
            ("b", "a__t".to_owned()),
            ("c", file_stem("c")),
            ("C", file_stem("C")),
        ]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].tests, ["a::t", "b"]);
        assert_eq!(found[1].tests, ["c", "C"]);
    }
}
