//! The calling client's id, from ordered claim sources, and this server's own id, resolved once.

use std::collections::BTreeMap;

use crate::engine::claims::show;
use crate::engine::decision::Reason;
use crate::engine::{BuildError, Failure, Texts};
use crate::json::{Json, Object};
use crate::policy::{IdRule, IdSource};
use crate::text::quote;

/// The chosen client id and the claim it came from.
pub(crate) struct ClientId<'a> {
    pub(crate) id: &'a str,
    pub(crate) source: &'a str,
}

/// The first present source wins; a present but malformed or refused value fails rather than
/// falling through to the next source (falling through would let a token pick its identity).
pub(crate) fn resolve<'a>(
    claims: &'a Object,
    rule: &'a IdRule,
    t: Texts,
) -> Result<Option<ClientId<'a>>, Failure> {
    for source in &rule.sources {
        let IdSource::Claim(name) = source else {
            continue;
        };
        let Some(value) = claims.get(name) else {
            continue;
        };
        let id = match value {
            Json::String(s) if !s.is_empty() => &**s,
            other => {
                return Err(Failure::new(t, Reason::InvalidClaim, || {
                    (
                        format!("`{name}` as a non-empty string"),
                        show(other),
                        format!("client id claim `{name}` is malformed"),
                    )
                }));
            }
        };
        if let Some(why) = rule.refusal(id) {
            return Err(Failure::new(t, Reason::InvalidClaim, || {
                (
                    why.clone(),
                    format!("`{name}` {}", quote(id)),
                    format!("client id from `{name}` is refused: {why}"),
                )
            }));
        }
        return Ok(Some(ClientId { id, source: name }));
    }
    if rule.required {
        let names: Vec<String> = rule
            .sources
            .iter()
            .filter_map(|s| match s {
                IdSource::Claim(n) => Some(format!("`{n}`")),
                _ => None,
            })
            .collect();
        return Err(Failure::with_texts(
            Reason::MissingClientId,
            format!("one of {}", names.join(", ")),
            "none present".into(),
            "the token names no client".into(),
        ));
    }
    Ok(None)
}

/// Resolves this server's own client id once, from the context the service provides.
pub(crate) fn resolve_resource(
    rule: &IdRule,
    context: &BTreeMap<String, String>,
) -> Result<Option<String>, BuildError> {
    for source in &rule.sources {
        let (value, from) = match source {
            IdSource::Context(key) => match context.get(key) {
                Some(v) if !v.is_empty() => (v.clone(), source.to_string()),
                _ => continue,
            },
            IdSource::Value(v) => (v.clone(), source.to_string()),
            IdSource::Claim(_) => continue,
        };
        if let Some(why) = rule.refusal(&value) {
            return Err(BuildError::RefusedResourceClientId { value, from, why });
        }
        return Ok(Some(value));
    }
    if rule.required {
        let tried: Vec<String> = rule.sources.iter().map(|s| s.to_string()).collect();
        let contexts = rule
            .sources
            .iter()
            .filter_map(|s| match s {
                IdSource::Context(key) => Some(key.clone()),
                _ => None,
            })
            .collect();
        return Err(BuildError::MissingResourceClientId {
            tried: tried.join(", "),
            contexts,
        });
    }
    Ok(None)
}
