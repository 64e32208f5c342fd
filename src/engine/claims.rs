//! Claim constraints and rule conditions over verified claims.

use std::collections::HashSet;

use crate::engine::Failure;
use crate::engine::decision::Reason;
use crate::policy::{ClaimPath, ClaimTest, Condition, Constraint, JsonType, Literal, ValueFormat};
use crate::token::json::{Json, Object};
use crate::token::numeric;
pub(crate) use crate::token::{escape, quote};

/// The value at `path`, if every step is an object member.
pub(crate) fn lookup<'a>(claims: &'a Object, path: &ClaimPath) -> Option<&'a Json> {
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
pub(crate) fn values<'a>(value: &'a Json, format: ValueFormat) -> Result<Vec<&'a str>, String> {
    let array = |items: &'a [Json]| -> Result<Vec<&'a str>, String> {
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
        (Json::String(s), ValueFormat::String | ValueFormat::StringOrArray) => Ok(vec![&**s]),
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

/// [`values`] as a set, so that testing many policy values against many claim values stays
/// linear in the claim (std's hasher is randomly keyed: a token cannot choose colliding values).
fn value_set(value: &Json, format: ValueFormat) -> Result<HashSet<&str>, String> {
    values(value, format).map(|list| list.into_iter().collect())
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
        (Json::Number(a), Literal::Number(b)) => numeric::numbers_equal(a.as_str(), b),
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
        (Json::Number(n), JsonType::Integer) => numeric::is_integer(n.as_str()),
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

/// Checks one constraint. On success, says what held.
pub(crate) fn check(claims: &Object, c: &Constraint) -> Result<String, Failure> {
    let Some(value) = lookup(claims, &c.path) else {
        let must_be_absent = c
            .tests
            .iter()
            .any(|t| matches!(t, ClaimTest::Present(false)));
        if must_be_absent || c.if_present {
            return Ok(format!("`{}` is absent", c.path));
        }
        return Err(Failure {
            reason: Reason::MissingClaim,
            expected: format!("claim `{}`", c.path),
            observed: "absent".into(),
            detail: format!("`{}` is required", c.path),
        });
    };
    let fail = |expected: String| Failure {
        reason: Reason::InvalidClaim,
        detail: format!("`{}` {expected}", c.path),
        expected,
        observed: show(value),
    };
    for test in &c.tests {
        match test {
            ClaimTest::Present(true) if matches!(value, Json::Null) => {
                return Err(fail("must have a value, not null".into()));
            }
            ClaimTest::Present(true) => {}
            ClaimTest::Present(false) => return Err(fail("must be absent".into())),
            ClaimTest::Equals(l) => {
                if !equals(value, l) {
                    return Err(fail(format!("must equal {l}")));
                }
            }
            ClaimTest::OneOf(ls) => {
                if !ls.iter().any(|l| equals(value, l)) {
                    return Err(fail(format!("must be one of {}", list(ls))));
                }
            }
            ClaimTest::Prefix(p) => {
                if !value.as_str().is_some_and(|s| s.starts_with(p.as_str())) {
                    return Err(fail(format!("must be a string starting with `{p}`")));
                }
            }
            ClaimTest::Suffix(p) => {
                if !value.as_str().is_some_and(|s| s.ends_with(p.as_str())) {
                    return Err(fail(format!("must be a string ending with `{p}`")));
                }
            }
            ClaimTest::Regex(p) => {
                if !value.as_str().is_some_and(|s| p.is_match(s)) {
                    return Err(fail(format!("must be a string matching `{}`", p.as_str())));
                }
            }
            ClaimTest::Contains(want, format) => {
                let have = values(value, *format).map_err(fail)?;
                if !have.contains(&want.as_str()) {
                    return Err(fail(format!("must contain `{want}`")));
                }
            }
            ClaimTest::ContainsAny(wants, format) => {
                let have = value_set(value, *format).map_err(fail)?;
                if !wants.iter().any(|w| have.contains(w.as_str())) {
                    return Err(fail(format!("must contain one of {}", quoted(wants))));
                }
            }
            ClaimTest::ContainsAll(wants, format) => {
                let have = value_set(value, *format).map_err(fail)?;
                let missing: Vec<String> = wants
                    .iter()
                    .filter(|w| !have.contains(w.as_str()))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(fail(format!(
                        "must contain all of {} (missing {})",
                        quoted(wants),
                        quoted(&missing)
                    )));
                }
            }
            ClaimTest::Type(ty) => {
                if !has_type(value, *ty) {
                    return Err(fail(format!("must be of type {}", ty.as_str())));
                }
            }
        }
    }
    Ok(format!("`{}` is {}", c.path, show(value)))
}

/// Evaluates a rule condition; on failure, explains which part did not hold.
pub(crate) fn holds(claims: &Object, condition: &Condition) -> Result<(), String> {
    match condition {
        Condition::Claim(c) => check(claims, c).map(|_| ()).map_err(|f| match f.reason {
            Reason::MissingClaim => format!("`{}` is absent", c.path),
            _ => format!("{} (it is {})", f.detail, f.observed),
        }),
        Condition::All(list) => list.iter().try_for_each(|c| holds(claims, c)),
        Condition::Any(list) => {
            let mut why = Vec::new();
            for c in list {
                match holds(claims, c) {
                    Ok(()) => return Ok(()),
                    Err(e) => why.push(e),
                }
            }
            Err(format!(
                "none of {} alternatives held: {}",
                list.len(),
                why.join("; ")
            ))
        }
        Condition::Not(inner) => match holds(claims, inner) {
            Ok(()) => Err(format!("must not hold: {}", describe(inner))),
            Err(_) => Ok(()),
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
