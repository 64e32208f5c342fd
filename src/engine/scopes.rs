//! Scopes: gathered from the claims the policy names, each in its declared format.
//!
//! Both steps are linear in the number of scopes: a token may carry tens of thousands. The sets
//! are std `HashSet`s, whose hasher is randomly keyed, so a token cannot choose scope names that
//! all collide.

use std::collections::HashSet;

use smallvec::SmallVec;

use crate::engine::claims::{show, values};
use crate::engine::decision::Reason;
use crate::engine::{Failure, Texts};
use crate::json::Object;
use crate::policy::ScopeRules;
use crate::text::quote;

/// The granted scopes (in token order, without repeats), or why a scope claim is malformed.
///
/// When the request requires no scope (`strict` is false), scopes are only reported: a malformed
/// scope claim is left out (and named in `skipped`) instead of denying the token.
pub(crate) fn granted<'a>(
    claims: &'a Object,
    rules: &ScopeRules,
    strict: bool,
    skipped: &mut Vec<String>,
    t: Texts,
) -> Result<SmallVec<[&'a str; 8]>, Failure> {
    // Up to this many scopes, repeats are found by scanning what is kept; past it, by a set.
    const FEW: usize = 8;
    let mut out: SmallVec<[&str; FEW]> = SmallVec::new();
    let mut seen: Option<HashSet<&str>> = None;
    for (claim, format) in &rules.claims {
        let Some(value) = claims.get(claim) else {
            continue;
        };
        let list = match values(value, *format) {
            Ok(list) => list,
            Err(why) if !strict => {
                skipped.push(t.text(|| format!("`{claim}` {why}")));
                continue;
            }
            Err(why) => {
                return Err(Failure::new(t, Reason::InvalidClaim, || {
                    (
                        format!("`{claim}` as {}", format.as_str()),
                        show(value),
                        format!("`{claim}` {why}"),
                    )
                }));
            }
        };
        for scope in list {
            let new = match &mut seen {
                Some(seen) => seen.insert(scope),
                None if out.len() < FEW => !out.contains(&scope),
                None => seen.insert(out.iter().copied().collect()).insert(scope),
            };
            if new {
                out.push(scope);
            }
        }
    }
    Ok(out)
}

/// Checks that every required scope (the policy's and the request's) is granted.
pub(crate) fn check(granted: &[&str], required: &[&str], t: Texts) -> Result<String, Failure> {
    let have: HashSet<&str> = match required {
        [] => HashSet::new(),
        _ => granted.iter().copied().collect(),
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|s| !have.contains(s))
        .collect();
    if missing.is_empty() {
        return Ok(t.text(|| match required {
            [] => format!("granted {} (none required)", list(granted)),
            req => format!("required {} granted", list(req)),
        }));
    }
    Err(Failure::new(t, Reason::InsufficientScope, || {
        (
            format!("scopes {}", list(required)),
            format!("granted {}", list(granted)),
            format!("missing {}", list(&missing)),
        )
    }))
}

/// Scopes for a message: quoted, at most 20 of them.
fn list(scopes: &[&str]) -> String {
    const SHOWN: usize = 20;
    if scopes.is_empty() {
        return "none".to_owned();
    }
    let mut out: Vec<String> = scopes.iter().take(SHOWN).map(|s| quote(s)).collect();
    if scopes.len() > SHOWN {
        out.push(format!("… ({} in all)", scopes.len()));
    }
    out.join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::json::parse_object;
    use crate::policy::ValueFormat;

    #[test]
    fn granted_scopes_keep_token_order_without_repeats_however_many() {
        let rules = ScopeRules {
            claims: vec![
                ("scope".into(), ValueFormat::SpaceDelimited),
                ("scp".into(), ValueFormat::Array),
            ],
            required: Vec::new(),
        };
        let json = br#"{"scope": "a b a c d e f g h b i j a k", "scp": ["k", "l", "c", "m", "l"]}"#;
        let claims = parse_object(json, 8).unwrap();
        let granted = granted(&claims, &rules, true, &mut Vec::new(), Texts(true)).unwrap();
        assert_eq!(
            granted.as_slice(),
            [
                "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"
            ]
        );
    }
}
