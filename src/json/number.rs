//! Exact decimal arithmetic on JSON number texts, with no floating point anywhere.
//!
//! Every number text is reduced to one canonical form: a sign, its significant
//! digits without leading or trailing zeros, and a decimal exponent held as an
//! exact integer of any size. Work is linear in the length of the text; nothing
//! is ever allocated in proportion to the value of an exponent.

use std::cmp::Ordering;
use std::fmt;

/// An exact point in time with nanosecond resolution: nanoseconds since the Unix epoch.
pub(crate) type Nanos = i128;

/// Nanoseconds in one second.
const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// 2^63 seconds, in nanoseconds: the smallest magnitude out of a NumericDate's range.
const LIMIT_NANOS: i128 = (1_i128 << 63) * NANOS_PER_SECOND;

/// A NumericDate (RFC 7519) read exactly from a JSON number.
///
/// Two dates that fall strictly inside the same nanosecond compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumericDate {
    /// floor(value × 10^9): the value in nanoseconds, rounded toward negative infinity.
    floor: i128,
    /// Whether the value has nonzero digits below one nanosecond, so that it lies
    /// strictly between `floor` and `floor + 1` nanoseconds.
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

impl NumericDate {
    /// Reads a NumericDate, in seconds since the Unix epoch, exactly from a
    /// JSON number text (already valid against the RFC 8259 grammar).
    pub(crate) fn parse(number: &str) -> Result<NumericDate, NumericDateError> {
        let decimal = Decimal::parse(number).ok_or(NumericDateError::OutOfRange)?;
        if decimal.digits.is_empty() {
            return Ok(NumericDate {
                floor: 0,
                inexact: false,
            });
        }
        let tiny = NumericDate {
            floor: if decimal.negative { -1 } else { 0 },
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
        let floor = match (decimal.negative, inexact) {
            (false, _) => truncated,
            (true, false) => -truncated,
            (true, true) => -truncated - 1,
        };
        Ok(NumericDate { floor, inexact })
    }

    #[cfg(test)]
    /// The NumericDate of exactly `secs` seconds since the Unix epoch.
    pub(crate) fn from_seconds(secs: i64) -> NumericDate {
        NumericDate {
            floor: i128::from(secs) * NANOS_PER_SECOND,
            inexact: false,
        }
    }

    /// Exact three-way comparison with an instant given in whole nanoseconds.
    pub(crate) fn cmp_nanos(&self, t: Nanos) -> Ordering {
        match self.floor.cmp(&t) {
            Ordering::Equal if self.inexact => Ordering::Greater,
            ordering => ordering,
        }
    }

    /// Whole seconds, rounded toward negative infinity (for reporting), e.g. 1700000000.9 -> 1700000000
    pub(crate) fn seconds_floor(&self) -> i64 {
        let seconds = self.floor.div_euclid(NANOS_PER_SECOND);
        i64::try_from(seconds).unwrap_or(if seconds < 0 { i64::MIN } else { i64::MAX })
    }
}

impl fmt::Display for NumericDate {
    /// The value in seconds, exact up to nanoseconds, with no trailing zeros:
    /// `1700000000`, `1700000000.5`, `-1.25`. An inexact value is shown
    /// truncated toward zero to nine decimals and followed by `…`, e.g.
    /// `1.000000000…` for 1.0000000001 and `-0.000000000…` for -1e-10.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.floor < 0;
        let magnitude = if negative && self.inexact {
            (self.floor + 1).unsigned_abs()
        } else {
            self.floor.unsigned_abs()
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

/// Exact numeric equality of two JSON number texts (`1`, `1.0`, `10e-1`, `0.1e1` are all equal; `-0` == `0`).
///
/// Text that is not a JSON number is equal to nothing.
pub(crate) fn numbers_equal(a: &str, b: &str) -> bool {
    match (Decimal::parse(a), Decimal::parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Whether a JSON number text denotes an integer (`1`, `1.0`, `1e3`, `1500e-3` is not; `-0` is).
///
/// Text that is not a JSON number is not an integer.
pub(crate) fn is_integer(number: &str) -> bool {
    Decimal::parse(number).is_some_and(|d| d.digits.is_empty() || !d.exponent.negative)
}

/// The value of a short run of decimal digit values (0–9), if it fits an i128.
fn digits_value(digits: &[u8]) -> Option<i128> {
    digits.iter().try_fold(0_i128, |value, &digit| {
        value.checked_mul(10)?.checked_add(i128::from(digit))
    })
}

/// A JSON number in canonical form: (-1)^negative × digits × 10^exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    /// Whether the value is below zero (never set for zero).
    negative: bool,
    /// Significant digit values (0–9), most significant first, without leading
    /// or trailing zeros; empty for zero.
    digits: Vec<u8>,
    /// Power of ten to scale `digits` by; zero for zero.
    exponent: BigInt,
}

impl Decimal {
    /// The canonical form of a JSON number text, or `None` if the text does not
    /// follow `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    fn parse(text: &str) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let digits_from = |mut p: usize| {
            while bytes.get(p).is_some_and(u8::is_ascii_digit) {
                p += 1;
            }
            p
        };
        let negative = bytes.first() == Some(&b'-');
        let int_start = usize::from(negative);
        let mut pos = match bytes.get(int_start) {
            Some(b'0') => int_start + 1,
            Some(b'1'..=b'9') => digits_from(int_start + 1),
            _ => return None,
        };
        let int_digits = bytes.get(int_start..pos)?;
        let mut fraction_digits: &[u8] = &[];
        if bytes.get(pos) == Some(&b'.') {
            let end = digits_from(pos + 1);
            fraction_digits = bytes.get(pos + 1..end).filter(|d| !d.is_empty())?;
            pos = end;
        }
        let mut exponent = BigInt::zero();
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            let exponent_negative = bytes.get(pos) == Some(&b'-');
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            let end = digits_from(pos);
            let exponent_digits = bytes.get(pos..end).filter(|d| !d.is_empty())?;
            exponent = BigInt::from_ascii(exponent_negative, exponent_digits);
            pos = end;
        }
        if pos != bytes.len() {
            return None;
        }
        let mut digits: Vec<u8> = int_digits
            .iter()
            .chain(fraction_digits)
            .map(|b| b - b'0')
            .skip_while(|&d| d == 0)
            .collect();
        let trailing_zeros = digits.iter().rev().take_while(|&&d| d == 0).count();
        digits.truncate(digits.len() - trailing_zeros);
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exponent: BigInt::zero(),
            });
        }
        // Dropping trailing zeros multiplies by 10 each; the fraction digits divide.
        let adjustment = trailing_zeros as i128 - fraction_digits.len() as i128;
        Some(Decimal {
            negative,
            digits,
            exponent: exponent.add(&BigInt::from_i128(adjustment)),
        })
    }
}

/// An integer of any size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BigInt {
    /// Whether the value is below zero (never set for zero).
    negative: bool,
    /// Digit values (0–9) of the magnitude, most significant first, without
    /// leading zeros; empty for zero.
    magnitude: Vec<u8>,
}

impl BigInt {
    /// Zero.
    fn zero() -> BigInt {
        BigInt {
            negative: false,
            magnitude: Vec::new(),
        }
    }

    /// The integer with sign `negative` and ASCII decimal digits `ascii`.
    fn from_ascii(negative: bool, ascii: &[u8]) -> BigInt {
        BigInt::new(negative, ascii.iter().map(|b| b - b'0').collect())
    }

    /// `value` as a BigInt.
    fn from_i128(value: i128) -> BigInt {
        let digits = value.unsigned_abs().to_string();
        BigInt::from_ascii(value < 0, digits.as_bytes())
    }

    /// A normalized BigInt from a sign and digit values that may have leading zeros.
    fn new(negative: bool, mut magnitude: Vec<u8>) -> BigInt {
        let leading_zeros = magnitude.iter().take_while(|&&d| d == 0).count();
        magnitude.drain(..leading_zeros);
        BigInt {
            negative: negative && !magnitude.is_empty(),
            magnitude,
        }
    }

    /// The value, if it has at most 37 digits (so that sums with lengths of
    /// text cannot overflow an i128).
    fn to_i128(&self) -> Option<i128> {
        if self.magnitude.len() > 37 {
            return None;
        }
        let magnitude = digits_value(&self.magnitude)?;
        Some(if self.negative { -magnitude } else { magnitude })
    }

    /// `self + other`, exactly.
    fn add(&self, other: &BigInt) -> BigInt {
        let (a, b) = (&self.magnitude, &other.magnitude);
        if self.negative == other.negative {
            return BigInt::new(self.negative, magnitude_add(a, b));
        }
        match compare_magnitudes(a, b) {
            Ordering::Equal => BigInt::zero(),
            Ordering::Greater => BigInt::new(self.negative, magnitude_sub(a, b)),
            Ordering::Less => BigInt::new(other.negative, magnitude_sub(b, a)),
        }
    }
}

/// Compares two magnitudes without leading zeros.
fn compare_magnitudes(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `a + b` for digit magnitudes, most significant first (result may have a leading zero).
fn magnitude_add(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut sum = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut a, mut b) = (a.iter().rev(), b.iter().rev());
    let mut carry = 0;
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        let digit = x.copied().unwrap_or(0) + y.copied().unwrap_or(0) + carry;
        sum.push(digit % 10);
        carry = digit / 10;
    }
    sum.push(carry);
    sum.reverse();
    sum
}

/// `a - b` for digit magnitudes with `a >= b`, most significant first (result
/// may have leading zeros).
fn magnitude_sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut difference = Vec::with_capacity(a.len());
    let mut b = b.iter().rev();
    let mut borrow = 0;
    for &x in a.iter().rev() {
        let y = b.next().copied().unwrap_or(0) + borrow;
        if x >= y {
            difference.push(x - y);
            borrow = 0;
        } else {
            difference.push(x + 10 - y);
            borrow = 1;
        }
    }
    difference.reverse();
    difference
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    fn date(text: &str) -> NumericDate {
        NumericDate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parts(text: &str) -> (i128, bool) {
        let d = date(text);
        (d.floor, d.inexact)
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
                NumericDate::parse(out),
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
                NumericDate::parse(out),
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
                NumericDate::parse(out),
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
        let d = NumericDate::from_seconds(1_700_000_000);
        assert_eq!(d, date("1700000000"));
        assert_eq!(d, date("1.7e9"));
        assert_eq!(d.cmp_nanos(1_700_000_000 * SECOND), Ordering::Equal);
        assert_eq!(d.seconds_floor(), 1_700_000_000);
        assert_eq!(NumericDate::from_seconds(-3), date("-3"));
        assert_eq!(
            NumericDate::from_seconds(i64::MAX).seconds_floor(),
            i64::MAX
        );
        assert_eq!(
            NumericDate::from_seconds(i64::MIN).seconds_floor(),
            i64::MIN
        );
        assert_eq!(
            NumericDate::from_seconds(i64::MIN).to_string(),
            "-9223372036854775808"
        );
        assert_ne!(NumericDate::from_seconds(1), date("1.0000000001"));
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
                NumericDate::parse(bad),
                Err(NumericDateError::OutOfRange),
                "{bad:?}"
            );
            assert!(!is_integer(bad), "{bad:?}");
            assert!(!numbers_equal(bad, bad), "{bad:?}");
            assert!(!numbers_equal(bad, "1"), "{bad:?}");
        }
    }

    #[test]
    fn numbers_equal_examples() {
        let ones = [
            "1", "1.0", "10e-1", "0.1e1", "1e0", "1E+0", "100e-2", "0.001e3", "1.000",
        ];
        for a in ones {
            for b in ones {
                assert!(numbers_equal(a, b), "{a} == {b}");
            }
            assert!(!numbers_equal(a, "-1"), "{a} != -1");
            assert!(!numbers_equal(a, "2"), "{a} != 2");
            assert!(!numbers_equal(a, "1.0000000000000000000000001"), "{a}");
            assert!(!numbers_equal(a, "0"), "{a}");
        }
        let zeros = [
            "0",
            "-0",
            "0.0",
            "-0.0e5",
            "0e-99999999999999999999999999999999999999999",
        ];
        for a in zeros {
            for b in zeros {
                assert!(numbers_equal(a, b), "{a} == {b}");
            }
        }
        assert!(numbers_equal("-1.5", "-15e-1"));
        assert!(!numbers_equal("-1.5", "1.5"));
        assert!(numbers_equal("1700000000", "1.7e9"));
        assert!(numbers_equal(
            "123456789012345678901234567890",
            "1.2345678901234567890123456789e29"
        ));
        assert!(!numbers_equal(
            "123456789012345678901234567890",
            "1.2345678901234567890123456788e29"
        ));
        assert!(!numbers_equal("1e400", "1e401"));
        assert!(numbers_equal("1e400", "10e399"));
    }

    #[test]
    fn numbers_equal_with_absurd_exponents() {
        let e = "1".to_owned() + &"0".repeat(40); // 10^40
        let e_minus_1 = "9".repeat(40); // 10^40 - 1
        assert!(numbers_equal(&format!("1e{e}"), &format!("10e{e_minus_1}")));
        assert!(numbers_equal(&format!("1e{e}0"), &format!("0.1e{e}1")));
        assert!(!numbers_equal(&format!("1e{e}"), &format!("0.1e{e}1")));
        assert!(!numbers_equal(&format!("1e{e}"), &format!("1e{e_minus_1}")));
        assert!(numbers_equal(
            &format!("1e-{e}"),
            &format!("0.1e-{e_minus_1}")
        ));
        assert!(numbers_equal(&format!("1e-{e}0"), &format!("100e-{e}2")));
        assert!(!numbers_equal(&format!("1e-{e}"), &format!("100e-{e}2")));
        assert!(!numbers_equal(&format!("1e{e}"), &format!("1e-{e}")));
        assert!(!numbers_equal(&format!("1e{e}"), &format!("-1e{e}")));
        // Around the 37/38-digit boundary of the exponent's fast path.
        let nines_37 = "9".repeat(37);
        let one_then_37_zeros = "1".to_owned() + &"0".repeat(37);
        assert!(numbers_equal(
            &format!("1e{one_then_37_zeros}"),
            &format!("10e{nines_37}")
        ));
        assert!(numbers_equal(
            &format!("1e-{nines_37}"),
            &format!("10e-{one_then_37_zeros}")
        ));
        assert!(numbers_equal(
            &format!("0.001e{one_then_37_zeros}"),
            &format!("1e{}7", "9".repeat(36))
        ));
        // Mantissas with many digits.
        let long = format!("1{}", "0".repeat(5000));
        assert!(numbers_equal(&long, "1e5000"));
        assert!(numbers_equal(
            &format!("0.{}1", "0".repeat(5000)),
            "1e-5001"
        ));
    }

    #[test]
    fn is_integer_examples() {
        for yes in [
            "1",
            "1.0",
            "1e3",
            "-0",
            "0",
            "0.0",
            "-7",
            "1.5e1",
            "0.5e1",
            "1500e-3e0".get(..4).unwrap(),
            "12.340e2",
            "1e400",
            "1e99999999999999999999999999999999999999999999",
            "0e-5",
            "0.000e-99999999999999999999999999999999999999999",
            "123456789012345678901234567890.000",
        ] {
            assert!(is_integer(yes), "{yes}");
        }
        for no in [
            "1500e-3",
            "0.5",
            "-0.5",
            "1e-1",
            "12.340e1",
            "1e-400",
            "1.0000000000000000000001",
            "1e-99999999999999999999999999999999999999999999",
        ] {
            assert!(!is_integer(no), "{no}");
        }
    }

    #[test]
    fn canonical_form() {
        let d = Decimal::parse("-12.3400e+2").unwrap();
        assert!(d.negative);
        assert_eq!(d.digits, [1, 2, 3, 4]);
        assert_eq!(d.exponent, BigInt::from_i128(0));
        let d = Decimal::parse("0.00500").unwrap();
        assert_eq!(d.digits, [5]);
        assert_eq!(d.exponent, BigInt::from_i128(-3));
        let d = Decimal::parse("-0.0").unwrap();
        assert!(!d.negative);
        assert!(d.digits.is_empty());
        assert_eq!(d.exponent, BigInt::zero());
    }

    #[test]
    fn big_integer_addition_matches_i128() {
        let values: Vec<i128> = [
            0,
            1,
            -1,
            9,
            10,
            -10,
            99,
            100,
            12345,
            -99999,
            1 << 64,
            -(1 << 64),
            10_i128.pow(37),
            10_i128.pow(37) - 1,
            -(10_i128.pow(37)),
            10_i128.pow(38) - 1,
            -(10_i128.pow(38) - 1),
            10_i128.pow(38),
        ]
        .into();
        for &a in &values {
            for &b in &values {
                let Some(sum) = a.checked_add(b) else {
                    continue;
                };
                let big = BigInt::from_i128(a).add(&BigInt::from_i128(b));
                assert_eq!(big, BigInt::from_i128(sum), "{a} + {b}");
                let fits = sum.unsigned_abs() < 10_u128.pow(37);
                assert_eq!(big.to_i128(), fits.then_some(sum), "{a} + {b}");
            }
        }
        // Far beyond i128.
        let huge = BigInt::from_ascii(false, "1".repeat(60).as_bytes());
        let sum = huge.add(&BigInt::from_i128(-111));
        assert_eq!(
            sum,
            BigInt::from_ascii(false, ("1".repeat(57) + "000").as_bytes())
        );
        let back = sum.add(&BigInt::from_i128(111));
        assert_eq!(back, huge);
        let negated = BigInt {
            negative: true,
            ..huge.clone()
        };
        assert_eq!(huge.add(&negated), BigInt::zero());
        assert_eq!(BigInt::from_ascii(true, b"000"), BigInt::zero());
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
}
