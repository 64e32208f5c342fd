//! `aud` against the accepted alternatives, and the RFC 8707 `resource` claim.

use crate::engine::claims::{Lookup, Values, show, values};
use crate::engine::decision::Reason;
use crate::engine::{Failure, Texts};
use crate::json::{Json, Object};
use crate::policy::{AudienceRule, Match, Presence, ValueFormat};
use crate::text::quote;

/// The values of `aud` or `resource`: a string, or a non-empty array of strings
/// (RFC 7519 §4.1.3, RFC 8707). `Ok(None)` when absent.
fn string_or_array<'a>(
    claims: &'a Object,
    name: &str,
    t: Texts,
) -> Result<Option<Values<'a>>, Failure> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let invalid = |why: String| {
        Failure::new(t, Reason::InvalidClaim, || {
            (
                format!("`{name}` as a string or a non-empty array of strings"),
                show(value),
                format!("`{name}` {why}"),
            )
        })
    };
    match value {
        Json::Array(items) if items.is_empty() => Err(invalid("must not be an empty array".into())),
        value => values(value, ValueFormat::StringOrArray)
            .map(Some)
            .map_err(invalid),
    }
}

fn audiences<'a>(claims: &'a Object, t: Texts) -> Result<Values<'a>, Failure> {
    string_or_array(claims, "aud", t)?.ok_or_else(|| {
        Failure::new(t, Reason::MissingClaim, || {
            (
                "claim `aud`".into(),
                "absent".into(),
                "the token names no audience".into(),
            )
        })
    })
}

/// The token's `resource` claim (RFC 8707): `Ok(None)` when absent.
pub(crate) fn resources<'a>(claims: &'a Object, t: Texts) -> Result<Option<Values<'a>>, Failure> {
    string_or_array(claims, "resource", t)
}

fn show_list(values: &[&str]) -> String {
    match values {
        [one] => quote(one),
        many => format!(
            "[{}]",
            many.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Checks `aud`; on success returns the matched accepted value and a detail line.
///
/// Guards compare with `resource`, the token's `resource` claim as [`resources`] read it; a
/// malformed one satisfies no guard (and fails the `resource` check).
pub(crate) fn check<'r>(
    claims: &Object,
    rule: &'r AudienceRule,
    resource: &Result<Option<Values<'_>>, Failure>,
    t: Texts,
) -> Result<(&'r str, String), Failure> {
    let aud = audiences(claims, t)?;
    let resource = resource.as_ref().ok().and_then(Option::as_ref);
    // Each accepted value is looked up in a set of the token's, so the check stays linear in the
    // token when both lists are long (std's hasher is randomly keyed: no chosen collisions).
    let aud_set = Lookup::new(&aud);
    let resource_set: Option<Lookup<'_>> = resource.map(|r| Lookup::new(r));
    let mut matched: Option<&str> = None;
    let mut guard_failures = Vec::new();
    let mut failures = 0;
    for alt in &rule.accept {
        if !aud_set.contains(alt.value.as_str()) {
            failures += 1;
            continue;
        }
        let guard_ok = match (&alt.resource, &resource_set) {
            (None, _) => true,
            (Some(want), Some(have)) => have.contains(want.as_str()),
            (Some(_), None) => false,
        };
        if guard_ok {
            matched.get_or_insert(alt.value.as_str());
        } else {
            failures += 1;
            let want = alt.resource.as_deref().unwrap_or_default();
            guard_failures.push((alt.value.as_str(), want));
        }
    }
    let satisfied = match rule.mode {
        Match::Any => matched.is_some(),
        Match::All => failures == 0,
    };
    if let (true, Some(value)) = (satisfied, matched) {
        let how = t.text(|| {
            match rule
                .accept
                .iter()
                .find(|a| a.value == value)
                .and_then(|a| a.resource.as_ref())
            {
                Some(r) => format!("`aud` contains `{value}` and `resource` names `{r}`"),
                None => format!("`aud` contains `{value}`"),
            }
        });
        return Ok((value, how));
    }
    let observed_resource = match claims.get("resource") {
        None => "absent".to_owned(),
        Some(v) => show(v),
    };
    if let Some((value, want)) = guard_failures.first() {
        return Err(Failure::with_texts(
            Reason::ResourceMismatch,
            format!("`resource` naming `{want}` (required for audience `{value}`)"),
            format!("`resource` {observed_resource}"),
            format!(
                "audience `{value}` is accepted only for tokens whose `resource` names `{want}`"
            ),
        ));
    }
    let accepted: Vec<String> = rule
        .accept
        .iter()
        .map(|a| match &a.resource {
            Some(r) => format!("`{}` (with `resource` `{r}`)", a.value),
            None => format!("`{}`", a.value),
        })
        .collect();
    let joiner = if rule.mode == Match::All {
        " and "
    } else {
        " or "
    };
    Err(Failure::with_texts(
        Reason::AudienceMismatch,
        accepted.join(joiner),
        format!("`aud` {}", show_list(&aud)),
        "the token was not issued for this resource".into(),
    ))
}

/// `accept = "any"`: any audience, but a present `aud` must still be well-formed.
pub(crate) fn any(claims: &Object, t: Texts) -> Result<String, Failure> {
    let aud = string_or_array(claims, "aud", t)?;
    Ok(t.text(|| match aud {
        Some(aud) => format!("`aud` {} (any audience is accepted)", show_list(&aud)),
        None => "`aud` is absent (any audience is accepted)".into(),
    }))
}

/// Checks the `resource` claim: when present (or required), it must name `resource_url`.
/// `found` is the claim as [`resources`] read it.
pub(crate) fn resource<'r>(
    found: Result<Option<Values<'_>>, Failure>,
    presence: Presence,
    resource_url: &'r str,
    t: Texts,
) -> Option<Result<(Option<&'r str>, String), Failure>> {
    if presence == Presence::Ignored {
        return None;
    }
    Some(found.and_then(|found| match found {
        None if presence == Presence::Required => {
            Err(Failure::new(t, Reason::MissingClaim, || {
                (
                    format!("claim `resource` naming `{resource_url}`"),
                    "absent".into(),
                    "the policy requires the token to name its resource".into(),
                )
            }))
        }
        None => Ok((None, t.text(|| "`resource` is absent".into()))),
        Some(list) if list.contains(&resource_url) => Ok((
            Some(resource_url),
            t.text(|| format!("`resource` names `{resource_url}`")),
        )),
        Some(list) => Err(Failure::new(t, Reason::ResourceMismatch, || {
            (
                format!("`resource` naming `{resource_url}`"),
                format!("`resource` {}", show_list(&list)),
                "the token was issued for another resource".into(),
            )
        })),
    }))
}
