//! `[client_id]` and `[resource_client_id]`: where the calling client's id and this server's
//! own id come from, and the patterns they must (not) match.

use super::claims::read_pattern;
use super::or_default;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::{IdRule, IdSource};
use crate::policy::reader::{Located, Reader, Value, ticks};

/// Which identifier an `IdRule` resolves: the calling client's (from claims) or this server's own
/// (from the run-time context, resolved once when the engine is built).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum IdPosition {
    Client,
    Resource,
}

impl IdPosition {
    /// The source keys allowed here, and why.
    fn sources(self) -> (&'static [&'static str], &'static str) {
        match self {
            Self::Client => (
                &["claim"],
                "the calling client's id comes from a claim of the token",
            ),
            Self::Resource => (
                &["context", "value"],
                "this server's own id is resolved once, when the engine is built, from the service's context or a fixed value",
            ),
        }
    }
}

pub(super) fn read_id_rule(
    r: &mut Reader,
    v: &Value<'_>,
    name: &str,
    position: IdPosition,
) -> Option<IdRule> {
    let mut t = r.table(v, format!("[{name}]"))?;
    let sources = match t.get("sources") {
        Some(v) => read_sources(r, v, name, position),
        None => {
            let example = match position {
                IdPosition::Client => "[{ claim = \"client_id\" }, { claim = \"azp\" }]",
                IdPosition::Resource => "[{ context = \"credential.key_id\" }]",
            };
            t.missing("sources", example);
            None
        }
    };
    let required = or_default(t.get("required"), true, |v| r.bool(v, &t.path("required")));
    let allow = or_default(t.get("allow"), None, |v| {
        read_pattern(r, v, &t.path("allow")).map(Some)
    });
    let refuse = or_default(t.get("refuse"), Vec::new(), |v| {
        let what = t.path("refuse");
        let items = r.array(v, &what)?;
        let read: Vec<_> = items.iter().map(|i| read_pattern(r, i, &what)).collect();
        read.into_iter().collect()
    });
    t.finish(r);
    let sources = sources?;
    let rule = IdRule {
        sources: sources.iter().map(|s| s.value.clone()).collect(),
        required: required?,
        allow: allow?,
        refuse: refuse?,
    };
    // A fixed value is known now: refusing it would only fail later, when the engine is built.
    let mut ok = true;
    for source in &sources {
        if let IdSource::Value(value) = &source.value
            && let Some(why) = rule.refusal(value)
        {
            r.error(
                DiagnosticKind::InvalidValue,
                source.span.clone(),
                format!("`{name}` value `{value}` is refused by the rule's own patterns: it {why}"),
                "use a value the patterns accept, or change the patterns",
            );
            ok = false;
        }
    }
    ok.then_some(rule)
}

fn read_sources(
    r: &mut Reader,
    v: &Value<'_>,
    name: &str,
    position: IdPosition,
) -> Option<Vec<Located<IdSource>>> {
    let items = r.array(v, &format!("{name}.sources"))?;
    let (allowed, why) = position.sources();
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("`{name}.sources` is empty"),
            format!("{why}: list at least one source with {}", ticks(allowed)),
        );
        return None;
    }
    let read: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut t = r.table(item, format!("{name}.sources[{i}]"))?;
            let given: Vec<&'static str> = ["claim", "context", "value"]
                .into_iter()
                .filter(|k| t.has(k))
                .collect();
            t.allow(&["claim", "context", "value"]);
            let source = match given.as_slice() {
                [key] if allowed.contains(key) => t
                    .get(key)
                    .and_then(|v| r.nonempty_string(v, &t.path(key)))
                    .map(|s| Located {
                        value: match *key {
                            "claim" => IdSource::Claim(s.value),
                            "context" => IdSource::Context(s.value),
                            _ => IdSource::Value(s.value),
                        },
                        span: s.span,
                    }),
                [key] => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        t.key_span(key).unwrap_or(t.span()),
                        format!("`{key}` is not a source for `{name}`"),
                        format!("{why}: use {}", ticks(allowed).replace(", ", " or ")),
                    );
                    None
                }
                [] => {
                    r.error(
                        DiagnosticKind::MissingKey,
                        t.span(),
                        format!("`{}` names no source", t.name),
                        format!("{why}: use {}", ticks(allowed).replace(", ", " or ")),
                    );
                    None
                }
                many => {
                    r.error(
                        DiagnosticKind::Conflict,
                        t.span(),
                        format!(
                            "`{}` has both {}",
                            t.name,
                            ticks(many).replace(", ", " and ")
                        ),
                        format!("{why}: keep one, as its own table in `sources`"),
                    );
                    None
                }
            };
            t.finish(r);
            source
        })
        .collect();
    read.into_iter().collect()
}
