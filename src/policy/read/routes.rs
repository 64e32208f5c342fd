//! `[[routes]]`: what a request needs beyond the policy, by path prefix and method.

use super::scopes::scope_list;
use super::{or_default, values};
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::Rule;
use crate::policy::reader::{Located, Reader, Value, ticks};
use crate::policy::routes::{Requirement, Route, request_path};

/// The request methods a route may list (RFC 9110 §9, and PATCH).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `[[routes]]`: per-route requirements. `rules` is the policy's rules, when they could be read,
/// so that a route naming a rule can be checked.
pub(super) fn read_routes(
    r: &mut Reader,
    v: &Value<'_>,
    rules: Option<&[Rule]>,
) -> Option<Vec<Route>> {
    let items = r.array(v, "routes")?;
    let mut out: Vec<Route> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("routes[{i}]")) else {
            ok = false;
            continue;
        };
        let path = match t.get("path") {
            Some(v) => r
                .nonempty_string(v, &t.path("path"))
                .and_then(|p| route_path(r, p, &t.path("path"))),
            None => {
                t.missing("path", "\"/admin\"");
                None
            }
        };
        let methods = or_default(t.get("methods"), Vec::new(), |v| {
            let list = r.strings(v, &t.path("methods"))?;
            let mut methods: Vec<String> = Vec::new();
            let mut fine = true;
            for m in list {
                if !METHODS.contains(&m.value.as_str()) {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        m.span,
                        format!("`{}` is not a request method", m.value),
                        format!("methods are upper case: one of {}", ticks(&METHODS)),
                    );
                    fine = false;
                } else if !methods.contains(&m.value) {
                    methods.push(m.value);
                }
            }
            fine.then_some(methods)
        });
        let scopes = or_default(t.get("scopes"), Vec::new(), |v| {
            scope_list(r, v, &t.path("scopes")).map(values)
        });
        let named = or_default(t.get("rules"), Vec::new(), |v| {
            let list = r.strings(v, &t.path("rules"))?;
            // Every name is checked (and every problem reported) before the answer.
            let checked: Vec<bool> = list.iter().map(|name| route_rule(r, name, rules)).collect();
            let fine = checked.iter().all(|ok| *ok);
            fine.then(|| values(list))
        });
        let span = t.span();
        t.finish(r);
        let (Some(path), Some(methods), Some(scopes), Some(named)) = (path, methods, scopes, named)
        else {
            ok = false;
            continue;
        };
        if out.iter().any(|o| o.path == path && o.methods == methods) {
            r.error(
                DiagnosticKind::Duplicate,
                span,
                format!("a second route for `{path}` with the same methods"),
                "merge the two `[[routes]]` entries",
            );
            ok = false;
            continue;
        }
        let requirement = named
            .into_iter()
            .fold(Requirement::new().scopes_from(scopes), Requirement::rule);
        out.push(Route {
            path,
            methods,
            requirement,
        });
    }
    ok.then_some(out)
}

/// A route's path prefix, as requests carry it: from `/`, no trailing `/` kept.
fn route_path(r: &mut Reader, p: Located<String>, what: &str) -> Option<String> {
    let trimmed = match p.value.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    match request_path(trimmed) {
        Ok(path) if path == trimmed => Some(trimmed.to_owned()),
        Ok(_) | Err(_) => {
            r.error(
                DiagnosticKind::InvalidValue,
                p.span,
                format!("`{what}` `{}` is not a plain path prefix", p.value),
                "write the path as requests carry it, from `/`, without `.` or `..` segments, `//`, a query or percent-encoded unreserved characters: `\"/admin\"`",
            );
            None
        }
    }
}

/// Whether a route may name rule `name`: a rule of the policy marked `route_only`.
fn route_rule(r: &mut Reader, name: &Located<String>, rules: Option<&[Rule]>) -> bool {
    // When the rules could not be read, their own errors are the story.
    let Some(rules) = rules else { return true };
    match rules.iter().find(|rule| rule.name == name.value) {
        Some(rule) if rule.route_only => true,
        Some(_) => {
            r.error(
                DiagnosticKind::Conflict,
                name.span.clone(),
                format!("rule `{}` already applies to every request", name.value),
                "mark the rule `route_only = true` so that only the routes naming it apply it, or remove it here",
            );
            false
        }
        None => {
            let close = rules
                .iter()
                .filter(|rule| rule.route_only)
                .map(|rule| {
                    (
                        strsim::damerau_levenshtein(&name.value, &rule.name),
                        &rule.name,
                    )
                })
                .filter(|(distance, rule)| *distance <= (rule.len() / 3).max(2))
                .min();
            let help = match close {
                Some((_, rule)) => format!("did you mean `{rule}`?"),
                None => "name a `[[rules]]` entry that has `route_only = true`".to_owned(),
            };
            r.error(
                DiagnosticKind::InvalidValue,
                name.span.clone(),
                format!("there is no rule `{}`", name.value),
                help,
            );
            false
        }
    }
}
