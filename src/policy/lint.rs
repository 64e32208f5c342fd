//! Lints: valid policies with dangerous patterns. Each is a located warning with advice.

use std::ops::Range;

use super::diagnostic::DiagnosticKind;
use super::model::{
    Audience, AudienceRule, ClaimTest, Condition, Constraint, IssuerKeys, JsonType, Literal, Match,
    Policy, Presence,
};
use super::pattern::{self, Parsed};
use super::reader::{Located, Reader};
use crate::algorithm::Algorithm;
use crate::json::number;
use regex_syntax::ast::{AssertionKind, Ast};
use regex_syntax::hir::{self, Hir, HirKind, Look};

/// Leeway beyond this many seconds draws a warning.
const MAX_QUIET_LEEWAY: u64 = 300;

/// The lints that need the whole policy.
pub(crate) fn lint(r: &mut Reader, policy: &Policy) {
    audience(r, policy);
    keys(r, policy);
    regexes(r, policy);
    affixes(r, policy);
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

/// `accept = "any"`: the explicit opt-out of the audience check.
pub(crate) fn any_audience(r: &mut Reader, span: Range<usize>) {
    r.warn(
        DiagnosticKind::NoAudienceRule,
        span,
        "`accept = \"any\"`: tokens issued for any audience are accepted",
        "accept only this resource: `accept = [{ value = \"${resource_url}\" }]` (or remove `[audience]`: that is its default)",
    );
}

fn audience(r: &mut Reader, policy: &Policy) {
    let Audience::Accept(audience) = &policy.audience else {
        return;
    };
    redundant_audiences(r, audience);
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

/// An alternative that repeats an earlier one, or whose `value` an earlier one already accepts
/// under another guard: one of the two never decides anything, and an unguarded one makes the
/// other's guard pointless.
fn redundant_audiences(r: &mut Reader, audience: &AudienceRule) {
    for (j, later) in audience.accept.iter().enumerate() {
        let Some((i, earlier)) = audience
            .accept
            .iter()
            .enumerate()
            .take(j)
            .find(|(_, a)| a.value == later.value)
        else {
            continue;
        };
        let (message, help) = match (&earlier.resource, &later.resource) {
            (a, b) if a == b => (
                format!(
                    "`audience.accept[{j}]` repeats `audience.accept[{i}]` (`{}`)",
                    later.value
                ),
                "remove the repeat".to_owned(),
            ),
            // With `mode = "all"`, two guards on one value both have to hold: nothing is shadowed.
            _ if audience.mode == Match::All => continue,
            (None, Some(guard)) => (
                format!(
                    "`audience.accept[{j}]` (`{}` with `resource` `{guard}`) never decides: `audience.accept[{i}]` accepts `{}` without a guard",
                    later.value, later.value
                ),
                "remove one of them; if the audience is shared with other resources, keep the guarded one".to_owned(),
            ),
            (Some(guard), None) => (
                format!(
                    "`audience.accept[{j}]` accepts `{}` without the `resource` guard `audience.accept[{i}]` requires, so that guard never applies",
                    later.value
                ),
                format!("remove `audience.accept[{j}]`, or give it the guard: `resource = \"{guard}\"`"),
            ),
            // Two different guards: a token may name either resource.
            _ => continue,
        };
        r.warn(
            DiagnosticKind::RedundantAudience,
            later.span.clone(),
            message,
            help,
        );
    }
}

/// The constraints whose tests must hold for a token to pass: those of `[claims]`, and those in
/// a rule's `require` under an even number of `not`s. (What `when` says only decides whether a
/// rule applies; a test under `not` must fail, so a looser one is stricter.)
fn asserted(policy: &Policy) -> Vec<&Constraint> {
    fn walk<'p>(c: &'p Condition, positive: bool, out: &mut Vec<&'p Constraint>) {
        match c {
            Condition::Claim(c) if positive => out.push(c),
            Condition::Claim(_) => {}
            Condition::All(list) | Condition::Any(list) => {
                for c in list {
                    walk(c, positive, out);
                }
            }
            Condition::Not(inner) => walk(inner, !positive, out),
        }
    }
    let mut out: Vec<&Constraint> = policy.constraints.iter().collect();
    for rule in &policy.rules {
        walk(&rule.require, true, &mut out);
    }
    out
}

/// A `prefix` that ends at an origin's host also matches other hosts
/// (`https://acme.example.com.evil.net/`, `https://acme.example.com@evil.net/`), and a `suffix`
/// that starts with a bare domain also matches other domains (`evilexample.com`).
fn affixes(r: &mut Reader, policy: &Policy) {
    for c in asserted(policy) {
        for test in &c.tests {
            match test {
                ClaimTest::Prefix(p) if is_bare_origin(p) => r.warn(
                    DiagnosticKind::OriginPrefix,
                    c.span.clone(),
                    format!(
                        "prefix `{p}` of `{}` also matches `{p}.evil.example/` and `{p}@evil.example/`",
                        c.path
                    ),
                    format!("end the origin with `/`: `prefix = \"{p}/\"` (or, for the origin alone, `equals`)"),
                ),
                ClaimTest::Suffix(s) if is_bare_domain(s) => r.warn(
                    DiagnosticKind::DomainSuffix,
                    c.span.clone(),
                    format!("suffix `{s}` of `{}` also matches `evil{s}`", c.path),
                    format!(
                        "start it where the domain starts: `suffix = \"@{s}\"` (an email address), `suffix = \".{s}\"` (a subdomain), or `equals = \"{s}\"`"
                    ),
                ),
                _ => {}
            }
        }
    }
}

/// `scheme://host[:port]` with nothing after it: where the host name ends is left open.
fn is_bare_origin(prefix: &str) -> bool {
    let Some((scheme, rest)) = prefix.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#'])
}

/// `example.com`: dot-separated labels of letters, digits and `-`, at least two, with nothing
/// before the first that would mark where the domain starts.
fn is_bare_domain(suffix: &str) -> bool {
    let labels: Vec<&str> = suffix.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// A regex that must match, not anchored at both ends, accepts values that merely contain a match.
fn regexes(r: &mut Reader, policy: &Policy) {
    // Claim tests (in `[claims]` and rules) can say `prefix` / `suffix` instead; ids cannot.
    let tests = asserted(policy).into_iter().flat_map(|c| {
        c.tests.iter().filter_map(|t| match t {
            ClaimTest::Regex(p) => Some(p),
            _ => None,
        })
    });
    let ids = policy.client_id.allow.iter().chain(
        policy
            .resource_client_id
            .iter()
            .flat_map(|rc| rc.allow.iter()),
    );
    let patterns = tests.map(|p| (p, true)).chain(ids.map(|p| (p, false)));
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

/// Why a condition can never hold, if it obviously cannot. (Empty `all` and `any` lists are
/// errors, so they never reach here.) Conditions are three-valued, so `not` of a condition that
/// never holds may still be undecided, and nothing is said about `not`.
fn never_holds(c: &Condition) -> Option<String> {
    match c {
        Condition::Claim(c) => constraint_never_holds(c),
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
        Condition::Not(_) => None,
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
                ClaimTest::Equals(Literal::Number(n)) if !number::is_integer(n) => Some(n),
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
        (Literal::Number(a), Literal::Number(b)) => number::numbers_equal(a, b),
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
    fn bare_origins_and_domains() {
        for origin in [
            "https://acme.example.com",
            "https://acme.example.com:8443",
            "http://localhost",
        ] {
            assert!(is_bare_origin(origin), "{origin}");
        }
        for not_bare in [
            "https://acme.example.com/",
            "https://acme.example.com/orgs",
            "https://a.example?x",
            "acme.example.com",
            "urn:example:x",
            "https://",
        ] {
            assert!(!is_bare_origin(not_bare), "{not_bare}");
        }
        for domain in ["example.com", "mail.example.co.uk", "x-1.example"] {
            assert!(is_bare_domain(domain), "{domain}");
        }
        for not_bare in [
            ".example.com",
            "@example.com",
            "example",
            "a..b",
            "user@x.com",
        ] {
            assert!(!is_bare_domain(not_bare), "{not_bare}");
        }
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
