//! Typed flag values shared by the subcommands: durations, sizes and the provider name.

use std::str::FromStr;
use std::time::Duration;

/// A duration flag: `500ms`, `30s`, `2m`, or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 500ms, 30s, 2m"))
    }
}

/// A size in bytes: `67108864`, or a Kubernetes-style quantity (`64Mi`, `512Ki`, `1Gi`, `100M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const UNITS: [(&str, u64); 6] =
            [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000)];
        let t = s.trim();
        let (digits, unit) =
            UNITS.iter().find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|d| (d, *unit))).unwrap_or((t, 1));
        let bad = || format!("invalid size {s:?}; use bytes or e.g. 512Ki, 64Mi, 1Gi");
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let bytes = n.checked_mul(unit).and_then(|b| usize::try_from(b).ok()).ok_or_else(bad)?;
        Ok(ByteSize(bytes))
    }
}

/// A provider name (`--provider-name`): the socket is `<dir>/<name>.sock`.
pub(crate) fn parse_provider_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok && !s.starts_with('.') {
        Ok(s.to_string())
    } else {
        Err(format!("provider name {s:?}: use letters, digits, '-', '_' or '.'"))
    }
}
