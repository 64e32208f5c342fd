//! Lints: valid policies with dangerous patterns (DESIGN §3). Each is a located warning with advice.

use std::ops::Range;

use super::diagnostic::DiagnosticKind;
use super::model::{
    ClaimTest, Condition, Constraint, IssuerKeys, JsonType, Literal, Pattern, Policy, Presence,
};
use super::pattern::{self, Parsed};
use super::reader::{Located, Reader};
use crate::Algorithm;
use crate::token::numeric;
use regex_syntax::ast::{AssertionKind, Ast};
use regex_syntax::hir::{self, Hir, HirKind, Look};

/// Leeway beyond this many seconds draws a warning.
const MAX_QUIET_LEEWAY: u64 = 300;

/// The lints that need the whole policy.
pub(crate) fn lint(r: &mut Reader, policy: &Policy) {
    audience(r, policy);
    keys(r, policy);
    regexes(r, policy);
    rules(r, policy);
}

/// Required scopes the resource does not advertise: clients reading the RFC 9728 metadata will
/// never ask for them.
pub(crate) fn unadvertised_scopes(
    r: &mut Reader,
    required: &[Located<String>],
    supported: &[String],
) {
    if supported.is_empty() {
        return;
    }
    for scope in required.iter().filter(|s| !supported.contains(&s.value)) {
        r.warn(
            DiagnosticKind::UnadvertisedScope,
            scope.span.clone(),
            format!(
                "scope `{}` is required but not in `resource.scopes_supported`",
                scope.value
            ),
            "clients learn which scopes to ask for from `scopes_supported`: add it there",
        );
    }
}

/// Keys that can never verify a token, and allowed algorithms no key can verify.
fn keys(r: &mut Reader, policy: &Policy) {
    let kid_required = policy.header.kid == Presence::Required;
    for issuer in &policy.issuers {
        let (Some(IssuerKeys::Static(set)), Some(span)) = (&issuer.keys, &issuer.keys_span) else {
            continue;
        };
        for skipped in set.skipped() {
            r.warn(
                DiagnosticKind::UnusableKey,
                span.clone(),
                format!("JWKS {skipped}"),
                "the other keys still work; remove it if it is not meant for signatures",
            );
        }
        if kid_required {
            let without_kid = set.keys().iter().filter(|k| k.kid().is_none()).count();
            if without_kid > 0 {
                let (keys, have) = if without_kid == 1 {
                    ("key", "has")
                } else {
                    ("keys", "have")
                };
                r.warn(
                    DiagnosticKind::UnusableKey,
                    span.clone(),
                    format!(
                        "{without_kid} {keys} of issuer `{}` {have} no `kid`, and tokens must name their key",
                        issuer.iss
                    ),
                    "give each key the `kid` its tokens carry, or set `kid = \"optional\"` in `[header]`",
                );
            }
        }
        for alg in issuer.algorithms.iter().filter(|a| !a.is_hmac()) {
            // A key a token cannot name does not count.
            let usable = |k: &&crate::jwks::Key| !kid_required || k.kid().is_some();
            if !set
                .keys()
                .iter()
                .filter(usable)
                .any(|k| k.mismatch(*alg).is_none())
            {
                r.warn(
                    DiagnosticKind::UnusableKey,
                    span.clone(),
                    format!(
                        "no key of issuer `{}` can verify `{alg}`, which it allows",
                        issuer.iss
                    ),
                    format!(
                        "add an {} key, or remove `{alg}` from `algorithms`",
                        alg.family()
                    ),
                );
            }
        }
    }
}

/// Leeway over five minutes stretches every time check by that much.
pub(crate) fn leeway(r: &mut Reader, leeway: &Located<u64>) {
    if leeway.value > MAX_QUIET_LEEWAY {
        r.warn(
            DiagnosticKind::LargeLeeway,
            leeway.span.clone(),
            format!(
                "a leeway of {} s accepts tokens that long after they expire",
                leeway.value
            ),
            "clock skew is seconds, not minutes: keep `leeway` at most 5 minutes (e.g. `\"30s\"`)",
        );
    }
}

/// A token without `exp` never expires; with `exp` ignored, no token does.
pub(crate) fn exp(r: &mut Reader, presence: Presence, span: Range<usize>) {
    let message = match presence {
        Presence::Required => return,
        Presence::Optional => "tokens without `exp` are accepted, and they never expire",
        Presence::Ignored => "`exp` is never checked: expired tokens are accepted",
    };
    r.warn(
        DiagnosticKind::ExpNotRequired,
        span,
        message,
        "set `exp = \"required\"` (RFC 9068 requires `exp` in access tokens)",
    );
}

/// Keys fetched over plain HTTP can be replaced by anyone on the path.
pub(crate) fn insecure_url(r: &mut Reader, what: &str, url: &Located<String>) {
    r.warn(
        DiagnosticKind::InsecureKeyUrl,
        url.span.clone(),
        format!("{what} `{}` is plain `http://` to a host that is not loopback: anyone on the path can swap the keys", url.value),
        "use `https://`; `allow_http = true` is meant for test networks",
    );
}

/// Shared secrets can be used by anyone who verifies to mint tokens.
pub(crate) fn hmac(r: &mut Reader, alg: &Located<Algorithm>) {
    if alg.value.is_hmac() {
        r.warn(
            DiagnosticKind::HmacAlgorithm,
            alg.span.clone(),
            format!("`{}` uses a shared secret: anyone holding it can mint tokens", alg.value),
            "prefer an asymmetric algorithm such as `ES256` or `EdDSA` when the issuer supports one",
        );
    }
}

fn audience(r: &mut Reader, policy: &Policy) {
    let Some(audience) = &policy.audience else {
        r.file_warn(
            DiagnosticKind::NoAudienceRule,
            "the policy has no `[audience]` rule: tokens issued for any audience are accepted",
            "add `[audience]` with `accept = [{ value = \"${resource_url}\" }]`",
        );
        return;
    };
    let resource_always_checked = policy.resource_claim == Presence::Required;
    for alt in &audience.accept {
        // A trailing slash makes no other audience: compare without it.
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        let issuer = policy.issuers.iter().find(|i| same(&i.iss, &alt.value));
        if let (Some(issuer), None, false) = (issuer, &alt.resource, resource_always_checked) {
            r.warn(
                DiagnosticKind::UnguardedIssuerAudience,
                alt.span.clone(),
                if alt.value == issuer.iss {
                    format!(
                        "audience `{}` is the issuer itself: every token it issues, for any resource, is accepted",
                        alt.value
                    )
                } else {
                    format!(
                        "audience `{}` is the issuer `{}` itself: every token it issues, for any resource, is accepted",
                        alt.value, issuer.iss
                    )
                },
                "guard it with the resource it must name: `{ value = \"...\", resource = \"${resource_url}\" }`",
            );
        }
        if let Some(resource) = &alt.resource
            && resource != &policy.resource_url
            && policy.resource_claim != Presence::Ignored
        {
            r.warn(
                    DiagnosticKind::UnsatisfiableRule,
                    alt.span.clone(),
                    format!(
                        "audience `{}` needs `resource` to name `{resource}`, but the `resource` claim must also name `{}`",
                        alt.value, policy.resource_url
                    ),
                    format!(
                        "only tokens whose `resource` names both `{resource}` and `{}` can match: did you mean `resource = \"${{resource_url}}\"`?",
                        policy.resource_url
                    ),
                );
        }
    }
}

/// A regex that must match, not anchored at both ends, accepts values that merely contain a match.
fn regexes(r: &mut Reader, policy: &Policy) {
    // Claim tests (in `[claims]` and rules) can say `prefix` / `suffix` instead; ids cannot.
    let mut tests: Vec<&Pattern> = Vec::new();
    for c in &policy.constraints {
        must_match_in_constraint(c, &mut tests);
    }
    for rule in &policy.rules {
        must_match_in_condition(&rule.require, true, &mut tests);
    }
    let ids = policy.client_id.allow.iter().chain(
        policy
            .resource_client_id
            .iter()
            .flat_map(|rc| rc.allow.iter()),
    );
    let patterns = tests
        .into_iter()
        .map(|p| (p, true))
        .chain(ids.map(|p| (p, false)));
    for (p, claim_test) in patterns {
        // Every pattern here compiled when it was read, so it parses.
        let Ok(parsed) = pattern::parse(p.as_str()) else {
            continue;
        };
        if let Some((message, help)) = unanchored(p.as_str(), &parsed, claim_test) {
            r.warn(
                DiagnosticKind::UnanchoredRegex,
                p.span.clone(),
                message,
                help,
            );
        }
    }
}

fn must_match_in_constraint<'p>(c: &'p Constraint, out: &mut Vec<&'p Pattern>) {
    for test in &c.tests {
        if let ClaimTest::Regex(p) = test {
            out.push(p);
        }
    }
}

fn must_match_in_condition<'p>(c: &'p Condition, positive: bool, out: &mut Vec<&'p Pattern>) {
    match c {
        Condition::Claim(c) if positive => must_match_in_constraint(c, out),
        Condition::Claim(_) => {}
        Condition::All(list) | Condition::Any(list) => {
            for c in list {
                must_match_in_condition(c, positive, out);
            }
        }
        Condition::Not(inner) => must_match_in_condition(inner, !positive, out),
    }
}

/// The warning (message, help) for a pattern that does not match only whole values, if it
/// does not. `claim_test` says whether `prefix` / `suffix` can be written instead.
fn unanchored(source: &str, parsed: &Parsed, claim_test: bool) -> Option<(String, String)> {
    let (starts, ends) = anchors(&parsed.hir);
    let whole = |core: &str| format!("to match whole values write `^(?:{core})$`");
    let simpler = |key: &str, start: bool| {
        edge_literal(&parsed.hir, start)
            .filter(|_| claim_test)
            .map(|literal| {
                format!(
                    "to test only the {} write `{key} = {}`",
                    if start { "start" } else { "end" },
                    toml::Value::String(literal)
                )
            })
    };
    let (message, help) = match (starts, ends) {
        (true, true) => return None,
        (true, false) => {
            let core = anchoring_core(source, &parsed.ast, true, false);
            let help = match simpler("prefix", true) {
                Some(test) => format!("{test}; {}", whole(&core)),
                None => format!(
                    "{}; if a partial match is intended, say so: `^(?:{core}).*$`",
                    whole(&core)
                ),
            };
            (
                "is not anchored at the end: it matches any value that starts with a match",
                help,
            )
        }
        (false, true) => {
            let core = anchoring_core(source, &parsed.ast, false, true);
            let help = match simpler("suffix", false) {
                Some(test) => format!("{test}; {}", whole(&core)),
                None => format!(
                    "{}; if a partial match is intended, say so: `^.*(?:{core})$`",
                    whole(&core)
                ),
            };
            (
                "is not anchored at the start: it matches any value that ends with a match",
                help,
            )
        }
        (false, false) if splits_anchors(&parsed.ast) => {
            let core = anchoring_core(source, &parsed.ast, true, true);
            (
                "is not anchored: each anchor binds to one alternative of the top-level `|`",
                format!("group the alternatives between the anchors: `^(?:{core})$`"),
            )
        }
        (false, false) => (
            "is not anchored: it matches any value that contains a match",
            format!(
                "{}; if a partial match is intended, say so: `^.*(?:{source}).*$`",
                whole(source)
            ),
        ),
    };
    Some((format!("regex `{source}` {message}"), help))
}

/// Whether every match starts at the start of the value (`^`, `\A`), and whether every match
/// ends at its end (`$`, `\z`), read from what the pattern matches: an alternation is anchored
/// when each alternative is, and the line anchors of the `m` flag do not count.
fn anchors(hir: &Hir) -> (bool, bool) {
    let properties = hir.properties();
    (
        properties.look_set_prefix().contains(Look::Start),
        properties.look_set_suffix().contains(Look::End),
    )
}

/// Whether a pattern matches only whole values.
#[cfg(test)]
fn is_anchored(hir: &Hir) -> bool {
    anchors(hir) == (true, true)
}

/// The top-level alternatives of a pattern (one when there is no top-level `|`).
fn alternatives(ast: &Ast) -> &[Ast] {
    match ast {
        Ast::Alternation(alternation) => &alternation.asts,
        _ => std::slice::from_ref(ast),
    }
}

/// Whether the pattern has a top-level `|` and anchors at the edges of some alternative: in
/// `^admin|user$` each anchor binds to one alternative, so `xuser` matches.
fn splits_anchors(ast: &Ast) -> bool {
    let alternatives = alternatives(ast);
    alternatives.len() > 1
        && alternatives.iter().any(|alt| {
            let items = items(alt);
            items.first().is_some_and(is_start_anchor) || items.last().is_some_and(is_end_anchor)
        })
}

/// The items of one alternative, in order.
fn items(ast: &Ast) -> &[Ast] {
    match ast {
        Ast::Concat(concat) => &concat.asts,
        _ => std::slice::from_ref(ast),
    }
}

fn is_start_anchor(ast: &Ast) -> bool {
    matches!(ast, Ast::Assertion(a) if matches!(a.kind, AssertionKind::StartLine | AssertionKind::StartText))
}

fn is_end_anchor(ast: &Ast) -> bool {
    matches!(ast, Ast::Assertion(a) if matches!(a.kind, AssertionKind::EndLine | AssertionKind::EndText))
}

/// The pattern without the anchors at the start (`start`) and at the end (`end`) of each
/// top-level alternative, for advice that puts anchors around it: `^(?:core)$`. Inside those,
/// a removed anchor always held, so the advice keeps what the pattern means.
fn anchoring_core(source: &str, ast: &Ast, start: bool, end: bool) -> String {
    let cores: Option<Vec<&str>> = alternatives(ast)
        .iter()
        .map(|alt| {
            let items = items(alt);
            let (mut from, mut to) = (alt.span().start.offset, alt.span().end.offset);
            if let Some(first) = items.first().filter(|a| start && is_start_anchor(a)) {
                from = first.span().end.offset;
            }
            if let Some(last) = items.last().filter(|a| end && is_end_anchor(a)) {
                to = last.span().start.offset.max(from);
            }
            source.get(from..to)
        })
        .collect();
    // Spans come from parsing `source`; the whole pattern is a correct core too.
    cores.map_or_else(|| source.to_owned(), |cores| cores.join("|"))
}

/// The literal text of a pattern that is one literal anchored at the start (`^org_`, when
/// `start`) or at the end (`@example\.com$`).
fn edge_literal(hir: &Hir, start: bool) -> Option<String> {
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let (anchor, literal, look) = match parts.as_slice() {
        [anchor, literal] if start => (anchor, literal, Look::Start),
        [literal, anchor] if !start => (anchor, literal, Look::End),
        _ => return None,
    };
    match (anchor.kind(), literal.kind()) {
        (HirKind::Look(l), HirKind::Literal(hir::Literal(bytes))) if *l == look => {
            String::from_utf8(bytes.to_vec()).ok()
        }
        _ => None,
    }
}

fn rules(r: &mut Reader, policy: &Policy) {
    for rule in &policy.rules {
        if let (Some(why), Some(span)) = (rule.when.as_ref().and_then(never_holds), &rule.when_span)
        {
            r.warn(
                DiagnosticKind::UnsatisfiableRule,
                span.clone(),
                format!(
                    "rule `{}` can never apply: its `when` never holds ({why})",
                    rule.name
                ),
                "fix the condition or remove the rule",
            );
        }
        if let Some(why) = never_holds(&rule.require) {
            r.warn(
                DiagnosticKind::UnsatisfiableRule,
                rule.require_span.clone(),
                format!(
                    "rule `{}` can never pass: its `require` never holds ({why})",
                    rule.name
                ),
                "every token it applies to is denied; fix the condition or remove the rule",
            );
        }
    }
    let conflict = conflicting_equals(policy.constraints.iter());
    let never = policy
        .constraints
        .iter()
        .filter_map(|c| constraint_never_holds(c).map(|why| (c, why)));
    for (c, why) in never.chain(conflict) {
        r.warn(
            DiagnosticKind::UnsatisfiableRule,
            c.span.clone(),
            format!("the constraint on `{}` can never pass ({why})", c.path),
            "every token is denied; fix or remove the constraint",
        );
    }
}

/// Why a condition can never hold, if it obviously cannot.
fn never_holds(c: &Condition) -> Option<String> {
    match c {
        Condition::Claim(c) => constraint_never_holds(c),
        Condition::Any(list) if list.is_empty() => Some("an empty `any`".into()),
        Condition::Any(list) => {
            let reasons: Option<Vec<String>> = list.iter().map(never_holds).collect();
            reasons.map(|r| r.join("; "))
        }
        Condition::All(list) => list.iter().find_map(never_holds).or_else(|| {
            let claims = list.iter().filter_map(|c| match c {
                Condition::Claim(c) => Some(c),
                _ => None,
            });
            conflicting_equals(claims)
                .into_iter()
                .next()
                .map(|(_, why)| why)
        }),
        Condition::Not(inner) => {
            always_holds(inner).then(|| "`not` of a condition that always holds".into())
        }
    }
}

fn always_holds(c: &Condition) -> bool {
    match c {
        Condition::All(list) => list.iter().all(always_holds),
        Condition::Any(list) => list.iter().any(always_holds),
        Condition::Not(inner) => never_holds(inner).is_some(),
        Condition::Claim(_) => false,
    }
}

fn constraint_never_holds(c: &Constraint) -> Option<String> {
    let ty = c.tests.iter().find_map(|t| match t {
        ClaimTest::Type(ty) => Some(*ty),
        _ => None,
    });
    let literal_types = c.tests.iter().filter_map(|t| match t {
        ClaimTest::Equals(l) => Some(literal_type(l)),
        ClaimTest::Prefix(_) | ClaimTest::Suffix(_) | ClaimTest::Regex(_) => Some(JsonType::String),
        _ => None,
    });
    for lt in literal_types {
        if let Some(ty) = ty {
            let compatible = ty == lt || (ty == JsonType::Integer && lt == JsonType::Number);
            let fraction = c.tests.iter().find_map(|t| match t {
                ClaimTest::Equals(Literal::Number(n)) if !numeric::is_integer(n) => Some(n),
                _ => None,
            });
            if let (JsonType::Integer, Some(n)) = (ty, fraction) {
                return Some(format!(
                    "`type = \"integer\"` conflicts with `equals = {n}`"
                ));
            }
            if !compatible {
                return Some(format!(
                    "`type = \"{}\"` conflicts with a {} test",
                    ty.as_str(),
                    lt.as_str()
                ));
            }
        }
    }
    None
}

fn literal_type(l: &Literal) -> JsonType {
    match l {
        Literal::String(_) => JsonType::String,
        Literal::Number(_) => JsonType::Number,
        Literal::Bool(_) => JsonType::Boolean,
    }
}

/// Two required `equals` on the same claim with different values; returns the second one.
fn conflicting_equals<'c>(
    constraints: impl Iterator<Item = &'c Constraint>,
) -> Vec<(&'c Constraint, String)> {
    let equals: Vec<(&Constraint, &Literal)> = constraints
        .filter(|c| !c.if_present)
        .filter_map(|c| {
            c.tests.iter().find_map(|t| match t {
                ClaimTest::Equals(l) => Some((c, l)),
                _ => None,
            })
        })
        .collect();
    // Each constraint is reported once, against the first earlier one it contradicts.
    let mut conflicts = Vec::new();
    for (j, (b, lb)) in equals.iter().enumerate() {
        let first = equals
            .iter()
            .take(j)
            .find(|(a, la)| a.path == b.path && !same_literal(la, lb));
        if let Some((a, la)) = first {
            conflicts.push((*b, format!("`{}` cannot equal both {la} and {lb}", a.path)));
        }
    }
    conflicts
}

fn same_literal(a: &Literal, b: &Literal) -> bool {
    match (a, b) {
        (Literal::Number(a), Literal::Number(b)) => numeric::numbers_equal(a, b),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(source: &str) -> Parsed {
        pattern::parse(source).unwrap()
    }

    #[test]
    fn anchoring() {
        for anchored in [
            "^a$",
            "\\Aa\\z",
            "^(?:a|b)$",
            "^[|]$",
            "^[]|]$",
            "^[](]$",
            "^a\\|b$",
            "^a\\\\$",
            "^a$|^b$",
            "(?x) ^ a $ ",
            "^(a)$",
            "^$",
        ] {
            assert!(is_anchored(&parsed(anchored).hir), "{anchored}");
        }
        for open in [
            "^a",
            "a$",
            "^a\\$",
            "^admin|user$",
            "^[](]a|b$",
            "(?m)^a$",
            "^(?m)a$",
            "^a?$?",
            "(?:^a)?$",
        ] {
            assert!(!is_anchored(&parsed(open).hir), "{open}");
        }
    }

    #[test]
    fn anchoring_help_keeps_the_meaning() {
        let help = |source: &str, claim_test: bool| {
            unanchored(source, &parsed(source), claim_test).map(|(_, help)| help)
        };
        assert!(
            help("@example\\.com$", false)
                .unwrap()
                .ends_with("`^.*(?:@example\\.com)$`")
        );
        assert!(help("^mcp-", false).unwrap().ends_with("`^(?:mcp-).*$`"));
        assert!(
            help("^mcp-", true)
                .unwrap()
                .starts_with("to test only the start write `prefix = \"mcp-\"`")
        );
        assert!(help("^(mcp-)", true).unwrap().ends_with("`^(?:(mcp-)).*$`"));
        assert!(help("admin", true).unwrap().contains("`^(?:admin)$`"));
        assert!(
            help("^admin|user$", true)
                .unwrap()
                .contains("`^(?:admin|user)$`")
        );
        assert!(help("^a|^b", true).unwrap().contains("`^(?:a|b).*$`"));
        assert!(help("(?m)^a$", true).unwrap().contains("`^(?:(?m)^a$)$`"));
        assert!(help("^a$|^b$", true).is_none());
    }
}
