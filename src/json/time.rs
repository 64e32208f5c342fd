//! Instants, exact to the nanosecond: the clock, `--now`, and the NumericDates of a token
//! (RFC 7519 §2), read exactly from the text of their JSON numbers.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::number::{Decimal, digits_value};

/// Nanoseconds in one second.
const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// 2^63 seconds, in nanoseconds: the smallest magnitude out of a NumericDate's range.
const LIMIT_NANOS: i128 = (1_i128 << 63) * NANOS_PER_SECOND;

/// A point in time, exact to the nanosecond, counted from the Unix epoch.
///
/// The clock and `--now` give whole nanoseconds. A token's NumericDate may be finer
/// (`1.0000000001`): it is then held as the nanosecond below it, marked as lying strictly inside
/// that nanosecond, so it compares greater than that nanosecond and less than the next one; two
/// such dates inside the same nanosecond compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime {
    /// floor(value × 10^9): nanoseconds since the epoch, rounded toward negative infinity.
    nanos: i128,
    /// Whether the value has nonzero digits below one nanosecond, so that it lies strictly
    /// between `nanos` and `nanos + 1` (only a NumericDate read from a token). Declared after
    /// `nanos`, so the derived order is the order of the values.
    inexact: bool,
}

/// Why a JSON number is not a usable NumericDate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumericDateError {
    /// The value's magnitude is at least 2^63 seconds (e.g. `1e400`, `1e19`,
    /// `-1e19`). Also returned, defensively, for text that is not a JSON number
    /// at all, which callers never pass.
    OutOfRange,
}

impl fmt::Display for NumericDateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumericDateError::OutOfRange => {
                f.write_str("number is out of range for a date (at least 2^63 seconds from 1970)")
            }
        }
    }
}

impl std::error::Error for NumericDateError {}

impl UnixTime {
    /// The system clock's current time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        // |secs| < 2^63, times 10^9 < 2^93: never overflows an i128.
        Self::exact(i128::from(secs).wrapping_mul(NANOS_PER_SECOND))
    }

    /// A [`SystemTime`], including times before the epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        Self::exact(match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
            Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
        })
    }

    /// Parses seconds written as `1767225600` or `1767225600.25` (at most nine decimals).
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(frac)
            || frac.len() > 9
            || digits.ends_with('.')
        {
            return None;
        }
        let secs: i64 = whole.parse().ok()?;
        let nanos: i128 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        let value = i128::from(secs) * NANOS_PER_SECOND + nanos;
        Some(Self::exact(if negative { -value } else { value }))
    }

    /// Reads a NumericDate, in seconds since the Unix epoch, exactly from a
    /// JSON number text (already valid against the RFC 8259 grammar).
    pub(crate) fn from_numeric_date(number: &str) -> Result<UnixTime, NumericDateError> {
        // Most NumericDates are whole seconds: read those without the general decimal.
        match small_integer(number) {
            Some(secs) => Ok(UnixTime::from_secs(secs)),
            None => Self::from_decimal(number),
        }
    }

    /// [`UnixTime::from_numeric_date`] for any number, through the general decimal reading.
    fn from_decimal(number: &str) -> Result<UnixTime, NumericDateError> {
        let decimal = Decimal::parse(number).ok_or(NumericDateError::OutOfRange)?;
        if decimal.digits.is_empty() {
            return Ok(UnixTime::exact(0));
        }
        let tiny = UnixTime {
            nanos: if decimal.negative { -1 } else { 0 },
            inexact: true,
        };
        let Some(exponent) = decimal.exponent.to_i128() else {
            // |exponent| >= 10^37: astronomically large, or far below 1 ns.
            return if decimal.exponent.negative {
                Ok(tiny)
            } else {
                Err(NumericDateError::OutOfRange)
            };
        };
        let count = decimal.digits.len() as i128;
        // The magnitude is at least 10^(count + exponent - 1) seconds, so 20 or
        // more integer digits means at least 10^19 > 2^63 seconds. Below that the
        // magnitude is under 10^28 ns, and every number here fits an i128.
        if count.saturating_add(exponent) >= 20 {
            return Err(NumericDateError::OutOfRange);
        }
        let shift = exponent + 9;
        let (truncated, inexact) = if shift >= 0 {
            let scale = u32::try_from(shift)
                .ok()
                .and_then(|shift| 10_i128.checked_pow(shift));
            let nanos = digits_value(&decimal.digits)
                .zip(scale)
                .and_then(|(value, scale)| value.checked_mul(scale));
            (nanos.ok_or(NumericDateError::OutOfRange)?, false)
        } else {
            // Only the first `count + shift` digits are at or above 1 ns; the
            // last digit is nonzero and below 1 ns, so the value is inexact.
            let keep = count + shift;
            if keep <= 0 {
                return Ok(tiny);
            }
            let kept = usize::try_from(keep)
                .ok()
                .and_then(|keep| decimal.digits.get(..keep))
                .and_then(digits_value);
            (kept.ok_or(NumericDateError::OutOfRange)?, true)
        };
        // A value strictly between `truncated` and `truncated + 1` ns has a
        // magnitude of at least LIMIT_NANOS exactly when `truncated` does.
        if truncated >= LIMIT_NANOS {
            return Err(NumericDateError::OutOfRange);
        }
        let nanos = match (decimal.negative, inexact) {
            (false, _) => truncated,
            (true, false) => -truncated,
            (true, true) => -truncated - 1,
        };
        Ok(UnixTime { nanos, inexact })
    }

    /// The instant `nanos` nanoseconds from the epoch.
    fn exact(nanos: i128) -> Self {
        Self {
            nanos,
            inexact: false,
        }
    }

    /// This instant `secs` seconds later.
    pub(crate) fn plus_secs(self, secs: u64) -> Self {
        Self {
            nanos: self.nanos + i128::from(secs) * NANOS_PER_SECOND,
            ..self
        }
    }

    /// This instant `secs` seconds earlier.
    pub(crate) fn minus_secs(self, secs: u64) -> Self {
        Self {
            nanos: self.nanos - i128::from(secs) * NANOS_PER_SECOND,
            ..self
        }
    }

    /// Whole seconds, rounded toward negative infinity (for reporting), e.g. 1700000000.9 -> 1700000000
    pub(crate) fn seconds_floor(&self) -> i64 {
        let seconds = self.nanos.div_euclid(NANOS_PER_SECOND);
        i64::try_from(seconds).unwrap_or(if seconds < 0 { i64::MIN } else { i64::MAX })
    }
}

impl fmt::Display for UnixTime {
    /// The value in seconds, exact up to nanoseconds, with no trailing zeros:
    /// `1700000000`, `1700000000.5`, `-1.25`. A NumericDate finer than a nanosecond is shown
    /// truncated toward zero to nine decimals and followed by `…`, e.g.
    /// `1.000000000…` for 1.0000000001 and `-0.000000000…` for -1e-10.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.nanos < 0;
        let magnitude = if negative && self.inexact {
            (self.nanos + 1).unsigned_abs()
        } else {
            self.nanos.unsigned_abs()
        };
        let per_second = NANOS_PER_SECOND.unsigned_abs();
        let (seconds, nanos) = (magnitude / per_second, magnitude % per_second);
        if negative {
            f.write_str("-")?;
        }
        write!(f, "{seconds}")?;
        if self.inexact {
            write!(f, ".{nanos:09}…")
        } else if nanos != 0 {
            let fraction = format!("{nanos:09}");
            write!(f, ".{}", fraction.trim_end_matches('0'))
        } else {
            Ok(())
        }
    }
}

/// The value of a JSON integer of at most 18 digits (so it fits an `i64`) in the RFC 8259
/// grammar (`-?(0|[1-9][0-9]*)`); `None` for anything else, which the general reading handles.
fn small_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty()
        || bytes.len() > 18
        || !bytes.iter().all(u8::is_ascii_digit)
        || (bytes.len() > 1 && bytes.first() == Some(&b'0'))
    {
        return None;
    }
    // At most 18 digits: below 10^18 < 2^63, so no step overflows (wrapping says so, sparing
    // the overflow checks of a release build).
    let value = bytes.iter().fold(0_i64, |value, digit| {
        value.wrapping_mul(10).wrapping_add(i64::from(digit - b'0'))
    });
    Some(if negative { -value } else { value })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    #[test]
    fn whole_seconds_read_as_the_general_reading_reads_them() {
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "1795668333",
            "-1795668333",
            "999999999999999999",
            "-999999999999999999",
            "9999999999999999999",
            "01",
            "-",
            "",
            "1.0",
            "1e3",
        ] {
            assert_eq!(
                UnixTime::from_numeric_date(text),
                UnixTime::from_decimal(text),
                "{text:?}"
            );
        }
    }

    use std::cmp::Ordering;

    use super::*;
    use crate::json::number::{is_integer, numbers_equal};

    const SECOND: i128 = 1_000_000_000;

    fn date(text: &str) -> UnixTime {
        UnixTime::from_numeric_date(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parts(text: &str) -> (i128, bool) {
        let d = date(text);
        (d.nanos, d.inexact)
    }

    /// Comparison with an instant given in whole nanoseconds (as `--now` and the clock give).
    trait CmpNanos {
        fn cmp_nanos(&self, t: i128) -> Ordering;
    }

    impl CmpNanos for UnixTime {
        fn cmp_nanos(&self, t: i128) -> Ordering {
            self.cmp(&UnixTime {
                nanos: t,
                inexact: false,
            })
        }
    }

    /// 2^63 seconds, as a JSON number text.
    const TWO_POW_63: &str = "9223372036854775808";

    #[test]
    fn examples_from_the_specification() {
        assert_eq!(parts("1700000000"), (1_700_000_000 * SECOND, false));
        assert_eq!(parts("1700000000.5"), (1_700_000_000_500_000_000, false));
        assert_eq!(parts("123456789e-5"), (1_234_567_890_000, false));
        assert_eq!(parts("-0.5"), (-500_000_000, false));
        assert_eq!(parts("-1e-10"), (-1, true));
        assert_eq!(parts("1e-400"), (0, true));
        assert_eq!(parts("0.000e99999999999999999999"), (0, false));
        assert_eq!(parts("-0"), (0, false));
        for out in ["1e400", "1e19", "-1e19"] {
            assert_eq!(
                UnixTime::from_numeric_date(out),
                Err(NumericDateError::OutOfRange),
                "{out}"
            );
        }
    }

    #[test]
    fn zero_in_every_spelling() {
        for zero in [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "0e0",
            "0E+5",
            "0e-5",
            "-0.0e-99999999999999999999",
            "0.000e99999999999999999999999999999999999999999999999999",
        ] {
            assert_eq!(parts(zero), (0, false), "{zero}");
            assert_eq!(date(zero).to_string(), "0");
        }
    }

    #[test]
    fn boundary_comparisons() {
        let d = date("1700000000.5");
        assert_eq!(d.cmp_nanos(1_700_000_000_500_000_000), Ordering::Equal);
        assert_eq!(d.cmp_nanos(1_700_000_000_500_000_001), Ordering::Less);
        assert_eq!(d.cmp_nanos(1_700_000_000_499_999_999), Ordering::Greater);

        let d = date("1700000000");
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND), Ordering::Equal);
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND - 1), Ordering::Greater);
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND + 1), Ordering::Less);

        // Just above a whole nanosecond: greater than it, less than the next.
        let d = date("1700000000.0000000001");
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND), Ordering::Greater);
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND + 1), Ordering::Less);

        // Just below a whole second.
        let d = date("1699999999.9999999999");
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND), Ordering::Less);
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND - 1), Ordering::Greater);

        // Negative, inexact: -1e-10 lies strictly between -1 ns and 0.
        let d = date("-1e-10");
        assert_eq!(d.cmp_nanos(0), Ordering::Less);
        assert_eq!(d.cmp_nanos(-1), Ordering::Greater);

        let d = date("1e-400");
        assert_eq!(d.cmp_nanos(0), Ordering::Greater);
        assert_eq!(d.cmp_nanos(1), Ordering::Less);
    }

    #[test]
    fn nine_versus_ten_fractional_digits() {
        assert_eq!(parts("1.000000001"), (SECOND + 1, false));
        assert_eq!(parts("1.0000000010"), (SECOND + 1, false));
        assert_eq!(parts("1.0000000001"), (SECOND, true));
        assert_eq!(parts("1.0000000000"), (SECOND, false));
        assert_eq!(parts("1.999999999"), (2 * SECOND - 1, false));
        assert_eq!(parts("1.9999999999"), (2 * SECOND - 1, true));
        assert_eq!(parts("-1.000000001"), (-SECOND - 1, false));
        assert_eq!(parts("-1.0000000001"), (-SECOND - 1, true));
        assert_eq!(parts("-1.0000000000"), (-SECOND, false));
        assert_eq!(parts("0.000000001"), (1, false));
        assert_eq!(parts("0.0000000001"), (0, true));
        assert_eq!(parts("-0.000000001"), (-1, false));
        assert_eq!(parts("-0.0000000001"), (-1, true));
        // Many digits, the nonzero one far below a nanosecond.
        let long = format!("1.{}1", "0".repeat(1000));
        assert_eq!(parts(&long), (SECOND, true));
        let long = format!("1.{}", "0".repeat(1000));
        assert_eq!(parts(&long), (SECOND, false));
    }

    #[test]
    fn exponents() {
        assert_eq!(parts("1e9"), (SECOND * SECOND, false));
        assert_eq!(parts("1E+9"), (SECOND * SECOND, false));
        assert_eq!(parts("17e8"), (1_700_000_000 * SECOND, false));
        assert_eq!(parts("0.17e10"), (1_700_000_000 * SECOND, false));
        assert_eq!(parts("1700000000000e-3"), (1_700_000_000 * SECOND, false));
        assert_eq!(parts("1e-9"), (1, false));
        assert_eq!(parts("1e-10"), (0, true));
        assert_eq!(parts("15e-10"), (1, true));
        assert_eq!(parts("1e0"), (SECOND, false));
        assert_eq!(parts("1e-0"), (SECOND, false));
        assert_eq!(
            parts("1e00000000000000000000000000000000000000000009"),
            (SECOND * SECOND, false)
        );
        // A long mantissa brought back into range by a large negative exponent.
        let text = format!("0.{}1e1010", "0".repeat(1000));
        assert_eq!(parts(&text), (SECOND * SECOND, false));
        let text = format!("1{}e-1000", "0".repeat(1000));
        assert_eq!(parts(&text), (SECOND, false));
        let text = format!("1{}5e-1001", "0".repeat(1000));
        assert_eq!(parts(&text), (SECOND, true));
    }

    #[test]
    fn huge_and_tiny_exponents() {
        for out in [
            "1e400",
            "-1e400",
            "1e20",
            "1e99999999999999999999999999999999999",
            "1e999999999999999999999999999999999999999999",
            "-1e999999999999999999999999999999999999999999",
            "0.0001e999999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                UnixTime::from_numeric_date(out),
                Err(NumericDateError::OutOfRange),
                "{out}"
            );
        }
        assert_eq!(parts("1e-99999999999999999999999999999999999"), (0, true));
        assert_eq!(
            parts("1e-999999999999999999999999999999999999999999"),
            (0, true)
        );
        assert_eq!(
            parts("-1e-999999999999999999999999999999999999999999"),
            (-1, true)
        );
        assert_eq!(
            parts("123456789e-999999999999999999999999999999999999999999"),
            (0, true)
        );
    }

    #[test]
    fn range_limits() {
        let max = i128::from(i64::MAX);
        assert_eq!(parts("9223372036854775807"), (max * SECOND, false));
        assert_eq!(parts("-9223372036854775807"), (-max * SECOND, false));
        assert_eq!(
            parts("9223372036854775807.999999999"),
            (max * SECOND + 999_999_999, false)
        );
        assert_eq!(
            parts("9223372036854775807.9999999999999"),
            (max * SECOND + 999_999_999, true)
        );
        assert_eq!(
            parts("-9223372036854775807.9999999999999"),
            (-max * SECOND - SECOND, true)
        );
        for out in [
            TWO_POW_63,
            "-9223372036854775808",
            "9223372036854775808.0000000001",
            "9.223372036854775808e18",
            "92233720368547758080e-1",
            "9.99e18",
            "99999999999999999999",
        ] {
            assert_eq!(
                UnixTime::from_numeric_date(out),
                Err(NumericDateError::OutOfRange),
                "{out}"
            );
        }
        assert_eq!(date("9223372036854775807.9").seconds_floor(), i64::MAX);
        assert_eq!(date("-9223372036854775807.5").seconds_floor(), i64::MIN);
        assert_eq!(date("-9223372036854775807").seconds_floor(), i64::MIN + 1);
    }

    #[test]
    fn negative_values() {
        assert_eq!(parts("-1"), (-SECOND, false));
        assert_eq!(parts("-1.25"), (-1_250_000_000, false));
        assert_eq!(parts("-1700000000.5"), (-1_700_000_000_500_000_000, false));
        assert_eq!(parts("-1e-400"), (-1, true));
        assert_eq!(parts("-12.3456789012"), (-12_345_678_902, true));
        let d = date("-0.5");
        assert_eq!(d.cmp_nanos(-500_000_000), Ordering::Equal);
        assert_eq!(d.cmp_nanos(0), Ordering::Less);
        assert_eq!(d.seconds_floor(), -1);
    }

    #[test]
    fn seconds_floor_rounds_down() {
        assert_eq!(date("1700000000.9").seconds_floor(), 1_700_000_000);
        assert_eq!(date("1700000000").seconds_floor(), 1_700_000_000);
        assert_eq!(date("1699999999.9999999999").seconds_floor(), 1_699_999_999);
        assert_eq!(date("0").seconds_floor(), 0);
        assert_eq!(date("1e-400").seconds_floor(), 0);
        assert_eq!(date("-1e-400").seconds_floor(), -1);
        assert_eq!(date("-1").seconds_floor(), -1);
        assert_eq!(date("-1.5").seconds_floor(), -2);
        assert_eq!(date("-1.0000000000001").seconds_floor(), -2);
    }

    #[test]
    fn from_seconds() {
        let d = UnixTime::from_secs(1_700_000_000);
        assert_eq!(d, date("1700000000"));
        assert_eq!(d, date("1.7e9"));
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND), Ordering::Equal);
        assert_eq!(d.seconds_floor(), 1_700_000_000);
        assert_eq!(UnixTime::from_secs(-3), date("-3"));
        assert_eq!(UnixTime::from_secs(i64::MAX).seconds_floor(), i64::MAX);
        assert_eq!(UnixTime::from_secs(i64::MIN).seconds_floor(), i64::MIN);
        assert_eq!(
            UnixTime::from_secs(i64::MIN).to_string(),
            "-9223372036854775808"
        );
        assert_ne!(UnixTime::from_secs(1), date("1.0000000001"));
    }

    #[test]
    fn display() {
        for (text, shown) in [
            ("1700000000", "1700000000"),
            ("1700000000.5", "1700000000.5"),
            ("1700000000.50", "1700000000.5"),
            ("-1.25", "-1.25"),
            ("-0.5", "-0.5"),
            ("0.000000001", "0.000000001"),
            ("-0.000000001", "-0.000000001"),
            ("1.7e9", "1700000000"),
            ("123456789e-5", "1234.56789"),
            ("1.0000000001", "1.000000000…"),
            ("1.9999999999", "1.999999999…"),
            ("-1.9999999999", "-1.999999999…"),
            ("-1e-10", "-0.000000000…"),
            ("1e-400", "0.000000000…"),
            ("-0", "0"),
            (
                "9223372036854775807.9999999999",
                "9223372036854775807.999999999…",
            ),
        ] {
            assert_eq!(date(text).to_string(), shown, "{text}");
        }
        assert_eq!(
            NumericDateError::OutOfRange.to_string(),
            "number is out of range for a date (at least 2^63 seconds from 1970)"
        );
    }

    #[test]
    fn invalid_text_is_handled_without_panicking() {
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "NaN", "1x", " 1", "1 ", "--1", "１",
        ] {
            assert_eq!(
                UnixTime::from_numeric_date(bad),
                Err(NumericDateError::OutOfRange),
                "{bad:?}"
            );
            assert!(!is_integer(bad), "{bad:?}");
            assert!(!numbers_equal(bad, bad), "{bad:?}");
            assert!(!numbers_equal(bad, "1"), "{bad:?}");
        }
    }

    #[test]
    fn generated_spellings_agree() {
        // Every spelling of the same value must give the same date and compare
        // equal; the expected nanoseconds come from plain integer arithmetic.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            // value = mantissa × 10^-scale seconds
            let negative = next() % 2 == 0;
            let mantissa = i128::from(next() % 10_000_000_000_000);
            let scale = (next() % 15) as u32;
            let signed = if negative { -mantissa } else { mantissa };
            let digits = mantissa.to_string();
            let sign = if negative { "-" } else { "" };
            let mut spellings = vec![format!("{sign}{digits}e-{scale}")];
            // Decimal point placed by hand.
            let padded = format!("{digits:0>width$}", width = scale as usize + 1);
            let (int, frac) = padded.split_at(padded.len() - scale as usize);
            if scale > 0 {
                spellings.push(format!("{sign}{int}.{frac}"));
                spellings.push(format!("{sign}{int}.{frac}000"));
                spellings.push(format!("{sign}{int}.{frac}e0"));
            } else {
                spellings.push(format!("{sign}{int}"));
                spellings.push(format!("{sign}{int}.0"));
            }
            spellings.push(format!("{sign}{digits}00E-{}", scale + 2));
            spellings.push(format!(
                "{sign}0.{digits}e{}",
                digits.len() as i64 - i64::from(scale)
            ));
            // Expected floor(value × 10^9).
            let expected = if scale <= 9 {
                (signed * 10_i128.pow(9 - scale), false)
            } else {
                let divisor = 10_i128.pow(scale - 9);
                (signed.div_euclid(divisor), signed.rem_euclid(divisor) != 0)
            };
            let is_int = signed % 10_i128.pow(scale) == 0;
            for spelling in &spellings {
                assert_eq!(parts(spelling), expected, "{spelling}");
                assert!(
                    numbers_equal(spelling, &spellings[0]),
                    "{spelling} == {}",
                    spellings[0]
                );
                assert_eq!(is_integer(spelling), is_int, "{spelling}");
            }
            let off_by_one = format!("{sign}{}e-{scale}", mantissa + 1);
            assert!(!numbers_equal(&off_by_one, &spellings[0]));
        }
    }

    #[test]
    fn unix_time_parses_and_prints_exactly() {
        assert_eq!(
            UnixTime::parse("1767225600"),
            Some(UnixTime::from_secs(1_767_225_600))
        );
        assert_eq!(
            UnixTime::parse("1.5").map(|t| t.to_string()),
            Some("1.5".into())
        );
        assert_eq!(
            UnixTime::parse("-1.25").map(|t| t.to_string()),
            Some("-1.25".into())
        );
        for bad in ["", "1.", ".5", "1e3", "abc", "1.0000000001", " 1"] {
            assert_eq!(UnixTime::parse(bad), None, "{bad}");
        }
    }
}
