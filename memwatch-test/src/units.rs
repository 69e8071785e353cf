//! Sizes and durations written the way node-memwatch writes them.

use std::time::Duration;

/// Formats a byte count as node-memwatch does: `N bytes` up to 1 KiB,
/// `X.XX kb` up to 1 MiB, `X.XX mb` above (binary units). Negative counts
/// keep their sign.
///
/// ```
/// use memwatch_test::format_bytes;
///
/// assert_eq!(format_bytes(512), "512 bytes");
/// assert_eq!(format_bytes(4096), "4.00 kb");
/// assert_eq!(format_bytes(-55_296), "-54.00 kb");
/// assert_eq!(format_bytes(3 * 1024 * 1024 / 2), "1.50 mb");
/// ```
pub fn format_bytes(bytes: i64) -> String {
    format_bytes_f64(bytes as f64)
}

/// [`format_bytes`] for a fractional figure, such as a rate: the
/// contract's formatter, so that `cargo memwatch` writes sizes the same way.
pub(crate) fn format_bytes_f64(bytes: f64) -> String {
    memwatch_report::format_bytes(bytes)
}

/// Formats a time span for a leak reason: `420µs`, `850ms`, `1.2s`,
/// `3m 20s`, `2h 5m 0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h {}m {}s", secs / 3600, secs % 3600 / 60, secs % 60)
    } else if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if d.as_millis() >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if d.as_millis() >= 1 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_memwatch_thresholds() {
        assert_eq!(format_bytes(0), "0 bytes");
        assert_eq!(format_bytes(1024), "1024 bytes");
        assert_eq!(format_bytes(1025), "1.00 kb");
        assert_eq!(format_bytes(249_232), "243.39 kb");
        assert_eq!(format_bytes(1024 * 1024), "1024.00 kb");
        assert_eq!(format_bytes(2_119_136), "2.02 mb");
        assert_eq!(format_bytes(-2120), "-2.07 kb");
        assert_eq!(format_bytes(5 * 1024 * 1024 * 1024), "5120.00 mb");
        assert_eq!(format_bytes_f64(12.5), "12.50 bytes");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(format_duration(Duration::from_micros(420)), "420µs");
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h 5m 0s");
    }
}
