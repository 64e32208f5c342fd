//! Lints: valid policies with dangerous patterns (DESIGN §3). Each is a located warning with advice.

use std::ops::Range;

use super::diagnostic::DiagnosticKind;
use super::model::{
    ClaimTest, Condition, Constraint, IssuerKeys, JsonType, Literal, Pattern, Policy, Presence,
};
use super::reader::{Located, Reader};
use crate::Algorithm;
use crate::token::numeric;

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
                .any(|k| k.mismatch(*alg, &issuer.algorithms).is_none())
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
    let mut patterns: Vec<&Pattern> = Vec::new();
    for c in &policy.constraints {
        must_match_in_constraint(c, &mut patterns);
    }
    for rule in &policy.rules {
        must_match_in_condition(&rule.require, true, &mut patterns);
    }
    patterns.extend(policy.client_id.allow.iter());
    if let Some(rc) = &policy.resource_client_id {
        patterns.extend(rc.allow.iter());
    }
    for p in patterns {
        if !is_anchored(&p.source) {
            r.warn(
                DiagnosticKind::UnanchoredRegex,
                p.span.clone(),
                format!(
                    "regex `{}` is not anchored: it matches values that merely contain a match",
                    p.source
                ),
                anchoring_help(&p.source),
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

/// Whether a pattern matches only whole values: `^` (or `\A`) first, `$` (or `\z`) last, and no
/// top-level `|` (in `^a|b$` the anchors bind to one alternative each).
fn is_anchored(source: &str) -> bool {
    let (starts, ends) = anchors(source);
    starts && ends && !has_top_level_alternation(source)
}

fn anchors(source: &str) -> (bool, bool) {
    let starts = source.starts_with('^') || source.starts_with("\\A");
    let ends = (source.ends_with('$') && !source.ends_with("\\$")) || source.ends_with("\\z");
    (starts, ends)
}

fn has_top_level_alternation(source: &str) -> bool {
    let (mut depth, mut in_class, mut escaped) = (0usize, false, false);
    for c in source.chars() {
        match (escaped, in_class, c) {
            (true, _, _) => escaped = false,
            (false, _, '\\') => escaped = true,
            (false, true, ']') => in_class = false,
            (false, true, _) => {}
            (false, false, '[') => in_class = true,
            (false, false, '(') => depth += 1,
            (false, false, ')') => depth = depth.saturating_sub(1),
            (false, false, '|') if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Advice that keeps what the pattern means: the whole-value form, and the explicit partial form
/// for when a partial match was intended.
fn anchoring_help(source: &str) -> String {
    let (starts, ends) = anchors(source);
    let core = if starts {
        source.trim_start_matches('^').trim_start_matches("\\A")
    } else {
        source
    };
    let core = if ends {
        core.trim_end_matches('$').trim_end_matches("\\z")
    } else {
        core
    };
    if has_top_level_alternation(source) {
        return format!(
            "`|` splits the anchors between the alternatives: group them, `^(?:{core})$`"
        );
    }
    let partial = format!(
        "{}(?:{core}){}",
        if starts { "^" } else { "^.*" },
        if ends { "$" } else { ".*$" }
    );
    format!(
        "to match whole values write `^(?:{core})$`; if a partial match is intended, say so: `{partial}`"
    )
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

    #[test]
    fn anchoring() {
        assert!(is_anchored("^a$"));
        assert!(is_anchored("\\Aa\\z"));
        assert!(is_anchored("^(?:a|b)$"));
        assert!(is_anchored("^[|]$"));
        assert!(is_anchored("^a\\|b$"));
        assert!(!is_anchored("^a"));
        assert!(!is_anchored("a$"));
        assert!(!is_anchored("^a\\$"));
        assert!(!is_anchored("^admin|user$"));
    }

    #[test]
    fn anchoring_help_keeps_the_meaning() {
        assert!(anchoring_help("@example\\.com$").ends_with("`^.*(?:@example\\.com)$`"));
        assert!(anchoring_help("^mcp-").ends_with("`^(?:mcp-).*$`"));
        assert!(anchoring_help("admin").contains("`^(?:admin)$`"));
        assert!(anchoring_help("^admin|user$").contains("`^(?:admin|user)$`"));
    }
}
