//! `--partition count:K/N` and `hash:K/N`, as nextest splits a suite
//! across machines.

use std::fmt;
use std::str::FromStr;

/// Which share of the tests this run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// The K-th of every N tests, in name order.
    Count { k: u64, n: u64 },
    /// Tests whose name hashes to K modulo N: stable as tests come and go.
    Hash { k: u64, n: u64 },
}

/// A `--partition` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionError(String);

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected `count:K/N` or `hash:K/N` with 1 <= K <= N, e.g. `count:1/3`",
            self.0
        )
    }
}

impl std::error::Error for PartitionError {}

impl FromStr for Partition {
    type Err = PartitionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PartitionError(format!("malformed partition `{s}`"));
        let (kind, share) = s.split_once(':').ok_or_else(err)?;
        let (k, n) = share.split_once('/').ok_or_else(err)?;
        let k: u64 = k.trim().parse().map_err(|_| err())?;
        let n: u64 = n.trim().parse().map_err(|_| err())?;
        if k == 0 || n == 0 || k > n {
            return Err(err());
        }
        match kind {
            "count" => Ok(Partition::Count { k, n }),
            "hash" => Ok(Partition::Hash { k, n }),
            _ => Err(err()),
        }
    }
}

/// FNV-1a: a small, stable hash (the same on every machine and release).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Partition {
    /// Keeps this partition's share of `ids`, which must be sorted.
    pub fn select<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
        match *self {
            Partition::Count { k, n } => items
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u64 % n == k - 1)
                .map(|(_, t)| t)
                .collect(),
            Partition::Hash { k, n } => items
                .into_iter()
                .filter(|t| fnv1a(id(t)) % n == k - 1)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!("count:1/3".parse(), Ok(Partition::Count { k: 1, n: 3 }));
        assert_eq!("hash:2/2".parse(), Ok(Partition::Hash { k: 2, n: 2 }));
    }

    #[test]
    fn rejects_malformed_partitions() {
        for bad in [
            "",
            "count",
            "count:1",
            "count:0/3",
            "count:4/3",
            "hash:a/b",
            "slice:1/2",
            "count:1/0",
        ] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn partitions_cover_every_test_exactly_once() {
        let ids: Vec<String> = (0..50).map(|i| format!("pkg/leaks::test_{i:02}")).collect();
        for kind in ["count", "hash"] {
            let mut seen = Vec::new();
            for k in 1..=3 {
                let p: Partition = format!("{kind}:{k}/3").parse().unwrap();
                seen.extend(p.select(ids.clone(), |s| s.as_str()));
            }
            seen.sort();
            assert_eq!(seen, ids, "{kind}");
        }
    }
}
