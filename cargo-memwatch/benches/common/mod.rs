//! Timing shared by the benches of cargo-memwatch.

use std::process::Command;
use std::time::Instant;

/// Wall-clock seconds of `cmd`, which must succeed.
pub fn time(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// The median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
