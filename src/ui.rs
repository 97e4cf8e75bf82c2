//! Operator-facing output: timestamped progress lines on stderr (results go to stdout).
//! `-q` silences them; diagnostics for developers go through `tracing` (`-v`, `RUST_LOG`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// `HH:MM:SS` (UTC) of now.
pub fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, (day % 3600) / 60, day % 60)
}

/// Prints one progress line to stderr.
pub fn say(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{}  {msg}", clock());
    }
}

/// Human byte counts: 1.5 MB, 640 MB, 2.1 GB.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_human() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1_500_000), "1.5 MB");
        assert_eq!(super::bytes(2_100_000_000), "2.1 GB");
    }

    #[test]
    fn clock_has_fixed_shape() {
        let c = super::clock();
        assert_eq!(c.len(), 8);
        assert_eq!(&c[2..3], ":");
    }
}
