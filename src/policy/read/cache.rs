//! `[cache]`: whether verified decisions are cached, and how many and how many bytes at most.

use std::num::{NonZeroU64, NonZeroUsize};

use toml::de::DeValue;

use super::or_default;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::CacheSettings;
use crate::policy::reader::{Reader, Value};

/// The most decisions a policy may ask the cache to hold.
const MAX_ENTRIES: u64 = 10_000_000;
/// The fewest bytes a policy may give the cache: a few of the largest tokens.
const MIN_BYTES: u64 = 64 << 10;
/// The most bytes a policy may give the cache.
const MAX_BYTES: u64 = 64 << 30;

/// Reads `[cache]`: `Some(None)` when it is there but disabled.
pub(super) fn read_cache(r: &mut Reader, v: &Value<'_>) -> Option<Option<CacheSettings>> {
    let mut t = r.table(v, "[cache]")?;
    // Required: a table that only sizes the cache must not leave it silently off (or on).
    let enabled = match t.get("enabled") {
        Some(v) => r.bool(v, "cache.enabled"),
        None => {
            t.missing("enabled", "true");
            None
        }
    };
    let max_entries = or_default(
        t.get("max_entries"),
        CacheSettings::DEFAULT_MAX_ENTRIES as u64,
        |v| r.count(v, "cache.max_entries", 1, MAX_ENTRIES),
    );
    let max_bytes = or_default(t.get("max_bytes"), CacheSettings::DEFAULT_MAX_BYTES, |v| {
        read_bytes(r, v, "cache.max_bytes")
    });
    t.finish(r);
    let max_entries = NonZeroUsize::new(usize::try_from(max_entries?).ok()?)?;
    let max_bytes = NonZeroU64::new(max_bytes?)?;
    Some(enabled?.then(|| CacheSettings::new(max_entries, max_bytes)))
}

/// A size in bytes: an integer, or a string such as `512KiB`, `16MiB`, `1GiB`.
fn read_bytes(r: &mut Reader, value: &Value<'_>, what: &str) -> Option<u64> {
    const HELP: &str = "write bytes (`16777216`) or a size such as `512KiB`, `16MiB`, `1GiB`";
    let range = || format!("between {} and {}", show(MIN_BYTES), show(MAX_BYTES));
    match value.get_ref() {
        DeValue::Integer(_) => r.count(value, what, MIN_BYTES, MAX_BYTES),
        DeValue::String(_) => {
            let s = r.string(value, what)?;
            match parse_bytes(&s.value) {
                Some(n) if (MIN_BYTES..=MAX_BYTES).contains(&n) => Some(n),
                Some(_) => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        s.span,
                        format!("`{what}` must be {}, found `{}`", range(), s.value),
                        format!("pick a size {}", range()),
                    );
                    None
                }
                None => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        s.span,
                        format!("`{what}` is not a size: `{}`", s.value),
                        HELP,
                    );
                    None
                }
            }
        }
        _ => {
            r.wrong_type(what, "a size", "\"16MiB\"", value);
            None
        }
    }
}

/// `16MiB` → 16777216: whole digits, then one of `B`, `KiB`, `MiB`, `GiB` (binary units only:
/// `MB` could mean either, so it is refused rather than guessed).
fn parse_bytes(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let shift = match unit {
        "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

/// A size for messages, in the largest binary unit that divides it.
fn show(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("16MiB"), Some(16 << 20));
        assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("4096B"), Some(4096));
        assert_eq!(parse_bytes("16MB"), None);
        assert_eq!(parse_bytes("16 MiB"), None);
        assert_eq!(parse_bytes("MiB"), None);
        assert_eq!(parse_bytes("16"), None);
        assert_eq!(parse_bytes("-1MiB"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
        assert_eq!(parse_bytes("17179869184GiB"), None);
        assert_eq!(show(64 << 10), "64KiB");
        assert_eq!(show(64 << 30), "64GiB");
        assert_eq!(show(1000), "1000B");
    }
}
