//! `[[rules]]`: named rules and their conditions (`all`, `any`, `not`, constraints).

use super::claims::{CONSTRAINT_KEYS, read_constraint_fields};
use super::or_default;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::{Condition, Rule};
use crate::policy::reader::{Reader, Value, ticks};

/// The keys that combine conditions.
const COMBINATORS: [&str; 3] = ["all", "any", "not"];

/// Conditions nest at most this deep, so evaluation recursion is bounded by the policy's author.
const MAX_CONDITION_DEPTH: usize = 16;

pub(super) fn read_rules(r: &mut Reader, v: &Value<'_>) -> Option<Vec<Rule>> {
    let items = r.array(v, "rules")?;
    let mut out: Vec<Rule> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("rules[{i}]")) else {
            ok = false;
            continue;
        };
        let name = match t.get("name") {
            Some(v) => r.nonempty_string(v, &t.path("name")),
            None => {
                t.missing("name", "\"admin-needs-mfa\"");
                None
            }
        };
        if let Some(n) = name
            .as_ref()
            .filter(|n| out.iter().any(|rule| rule.name == n.value))
        {
            r.error(
                DiagnosticKind::Duplicate,
                n.span.clone(),
                format!("rule name `{}` is used twice", n.value),
                "decisions cite rules by name: make each unique",
            );
            ok = false;
        }
        let description = t
            .get("description")
            .and_then(|v| r.string(v, &t.path("description")))
            .map(|s| s.value);
        let permission = or_default(t.get("permission"), false, |v| {
            r.bool(v, &t.path("permission"))
        });
        let route_only = or_default(t.get("route_only"), false, |v| {
            r.bool(v, &t.path("route_only"))
        });
        let when_value = t.get("when");
        let when = or_default(when_value, None, |v| {
            read_condition(r, v, &t.path("when"), 0).map(Some)
        });
        let require_value = t.get("require");
        let require = match require_value {
            Some(v) => read_condition(r, v, &t.path("require"), 0),
            None => {
                t.missing("require", "{ claim = \"amr\", contains = \"mfa\" }");
                None
            }
        };
        t.finish(r);
        match (name, when, require, require_value, permission, route_only) {
            (
                Some(name),
                Some(when),
                Some(require),
                Some(require_value),
                Some(permission),
                Some(route_only),
            ) => out.push(Rule {
                name: name.value,
                description,
                permission,
                route_only,
                when,
                require,
                when_span: when_value.map(|v| v.span()),
                require_span: require_value.span(),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_condition(r: &mut Reader, v: &Value<'_>, name: &str, depth: usize) -> Option<Condition> {
    if depth > MAX_CONDITION_DEPTH {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("conditions nest deeper than {MAX_CONDITION_DEPTH} levels"),
            "flatten the condition: `all` and `any` take lists, so nesting is rarely needed",
        );
        return None;
    }
    let mut t = r.table(v, name)?;
    let present: Vec<&'static str> = COMBINATORS.iter().copied().filter(|k| t.has(k)).collect();
    let condition = match present.as_slice() {
        [] => {
            t.allow(&COMBINATORS);
            read_constraint_fields(r, &mut t).map(Condition::Claim)
        }
        [one] => {
            let others: Vec<&str> = CONSTRAINT_KEYS
                .iter()
                .copied()
                .filter(|k| t.has(k))
                .collect();
            // The constraint keys are reported here as a conflict, not as unknown keys.
            t.allow(&CONSTRAINT_KEYS);
            let value = t.get(one);
            if !others.is_empty() {
                let keys = if others.len() == 1 { "key" } else { "keys" };
                let fix = if *one == "not" {
                    "put the constraint inside `not`: `not = { claim = \"...\", ... }`".to_owned()
                } else {
                    format!("move the constraint into the `{one}` list as its own table")
                };
                r.error(
                    DiagnosticKind::Conflict,
                    t.span(),
                    format!(
                        "`{name}` mixes `{one}` with constraint {keys} {}",
                        ticks(&others)
                    ),
                    fix,
                );
            }
            let inner = value.and_then(|value| match *one {
                "not" => read_condition(r, value, &format!("{name}.not"), depth + 1)
                    .map(|c| Condition::Not(Box::new(c))),
                list => {
                    let what = format!("{name}.{list}");
                    let items = r.array(value, &what)?;
                    if items.is_empty() {
                        // Like an empty `one_of` or `contains_all`: a condition that says nothing.
                        let effect = if list == "all" {
                            "always holds"
                        } else {
                            "never holds"
                        };
                        r.error(
                            DiagnosticKind::InvalidValue,
                            value.span(),
                            format!("`{what}` is empty, so the condition {effect}"),
                            "list at least one condition, or remove it",
                        );
                        return None;
                    }
                    let read: Vec<_> = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            read_condition(r, item, &format!("{name}.{list}[{i}]"), depth + 1)
                        })
                        .collect();
                    let conditions = read.into_iter().collect::<Option<Vec<_>>>()?;
                    Some(if list == "all" {
                        Condition::All(conditions)
                    } else {
                        Condition::Any(conditions)
                    })
                }
            });
            if others.is_empty() { inner } else { None }
        }
        many => {
            r.error(
                DiagnosticKind::Conflict,
                t.span(),
                format!(
                    "`{name}` has {}; a condition is one of them",
                    ticks(many).replace(", ", " and ")
                ),
                "nest them: `{ all = [{ any = [...] }, { not = {...} }] }`",
            );
            t.allow(&COMBINATORS);
            t.allow(&CONSTRAINT_KEYS);
            None
        }
    };
    t.finish(r);
    condition
}
