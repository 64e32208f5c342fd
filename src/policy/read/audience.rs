//! `[audience]`: the audiences a token may name, and the `resource` an audience may require.

use toml::de::DeValue;

use super::or_default;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::lint;
use crate::policy::model::{Audience, AudienceAlternative, AudienceRule, Match};
use crate::policy::reader::{Reader, Value};

pub(super) fn read_audience(r: &mut Reader, v: &Value<'_>) -> Option<Audience> {
    let mut t = r.table(v, "[audience]")?;
    let mode_value = t.get("mode");
    let mode = or_default(mode_value, Match::Any, |v| {
        r.choice(
            v,
            "audience.mode",
            &[("any", Match::Any), ("all", Match::All)],
        )
    });
    let audience = match t.get("accept") {
        // The explicit opt-out: written out, so it is never the result of forgetting a table.
        Some(v) if matches!(v.get_ref(), DeValue::String(_)) => {
            let any = r.string(v, "audience.accept")?;
            if any.value != "any" {
                r.error(
                    DiagnosticKind::InvalidValue,
                    any.span,
                    format!("`audience.accept` cannot be `{}`", any.value),
                    "list the accepted audiences: `accept = [{ value = \"${resource_url}\" }]` (only `\"any\"` may be written as a string)",
                );
                return None;
            }
            lint::any_audience(r, any.span);
            if let Some(mode) = mode_value {
                r.error(
                    DiagnosticKind::Conflict,
                    mode.span(),
                    "`audience.mode` has nothing to combine when `accept = \"any\"`",
                    "remove `mode`",
                );
                return None;
            }
            Some(Audience::Any)
        }
        Some(v) => read_alternatives(r, v).and_then(|accept| {
            Some(Audience::Accept(AudienceRule {
                mode: mode?,
                accept,
            }))
        }),
        None => {
            t.missing("accept", "[{ value = \"${resource_url}\" }]");
            None
        }
    };
    t.finish(r);
    audience
}

fn read_alternatives(r: &mut Reader, v: &Value<'_>) -> Option<Vec<AudienceAlternative>> {
    let items = r.array(v, "audience.accept")?;
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            "`audience.accept` is empty, so no token could pass",
            "accept at least this resource: `{ value = \"${resource_url}\" }`",
        );
        return None;
    }
    let read: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut t = r.table(item, format!("audience.accept[{i}]"))?;
            let value = match t.get("value") {
                Some(v) => r.nonempty_string(v, &t.path("value")),
                None => {
                    t.missing("value", "\"${resource_url}\"");
                    None
                }
            };
            let resource = or_default(t.get("resource"), None, |v| {
                r.nonempty_string(v, &t.path("resource"))
                    .map(|s| Some(s.value))
            });
            t.finish(r);
            Some(AudienceAlternative {
                value: value?.value,
                resource: resource?,
                span: item.span(),
            })
        })
        .collect();
    read.into_iter().collect()
}
