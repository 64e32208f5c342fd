//! `[scopes]`: the claims that carry scopes and the scopes every token needs; scope lists.

use toml::de::DeValue;

use super::{FORMATS, or_default, values};
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::{ScopeRules, ValueFormat};
use crate::policy::reader::{Located, Reader, Value};

pub(super) fn default_scopes() -> ScopeRules {
    ScopeRules {
        claims: vec![
            ("scope".into(), ValueFormat::SpaceDelimited),
            ("scp".into(), ValueFormat::SpaceDelimitedOrArray),
        ],
        required: Vec::new(),
    }
}

/// The scope rules, and the required scopes where they are written.
pub(super) fn read_scopes(
    r: &mut Reader,
    v: &Value<'_>,
) -> Option<(ScopeRules, Vec<Located<String>>)> {
    let mut t = r.table(v, "[scopes]")?;
    let claims = or_default(t.get("claims"), default_scopes().claims, |v| {
        let items = r.array(v, "scopes.claims")?;
        if items.is_empty() {
            r.error(
                DiagnosticKind::InvalidValue,
                v.span(),
                "`scopes.claims` is empty",
                "e.g. `[{ claim = \"scope\", format = \"space_delimited\" }]`",
            );
            return None;
        }
        let read: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut t = r.table(item, format!("scopes.claims[{i}]"))?;
                let claim = match t.get("claim") {
                    Some(v) => r.nonempty_string(v, &t.path("claim")).map(|s| s.value),
                    None => {
                        t.missing("claim", "\"scope\"");
                        None
                    }
                };
                let format = or_default(t.get("format"), ValueFormat::SpaceDelimitedOrArray, |v| {
                    r.choice(v, &t.path("format"), FORMATS)
                });
                t.finish(r);
                Some((claim?, format?))
            })
            .collect();
        read.into_iter().collect()
    });
    let required = or_default(t.get("required"), Vec::new(), |v| {
        scope_list(r, v, "scopes.required")
    });
    t.finish(r);
    let required = required?;
    Some((
        ScopeRules {
            claims: claims?,
            required: values(required.clone()),
        },
        required,
    ))
}

/// A list of scope names: non-empty strings without spaces (a space separates scopes).
pub(super) fn scope_list(
    r: &mut Reader,
    v: &Value<'_>,
    what: &str,
) -> Option<Vec<Located<String>>> {
    let list = r.strings(v, what);
    let mut ok = true;
    let items = match v.get_ref() {
        DeValue::Array(items) => items.as_ref(),
        _ => &[],
    };
    for item in items {
        if let DeValue::String(scope) = item.get_ref()
            && scope.contains(' ')
        {
            r.error(
                DiagnosticKind::InvalidValue,
                item.span(),
                format!("scope `{scope}` contains a space"),
                "list each scope as its own string",
            );
            ok = false;
        }
    }
    list.filter(|_| ok)
}
