//! Byte counts the way node-memwatch writes them.

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// Formats a byte count as node-memwatch does: `N bytes` up to 1 KiB,
/// `X.XX kb` up to 1 MiB, `X.XX mb` above (binary units). Fractions (rates)
/// get two decimals; negative counts keep their sign.
///
/// ```
/// use memwatch_report::format_bytes;
///
/// assert_eq!(format_bytes(512.0), "512 bytes");
/// assert_eq!(format_bytes(4096.0), "4.00 kb");
/// assert_eq!(format_bytes(-55_296.0), "-54.00 kb");
/// assert_eq!(format_bytes(1.5 * 1024.0 * 1024.0), "1.50 mb");
/// assert_eq!(format_bytes(7.126), "7.13 bytes");
/// ```
pub fn format_bytes(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "-" } else { "" };
    let abs = bytes.abs();
    if abs > MIB {
        format!("{sign}{:.2} mb", abs / MIB)
    } else if abs > KIB {
        format!("{sign}{:.2} kb", abs / KIB)
    } else if abs.fract() == 0.0 {
        format!("{sign}{abs} bytes")
    } else {
        format!("{sign}{abs:.2} bytes")
    }
}
