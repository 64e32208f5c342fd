//! One evaluation: decode, find the issuer and key, verify, then every rule on verified claims.
//!
//! Checks are recorded in a fixed order; the first failed one decides the reason. A check that
//! cannot safely be made is recorded as not evaluated, with why.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::claims::Truth;
use super::decision::{
    Check, Decision, Field, Name, Outcome, Principal, PrincipalDraft, Reason, Verdict,
};
use super::{
    CheckKind, CompiledIssuer, Failure, Inner, Step, Texts, UnixTime, audience, claims, client_id,
    header, scopes, time,
};
use crate::algorithm::Algorithm;
use crate::json::{Json, Object};
use crate::jwks::{KeyError, KeySet, SelectError};
use crate::policy::{Audience, Presence, Requirement, Rule};
use crate::token::{self, TokenError, UnverifiedToken, VerifiedToken};

/// Where the keys of an issuer come from during this evaluation.
pub(crate) type KeyLookup<'a> = dyn Fn(&CompiledIssuer) -> Result<Arc<KeySet>, KeyError> + 'a;

/// What a refresh of an issuer's keys could change: its index, and the `kid` that was missing
/// (`None` when the source had no keys to give at all).
pub(crate) type Refresh = (usize, Option<String>);

/// What a decision keeps to write its checks' texts when they are asked for: the same
/// evaluation again, on the same token at the same time for the same requirement, with what
/// cannot be asked again (the keys the lookup gave, whether the signature verified) as it was.
#[derive(Debug)]
pub(crate) struct Replay {
    inner: Arc<Inner>,
    token: Box<[u8]>,
    now: UnixTime,
    requirement: Requirement,
    /// What the key lookup gave, if the evaluation asked for keys.
    keys: Option<Result<Arc<KeySet>, KeyError>>,
    /// Whether the signature verified, if it was checked.
    signature: Option<bool>,
}

impl Replay {
    /// Every check with its texts, in order.
    pub(crate) fn checks(&self) -> Vec<Check> {
        let inner = &*self.inner;
        catch_unwind(AssertUnwindSafe(|| {
            let mut run = Run::new(inner, &self.requirement, Some(self));
            let keys = |_: &CompiledIssuer| match &self.keys {
                Some(keys) => keys.clone(),
                None => Ok(Arc::new(KeySet::default())),
            };
            run.token(&self.token, self.now, &keys);
            run.checks
        }))
        .unwrap_or_else(|_| internal_checks(inner))
    }

    /// This server's own client id, for the decision's principal.
    pub(crate) fn resource_client_id(&self) -> Option<&str> {
        self.inner.resource_client_id.as_deref()
    }

    /// The payload's JSON text (for the verified claims of an allowed token).
    pub(crate) fn payload(&self) -> Option<String> {
        token::payload_text(&self.token)
    }
}

/// Decides about `token`. Also says which issuer's keys to refresh when they lacked the token's
/// `kid` or were unavailable, so an async caller can refresh them and decide again.
pub(crate) fn run(
    inner: &Arc<Inner>,
    token: &[u8],
    now: UnixTime,
    requirement: &Requirement,
    keys: &KeyLookup<'_>,
) -> (Decision, Option<Refresh>) {
    // Evaluation is written not to panic; if a bug makes it panic anyway, the token is denied
    // with reason `internal` instead of taking the service down.
    catch_unwind(AssertUnwindSafe(|| {
        let mut run = Run::new(inner, requirement, None);
        run.token(token, now, keys);
        run.finish(inner, token, now)
    }))
    .unwrap_or_else(|_| (internal(inner), None))
}

/// The decision for a bug: deny, reason `internal`, and nothing from the token.
pub(crate) fn internal(inner: &Inner) -> Decision {
    Decision::with_checks(
        Verdict::Deny,
        Principal {
            resource_client_id: inner.resource_client_id.clone(),
            ..Principal::default()
        },
        internal_checks(inner),
        Vec::new(),
        None,
        inner.revision.clone(),
    )
}

fn internal_checks(inner: &Inner) -> Vec<Check> {
    vec![Check {
        rule: "internal".into(),
        outcome: Outcome::Failed {
            reason: Reason::Internal,
            expected: "a decision".into(),
            observed: "an internal error".into(),
        },
        detail: format!(
            "jwt-policy failed internally while evaluating policy `{}`; please report this",
            inner.policy.name
        ),
    }]
}

/// A decoded token at the key step: what going on from there needs.
pub(crate) struct AtKeys<'t> {
    token: UnverifiedToken<'t>,
    index: usize,
    alg: Algorithm,
    crit_ok: bool,
    /// The issuer whose keys to refresh, and the `kid` they lack (`None`: they were unavailable).
    refresh: Refresh,
}

/// How the key step ended.
enum KeyStep<'t> {
    /// The signature verified: the claims are checked next.
    Verified(VerifiedToken<'t>),
    /// The token is denied at this step (recorded).
    Stopped,
    /// Paused for a refresh of the issuer's keys (nothing recorded).
    Paused(AtKeys<'t>),
}

/// An evaluation paused at the key step, for its issuer's keys to be refreshed; the token is not
/// decoded again when it goes on ([`resume`]).
pub(crate) struct Paused<'e, 't> {
    run: Run<'e>,
    at_keys: AtKeys<'t>,
}

impl Paused<'_, '_> {
    /// The issuer whose keys to refresh, and the `kid` they lack.
    pub(crate) fn refresh(&self) -> &Refresh {
        &self.at_keys.refresh
    }
}

/// Like [`run`], but stops at the key step when the issuer's keys lack the token's `kid` or are
/// unavailable, so that an async caller can refresh them and [`resume`]. The token is decoded
/// into `buffer`.
pub(crate) fn start<'e, 't>(
    inner: &'e Arc<Inner>,
    token: &'t [u8],
    buffer: &'t mut Vec<u8>,
    now: UnixTime,
    requirement: &'e Requirement,
    keys: &KeyLookup<'_>,
) -> Result<Decision, Box<Paused<'e, 't>>> {
    catch_unwind(AssertUnwindSafe(move || {
        let mut run = Run::new(inner, requirement, None);
        // Moved in (not reborrowed), so that what is decoded may outlive this closure.
        let buffer = buffer;
        match run.decode_into(token, now, keys, buffer, true) {
            Some(at_keys) => Err(Box::new(Paused { run, at_keys })),
            None => Ok(run.finish(inner, token, now).0),
        }
    }))
    .unwrap_or_else(|_| Ok(internal(inner)))
}

/// Goes on with a [`Paused`] evaluation from its key step, with the keys `keys` gives.
pub(crate) fn resume(
    paused: Box<Paused<'_, '_>>,
    inner: &Arc<Inner>,
    token: &[u8],
    now: UnixTime,
    keys: &KeyLookup<'_>,
) -> Decision {
    catch_unwind(AssertUnwindSafe(|| {
        let Paused { mut run, at_keys } = *paused;
        let Some(issuer) = run.inner.issuers.get(at_keys.index) else {
            return internal(inner);
        };
        // Never pauses again: a refresh is asked for once.
        run.go_on_from_keys(at_keys, issuer, now, keys, false);
        run.finish(inner, token, now).0
    }))
    .unwrap_or_else(|_| internal(inner))
}

struct Run<'e> {
    inner: &'e Inner,
    requirement: &'e Requirement,
    /// Whether the checks' texts are written (when a decision is rendered).
    t: Texts,
    /// What the evaluation being rendered found that cannot be asked again.
    replay: Option<&'e Replay>,
    /// The reason of each failed check, in check order.
    failed: Vec<Reason>,
    /// Every check with its texts, when they are written.
    checks: Vec<Check>,
    principal: PrincipalDraft,
    refresh: Option<Refresh>,
    /// What the key lookup gave.
    keys: Option<Result<Arc<KeySet>, KeyError>>,
    /// Whether the signature verified.
    signature: Option<bool>,
    /// When the verified token passes the time checks, for the decision cache.
    window: Option<time::Window>,
}

impl<'e> Run<'e> {
    fn new(inner: &'e Inner, requirement: &'e Requirement, replay: Option<&'e Replay>) -> Self {
        let t = Texts(replay.is_some());
        Run {
            inner,
            requirement,
            t,
            replay,
            failed: Vec::new(),
            checks: if t.0 {
                Vec::with_capacity(24)
            } else {
                Vec::new()
            },
            principal: PrincipalDraft::default(),
            refresh: None,
            keys: None,
            signature: None,
            window: None,
        }
    }

    fn finish(
        self,
        inner: &Arc<Inner>,
        token: &[u8],
        now: UnixTime,
    ) -> (Decision, Option<Refresh>) {
        let verdict = if self.failed.is_empty() {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        let required_scopes = self
            .required_scopes()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let replay = Replay {
            inner: inner.clone(),
            token: token.into(),
            now,
            requirement: self.requirement.clone(),
            keys: self.keys,
            signature: self.signature,
        };
        let window = self.window;
        (
            Decision::replayed(
                verdict,
                self.principal,
                self.failed,
                required_scopes,
                self.inner.revision.clone(),
                replay,
                window,
            ),
            self.refresh,
        )
    }

    /// The name of a check of this evaluation.
    fn name(&self, kind: CheckKind) -> Name {
        match kind {
            CheckKind::UnknownRule(i) => {
                let name = self
                    .requirement
                    .rules()
                    .get(i)
                    .map(String::as_str)
                    .unwrap_or_default();
                Name::from(format!("rule:{name}"))
            }
            kind => self.inner.names.get(kind).unwrap_or(Name::Fixed("")),
        }
    }

    #[inline]
    fn record(&mut self, kind: CheckKind, step: Step) {
        if let Step::Fail(f) = &step {
            self.failed.push(f.reason);
        }
        if !self.t.0 {
            return;
        }
        let (outcome, detail) = match step {
            Step::Pass(detail) => (Outcome::Passed, detail),
            Step::NotEvaluated(why) => (Outcome::NotEvaluated, why),
            Step::Fail(failure) => {
                let reason = failure.reason;
                let (expected, observed, detail) = failure.into_texts();
                (
                    Outcome::Failed {
                        reason,
                        expected,
                        observed,
                    },
                    detail,
                )
            }
        };
        let rule = self.name(kind);
        self.checks.push(Check {
            rule,
            outcome,
            detail,
        });
    }

    /// Records a check's result. A pass, when texts are off, records nothing (and no [`Step`] is
    /// made to say so: moving one about showed in the profile).
    #[inline]
    fn outcome(&mut self, kind: CheckKind, result: Result<String, Failure>) {
        match result {
            Ok(detail) => {
                if self.t.0 {
                    self.record(kind, Step::Pass(detail));
                }
            }
            Err(failure) => self.record(kind, Step::Fail(failure)),
        }
    }

    fn pass(&mut self, kind: CheckKind, detail: impl FnOnce() -> String) {
        // A pass records nothing but its text.
        if !self.t.0 {
            return;
        }
        let detail = self.t.text(detail);
        self.record(kind, Step::Pass(detail));
    }

    fn not_evaluated(&mut self, kind: CheckKind, why: &str) {
        if !self.t.0 {
            return;
        }
        let why = self.t.text(|| why.to_owned());
        self.record(kind, Step::NotEvaluated(why));
    }

    /// Records a failure; `texts` (expected, observed, detail) runs only when texts are written.
    fn fail(
        &mut self,
        kind: CheckKind,
        reason: Reason,
        texts: impl FnOnce() -> (String, String, String),
    ) {
        let failure = Failure::new(self.t, reason, texts);
        self.record(kind, Step::Fail(failure));
    }

    fn token(&mut self, token: &[u8], now: UnixTime, keys: &KeyLookup<'_>) {
        thread_local! {
            /// What the header and payload decode into, reused by each evaluation on a thread.
            static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        /// A buffer this large is not kept for the next token.
        const KEPT: usize = 64 * 1024;
        BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffer) => {
                self.decode_into(token, now, keys, &mut buffer, false);
                if buffer.capacity() > KEPT {
                    *buffer = Vec::new();
                }
            }
            // An evaluation inside another (a key source that evaluates): its own buffer.
            Err(_) => {
                self.decode_into(token, now, keys, &mut Vec::new(), false);
            }
        });
    }

    /// Decides about `token`, decoding it into `buffer`. With `pause`, stops at the key step
    /// when the issuer's keys lack the token's `kid` or are unavailable (recording nothing of
    /// that step), and returns what it needs to go on once they are refreshed.
    fn decode_into<'t>(
        &mut self,
        token: &'t [u8],
        now: UnixTime,
        keys: &KeyLookup<'_>,
        buffer: &'t mut Vec<u8>,
        pause: bool,
    ) -> Option<AtKeys<'t>> {
        let limit = self.inner.policy.max_token_bytes;
        let unverified = match token::decode(token, limit, buffer) {
            Ok(t) => t,
            Err(TokenError::TooLarge { size, limit }) => {
                self.fail(CheckKind::Size, Reason::TokenTooLarge, || {
                    (
                        format!("at most {limit} bytes"),
                        format!("{size} bytes"),
                        "the token is too large to look at".into(),
                    )
                });
                self.skip_from(CheckKind::Format, "the token is too large to decode");
                return None;
            }
            Err(e) => {
                self.pass(CheckKind::Size, || {
                    format!("{} bytes (limit {limit})", token.len())
                });
                self.fail(CheckKind::Format, Reason::MalformedToken, || {
                    let problem = e.to_string();
                    (
                        "a compact JWS: three canonical base64url segments of strict JSON".into(),
                        problem.clone(),
                        problem,
                    )
                });
                self.skip_from(CheckKind::Issuer, "the token could not be decoded");
                return None;
            }
        };
        self.pass(CheckKind::Size, || {
            format!("{} bytes (limit {limit})", token.len())
        });
        self.pass(CheckKind::Format, || {
            "three canonical base64url segments of strict JSON objects".into()
        });

        let t = self.t;
        let issuer = self.issuer(&unverified);
        let alg = match issuer {
            Some((_, issuer)) => {
                match header::algorithm(unverified.header(), &issuer.algorithms, t) {
                    Ok(alg) => {
                        self.pass(CheckKind::Algorithm, || {
                            format!("`{alg}` is allowed for this issuer")
                        });
                        Some(alg)
                    }
                    Err(f) => {
                        self.record(CheckKind::Algorithm, Step::Fail(f));
                        None
                    }
                }
            }
            None => {
                self.not_evaluated(
                    CheckKind::Algorithm,
                    "no trusted issuer to check it against",
                );
                None
            }
        };
        let rules = &self.inner.policy.header;
        if let Some(result) = header::typ(unverified.header(), rules, t) {
            self.outcome(CheckKind::Typ, result);
        }
        let crit = header::crit(unverified.header(), rules, t);
        let crit_ok = crit.is_ok();
        self.outcome(CheckKind::Crit, crit);

        let (Some((index, issuer)), Some(alg)) = (issuer, alg) else {
            self.not_evaluated(
                CheckKind::Key,
                "no trusted issuer and allowed algorithm to choose a key for",
            );
            self.skip_from(CheckKind::Signature, "no key to verify the signature with");
            return None;
        };
        let at_keys = AtKeys {
            token: unverified,
            index,
            alg,
            crit_ok,
            refresh: (index, None),
        };
        self.go_on_from_keys(at_keys, issuer, now, keys, pause)
    }

    /// Goes on from the key step.
    fn go_on_from_keys<'t>(
        &mut self,
        at_keys: AtKeys<'t>,
        issuer: &CompiledIssuer,
        now: UnixTime,
        keys: &KeyLookup<'_>,
        pause: bool,
    ) -> Option<AtKeys<'t>> {
        match self.key_and_signature(at_keys, issuer, keys, pause) {
            KeyStep::Verified(verified) => {
                self.claims(&verified, now);
                None
            }
            KeyStep::Stopped => None,
            KeyStep::Paused(at_keys) => Some(at_keys),
        }
    }

    /// Finds the issuer the token names (from its still-unverified `iss`, only to pick keys).
    fn issuer(&mut self, token: &UnverifiedToken<'_>) -> Option<(usize, &'e CompiledIssuer)> {
        match token.unverified_claims().get("iss") {
            None => {
                self.fail(CheckKind::Issuer, Reason::MissingClaim, || {
                    (
                        "claim `iss`".into(),
                        "absent".into(),
                        "the token names no issuer".into(),
                    )
                });
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
                        self.pass(CheckKind::Issuer, || format!("`{iss}` is trusted"));
                        Some(found)
                    }
                    None => {
                        let inner = self.inner;
                        self.fail(CheckKind::Issuer, Reason::UntrustedIssuer, || {
                            let trusted: Vec<String> = inner
                                .issuers
                                .iter()
                                .map(|i| format!("`{}`", i.iss))
                                .collect();
                            (
                                trusted.join(" or "),
                                claims::show(value),
                                "the token's issuer is not trusted by this policy".into(),
                            )
                        });
                        None
                    }
                }
            }
            Some(other) => {
                self.fail(CheckKind::Issuer, Reason::InvalidClaim, || {
                    (
                        "`iss` as a string".into(),
                        claims::show(other),
                        "`iss` is malformed".into(),
                    )
                });
                None
            }
        }
    }

    fn key_and_signature<'t>(
        &mut self,
        at_keys: AtKeys<'t>,
        issuer: &CompiledIssuer,
        keys: &KeyLookup<'_>,
        pause: bool,
    ) -> KeyStep<'t> {
        let AtKeys {
            token,
            index,
            alg,
            crit_ok,
            ..
        } = at_keys;
        let kid = token.header().kid.as_deref();
        if kid.is_none() && self.inner.policy.header.kid == Presence::Required {
            self.fail(CheckKind::Key, Reason::KeyNotFound, || {
                (
                    "a `kid` header naming one of the issuer's keys".into(),
                    "no `kid`".into(),
                    "the policy requires tokens to name their key".into(),
                )
            });
            self.skip_from(CheckKind::Signature, "no key to verify the signature with");
            return KeyStep::Stopped;
        }
        // The policy's own secrets are borrowed, not counted (a reference count that threads
        // share is a cache line they pass back and forth).
        let fetched;
        let set = if alg.is_hmac() {
            Ok(&*issuer.secrets)
        } else {
            fetched = keys(issuer);
            self.keys = Some(fetched.clone());
            fetched.as_deref().map_err(Clone::clone)
        };
        let set = match set {
            Ok(set) => set,
            Err(e) => {
                if !alg.is_hmac() {
                    if pause {
                        return KeyStep::Paused(AtKeys {
                            token,
                            index,
                            alg,
                            crit_ok,
                            refresh: (index, None),
                        });
                    }
                    self.refresh = Some((index, None));
                }
                self.fail(CheckKind::Key, Reason::KeysUnavailable, || {
                    (
                        "the issuer's keys".into(),
                        "unavailable".into(),
                        e.to_string(),
                    )
                });
                self.skip_from(CheckKind::Signature, "no key to verify the signature with");
                return KeyStep::Stopped;
            }
        };
        let key = match set.select(kid, alg, &issuer.algorithms) {
            Ok(key) => key,
            Err(SelectError::NotFound(why)) => {
                if let Some(kid) = kid
                    && !alg.is_hmac()
                {
                    let refresh = (index, Some(kid.to_owned()));
                    if pause {
                        return KeyStep::Paused(AtKeys {
                            token,
                            index,
                            alg,
                            crit_ok,
                            refresh,
                        });
                    }
                    self.refresh = Some(refresh);
                }
                self.fail(CheckKind::Key, Reason::KeyNotFound, || {
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
                    let observed = kid.map_or("no `kid`".into(), |k| {
                        format!("`kid` {}", crate::text::quote(k))
                    });
                    (expected, observed, why)
                });
                self.skip_from(CheckKind::Signature, "no key to verify the signature with");
                return KeyStep::Stopped;
            }
            Err(SelectError::Mismatch(why)) => {
                self.fail(CheckKind::Key, Reason::KeyMismatch, || {
                    (format!("a key that verifies `{alg}`"), why.clone(), why)
                });
                self.skip_from(CheckKind::Signature, "no key to verify the signature with");
                return KeyStep::Stopped;
            }
        };
        let key_label = || {
            key.kid().map_or_else(
                || format!("the issuer's {} key", key.family()),
                |k| format!("`{k}`"),
            )
        };
        self.pass(CheckKind::Key, || {
            format!("{} ({})", key_label(), key.family())
        });
        if !crit_ok {
            self.not_evaluated(
                CheckKind::Signature,
                "a critical header extension is not understood",
            );
            self.skip_from(CheckKind::Exp, "the token cannot be processed");
            return KeyStep::Stopped;
        }
        let verified = match self.replay {
            // Rendering a decision: the signature is not verified again.
            Some(replay) => token.verified_as_recorded(replay.signature == Some(true)),
            None => token.verify(key, alg),
        };
        self.signature = Some(verified.is_some());
        match verified {
            Some(verified) => {
                self.pass(CheckKind::Signature, || {
                    format!("`{alg}` signature verified with {}", key_label())
                });
                KeyStep::Verified(verified)
            }
            None => {
                self.fail(CheckKind::Signature, Reason::InvalidSignature, || {
                    (
                        format!("a valid `{alg}` signature by {}", key_label()),
                        "a signature that does not verify".into(),
                        "the signature does not verify".into(),
                    )
                });
                self.skip_from(CheckKind::Exp, "the signature was not verified");
                KeyStep::Stopped
            }
        }
    }

    fn claims(&mut self, token: &VerifiedToken, now: UnixTime) {
        let inner = self.inner;
        let policy = &inner.policy;
        let t = self.t;
        let claims = token.claims();
        for (field, name) in [(Field::Issuer, "iss"), (Field::Subject, "sub")] {
            if let Some(value) = claims.get(name).and_then(Json::as_str) {
                self.principal.set(field, value);
            }
        }
        let dates = time::Dates::read(claims, &policy.time, t);
        if let Some(exp) = dates.exp() {
            self.principal.expires_at(exp.seconds_floor());
        }
        // Only an engine with a decision cache needs the window, and only when deciding.
        if inner.cache.is_some() && self.replay.is_none() {
            self.window = Some(time::Window::of(&dates, &policy.time));
        }
        if let Some(step) = replicated_claims(token, t) {
            self.record(CheckKind::ReplicatedClaims, step);
        }
        // Made before the checks below take the dates (its outcome is recorded after them).
        let max_age = time::max_age(&dates, &policy.time, now, t);
        let time::Dates { exp, nbf, iat } = dates;
        if let Some(result) = time::exp(exp, &policy.time, now, t) {
            self.outcome(CheckKind::Exp, result);
        }
        if let Some(result) = time::nbf(nbf, &policy.time, now, t) {
            self.outcome(CheckKind::Nbf, result);
        }
        if let Some(result) = time::iat(iat, &policy.time, now, t) {
            self.outcome(CheckKind::Iat, result);
        }
        if let Some(step) = max_age {
            self.record(CheckKind::MaxAge, step);
        }
        // Read once for the audience guards and the `resource` check.
        let resource = audience::resources(claims, t);
        match &policy.audience {
            Audience::Accept(rule) => match audience::check(claims, rule, &resource, t) {
                Ok((value, detail)) => {
                    self.principal.set(Field::Audience, value);
                    self.outcome(CheckKind::Audience, Ok(detail));
                }
                Err(f) => self.record(CheckKind::Audience, Step::Fail(f)),
            },
            Audience::Any => self.outcome(CheckKind::Audience, audience::any(claims, t)),
        }
        if let Some(result) =
            audience::resource(resource, policy.resource_claim, &policy.resource_url, t)
        {
            match result {
                Ok((resource, detail)) => {
                    if let Some(resource) = resource {
                        self.principal.set(Field::Resource, resource);
                    }
                    self.outcome(CheckKind::Resource, Ok(detail));
                }
                Err(f) => self.record(CheckKind::Resource, Step::Fail(f)),
            }
        }
        for (i, path) in policy.required_claims.iter().enumerate() {
            let step = match claims::lookup(claims, path) {
                Some(Json::Null) => Step::Fail(Failure::new(t, Reason::InvalidClaim, || {
                    (
                        format!("claim `{path}` with a value"),
                        "null".into(),
                        format!("`{path}` is required, and null is no value"),
                    )
                })),
                Some(value) => {
                    Step::Pass(t.text(|| format!("`{path}` is {}", claims::show(value))))
                }
                None => Step::Fail(Failure::new(t, Reason::MissingClaim, || {
                    (
                        format!("claim `{path}`"),
                        "absent".into(),
                        format!("`{path}` is required"),
                    )
                })),
            };
            self.record(CheckKind::Required(i), step);
        }
        for (i, constraint) in policy.constraints.iter().enumerate() {
            self.record(
                CheckKind::Constraint(i),
                claims::check(claims, constraint, t).into(),
            );
        }
        for (i, rule) in self.applicable_rules() {
            self.record(CheckKind::Rule(i), rule_step(rule, claims, t));
        }
        self.unknown_required_rules();
        let required = self.required_scopes();
        let mut skipped = Vec::new();
        match scopes::granted(
            claims,
            &policy.scopes,
            !required.is_empty(),
            &mut skipped,
            t,
        ) {
            Ok(granted) => {
                let step = match scopes::check(&granted, &required, t) {
                    Ok(detail) if !skipped.is_empty() => {
                        Step::Pass(t.text(|| format!("{detail}; not read: {}", skipped.join("; "))))
                    }
                    result => result.into(),
                };
                for scope in &granted {
                    self.principal.scope(scope);
                }
                self.record(CheckKind::Scopes, step);
            }
            Err(f) => self.record(CheckKind::Scopes, Step::Fail(f)),
        }
        match client_id::resolve(claims, &policy.client_id, t) {
            Ok(Some(id)) => {
                self.principal.set(Field::ClientId, id.id);
                self.principal.set(Field::ClientIdSource, id.source);
                self.pass(CheckKind::ClientId, || {
                    format!("{} from `{}`", crate::text::quote(id.id), id.source)
                });
            }
            Ok(None) => self.pass(CheckKind::ClientId, || "none (not required)".into()),
            Err(f) => self.record(CheckKind::ClientId, Step::Fail(f)),
        }
    }

    /// The rules that apply to this request, by index: every rule, except the `route_only` ones
    /// the requirement does not name.
    fn applicable_rules(&self) -> impl Iterator<Item = (usize, &'e Rule)> + use<'e> {
        let requirement = self.requirement;
        self.inner
            .policy
            .rules
            .iter()
            .enumerate()
            .filter(move |(_, rule)| !rule.route_only || requirement.rules().contains(&rule.name))
    }

    /// A requirement naming a rule the policy lacks (or one that applies anyway) is a mistake in
    /// the service, not in the token: each denies with `internal` rather than be ignored.
    fn unknown_required_rules(&mut self) {
        let policy = &self.inner.policy;
        for (i, name) in self.requirement.rules().iter().enumerate() {
            if policy
                .rules
                .iter()
                .any(|rule| rule.route_only && rule.name == *name)
            {
                continue;
            }
            self.fail(CheckKind::UnknownRule(i), Reason::Internal, || {
                (
                    "a `route_only` rule of the policy".into(),
                    format!("rule `{name}`"),
                    format!(
                        "the request requires rule `{name}`, which policy `{}` has no `route_only` rule of that name for",
                        policy.name
                    ),
                )
            });
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
    fn skip_from(&mut self, first: CheckKind, why: &str) {
        let policy = &self.inner.policy;
        let start = CheckKind::FIXED
            .iter()
            .position(|c| *c == first)
            .unwrap_or(CheckKind::FIXED.len());
        // Which fixed checks this policy makes at all.
        let made = |kind: CheckKind| -> bool {
            match kind {
                CheckKind::Typ => !policy.header.typ.is_empty(),
                CheckKind::Exp => policy.time.exp != Presence::Ignored,
                CheckKind::Nbf => policy.time.nbf != Presence::Ignored,
                CheckKind::Iat => policy.time.iat != Presence::Ignored,
                CheckKind::MaxAge => policy.time.max_age.is_some(),
                // Made only when the header replicates claims, which is known once it verifies.
                CheckKind::ReplicatedClaims => false,
                CheckKind::Resource => policy.resource_claim != Presence::Ignored,
                _ => true,
            }
        };
        // Nothing records a text or a failure here: without texts there is nothing to do.
        if !self.t.0 {
            return;
        }
        for kind in CheckKind::FIXED.iter().skip(start).copied() {
            if kind == CheckKind::Scopes {
                // Claim, constraint and rule checks come just before `scopes`.
                for i in 0..policy.required_claims.len() {
                    self.not_evaluated(CheckKind::Required(i), why);
                }
                for i in 0..policy.constraints.len() {
                    self.not_evaluated(CheckKind::Constraint(i), why);
                }
                let rules: Vec<usize> = self.applicable_rules().map(|(i, _)| i).collect();
                for i in rules {
                    self.not_evaluated(CheckKind::Rule(i), why);
                }
            }
            if made(kind) {
                self.not_evaluated(kind, why);
            }
        }
    }
}

/// Claims copied into the header (RFC 7519 §5.3) must equal the payload's; `None` when the header
/// copies none.
fn replicated_claims(token: &VerifiedToken, t: Texts) -> Option<Step> {
    let mut copied: Vec<&str> = Vec::new();
    for name in token::REPLICATED_CLAIMS {
        let Some(copy) = token.header().get(name) else {
            continue;
        };
        let claim = token.claims().get(name);
        if claim != Some(copy) {
            return Some(Step::Fail(Failure::new(t, Reason::InvalidClaim, || {
                let observed = claim.map_or_else(|| "absent".to_owned(), claims::show);
                (
                    format!(
                        "`{name}` in the payload equal to its header copy {}",
                        claims::show(copy)
                    ),
                    format!("`{name}` {observed}"),
                    format!("the header's `{name}` differs from the payload's"),
                )
            })));
        }
        copied.push(name);
    }
    (!copied.is_empty()).then(|| {
        Step::Pass(t.text(|| {
            let copied: Vec<String> = copied.iter().map(|n| format!("`{n}`")).collect();
            format!("the header's {} equal the payload's", copied.join(", "))
        }))
    })
}

/// A rule: when `when` holds (or there is none), `require` must hold. Conditions are
/// three-valued: a `when` that does not hold makes the rule not apply; one that cannot be
/// decided (a claim of another type, or `null`) does not let the rule off, so `require` must
/// then hold. A `require` that cannot be decided denies as a malformed claim (`invalid_claim`),
/// one that does not hold as `rule_failed` (`insufficient_permission` for a permission rule).
fn rule_step(rule: &Rule, claims: &Object, t: Texts) -> Step {
    let when = rule.when.as_ref().map(|w| claims::holds(claims, w, t));
    if let Some(Truth::False(why)) = &when {
        return Step::Pass(t.text(|| format!("does not apply: {why}")));
    }
    let expected = || {
        rule.description
            .clone()
            .unwrap_or_else(|| format!("rule `{}` to hold", rule.name))
    };
    let name = &rule.name;
    match (claims::holds(claims, &rule.require, t), when) {
        (Truth::True, Some(Truth::Undecided(why))) => {
            Step::Pass(t.text(|| format!("holds (whether it applies is undecided: {why})")))
        }
        (Truth::True, _) => Step::Pass(t.text(|| match &rule.description {
            Some(d) => format!("holds: {d}"),
            None => "holds".into(),
        })),
        (Truth::False(why), Some(Truth::Undecided(when))) => Step::Fail(Failure::with_texts(
            Reason::InvalidClaim,
            expected(),
            format!("{when}; and {why}"),
            format!(
                "rule `{name}` cannot tell whether it applies ({when}), and its `require` does not hold: {why}"
            ),
        )),
        (Truth::False(why), _) => Step::Fail(Failure::with_texts(
            if rule.permission {
                Reason::InsufficientPermission
            } else {
                Reason::RuleFailed
            },
            expected(),
            why.clone(),
            format!("rule `{name}` failed: {why}"),
        )),
        (Truth::Undecided(why), _) => Step::Fail(Failure::with_texts(
            Reason::InvalidClaim,
            expected(),
            why.clone(),
            format!("rule `{name}` cannot be decided: {why}"),
        )),
    }
}
