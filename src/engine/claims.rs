//! Claim constraints and rule conditions over verified claims.

use std::collections::HashSet;

use smallvec::SmallVec;

use crate::engine::decision::Reason;
use crate::engine::{Failure, Texts};
use crate::json::number;
use crate::json::{Json, Object};
use crate::policy::{ClaimPath, ClaimTest, Condition, Constraint, JsonType, Literal, ValueFormat};
use crate::text::quote;

/// The value at `path`, if every step is an object member.
pub(crate) fn lookup<'a>(claims: &'a Object, path: &ClaimPath) -> Option<&'a Json<'a>> {
    let mut segments = path.segments().iter();
    let first = segments.next()?;
    let mut value = claims.get(first)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// A short rendering of a claim value for "observed": strings quoted, long values cut.
pub(crate) fn show(value: &Json) -> String {
    const MAX: usize = 120;
    let text = match value {
        Json::String(s) => quote(s),
        Json::Number(n) => n.as_str().to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Null => "null".into(),
        Json::Array(items) => {
            let inner: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", inner.join(", "))
        }
        Json::Object(o) => format!("an object with {} members", o.len()),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The values a claim holds when read in `format`, or why it cannot be read that way.
pub(crate) fn values<'a>(value: &'a Json, format: ValueFormat) -> Result<Values<'a>, String> {
    let array = |items: &'a [Json]| -> Result<Values<'a>, String> {
        items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    format!(
                        "must be {}, not an array holding {}",
                        format_name(format),
                        a(item)
                    )
                })
            })
            .collect()
    };
    // RFC 6749 §3.3: scope tokens are separated by U+0020 only; empty tokens grant nothing.
    let split = |s: &'a str| s.split(' ').filter(|t| !t.is_empty()).collect();
    match (value, format) {
        (Json::String(s), ValueFormat::String | ValueFormat::StringOrArray) => {
            Ok(SmallVec::from_elem(&**s, 1))
        }
        (Json::String(s), ValueFormat::SpaceDelimited | ValueFormat::SpaceDelimitedOrArray) => {
            Ok(split(s))
        }
        (
            Json::Array(items),
            ValueFormat::Array | ValueFormat::StringOrArray | ValueFormat::SpaceDelimitedOrArray,
        ) => array(items),
        (other, format) => Err(format!("must be {}, not {}", format_name(format), a(other))),
    }
}

/// The values [`values`] reads: most claims hold a few, kept without an allocation.
pub(crate) type Values<'a> = SmallVec<[&'a str; 4]>;

/// [`values`] as a set, so that testing many policy values against many claim values stays
/// linear in the claim (std's hasher is randomly keyed: a token cannot choose colliding values).
fn value_set<'a>(value: &'a Json, format: ValueFormat) -> Result<HashSet<&'a str>, String> {
    values(value, format).map(|list| list.into_iter().collect())
}

/// Values tested for membership: a short list is scanned, a long one is hashed, so testing
/// many values against many stays linear in the token (std's hasher is randomly keyed: a token
/// cannot choose colliding values).
pub(crate) enum Lookup<'a> {
    Few(&'a [&'a str]),
    Many(HashSet<&'a str>),
}

impl<'a> Lookup<'a> {
    /// Up to this many values are scanned.
    const FEW: usize = 8;

    pub(crate) fn new(values: &'a [&'a str]) -> Self {
        if values.len() <= Self::FEW {
            Self::Few(values)
        } else {
            Self::Many(values.iter().copied().collect())
        }
    }

    pub(crate) fn contains(&self, value: &str) -> bool {
        match self {
            Self::Few(values) => values.contains(&value),
            Self::Many(values) => values.contains(value),
        }
    }
}

/// The type of a JSON value with its article, for messages: "an array", "a number", "null".
pub(crate) fn a(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn format_name(format: ValueFormat) -> &'static str {
    match format {
        ValueFormat::String => "a string",
        ValueFormat::SpaceDelimited => "a space-delimited string",
        ValueFormat::Array => "an array of strings",
        ValueFormat::StringOrArray => "a string or an array of strings",
        ValueFormat::SpaceDelimitedOrArray => "a space-delimited string or an array of strings",
    }
}

/// Whether a claim value equals a policy literal (numbers compared exactly: `1` equals `1.0`).
fn equals(value: &Json, literal: &Literal) -> bool {
    match (value, literal) {
        (Json::String(a), Literal::String(b)) => **a == **b,
        (Json::Number(a), Literal::Number(b)) => number::numbers_equal(a.as_str(), b),
        (Json::Bool(a), Literal::Bool(b)) => a == b,
        _ => false,
    }
}

fn has_type(value: &Json, ty: JsonType) -> bool {
    match (value, ty) {
        (Json::String(_), JsonType::String)
        | (Json::Number(_), JsonType::Number)
        | (Json::Bool(_), JsonType::Boolean)
        | (Json::Array(_), JsonType::Array)
        | (Json::Object(_), JsonType::Object)
        | (Json::Null, JsonType::Null) => true,
        (Json::Number(n), JsonType::Integer) => number::is_integer(n.as_str()),
        _ => false,
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How one test, a constraint or a condition came out on a token: three-valued (Kleene) logic.
/// `False` and `Undecided` say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Truth {
    /// It holds.
    True,
    /// It does not hold (e.g. the claim is absent, or has another value of the right type).
    False(String),
    /// It cannot be decided: the claim is present with a type the test cannot read, or `null`.
    Undecided(String),
}

/// The outcome of one test on a present value, and what the test expects (for messages).
fn test(value: &Json, test: &ClaimTest, t: Texts) -> (Truth, String) {
    use Truth::{False, True, Undecided};
    // A definite answer from a comparison, or undecided when the value's type does not fit.
    let decide = |fits: bool, holds: bool| match (fits, holds) {
        (false, _) => Undecided(String::new()),
        (true, true) => True,
        (true, false) => False(String::new()),
    };
    let (truth, expected) = match test {
        // The type is the question itself: every value answers it.
        ClaimTest::Type(ty) => (
            decide(true, has_type(value, *ty)),
            t.text(|| format!("must be of type {}", ty.as_str())),
        ),
        // `null` is neither a value nor an absence: no other test can decide on it.
        _ if matches!(value, Json::Null) => {
            (Undecided(String::new()), t.text(|| expectation(test)))
        }
        ClaimTest::Present(true) => (True, t.text(|| expectation(test))),
        ClaimTest::Present(false) => (False(String::new()), t.text(|| expectation(test))),
        ClaimTest::Equals(l) => (
            decide(same_type(value, l), equals(value, l)),
            t.text(|| expectation(test)),
        ),
        ClaimTest::OneOf(ls) => {
            let comparable: Vec<&Literal> = ls.iter().filter(|l| same_type(value, l)).collect();
            (
                decide(
                    !comparable.is_empty(),
                    comparable.iter().any(|l| equals(value, l)),
                ),
                t.text(|| expectation(test)),
            )
        }
        ClaimTest::Prefix(p) => (
            decide(
                value.as_str().is_some(),
                value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            ),
            t.text(|| expectation(test)),
        ),
        ClaimTest::Suffix(p) => (
            decide(
                value.as_str().is_some(),
                value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            ),
            t.text(|| expectation(test)),
        ),
        ClaimTest::Regex(p) => (
            decide(
                value.as_str().is_some(),
                value.as_str().is_some_and(|s| p.is_match(s)),
            ),
            t.text(|| expectation(test)),
        ),
        ClaimTest::Contains(want, format) => match values(value, *format) {
            Ok(have) => (
                decide(true, have.contains(&want.as_str())),
                t.text(|| expectation(test)),
            ),
            Err(why) => (Undecided(why.clone()), why),
        },
        ClaimTest::ContainsAny(wants, format) => match value_set(value, *format) {
            Ok(have) => (
                decide(true, wants.iter().any(|w| have.contains(w.as_str()))),
                t.text(|| expectation(test)),
            ),
            Err(why) => (Undecided(why.clone()), why),
        },
        ClaimTest::ContainsAll(wants, format) => match value_set(value, *format) {
            Ok(have) => {
                let missing: Vec<String> = wants
                    .iter()
                    .filter(|w| !have.contains(w.as_str()))
                    .cloned()
                    .collect();
                let expected = if missing.is_empty() {
                    t.text(|| expectation(test))
                } else {
                    t.text(|| {
                        format!(
                            "must contain all of {} (missing {})",
                            quoted(wants),
                            quoted(&missing)
                        )
                    })
                };
                (decide(true, missing.is_empty()), expected)
            }
            Err(why) => (Undecided(why.clone()), why),
        },
    };
    (truth, expected)
}

/// What a test expects, as the end of "`path` …".
fn expectation(test: &ClaimTest) -> String {
    match test {
        ClaimTest::Present(true) => "must have a value, not null".into(),
        ClaimTest::Present(false) => "must be absent".into(),
        ClaimTest::Equals(l) => format!("must equal {l}"),
        ClaimTest::OneOf(ls) => format!("must be one of {}", list(ls)),
        ClaimTest::Prefix(p) => format!("must be a string starting with `{p}`"),
        ClaimTest::Suffix(p) => format!("must be a string ending with `{p}`"),
        ClaimTest::Regex(p) => format!("must be a string matching `{}`", p.as_str()),
        ClaimTest::Contains(want, _) => format!("must contain `{want}`"),
        ClaimTest::ContainsAny(wants, _) => format!("must contain one of {}", quoted(wants)),
        ClaimTest::ContainsAll(wants, _) => format!("must contain all of {}", quoted(wants)),
        ClaimTest::Type(ty) => format!("must be of type {}", ty.as_str()),
    }
}

/// Whether a claim value has the JSON type of a literal, so that comparing them decides.
fn same_type(value: &Json, literal: &Literal) -> bool {
    matches!(
        (value, literal),
        (Json::String(_), Literal::String(_))
            | (Json::Number(_), Literal::Number(_))
            | (Json::Bool(_), Literal::Bool(_))
    )
}

/// A constraint on the claims: `Truth::True`, or the first test that did not hold (a false one
/// before an undecided one: Kleene `and`), with what it expected and the claim's value.
fn evaluate<'a>(claims: &'a Object, c: &Constraint, t: Texts) -> Evaluated<'a> {
    let Some(value) = lookup(claims, &c.path) else {
        let must_be_absent = c
            .tests
            .iter()
            .any(|t| matches!(t, ClaimTest::Present(false)));
        return if must_be_absent || c.if_present {
            Evaluated::Absent(true)
        } else {
            Evaluated::Absent(false)
        };
    };
    let mut undecided = None;
    for test_ in &c.tests {
        match test(value, test_, t) {
            (Truth::True, _) => {}
            (Truth::False(_), expected) => {
                return Evaluated::Present(value, Some((false, expected)));
            }
            (Truth::Undecided(_), expected) => {
                undecided.get_or_insert((true, expected));
            }
        }
    }
    Evaluated::Present(value, undecided)
}

/// What [`evaluate`] found: an absent claim (and whether that passes), or a present value and,
/// if a test did not hold, whether it was undecided and what it expected.
enum Evaluated<'a> {
    Absent(bool),
    Present(&'a Json<'a>, Option<(bool, String)>),
}

/// Checks one constraint of `[claims]`. On success, says what held. A test that does not hold,
/// or cannot be decided (another type, `null`), fails with `invalid_claim`.
pub(crate) fn check(claims: &Object, c: &Constraint, t: Texts) -> Result<String, Failure> {
    match evaluate(claims, c, t) {
        Evaluated::Absent(true) => Ok(t.text(|| format!("`{}` is absent", c.path))),
        Evaluated::Absent(false) => Err(Failure::new(t, Reason::MissingClaim, || {
            (
                format!("claim `{}`", c.path),
                "absent".into(),
                format!("`{}` is required", c.path),
            )
        })),
        Evaluated::Present(value, None) => {
            Ok(t.text(|| format!("`{}` is {}", c.path, show(value))))
        }
        Evaluated::Present(value, Some((_, expected))) => {
            Err(Failure::new(t, Reason::InvalidClaim, || {
                (
                    expected.clone(),
                    show(value),
                    format!("`{}` {expected}", c.path),
                )
            }))
        }
    }
}

/// Evaluates a rule condition in three-valued logic; says why when it is not true.
pub(crate) fn holds(claims: &Object, condition: &Condition, t: Texts) -> Truth {
    match condition {
        Condition::Claim(c) => match evaluate(claims, c, t) {
            Evaluated::Absent(true) | Evaluated::Present(_, None) => Truth::True,
            Evaluated::Absent(false) => Truth::False(t.text(|| format!("`{}` is absent", c.path))),
            Evaluated::Present(value, Some((false, expected))) => {
                Truth::False(t.text(|| format!("`{}` {expected} (it is {})", c.path, show(value))))
            }
            Evaluated::Present(value, Some((true, expected))) => Truth::Undecided(
                t.text(|| format!("`{}` {expected}, but it is {}: undecided", c.path, a(value))),
            ),
        },
        Condition::All(list) => {
            let mut undecided = None;
            for c in list {
                match holds(claims, c, t) {
                    Truth::True => {}
                    f @ Truth::False(_) => return f,
                    u @ Truth::Undecided(_) => {
                        undecided.get_or_insert(u);
                    }
                }
            }
            undecided.unwrap_or(Truth::True)
        }
        Condition::Any(list) => {
            let (mut why, mut undecided) = (Vec::new(), false);
            for c in list {
                match holds(claims, c, t) {
                    Truth::True => return Truth::True,
                    Truth::False(e) => why.push(e),
                    Truth::Undecided(e) => {
                        undecided = true;
                        why.push(e);
                    }
                }
            }
            let why = t.text(|| {
                format!(
                    "none of {} alternatives held: {}",
                    list.len(),
                    why.join("; ")
                )
            });
            if undecided {
                Truth::Undecided(why)
            } else {
                Truth::False(why)
            }
        }
        Condition::Not(inner) => match holds(claims, inner, t) {
            Truth::True => Truth::False(t.text(|| format!("must not hold: {}", describe(inner)))),
            Truth::False(_) => Truth::True,
            undecided @ Truth::Undecided(_) => undecided,
        },
    }
}

/// A compact description of a condition, for "must not hold" messages.
fn describe(condition: &Condition) -> String {
    match condition {
        Condition::Claim(c) => format!("a constraint on `{}`", c.path),
        Condition::All(list) => format!("all of {} conditions", list.len()),
        Condition::Any(list) => format!("any of {} conditions", list.len()),
        Condition::Not(inner) => format!("not {}", describe(inner)),
    }
}
