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

/// A NumericDate claim as [`read`] read it.
pub(crate) type Date = Result<Option<UnixTime>, Failure>;

/// The token's `exp`, `nbf` and `iat`, each read once for every check (and the principal, and
/// the cache's window) that compares with it. A date the policy does not check is not read
/// (`exp` always is: the principal reports it).
pub(crate) struct Dates {
    pub(crate) exp: Date,
    pub(crate) nbf: Date,
    pub(crate) iat: Date,
}

impl Dates {
    /// Reads the dates `rules` check from the verified claims.
    pub(crate) fn read(claims: &Object, rules: &TimeRules, t: Texts) -> Self {
        let checked = |name: &str, checked: bool| {
            if checked {
                read(claims, name, t)
            } else {
                Ok(None)
            }
        };
        Self {
            exp: read(claims, "exp", t),
            nbf: checked("nbf", rules.nbf != Presence::Ignored),
            iat: checked(
                "iat",
                rules.iat != Presence::Ignored || rules.max_age.is_some(),
            ),
        }
    }

    /// `exp`, if present and usable.
    pub(crate) fn exp(&self) -> Option<UnixTime> {
        usable(&self.exp)
    }
}

/// A date's value, if present and usable.
fn usable(date: &Date) -> Option<UnixTime> {
    date.as_ref().ok().copied().flatten()
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

// The four comparisons, shared by the checks and by [`Window::contains`], so that a cached
// decision expires exactly when a full evaluation would deny.

/// `now >= exp + leeway`, written `exp <= now - leeway`.
fn expired(exp: UnixTime, now: UnixTime, leeway: u64) -> bool {
    exp <= now.minus_secs(leeway)
}

/// `now + leeway < nbf`.
fn not_yet_valid(nbf: UnixTime, now: UnixTime, leeway: u64) -> bool {
    nbf > now.plus_secs(leeway)
}

/// `iat > now + leeway`.
fn issued_in_future(iat: UnixTime, now: UnixTime, leeway: u64) -> bool {
    iat > now.plus_secs(leeway)
}

/// `now >= iat + max_age + leeway`, written `iat <= now - leeway - max_age`.
fn too_old(iat: UnixTime, max_age: u64, now: UnixTime, leeway: u64) -> bool {
    iat <= now.minus_secs(leeway).minus_secs(max_age)
}

/// When a token passes the policy's time checks: the times its checks compare `now` with. A
/// claim that is absent, not checked, or not a usable NumericDate sets no bound (the check's
/// outcome does not depend on the time then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    exp: Option<UnixTime>,
    nbf: Option<UnixTime>,
    iat: Option<UnixTime>,
    /// `iat` and the policy's maximum age.
    max_age: Option<(UnixTime, u64)>,
    leeway: u64,
}

impl Window {
    /// The window of a token with these (verified) dates under `rules`.
    pub(crate) fn of(dates: &Dates, rules: &TimeRules) -> Self {
        let checked = |date: &Date, presence: Presence| match presence {
            Presence::Ignored => None,
            _ => usable(date),
        };
        Self {
            exp: checked(&dates.exp, rules.exp),
            nbf: checked(&dates.nbf, rules.nbf),
            iat: checked(&dates.iat, rules.iat),
            max_age: rules
                .max_age
                .and_then(|max_age| Some((usable(&dates.iat)?, max_age))),
            leeway: rules.leeway,
        }
    }

    /// Whether every time check passes at `now`, with the very comparisons the checks make.
    pub(crate) fn contains(&self, now: UnixTime) -> bool {
        let leeway = self.leeway;
        !(self.exp.is_some_and(|exp| expired(exp, now, leeway))
            || self.nbf.is_some_and(|nbf| not_yet_valid(nbf, now, leeway))
            || self
                .iat
                .is_some_and(|iat| issued_in_future(iat, now, leeway))
            || self
                .max_age
                .is_some_and(|(iat, max_age)| too_old(iat, max_age, now, leeway)))
    }
}

/// One NumericDate check, as the policy's `presence` for it says: `None` when it is not made; a
/// missing date denied when required; a date that did not read denied with why; a present one
/// denied with the failure `fails` gives for it, if any, and passed with `passes`'s text otherwise.
fn judge(
    date: Date,
    name: &str,
    presence: Presence,
    t: Texts,
    fails: impl FnOnce(UnixTime) -> Option<Failure>,
    passes: impl FnOnce(UnixTime) -> String,
) -> TimeCheck {
    if presence == Presence::Ignored {
        return None;
    }
    Some(date.and_then(|date| match date {
        None if presence == Presence::Required => Err(missing(name, t)),
        None => Ok(t.text(|| format!("`{name}` is absent"))),
        Some(date) => match fails(date) {
            Some(failure) => Err(failure),
            None => Ok(t.text(|| passes(date))),
        },
    }))
}

/// `exp`: deny when `now >= exp + leeway`.
pub(crate) fn exp(date: Date, rules: &TimeRules, now: UnixTime, t: Texts) -> TimeCheck {
    let leeway = rules.leeway;
    judge(
        date,
        "exp",
        rules.exp,
        t,
        // exp + leeway <= now  <=>  exp <= now - leeway
        |exp| {
            expired(exp, now, leeway).then(|| {
                Failure::new(t, Reason::Expired, || {
                    (
                        format!("now < exp + leeway = {exp} + {leeway}"),
                        format!("now = {now}"),
                        format!("expired at {exp} (leeway {leeway} s)"),
                    )
                })
            })
        },
        |exp| format!("expires at {exp}, after now {now} (leeway {leeway} s)"),
    )
}

/// `nbf`: deny when `now + leeway < nbf`.
pub(crate) fn nbf(date: Date, rules: &TimeRules, now: UnixTime, t: Texts) -> TimeCheck {
    let leeway = rules.leeway;
    judge(
        date,
        "nbf",
        rules.nbf,
        t,
        |nbf| {
            not_yet_valid(nbf, now, leeway).then(|| {
                Failure::new(t, Reason::NotYetValid, || {
                    (
                        format!("now + leeway >= nbf = {nbf}"),
                        format!("now + leeway = {now} + {leeway}"),
                        format!("not valid before {nbf} (leeway {leeway} s)"),
                    )
                })
            })
        },
        |nbf| format!("valid since {nbf}"),
    )
}

/// `iat`: deny when `iat > now + leeway`.
pub(crate) fn iat(date: Date, rules: &TimeRules, now: UnixTime, t: Texts) -> TimeCheck {
    let leeway = rules.leeway;
    judge(
        date,
        "iat",
        rules.iat,
        t,
        |iat| {
            issued_in_future(iat, now, leeway).then(|| {
                Failure::new(t, Reason::IssuedInFuture, || {
                    (
                        format!("iat <= now + leeway = {now} + {leeway}"),
                        format!("iat = {iat}"),
                        format!("issued in the future, at {iat} (leeway {leeway} s)"),
                    )
                })
            })
        },
        |iat| format!("issued at {iat}"),
    )
}

/// Maximum age: deny when `now >= iat + max_age + leeway`. `iat` itself is judged by [`iat`];
/// without a usable `iat` the age is not evaluated.
pub(crate) fn max_age(dates: &Dates, rules: &TimeRules, now: UnixTime, t: Texts) -> Option<Step> {
    let max_age = rules.max_age?;
    let iat = match usable(&dates.iat) {
        Some(iat) => iat,
        None => {
            return Some(Step::NotEvaluated(
                t.text(|| "no usable `iat` (see the `iat` check)".into()),
            ));
        }
    };
    Some(if too_old(iat, max_age, now, rules.leeway) {
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
