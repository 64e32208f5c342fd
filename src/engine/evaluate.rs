//! One evaluation: decode, find the issuer and key, verify, then every rule on verified claims.
//!
//! Checks are recorded in a fixed order; the first failed one decides the reason. A check that
//! cannot safely be made is recorded as not evaluated, with why.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::claims::Truth;
use super::decision::{Check, Claims, Decision, Outcome, Principal, Reason, Verdict};
use super::{
    CompiledIssuer, Failure, Inner, Step, UnixTime, audience, claims, client_id, header, scopes,
    time,
};
use crate::json::{Json, Object};
use crate::jwks::{KeyError, KeySet, SelectError};
use crate::policy::{Audience, Presence, Requirement, Rule};
use crate::token::{self, TokenError, UnverifiedToken, VerifiedToken};

/// The checks every engine may report, in order (claim, constraint and rule checks come after
/// `resource`, then `scopes` and `client_id`).
pub(crate) const FIXED_CHECKS: [&str; 17] = [
    "size",
    "format",
    "issuer",
    "algorithm",
    "typ",
    "crit",
    "key",
    "signature",
    "replicated_claims",
    "exp",
    "nbf",
    "iat",
    "max_age",
    "audience",
    "resource",
    "scopes",
    "client_id",
];

/// Where the keys of an issuer come from during this evaluation.
pub(crate) type KeyLookup<'a> = dyn Fn(&CompiledIssuer) -> Result<Arc<KeySet>, KeyError> + 'a;

/// What a refresh of an issuer's keys could change: its index, and the `kid` that was missing
/// (`None` when the source had no keys to give at all).
pub(crate) type Refresh = (usize, Option<String>);

/// Decides about `token`. Also says which issuer's keys to refresh when they lacked the token's
/// `kid` or were unavailable, so an async caller can refresh them and decide again.
pub(crate) fn run(
    inner: &Inner,
    token: &[u8],
    now: UnixTime,
    requirement: &Requirement,
    keys: &KeyLookup<'_>,
) -> (Decision, Option<Refresh>) {
    // Evaluation is written not to panic; if a bug makes it panic anyway, the token is denied
    // with reason `internal` instead of taking the service down.
    catch_unwind(AssertUnwindSafe(|| {
        let mut run = Run {
            inner,
            requirement,
            checks: Vec::with_capacity(24),
            principal: Principal::default(),
            refresh: None,
            verified: None,
        };
        run.token(token, now, keys);
        run.finish()
    }))
    .unwrap_or_else(|_| (internal(inner), None))
}

/// The decision for a bug: deny, reason `internal`, and nothing from the token.
pub(crate) fn internal(inner: &Inner) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        required_scopes: Vec::new(),
        claims: None,
        policy_revision: inner.revision.clone(),
        window: None,
        principal: Principal {
            resource_client_id: inner.resource_client_id.clone(),
            ..Principal::default()
        },
        checks: vec![Check {
            rule: Arc::from("internal"),
            outcome: Outcome::Failed {
                reason: Reason::Internal,
                expected: "a decision".into(),
                observed: "an internal error".into(),
            },
            detail: format!(
                "jwt-policy failed internally while evaluating policy `{}`; please report this",
                inner.policy.name
            ),
        }],
    }
}

struct Run<'e> {
    inner: &'e Inner,
    requirement: &'e Requirement,
    checks: Vec<Check>,
    principal: Principal,
    refresh: Option<Refresh>,
    /// The token, once its signature verified.
    verified: Option<VerifiedToken>,
}

impl<'e> Run<'e> {
    fn finish(self) -> (Decision, Option<Refresh>) {
        let failed = self.checks.iter().any(|c| c.reason().is_some());
        let verdict = if failed {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        let required_scopes = self
            .required_scopes()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut principal = self.principal;
        principal.resource_client_id = self.inner.resource_client_id.clone();
        // Only an engine with a decision cache needs it (reading the time claims again costs).
        let window = self
            .inner
            .cache
            .as_ref()
            .and(self.verified.as_ref())
            .map(|token| time::Window::of(token.claims(), &self.inner.policy.time));
        let claims = match (verdict, self.verified) {
            (Verdict::Allow, Some(token)) => Some(Claims::new(token.into_payload())),
            _ => None,
        };
        (
            Decision {
                verdict,
                principal,
                checks: self.checks,
                required_scopes,
                claims,
                policy_revision: self.inner.revision.clone(),
                window,
            },
            self.refresh,
        )
    }

    fn record(&mut self, rule: Arc<str>, step: Step) {
        let (outcome, detail) = match step {
            Step::Pass(detail) => (Outcome::Passed, detail),
            Step::NotEvaluated(why) => (Outcome::NotEvaluated, why),
            Step::Fail(Failure {
                reason,
                expected,
                observed,
                detail,
            }) => (
                Outcome::Failed {
                    reason,
                    expected,
                    observed,
                },
                detail,
            ),
        };
        self.checks.push(Check {
            rule,
            outcome,
            detail,
        });
    }

    fn named(&mut self, name: &'static str, step: Step) {
        let rule = self.inner.names.get(name);
        self.record(rule, step);
    }

    fn fail(
        &mut self,
        name: &'static str,
        reason: Reason,
        expected: impl Into<String>,
        observed: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.named(
            name,
            Step::Fail(Failure {
                reason,
                expected: expected.into(),
                observed: observed.into(),
                detail: detail.into(),
            }),
        );
    }

    fn token(&mut self, token: &[u8], now: UnixTime, keys: &KeyLookup<'_>) {
        let limit = self.inner.policy.max_token_bytes;
        let unverified = match token::decode(token, limit) {
            Ok(t) => t,
            Err(TokenError::TooLarge { size, limit }) => {
                self.fail(
                    "size",
                    Reason::TokenTooLarge,
                    format!("at most {limit} bytes"),
                    format!("{size} bytes"),
                    "the token is too large to look at",
                );
                return self.skip_from("format", "the token is too large to decode");
            }
            Err(e) => {
                self.named(
                    "size",
                    Step::Pass(format!("{} bytes (limit {limit})", token.len())),
                );
                let problem = e.to_string();
                self.fail(
                    "format",
                    Reason::MalformedToken,
                    "a compact JWS: three canonical base64url segments of strict JSON",
                    problem.clone(),
                    problem,
                );
                return self.skip_from("issuer", "the token could not be decoded");
            }
        };
        self.named(
            "size",
            Step::Pass(format!("{} bytes (limit {limit})", token.len())),
        );
        self.named(
            "format",
            Step::Pass("three canonical base64url segments of strict JSON objects".into()),
        );

        let issuer = self.issuer(&unverified);
        let alg = match issuer {
            Some((_, issuer)) => match header::algorithm(unverified.header(), &issuer.algorithms) {
                Ok(alg) => {
                    self.named(
                        "algorithm",
                        Step::Pass(format!("`{alg}` is allowed for this issuer")),
                    );
                    Some(alg)
                }
                Err(f) => {
                    self.named("algorithm", Step::Fail(f));
                    None
                }
            },
            None => {
                self.named(
                    "algorithm",
                    Step::NotEvaluated("no trusted issuer to check it against".into()),
                );
                None
            }
        };
        let rules = &self.inner.policy.header;
        if let Some(result) = header::typ(unverified.header(), rules) {
            self.named("typ", result.into());
        }
        let crit = header::crit(unverified.header(), rules);
        let crit_ok = crit.is_ok();
        self.named("crit", crit.into());

        let (Some((index, issuer)), Some(alg)) = (issuer, alg) else {
            self.named(
                "key",
                Step::NotEvaluated(
                    "no trusted issuer and allowed algorithm to choose a key for".into(),
                ),
            );
            return self.skip_from("signature", "no key to verify the signature with");
        };
        let Some(verified) = self.key_and_signature(unverified, index, issuer, alg, crit_ok, keys)
        else {
            return;
        };
        self.claims(&verified, now);
        self.verified = Some(verified);
    }

    /// Finds the issuer the token names (from its still-unverified `iss`, only to pick keys).
    fn issuer(&mut self, token: &UnverifiedToken<'_>) -> Option<(usize, &'e CompiledIssuer)> {
        match token.unverified_claims().get("iss") {
            None => {
                self.fail(
                    "issuer",
                    Reason::MissingClaim,
                    "claim `iss`",
                    "absent",
                    "the token names no issuer",
                );
                None
            }
            Some(value @ Json::String(iss)) => {
                match self
                    .inner
                    .issuers
                    .iter()
                    .enumerate()
                    .find(|(_, i)| i.iss == **iss)
                {
                    Some(found) => {
                        self.named("issuer", Step::Pass(format!("`{iss}` is trusted")));
                        Some(found)
                    }
                    None => {
                        let trusted: Vec<String> = self
                            .inner
                            .issuers
                            .iter()
                            .map(|i| format!("`{}`", i.iss))
                            .collect();
                        self.fail(
                            "issuer",
                            Reason::UntrustedIssuer,
                            trusted.join(" or "),
                            claims::show(value),
                            "the token's issuer is not trusted by this policy",
                        );
                        None
                    }
                }
            }
            Some(other) => {
                self.fail(
                    "issuer",
                    Reason::InvalidClaim,
                    "`iss` as a string",
                    claims::show(other),
                    "`iss` is malformed",
                );
                None
            }
        }
    }

    fn key_and_signature(
        &mut self,
        token: UnverifiedToken<'_>,
        index: usize,
        issuer: &CompiledIssuer,
        alg: crate::algorithm::Algorithm,
        crit_ok: bool,
        keys: &KeyLookup<'_>,
    ) -> Option<VerifiedToken> {
        let kid = token.header().kid.clone();
        if kid.is_none() && self.inner.policy.header.kid == Presence::Required {
            self.fail(
                "key",
                Reason::KeyNotFound,
                "a `kid` header naming one of the issuer's keys",
                "no `kid`",
                "the policy requires tokens to name their key",
            );
            self.skip_from("signature", "no key to verify the signature with");
            return None;
        }
        let set = if alg.is_hmac() {
            Ok(issuer.secrets.clone())
        } else {
            keys(issuer)
        };
        let set = match set {
            Ok(set) => set,
            Err(e) => {
                if !alg.is_hmac() {
                    self.refresh = Some((index, None));
                }
                self.fail(
                    "key",
                    Reason::KeysUnavailable,
                    "the issuer's keys",
                    "unavailable",
                    e.to_string(),
                );
                self.skip_from("signature", "no key to verify the signature with");
                return None;
            }
        };
        let key = match set.select(kid.as_deref(), alg, &issuer.algorithms) {
            Ok(key) => key,
            Err(SelectError::NotFound(why)) => {
                if kid.is_some() && !alg.is_hmac() {
                    self.refresh = Some((index, kid.clone()));
                }
                // Key ids are public; a few are enough to spot a rotation or a wrong issuer.
                const SHOWN: usize = 5;
                let kids: Vec<String> = set
                    .keys()
                    .iter()
                    .filter_map(|k| k.kid())
                    .map(|k| format!("`{k}`"))
                    .collect();
                let expected = match kids.len() {
                    0 => "a key of the issuer".to_owned(),
                    n if n <= SHOWN => format!("`kid` one of {}", kids.join(", ")),
                    n => format!(
                        "`kid` one of {}, … ({n} keys)",
                        kids.get(..SHOWN).unwrap_or_default().join(", ")
                    ),
                };
                let observed = kid.as_ref().map_or("no `kid`".into(), |k| {
                    format!("`kid` {}", crate::text::quote(k))
                });
                self.fail("key", Reason::KeyNotFound, expected, observed, why);
                self.skip_from("signature", "no key to verify the signature with");
                return None;
            }
            Err(SelectError::Mismatch(why)) => {
                self.fail(
                    "key",
                    Reason::KeyMismatch,
                    format!("a key that verifies `{alg}`"),
                    why.clone(),
                    why,
                );
                self.skip_from("signature", "no key to verify the signature with");
                return None;
            }
        };
        let key_label = key.kid().map_or_else(
            || format!("the issuer's {} key", key.family()),
            |k| format!("`{k}`"),
        );
        self.named("key", Step::Pass(format!("{key_label} ({})", key.family())));
        if !crit_ok {
            self.named(
                "signature",
                Step::NotEvaluated("a critical header extension is not understood".into()),
            );
            self.skip_from("exp", "the token cannot be processed");
            return None;
        }
        match token.verify(key, alg) {
            Some(verified) => {
                self.named(
                    "signature",
                    Step::Pass(format!("`{alg}` signature verified with {key_label}")),
                );
                Some(verified)
            }
            None => {
                self.fail(
                    "signature",
                    Reason::InvalidSignature,
                    format!("a valid `{alg}` signature by {key_label}"),
                    "a signature that does not verify",
                    "the signature does not verify",
                );
                self.skip_from("exp", "the signature was not verified");
                None
            }
        }
    }

    fn claims(&mut self, token: &VerifiedToken, now: UnixTime) {
        let inner = self.inner;
        let policy = &inner.policy;
        let claims = token.claims();
        self.principal.issuer = claims.get("iss").and_then(Json::as_str).map(str::to_owned);
        self.principal.subject = claims.get("sub").and_then(Json::as_str).map(str::to_owned);
        if let Ok(Some(exp)) = time::read(claims, "exp") {
            self.principal.expires_at = Some(exp.seconds_floor());
        }
        if let Some(step) = replicated_claims(token) {
            self.named("replicated_claims", step);
        }

        for (name, check) in [
            ("exp", time::exp(claims, &policy.time, now)),
            ("nbf", time::nbf(claims, &policy.time, now)),
            ("iat", time::iat(claims, &policy.time, now)),
        ] {
            if let Some(result) = check {
                self.named(name, result.into());
            }
        }
        if let Some(step) = time::max_age(claims, &policy.time, now) {
            self.named("max_age", step);
        }
        match &policy.audience {
            Audience::Accept(rule) => match audience::check(claims, rule) {
                Ok((value, detail)) => {
                    self.principal.audience = Some(value);
                    self.named("audience", Step::Pass(detail));
                }
                Err(f) => self.named("audience", Step::Fail(f)),
            },
            Audience::Any => self.named("audience", audience::any(claims).into()),
        }
        if let Some(result) =
            audience::resource(claims, policy.resource_claim, &policy.resource_url)
        {
            match result {
                Ok((resource, detail)) => {
                    self.principal.resource = resource;
                    self.named("resource", Step::Pass(detail));
                }
                Err(f) => self.named("resource", Step::Fail(f)),
            }
        }
        for (path, name) in policy.required_claims.iter().zip(&inner.names.required) {
            let step = match claims::lookup(claims, path) {
                Some(Json::Null) => Step::Fail(Failure {
                    reason: Reason::InvalidClaim,
                    expected: format!("claim `{path}` with a value"),
                    observed: "null".into(),
                    detail: format!("`{path}` is required, and null is no value"),
                }),
                Some(value) => Step::Pass(format!("`{path}` is {}", claims::show(value))),
                None => Step::Fail(Failure {
                    reason: Reason::MissingClaim,
                    expected: format!("claim `{path}`"),
                    observed: "absent".into(),
                    detail: format!("`{path}` is required"),
                }),
            };
            self.record(name.clone(), step);
        }
        for (constraint, name) in policy.constraints.iter().zip(&inner.names.constraints) {
            self.record(name.clone(), claims::check(claims, constraint).into());
        }
        for (rule, name) in self.applicable_rules() {
            self.record(name.clone(), rule_step(rule, claims));
        }
        self.unknown_required_rules();
        let required = self.required_scopes();
        let mut skipped = Vec::new();
        match scopes::granted(claims, &policy.scopes, !required.is_empty(), &mut skipped) {
            Ok(granted) => {
                let step = match scopes::check(&granted, &required) {
                    Ok(detail) if !skipped.is_empty() => {
                        Step::Pass(format!("{detail}; not read: {}", skipped.join("; ")))
                    }
                    result => result.into(),
                };
                self.principal.scopes = granted.iter().map(|s| (*s).to_owned()).collect();
                self.named("scopes", step);
            }
            Err(f) => self.named("scopes", Step::Fail(f)),
        }
        match client_id::resolve(claims, &policy.client_id) {
            Ok(Some(id)) => {
                self.principal.client_id = Some(id.id.to_owned());
                self.principal.client_id_source = Some(id.source.to_owned());
                self.named(
                    "client_id",
                    Step::Pass(format!(
                        "{} from `{}`",
                        crate::text::quote(id.id),
                        id.source
                    )),
                );
            }
            Ok(None) => self.named("client_id", Step::Pass("none (not required)".into())),
            Err(f) => self.named("client_id", Step::Fail(f)),
        }
    }

    /// The rules that apply to this request, with their check names: every rule, except the
    /// `route_only` ones the requirement does not name.
    fn applicable_rules(&self) -> impl Iterator<Item = (&'e Rule, &'e Arc<str>)> + use<'e> {
        let requirement = self.requirement;
        let inner = self.inner;
        inner
            .policy
            .rules
            .iter()
            .zip(&inner.names.rules)
            .filter(move |(rule, _)| !rule.route_only || requirement.rules().contains(&rule.name))
    }

    /// A requirement naming a rule the policy lacks (or one that applies anyway) is a mistake in
    /// the service, not in the token: each denies with `internal` rather than be ignored.
    fn unknown_required_rules(&mut self) {
        let policy = &self.inner.policy;
        for name in self.requirement.rules() {
            if policy
                .rules
                .iter()
                .any(|rule| rule.route_only && rule.name == *name)
            {
                continue;
            }
            self.record(
                Arc::from(format!("rule:{name}")),
                Step::Fail(Failure {
                    reason: Reason::Internal,
                    expected: "a `route_only` rule of the policy".into(),
                    observed: format!("rule `{name}`"),
                    detail: format!(
                        "the request requires rule `{name}`, which policy `{}` has no `route_only` rule of that name for",
                        policy.name
                    ),
                }),
            );
        }
    }

    /// The scopes this request needs: the policy's, then the requirement's.
    fn required_scopes(&self) -> Vec<&'e str> {
        let policy = &self.inner.policy.scopes.required;
        let mut required: Vec<&str> = policy.iter().map(String::as_str).collect();
        for scope in self.requirement.scopes() {
            if !policy.contains(scope) {
                required.push(scope);
            }
        }
        required
    }

    /// Records every check from `first` on as not evaluated, with `why`.
    fn skip_from(&mut self, first: &'static str, why: &str) {
        let policy = &self.inner.policy;
        let start = FIXED_CHECKS
            .iter()
            .position(|c| *c == first)
            .unwrap_or(FIXED_CHECKS.len());
        // Which fixed checks this policy makes at all.
        let made = |name: &str| -> bool {
            match name {
                "typ" => !policy.header.typ.is_empty(),
                "exp" => policy.time.exp != Presence::Ignored,
                "nbf" => policy.time.nbf != Presence::Ignored,
                "iat" => policy.time.iat != Presence::Ignored,
                "max_age" => policy.time.max_age.is_some(),
                // Made only when the header replicates claims, which is known once it verifies.
                "replicated_claims" => false,
                "resource" => policy.resource_claim != Presence::Ignored,
                _ => true,
            }
        };
        let inner = self.inner;
        for name in FIXED_CHECKS.iter().skip(start).copied() {
            if name == "scopes" {
                // Claim, constraint and rule checks come just before `scopes`.
                let rules: Vec<&Arc<str>> = self.applicable_rules().map(|(_, n)| n).collect();
                for rule in inner
                    .names
                    .required
                    .iter()
                    .chain(&inner.names.constraints)
                    .chain(rules)
                {
                    self.record(rule.clone(), Step::NotEvaluated(why.to_owned()));
                }
            }
            if made(name) {
                self.named(name, Step::NotEvaluated(why.to_owned()));
            }
        }
    }
}

/// Claims copied into the header (RFC 7519 §5.3) must equal the payload's; `None` when the header
/// copies none.
fn replicated_claims(token: &VerifiedToken) -> Option<Step> {
    let mut copied = Vec::new();
    for name in token::REPLICATED_CLAIMS {
        let Some(copy) = token.header().get(name) else {
            continue;
        };
        let claim = token.claims().get(name);
        if claim != Some(copy) {
            let observed = claim.map_or_else(|| "absent".to_owned(), claims::show);
            return Some(Step::Fail(Failure {
                reason: Reason::InvalidClaim,
                expected: format!(
                    "`{name}` in the payload equal to its header copy {}",
                    claims::show(copy)
                ),
                observed: format!("`{name}` {observed}"),
                detail: format!("the header's `{name}` differs from the payload's"),
            }));
        }
        copied.push(format!("`{name}`"));
    }
    (!copied.is_empty()).then(|| {
        Step::Pass(format!(
            "the header's {} equal the payload's",
            copied.join(", ")
        ))
    })
}

/// A rule: when `when` holds (or there is none), `require` must hold. Conditions are
/// three-valued: a `when` that does not hold makes the rule not apply; one that cannot be
/// decided (a claim of another type, or `null`) does not let the rule off, so `require` must
/// then hold. A `require` that cannot be decided denies as a malformed claim (`invalid_claim`),
/// one that does not hold as `rule_failed` (`insufficient_permission` for a permission rule).
fn rule_step(rule: &Rule, claims: &Object) -> Step {
    let when = rule.when.as_ref().map(|w| claims::holds(claims, w));
    if let Some(Truth::False(why)) = &when {
        return Step::Pass(format!("does not apply: {why}"));
    }
    let expected = || {
        rule.description
            .clone()
            .unwrap_or_else(|| format!("rule `{}` to hold", rule.name))
    };
    let name = &rule.name;
    match (claims::holds(claims, &rule.require), when) {
        (Truth::True, Some(Truth::Undecided(why))) => {
            Step::Pass(format!("holds (whether it applies is undecided: {why})"))
        }
        (Truth::True, _) => Step::Pass(match &rule.description {
            Some(d) => format!("holds: {d}"),
            None => "holds".into(),
        }),
        (Truth::False(why), Some(Truth::Undecided(when))) => Step::Fail(Failure {
            reason: Reason::InvalidClaim,
            expected: expected(),
            observed: format!("{when}; and {why}"),
            detail: format!(
                "rule `{name}` cannot tell whether it applies ({when}), and its `require` does not hold: {why}"
            ),
        }),
        (Truth::False(why), _) => Step::Fail(Failure {
            reason: if rule.permission {
                Reason::InsufficientPermission
            } else {
                Reason::RuleFailed
            },
            expected: expected(),
            observed: why.clone(),
            detail: format!("rule `{name}` failed: {why}"),
        }),
        (Truth::Undecided(why), _) => Step::Fail(Failure {
            reason: Reason::InvalidClaim,
            expected: expected(),
            observed: why.clone(),
            detail: format!("rule `{name}` cannot be decided: {why}"),
        }),
    }
}
