//! Which leak tests a run selects: libtest's filters, `--exact` and
//! `--skip`, given before or after `--` as `cargo test` takes them.

use anyhow::{bail, Result};

use crate::cargo::LeakTestRef;

/// The selection of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A test runs when its id contains one of these (all when empty).
    pub filters: Vec<String>,
    /// Filters and skips match whole names (`module::test` or the id).
    pub exact: bool,
    /// A test whose id contains one of these does not run.
    pub skip: Vec<String>,
    /// `--include-ignored` given after `--`.
    pub include_ignored: bool,
}

impl Filter {
    /// The selection from the filters and flags before `--` and the
    /// arguments after it, which take libtest's selection flags and
    /// filters; any other harness flag is an error that says why.
    pub fn new(
        filters: &[String],
        exact: bool,
        skip: &[String],
        after: &[String],
    ) -> Result<Filter> {
        let mut f = Filter {
            filters: filters.to_vec(),
            exact,
            skip: skip.to_vec(),
            include_ignored: false,
        };
        let mut args = after.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--exact" => f.exact = true,
                "--include-ignored" => f.include_ignored = true,
                "--skip" => match args.next() {
                    Some(s) => f.skip.push(s.clone()),
                    None => bail!("`--skip` after `--` needs a pattern"),
                },
                s if s.starts_with("--skip=") => f.skip.push(s["--skip=".len()..].to_owned()),
                "--nocapture" | "--no-capture" | "--show-output" => bail!(
                    "`{arg}` after `--` is not taken: cargo memwatch runs each test in a process \
                     of its own, keeps its output and shows it with its failure. To watch a \
                     test's output live, run `cargo test --test <target> -- --nocapture <name>`"
                ),
                s if s.starts_with('-') => bail!(
                    "`{arg}` after `--` is not taken: cargo memwatch passes on libtest's \
                     filters, `--exact`, `--skip <pattern>` and `--include-ignored` only"
                ),
                _ => f.filters.push(arg.clone()),
            }
        }
        Ok(f)
    }

    /// Whether anything narrows the selection.
    pub fn narrows(&self) -> bool {
        !self.filters.is_empty() || !self.skip.is_empty()
    }

    fn hits(&self, pattern: &str, t: &LeakTestRef) -> bool {
        if self.exact {
            t.name == pattern || t.id == pattern
        } else {
            t.id.contains(pattern)
        }
    }

    /// Whether test `t` is selected.
    pub fn selects(&self, t: &LeakTestRef) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| self.hits(f, t)))
            && !self.skip.iter().any(|s| self.hits(s, t))
    }

    /// How the selection reads, for "0 of N matched".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.filters.iter().map(|f| format!("`{f}`")).collect();
        parts.extend(self.skip.iter().map(|s| format!("--skip `{s}`")));
        if self.exact {
            parts.push("--exact".to_owned());
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, name: &str) -> LeakTestRef {
        LeakTestRef {
            binary: 0,
            id: id.to_owned(),
            name: name.to_owned(),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn filters_after_the_separator_are_libtests() {
        let f = Filter::new(
            &[],
            false,
            &[],
            &s(&["parse", "roundtrip", "--skip", "slow"]),
        )
        .unwrap();
        assert!(f.selects(&t("a/leaks::parse_is_clean", "parse_is_clean")));
        assert!(f.selects(&t("a/leaks::roundtrip", "roundtrip")));
        assert!(!f.selects(&t("a/leaks::parse_slow", "parse_slow")));
        assert!(!f.selects(&t("a/leaks::other", "other")));
    }

    #[test]
    fn exact_matches_whole_names() {
        let f = Filter::new(&s(&["parse"]), true, &[], &[]).unwrap();
        assert!(f.selects(&t("a/leaks::parse", "parse")));
        assert!(!f.selects(&t("a/leaks::parse_more", "parse_more")));
        let by_id = Filter::new(&s(&["a/leaks::parse_more"]), true, &[], &[]).unwrap();
        assert!(by_id.selects(&t("a/leaks::parse_more", "parse_more")));
    }

    #[test]
    fn other_harness_flags_are_refused_with_a_reason() {
        let e = Filter::new(&[], false, &[], &s(&["--nocapture"])).unwrap_err();
        assert!(e.to_string().contains("keeps its output"), "{e}");
        let e = Filter::new(&[], false, &[], &s(&["--test-threads", "2"])).unwrap_err();
        assert!(e.to_string().contains("is not taken"), "{e}");
        assert!(Filter::new(&[], false, &[], &s(&["--skip"])).is_err());
    }
}
