//! `[claims]`: required claims and claim constraints, with what rule conditions, `[client_id]`
//! and `[forward]` share: claim paths, literals, tests and patterns.

use toml::de::DeValue;

use super::{FORMATS, or_default, values};
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::{
    ClaimPath, ClaimTest, Constraint, JsonType, Literal, Pattern, ValueFormat,
};
use crate::policy::reader::{Reader, Table, Value, ticks, type_name};

const TYPES: &[(&str, JsonType)] = &[
    ("string", JsonType::String),
    ("number", JsonType::Number),
    ("integer", JsonType::Integer),
    ("boolean", JsonType::Boolean),
    ("array", JsonType::Array),
    ("object", JsonType::Object),
    ("null", JsonType::Null),
];

/// The keys of a claim constraint (shared by `claims.constraints` and rule conditions).
pub(super) const CONSTRAINT_KEYS: [&str; 14] = [
    "claim",
    "path",
    "format",
    "if_present",
    "present",
    "equals",
    "one_of",
    "prefix",
    "suffix",
    "regex",
    "contains",
    "contains_any",
    "contains_all",
    "type",
];

pub(super) fn read_claims(
    r: &mut Reader,
    v: &Value<'_>,
) -> (Option<Vec<ClaimPath>>, Option<Vec<Constraint>>) {
    let Some(mut t) = r.table(v, "[claims]") else {
        return (None, None);
    };
    let required = or_default(t.get("required"), Vec::new(), |v| {
        let items = r.array(v, "claims.required")?;
        let mut paths: Vec<ClaimPath> = Vec::new();
        let mut ok = true;
        for item in items {
            match read_path(r, item, "claims.required") {
                Some(path) if paths.contains(&path) => {
                    r.error(
                        DiagnosticKind::Duplicate,
                        item.span(),
                        format!("claim `{path}` is listed twice in `claims.required`"),
                        "remove the repeat",
                    );
                    ok = false;
                }
                Some(path) => paths.push(path),
                None => ok = false,
            }
        }
        ok.then_some(paths)
    });
    let constraints = or_default(t.get("constraints"), Vec::new(), |v| {
        let items = r.array(v, "claims.constraints")?;
        let read: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut t = r.table(item, format!("claims.constraints[{i}]"))?;
                let c = read_constraint_fields(r, &mut t);
                t.finish(r);
                c
            })
            .collect();
        read.into_iter().collect()
    });
    t.finish(r);
    (required, constraints)
}

/// A claim path: `"sub"` (one top-level name) or `["realm_access", "roles"]`.
pub(super) fn read_path(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<ClaimPath> {
    match v.get_ref() {
        DeValue::String(_) => r.nonempty_string(v, what).map(|s| ClaimPath::top(&s.value)),
        DeValue::Array(_) => {
            let segments = r.strings(v, what)?;
            if segments.is_empty() {
                r.error(
                    DiagnosticKind::InvalidValue,
                    v.span(),
                    format!("`{what}` has an empty claim path"),
                    "name the claim, e.g. `[\"realm_access\", \"roles\"]`",
                );
                return None;
            }
            Some(ClaimPath(values(segments)))
        }
        _ => {
            r.error(
                DiagnosticKind::WrongType,
                v.span(),
                format!(
                    "`{what}` names claims as strings, found {}",
                    type_name(v.get_ref())
                ),
                "write `\"sub\"`, or `[\"realm_access\", \"roles\"]` for a nested claim",
            );
            None
        }
    }
}

/// The claim a table is about: `claim` (a top-level name) or `path` (a nested one), exactly one
/// of them (`example` shows `claim` when both are missing). Shared by claim constraints, rule
/// conditions and forwarded headers.
pub(super) fn read_claim_or_path(
    r: &mut Reader,
    t: &mut Table<'_, '_>,
    example: &str,
) -> Option<ClaimPath> {
    match (t.get("claim"), t.get("path")) {
        (Some(c), None) => match c.get_ref() {
            DeValue::String(_) => r
                .nonempty_string(c, &t.path("claim"))
                .map(|s| ClaimPath::top(&s.value)),
            _ => {
                r.error(
                    DiagnosticKind::WrongType,
                    c.span(),
                    format!("`{}` must be a string", t.path("claim")),
                    "for a nested claim write `path = [\"outer\", \"inner\"]`",
                );
                None
            }
        },
        (None, Some(p)) => read_path(r, p, &t.path("path")),
        (Some(_), Some(p)) => {
            r.error(
                DiagnosticKind::Conflict,
                p.span(),
                format!("`{}` has both `claim` and `path`", t.name),
                "use `claim` for a top-level claim, `path` for a nested one",
            );
            None
        }
        (None, None) => {
            t.missing("claim", example);
            None
        }
    }
}

/// The constraint keys of a table (shared by `claims.constraints` and rule conditions).
pub(super) fn read_constraint_fields(r: &mut Reader, t: &mut Table<'_, '_>) -> Option<Constraint> {
    let path = read_claim_or_path(r, t, "\"sub\"");
    let format = or_default(t.get("format"), ValueFormat::StringOrArray, |v| {
        r.choice(v, &t.path("format"), FORMATS)
    });
    let if_present = or_default(t.get("if_present"), false, |v| {
        r.bool(v, &t.path("if_present"))
    });
    let fmt = format.unwrap_or(ValueFormat::StringOrArray);
    let mut tests = Vec::new();
    let mut ok = true;
    let test_keys: Vec<&'static str> = CONSTRAINT_KEYS.iter().copied().skip(4).collect();
    for &key in &test_keys {
        let Some(v) = t.get(key) else { continue };
        let what = t.path(key);
        if matches!(key, "one_of" | "contains_any" | "contains_all")
            && matches!(v.get_ref(), DeValue::Array(items) if items.is_empty())
        {
            let effect = if key == "contains_all" {
                "always passes"
            } else {
                "never passes"
            };
            r.error(
                DiagnosticKind::InvalidValue,
                v.span(),
                format!("`{what}` is empty, so the test {effect}"),
                "list at least one value, or remove the test",
            );
            ok = false;
            continue;
        }
        let test = match key {
            "present" => r.bool(v, &what).map(ClaimTest::Present),
            "equals" => read_literal(r, v, &what).map(ClaimTest::Equals),
            "one_of" => r
                .array(v, &what)
                .and_then(|items| {
                    let read: Vec<_> = items.iter().map(|i| read_literal(r, i, &what)).collect();
                    read.into_iter().collect()
                })
                .map(ClaimTest::OneOf),
            "prefix" => r
                .nonempty_string(v, &what)
                .map(|s| ClaimTest::Prefix(s.value)),
            "suffix" => r
                .nonempty_string(v, &what)
                .map(|s| ClaimTest::Suffix(s.value)),
            "regex" => read_pattern(r, v, &what).map(ClaimTest::Regex),
            "contains" => r
                .nonempty_string(v, &what)
                .map(|s| ClaimTest::Contains(s.value, fmt)),
            "contains_any" => r
                .strings(v, &what)
                .map(|s| ClaimTest::ContainsAny(values(s), fmt)),
            "contains_all" => r
                .strings(v, &what)
                .map(|s| ClaimTest::ContainsAll(values(s), fmt)),
            _ => r.choice(v, &what, TYPES).map(ClaimTest::Type),
        };
        match test {
            Some(test) => tests.push(test),
            None => ok = false,
        }
    }
    if ok && tests.is_empty() && path.is_some() {
        r.error(
            DiagnosticKind::MissingKey,
            t.span(),
            format!("`{}` names a claim but tests nothing", t.name),
            format!("add a test: {}", ticks(&test_keys)),
        );
        ok = false;
    }
    let must_be_absent = tests
        .iter()
        .any(|test| matches!(test, ClaimTest::Present(false)));
    if must_be_absent && tests.len() > 1 {
        r.error(
            DiagnosticKind::Conflict,
            t.span(),
            format!(
                "`{}` says the claim must be absent, and also tests its value",
                t.name
            ),
            "with `present = false` there is no value to test: remove the other tests",
        );
        ok = false;
    }
    let contains_test = tests.iter().any(|test| {
        matches!(
            test,
            ClaimTest::Contains(..) | ClaimTest::ContainsAny(..) | ClaimTest::ContainsAll(..)
        )
    });
    if let (Some(span), false) = (t.key_span("format"), contains_test) {
        r.error(
            DiagnosticKind::Conflict,
            span,
            format!(
                "`{}` only applies to `contains`, `contains_any` and `contains_all`",
                t.path("format")
            ),
            "remove `format`, or add a `contains` test",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Constraint {
        path: path?,
        if_present: if_present?,
        tests,
        span: t.span(),
    })
}

fn read_literal(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Literal> {
    match v.get_ref() {
        DeValue::String(_) => r.string(v, what).map(|s| Literal::String(s.value)),
        DeValue::Boolean(b) => Some(Literal::Bool(*b)),
        DeValue::Integer(i) => {
            match i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                Ok(n) => Some(Literal::Number(n.to_string())),
                Err(_) => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        v.span(),
                        format!("`{what}` is not a valid integer"),
                        "write an integer that fits in 128 bits",
                    );
                    None
                }
            }
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            let digits = text
                .trim_start_matches(['+', '-'])
                .starts_with(|c: char| c.is_ascii_digit());
            if digits && text.parse::<f64>().is_ok_and(f64::is_finite) {
                Some(Literal::Number(text.trim_start_matches('+').to_owned()))
            } else {
                r.error(
                    DiagnosticKind::InvalidValue,
                    v.span(),
                    format!("`{what}` must be a finite number"),
                    "`inf` and `nan` are never claim values",
                );
                None
            }
        }
        _ => {
            r.wrong_type(what, "a string, number or boolean", "\"value\"", v);
            None
        }
    }
}

pub(super) fn read_pattern(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Pattern> {
    let s = r.nonempty_pattern(v, what)?;
    match Pattern::new(s.value.clone(), s.span.clone()) {
        Ok(pattern) => Some(pattern),
        Err(why) => {
            r.error(
                DiagnosticKind::InvalidRegex,
                s.span,
                format!("`{what}` is not a valid regular expression: `{}`", s.value),
                why,
            );
            None
        }
    }
}
