//! Exact decimal arithmetic on JSON number texts, with no floating point anywhere.
//!
//! Every number text is reduced to one canonical form: a sign, its significant
//! digits without leading or trailing zeros, and a decimal exponent held as an
//! exact integer of any size. Work is linear in the length of the text; nothing
//! is ever allocated in proportion to the value of an exponent.

use std::cmp::Ordering;

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
pub(super) fn digits_value(digits: &[u8]) -> Option<i128> {
    digits.iter().try_fold(0_i128, |value, &digit| {
        value.checked_mul(10)?.checked_add(i128::from(digit))
    })
}

/// A JSON number in canonical form: (-1)^negative × digits × 10^exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decimal {
    /// Whether the value is below zero (never set for zero).
    pub(super) negative: bool,
    /// Significant digit values (0–9), most significant first, without leading
    /// or trailing zeros; empty for zero.
    pub(super) digits: Vec<u8>,
    /// Power of ten to scale `digits` by; zero for zero.
    pub(super) exponent: BigInt,
}

impl Decimal {
    /// The canonical form of a JSON number text, or `None` if the text does not
    /// follow `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    pub(super) fn parse(text: &str) -> Option<Decimal> {
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
pub(super) struct BigInt {
    /// Whether the value is below zero (never set for zero).
    pub(super) negative: bool,
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
    pub(super) fn to_i128(&self) -> Option<i128> {
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
}
