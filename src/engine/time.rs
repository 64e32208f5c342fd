//! `exp`, `nbf`, `iat` and maximum age, compared exactly (fractions included) with leeway.

use crate::engine::decision::Reason;
use crate::engine::{Failure, Step, Texts, UnixTime};
use crate::json::NumericDateError;
use crate::json::{Json, Object};
use crate::policy::{Presence, TimeRules};

/// Reads a NumericDate claim: `Ok(None)` when absent, an `invalid_claim` failure when it is not a
/// finite number of seconds that fits (`null`, a string, `1e400`).
pub(crate) fn read(claims: &Object, name: &str, t: Texts) -> Result<Option<UnixTime>, Failure> {
    let invalid = |observed: &dyn Fn() -> String, why: &str| {
        Failure::new(t, Reason::InvalidClaim, || {
            (
                format!("`{name}` as a NumericDate (a JSON number of seconds)"),
                observed(),
                format!("`{name}` {why}"),
            )
        })
    };
    match claims.get(name) {
        None => Ok(None),
        Some(Json::Number(n)) => match UnixTime::from_numeric_date(n.as_str()) {
            Ok(date) => Ok(Some(date)),
            Err(NumericDateError::OutOfRange) => Err(invalid(
                &|| n.as_str().chars().take(40).collect(),
                "is out of range",
            )),
        },
        Some(other) => Err(invalid(&|| other.type_name().to_owned(), "is not a number")),
    }
}

fn missing(name: &str, t: Texts) -> Failure {
    Failure::new(t, Reason::MissingClaim, || {
        (
            format!("claim `{name}`"),
            "absent".into(),
            format!("the policy requires `{name}`"),
        )
    })
}

/// The outcome of one time check: `None` when the policy does not make it.
pub(crate) type TimeCheck = Option<Result<String, Failure>>;

/// `exp`: deny when `now >= exp + leeway`.
pub(crate) fn exp(claims: &Object, rules: &TimeRules, now: UnixTime, t: Texts) -> TimeCheck {
    if rules.exp == Presence::Ignored {
        return None;
    }
    Some(read(claims, "exp", t).and_then(|exp| match exp {
        None if rules.exp == Presence::Required => Err(missing("exp", t)),
        None => Ok(t.text(|| "`exp` is absent".into())),
        // exp + leeway <= now  <=>  exp <= now - leeway
        Some(exp) if exp <= now.minus_secs(rules.leeway) => {
            Err(Failure::new(t, Reason::Expired, || {
                (
                    format!("now < exp + leeway = {exp} + {}", rules.leeway),
                    format!("now = {now}"),
                    format!("expired at {exp} (leeway {} s)", rules.leeway),
                )
            }))
        }
        Some(exp) => Ok(t.text(|| {
            format!(
                "expires at {exp}, after now {now} (leeway {} s)",
                rules.leeway
            )
        })),
    }))
}

/// `nbf`: deny when `now + leeway < nbf`.
pub(crate) fn nbf(claims: &Object, rules: &TimeRules, now: UnixTime, t: Texts) -> TimeCheck {
    if rules.nbf == Presence::Ignored {
        return None;
    }
    Some(read(claims, "nbf", t).and_then(|nbf| match nbf {
        None if rules.nbf == Presence::Required => Err(missing("nbf", t)),
        None => Ok(t.text(|| "`nbf` is absent".into())),
        Some(nbf) if nbf > now.plus_secs(rules.leeway) => {
            Err(Failure::new(t, Reason::NotYetValid, || {
                (
                    format!("now + leeway >= nbf = {nbf}"),
                    format!("now + leeway = {now} + {}", rules.leeway),
                    format!("not valid before {nbf} (leeway {} s)", rules.leeway),
                )
            }))
        }
        Some(nbf) => Ok(t.text(|| format!("valid since {nbf}"))),
    }))
}

/// `iat`: deny when `iat > now + leeway`.
pub(crate) fn iat(claims: &Object, rules: &TimeRules, now: UnixTime, t: Texts) -> TimeCheck {
    if rules.iat == Presence::Ignored {
        return None;
    }
    Some(read(claims, "iat", t).and_then(|iat| match iat {
        None if rules.iat == Presence::Required => Err(missing("iat", t)),
        None => Ok(t.text(|| "`iat` is absent".into())),
        Some(iat) if iat > now.plus_secs(rules.leeway) => {
            Err(Failure::new(t, Reason::IssuedInFuture, || {
                (
                    format!("iat <= now + leeway = {now} + {}", rules.leeway),
                    format!("iat = {iat}"),
                    format!("issued in the future, at {iat} (leeway {} s)", rules.leeway),
                )
            }))
        }
        Some(iat) => Ok(t.text(|| format!("issued at {iat}"))),
    }))
}

/// Maximum age: deny when `now >= iat + max_age + leeway`. `iat` itself is judged by [`iat`];
/// without a usable `iat` the age is not evaluated.
pub(crate) fn max_age(claims: &Object, rules: &TimeRules, now: UnixTime, t: Texts) -> Option<Step> {
    let max_age = rules.max_age?;
    let iat = match read(claims, "iat", t) {
        Ok(Some(iat)) => iat,
        Ok(None) | Err(_) => {
            return Some(Step::NotEvaluated(
                t.text(|| "no usable `iat` (see the `iat` check)".into()),
            ));
        }
    };
    let bound = now.minus_secs(rules.leeway).minus_secs(max_age);
    Some(if iat <= bound {
        Step::Fail(Failure::new(t, Reason::TokenTooOld, || {
            (
                format!(
                    "now < iat + max_age + leeway = {iat} + {max_age} + {}",
                    rules.leeway
                ),
                format!("now = {now}"),
                format!(
                    "issued at {iat}, older than {max_age} s (leeway {} s)",
                    rules.leeway
                ),
            )
        }))
    } else {
        Step::Pass(t.text(|| format!("issued at {iat}, within {max_age} s")))
    })
}
