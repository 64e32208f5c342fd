//! Header rules: `alg` against the issuer's allow-list, `typ`, and `crit`.

use std::collections::HashSet;

use crate::algorithm::Algorithm;
use crate::engine::decision::Reason;
use crate::engine::{Failure, Texts};
use crate::json::Json;
use crate::policy::HeaderRules;
use crate::text::quote;
use crate::token::{Header, REGISTERED_HEADER_PARAMETERS};

/// The header's `alg`, if it is one the issuer allows (exact, case-sensitive; never `none`).
pub(crate) fn algorithm(
    header: &Header,
    allowed: &[Algorithm],
    t: Texts,
) -> Result<Algorithm, Failure> {
    match Algorithm::from_name(&header.alg).filter(|alg| allowed.contains(alg)) {
        Some(alg) => Ok(alg),
        None => Err(Failure::new(t, Reason::AlgorithmNotAllowed, || {
            (
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                quote(&header.alg),
                "the issuer does not sign with this algorithm".into(),
            )
        })),
    }
}

/// `typ` must be one of the accepted media types: case-insensitive, `application/` implied
/// (RFC 7515 §4.1.9).
pub(crate) fn typ(
    header: &Header,
    rules: &HeaderRules,
    t: Texts,
) -> Option<Result<String, Failure>> {
    if rules.typ.is_empty() {
        return None;
    }
    Some(match &header.typ {
        Some(typ) if accepted_type(typ, &rules.typ) => Ok(t.text(|| format!("`typ` is `{typ}`"))),
        found => Err(Failure::new(t, Reason::InvalidType, || {
            (
                rules
                    .typ
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                found.as_ref().map_or("absent".into(), |t| quote(t)),
                "not an access token of the accepted type".into(),
            )
        })),
    })
}

/// Whether `typ` is one of the `accepted` media types (each lowercase, with `application/`),
/// the way [`media_type`] compares them, without making the lowercase copy.
fn accepted_type(typ: &str, accepted: &[String]) -> bool {
    const APPLICATION: &str = "application/";
    accepted.iter().any(|want| {
        if typ.contains('/') {
            want.eq_ignore_ascii_case(typ)
        } else {
            want.get(..APPLICATION.len()) == Some(APPLICATION)
                && want
                    .get(APPLICATION.len()..)
                    .is_some_and(|rest| rest.eq_ignore_ascii_case(typ))
        }
    })
}

/// `crit` (RFC 7515 §4.1.11): a non-empty array of names, each present in the header, none a
/// registered parameter, and each one the embedding service says it processes.
pub(crate) fn crit(header: &Header, rules: &HeaderRules, t: Texts) -> Result<String, Failure> {
    let Some(crit) = &header.crit else {
        return Ok(t.text(|| "no `crit`".into()));
    };
    let fail = |observed: String, detail: String| {
        Failure::with_texts(
            Reason::UnsupportedCriticalHeader,
            if rules.crit.is_empty() {
                "no `crit` (no extension is understood)".into()
            } else {
                format!(
                    "`crit` naming only {}",
                    rules
                        .crit
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            observed,
            detail,
        )
    };
    let names: Vec<&str> = match crit {
        Json::Array(items) if !items.is_empty() => {
            match items.iter().map(Json::as_str).collect::<Option<Vec<_>>>() {
                Some(names) => names,
                None => {
                    return Err(fail(
                        "`crit` with a non-string entry".into(),
                        "`crit` must list header names".into(),
                    ));
                }
            }
        }
        other => {
            return Err(fail(
                format!("`crit` {}", other.type_name()),
                "`crit` must be a non-empty array".into(),
            ));
        }
    };
    // A name listed again was checked already; checking it again would look it up in the header
    // once per repeat, quadratic in an unverified header.
    let mut seen: HashSet<&str> = HashSet::new();
    for name in names.iter().filter(|name| seen.insert(name)) {
        if REGISTERED_HEADER_PARAMETERS.contains(name) {
            return Err(fail(
                format!("`crit` names {}", quote(name)),
                format!(
                    "{} is a registered parameter and must not be in `crit`",
                    quote(name)
                ),
            ));
        }
        if header.object.get(name).is_none() {
            return Err(fail(
                format!("`crit` names {}", quote(name)),
                format!("`crit` names {}, which the header lacks", quote(name)),
            ));
        }
        if !rules.crit.iter().any(|c| c == name) {
            return Err(fail(
                format!("`crit` names {}", quote(name)),
                format!("extension {} is not understood", quote(name)),
            ));
        }
    }
    Ok(t.text(|| format!("`crit` extensions understood: {}", names.join(", "))))
}
