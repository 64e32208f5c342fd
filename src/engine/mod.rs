//! The compiled engine: built once from a validated [`Policy`] and the service's run-time
//! context, shared everywhere, asked about each token.

mod audience;
mod cache;
mod claims;
mod client_id;
mod decision;
mod evaluate;
mod forward;
mod header;
mod scopes;
mod time;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use cache::CacheStats;
pub use decision::{Check, Claims, ClaimsError, Decision, Outcome, Principal, Reason, Verdict};
pub use forward::ForwardError;

use crate::algorithm::Algorithm;
use crate::json::UnixTime;
#[cfg(feature = "remote")]
use crate::jwks::RemoteKeys;
use crate::jwks::{Key, KeyError, KeySet, KeySource, KeyStats, KeysFuture, StaticKeys};
use crate::policy::{CacheSettings, IssuerKeys, Policy, Requirement, SecretSource};
use cache::{DecisionCache, KeysUsed};

/// Why an engine could not be built from a valid policy and the given context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The resource client id resolved to a value the policy refuses (e.g. an unstable `ua:` id).
    #[error("resource client id `{value}` (from {from}) is refused: it {why}")]
    RefusedResourceClientId {
        /// The refused value.
        value: String,
        /// Where it came from.
        from: String,
        /// Which pattern refused it.
        why: String,
    },
    /// No source of the resource client id had a value.
    #[error("no resource client id: none of {tried} is set")]
    MissingResourceClientId {
        /// The sources tried, in order.
        tried: String,
        /// The context keys that could have supplied it (pass one to
        /// [`EngineBuilder::context`]), in the policy's order.
        contexts: Vec<String>,
    },
    /// An issuer's keys (or HMAC secret) could not be loaded.
    #[error("issuer `{iss}`: {error}")]
    Keys {
        /// The issuer.
        iss: String,
        /// What went wrong.
        error: KeyError,
    },
    /// A key source was given for an issuer the policy does not trust.
    #[error("no issuer `{0}` in the policy")]
    UnknownIssuer(String),
}

/// A check's outcome while evaluating: passed (with what held), failed, or not evaluated.
#[derive(Debug)]
pub(crate) enum Step {
    Pass(String),
    Fail(Failure),
    NotEvaluated(String),
}

impl From<Result<String, Failure>> for Step {
    fn from(r: Result<String, Failure>) -> Self {
        match r {
            Ok(detail) => Step::Pass(detail),
            Err(f) => Step::Fail(f),
        }
    }
}

/// A failed check: the stable reason, and (when texts are written) expected vs observed and one
/// readable line. Small to move: the texts are boxed, and absent when not written.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: Reason,
    texts: Option<Box<[String; 3]>>,
}

impl Failure {
    /// A failure for `reason` whose texts (expected, observed, detail) are made only when `t`
    /// renders them.
    pub(crate) fn new(
        t: Texts,
        reason: Reason,
        texts: impl FnOnce() -> (String, String, String),
    ) -> Self {
        Self {
            reason,
            texts: t.0.then(|| {
                let (expected, observed, detail) = texts();
                Box::new([expected, observed, detail])
            }),
        }
    }

    /// A failure with these texts.
    pub(crate) fn with_texts(
        reason: Reason,
        expected: String,
        observed: String,
        detail: String,
    ) -> Self {
        Self {
            reason,
            texts: Some(Box::new([expected, observed, detail])),
        }
    }

    /// Expected, observed and detail (empty when not written).
    pub(crate) fn into_texts(self) -> (String, String, String) {
        match self.texts {
            Some(texts) => {
                let [expected, observed, detail] = *texts;
                (expected, observed, detail)
            }
            None => Default::default(),
        }
    }
}

/// Whether an evaluation writes the texts of its checks (details, expected, observed).
///
/// A decision is made without them: only each check's outcome and reason are kept. When a
/// caller asks to see the checks, the same evaluation runs again on the same token with texts
/// on, so every check's logic is written once and its texts are only made when someone reads
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Texts(pub(crate) bool);

impl Texts {
    /// The text `make` writes, when texts are on; an empty string (no allocation) otherwise.
    pub(crate) fn text(self, make: impl FnOnce() -> String) -> String {
        if self.0 { make() } else { String::new() }
    }
}

/// The kinds of check, in the order they are made (claim, constraint and rule checks, by their
/// index in the policy, come after `resource`; then `scopes` and `client_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckKind {
    Size,
    Format,
    Issuer,
    Algorithm,
    Typ,
    Crit,
    Key,
    Signature,
    ReplicatedClaims,
    Exp,
    Nbf,
    Iat,
    MaxAge,
    Audience,
    Resource,
    /// `required:PATH`, by index in `required_claims`.
    Required(usize),
    /// `constraint:PATH`, by index in `constraints`.
    Constraint(usize),
    /// `rule:NAME`, by index in `rules`.
    Rule(usize),
    /// `rule:NAME` for a rule the requirement names and the policy lacks, by index in the
    /// requirement's rules.
    UnknownRule(usize),
    Scopes,
    ClientId,
}

impl CheckKind {
    /// The checks every engine may report, in order; the policy's claim, constraint and rule
    /// checks come just before `Scopes`.
    pub(crate) const FIXED: [CheckKind; 17] = [
        Self::Size,
        Self::Format,
        Self::Issuer,
        Self::Algorithm,
        Self::Typ,
        Self::Crit,
        Self::Key,
        Self::Signature,
        Self::ReplicatedClaims,
        Self::Exp,
        Self::Nbf,
        Self::Iat,
        Self::MaxAge,
        Self::Audience,
        Self::Resource,
        Self::Scopes,
        Self::ClientId,
    ];

    /// The stable name of a fixed check.
    pub(crate) fn fixed_name(self) -> Option<&'static str> {
        Some(match self {
            Self::Size => "size",
            Self::Format => "format",
            Self::Issuer => "issuer",
            Self::Algorithm => "algorithm",
            Self::Typ => "typ",
            Self::Crit => "crit",
            Self::Key => "key",
            Self::Signature => "signature",
            Self::ReplicatedClaims => "replicated_claims",
            Self::Exp => "exp",
            Self::Nbf => "nbf",
            Self::Iat => "iat",
            Self::MaxAge => "max_age",
            Self::Audience => "audience",
            Self::Resource => "resource",
            Self::Scopes => "scopes",
            Self::ClientId => "client_id",
            Self::Required(_) | Self::Constraint(_) | Self::Rule(_) | Self::UnknownRule(_) => {
                return None;
            }
        })
    }
}

/// An issuer as the engine uses it.
#[derive(Debug)]
pub(crate) struct CompiledIssuer {
    pub(crate) iss: String,
    pub(crate) algorithms: Vec<Algorithm>,
    /// Public keys; `None` when the issuer only uses HMAC.
    pub(crate) keys: Option<Arc<dyn KeySource>>,
    /// HMAC secrets the policy names; never from a JWKS.
    pub(crate) secrets: Arc<KeySet>,
}

/// Names made unique in order: a second `constraint:sub` becomes `constraint:sub#2`.
fn unique(names: impl Iterator<Item = String>) -> Vec<Arc<str>> {
    let mut out: Vec<Arc<str>> = Vec::new();
    for name in names {
        let mut candidate = name.clone();
        let mut n = 1;
        while out.iter().any(|o| **o == *candidate) {
            n += 1;
            candidate = format!("{name}#{n}");
        }
        out.push(Arc::from(candidate));
    }
    out
}

/// The check names, made once so each rendering only clones reference counts.
#[derive(Debug)]
pub(crate) struct Names {
    pub(crate) required: Vec<Arc<str>>,
    pub(crate) constraints: Vec<Arc<str>>,
    pub(crate) rules: Vec<Arc<str>>,
}

impl Names {
    fn new(policy: &Policy) -> Self {
        Self {
            // `"a.b"` (one claim) and `["a", "b"]` (nested) are both shown as `a.b`.
            required: unique(
                policy
                    .required_claims
                    .iter()
                    .map(|p| format!("required:{p}")),
            ),
            constraints: unique(
                policy
                    .constraints
                    .iter()
                    .map(|c| format!("constraint:{}", c.path)),
            ),
            rules: policy
                .rules
                .iter()
                .map(|r| Arc::from(format!("rule:{}", r.name)))
                .collect(),
        }
    }

    /// The name of a check of this policy; `None` for [`CheckKind::UnknownRule`], which the
    /// requirement names.
    pub(crate) fn get(&self, kind: CheckKind) -> Option<decision::Name> {
        let shared = match kind {
            CheckKind::Required(i) => self.required.get(i),
            CheckKind::Constraint(i) => self.constraints.get(i),
            CheckKind::Rule(i) => self.rules.get(i),
            CheckKind::UnknownRule(_) => None,
            fixed => return fixed.fixed_name().map(decision::Name::Fixed),
        };
        shared.cloned().map(decision::Name::Shared)
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) policy: Policy,
    /// The policy's revision, shared by every decision.
    pub(crate) revision: Arc<str>,
    pub(crate) issuers: Vec<CompiledIssuer>,
    pub(crate) resource_client_id: Option<String>,
    pub(crate) names: Names,
    /// The verified-decision cache, when it is on.
    pub(crate) cache: Option<DecisionCache>,
}

/// The compiled policy: immutable, `Send + Sync`, cheap to clone (one `Arc`).
///
/// Evaluation never re-reads or re-validates the policy and never compiles a regex.
///
/// ```
/// use jwt_policy::{Policy, PolicyEngine, UnixTime};
///
/// let policy = Policy::from_file("policies/keycard-mcp.toml")?;
/// let engine = PolicyEngine::builder(policy)
///     .context("credential.key_id", "mcp-server-key-1")
///     .build()?;
/// let decision = engine.evaluate_at("not.a.token", UnixTime::from_secs(1_767_225_600));
/// assert!(!decision.is_allowed());
/// assert_eq!(decision.reason().map(|r| r.as_str()), Some("malformed_token"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

/// Builds a [`PolicyEngine`]: the policy plus what only the running service knows.
#[derive(Debug)]
pub struct EngineBuilder {
    policy: Policy,
    context: BTreeMap<String, String>,
    all_keys: Option<Arc<dyn KeySource>>,
    keys: Vec<(String, Arc<dyn KeySource>)>,
    /// `Some` when code decided about the cache, whatever the policy says.
    cache: Option<Option<CacheSettings>>,
}

impl EngineBuilder {
    /// Turns the verified-decision cache on with these bounds (`Some`) or off (`None`),
    /// whatever the policy's `[cache]` says. See [`PolicyEngine::cache_stats`].
    pub fn cache(mut self, settings: Option<CacheSettings>) -> Self {
        self.cache = Some(settings);
        self
    }

    /// Supplies a run-time value the policy may refer to, e.g. `credential.key_id`.
    pub fn context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// Replaces the key source of issuer `iss` (a remote JWKS, keys built in code, ...).
    pub fn key_source(mut self, iss: impl Into<String>, source: Arc<dyn KeySource>) -> Self {
        self.keys.push((iss.into(), source));
        self
    }

    /// Replaces every issuer's public key source with `source` (e.g. `verify --jwks FILE`).
    pub fn key_source_for_all(mut self, source: Arc<dyn KeySource>) -> Self {
        self.all_keys = Some(source);
        self
    }

    /// Like [`EngineBuilder::build`], then fetches the keys of every source that fetches
    /// eagerly (remote keys with `startup = "eager"`, the default), failing if one cannot.
    pub async fn build_async(self) -> Result<PolicyEngine, BuildError> {
        let engine = self.build()?;
        let mut started: Vec<&Arc<dyn KeySource>> = Vec::new();
        for issuer in &engine.inner.issuers {
            let Some(source) = &issuer.keys else { continue };
            // A source shared by several issuers (`key_source_for_all`) starts once.
            if started.iter().any(|s| Arc::ptr_eq(s, source)) {
                continue;
            }
            started.push(source);
            if let Some(fetch) = source.startup() {
                fetch.await.map_err(|error| BuildError::Keys {
                    iss: issuer.iss.clone(),
                    error,
                })?;
            }
        }
        Ok(engine)
    }

    /// Resolves the resource client id and the keys, and compiles the engine. Remote keys are
    /// not fetched here (this never waits): the first token that needs them has them fetched,
    /// or use [`EngineBuilder::build_async`] to fetch them first.
    pub fn build(self) -> Result<PolicyEngine, BuildError> {
        let policy = self.policy;
        for (iss, _) in &self.keys {
            if !policy.issuers.iter().any(|i| &i.iss == iss) {
                return Err(BuildError::UnknownIssuer(iss.clone()));
            }
        }
        let resource_client_id = match &policy.resource_client_id {
            Some(rule) => client_id::resolve_resource(rule, &self.context)?,
            None => None,
        };
        let mut issuers = Vec::with_capacity(policy.issuers.len());
        for issuer in &policy.issuers {
            let named = self
                .keys
                .iter()
                .rev()
                .find(|(iss, _)| iss == &issuer.iss)
                .map(|(_, s)| s.clone());
            let keys: Option<Arc<dyn KeySource>> = match (named, &self.all_keys, &issuer.keys) {
                (Some(source), _, _) => Some(source),
                (None, Some(all), _) => Some(all.clone()),
                (None, None, Some(IssuerKeys::Static(set))) => {
                    Some(Arc::new(StaticKeys::from_arc(set.clone())))
                }
                #[cfg(feature = "remote")]
                (None, None, Some(IssuerKeys::Remote(source))) => {
                    let remote = RemoteKeys::for_issuer(
                        source.clone(),
                        policy.remote_keys.clone(),
                        &issuer.algorithms,
                    )
                    .map_err(|error| BuildError::Keys {
                        iss: issuer.iss.clone(),
                        error,
                    })?;
                    Some(Arc::new(remote))
                }
                // Never met: a build without the `remote` feature refuses a policy that names
                // remote keys when it reads it.
                #[cfg(not(feature = "remote"))]
                (None, None, Some(IssuerKeys::Remote(source))) => {
                    return Err(BuildError::Keys {
                        iss: issuer.iss.clone(),
                        error: KeyError::Unavailable(format!(
                            "{source} is fetched over HTTP, and this build of jwt-policy cannot"
                        )),
                    });
                }
                (None, None, None) => None,
            };
            // Long enough for every HMAC algorithm the issuer allows (RFC 7518 §3.2).
            let min_len = issuer
                .algorithms
                .iter()
                .filter(|a| a.is_hmac())
                .map(|a| a.min_secret_len())
                .max();
            let secrets = issuer
                .hmac_secrets
                .iter()
                .map(|s| {
                    read_secret(&s.source, min_len.unwrap_or(0))
                        .map(|bytes| Key::hmac(s.kid.clone(), &bytes))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| BuildError::Keys {
                    iss: issuer.iss.clone(),
                    error,
                })?;
            issuers.push(CompiledIssuer {
                iss: issuer.iss.clone(),
                algorithms: issuer.algorithms.clone(),
                keys,
                secrets: Arc::new(KeySet::from_keys(secrets)),
            });
        }
        let names = Names::new(&policy);
        let cache = self
            .cache
            .unwrap_or(policy.cache)
            .and_then(DecisionCache::new);
        Ok(PolicyEngine {
            inner: Arc::new(Inner {
                cache,
                revision: Arc::from(policy.revision()),
                policy,
                issuers,
                resource_client_id,
                names,
            }),
        })
    }
}

/// Reads a secret the policy names, refusing one shorter than `min_len` bytes.
fn read_secret(source: &SecretSource, min_len: usize) -> Result<Vec<u8>, KeyError> {
    let from = match source {
        SecretSource::Env(name) => format!("environment variable `{name}`"),
        SecretSource::File(path) => format!("file `{}`", path.display()),
        #[cfg(feature = "testing")]
        SecretSource::Bytes(_) => "the test issuer".into(),
    };
    let bytes = match source {
        SecretSource::Env(name) => std::env::var_os(name)
            .ok_or_else(|| KeyError::Secret(format!("{from} is not set")))?
            .into_encoded_bytes(),
        SecretSource::File(path) => {
            let mut bytes = std::fs::read(path).map_err(|e| {
                KeyError::Secret(format!("{from}: {}", crate::text::io_message(&e)))
            })?;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            bytes
        }
        #[cfg(feature = "testing")]
        SecretSource::Bytes(bytes) => bytes.to_vec(),
    };
    if bytes.len() < min_len {
        return Err(KeyError::Secret(format!(
            "from {from} is {} bytes; the issuer's HMAC algorithms need at least {min_len}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

impl PolicyEngine {
    /// Starts building an engine for `policy`.
    pub fn builder(policy: Policy) -> EngineBuilder {
        EngineBuilder {
            policy,
            context: BTreeMap::new(),
            all_keys: None,
            keys: Vec::new(),
            cache: None,
        }
    }

    /// The policy the engine was compiled from.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The counters of each issuer whose keys are fetched (remote keys), by `iss`.
    pub fn key_stats(&self) -> Vec<(&str, KeyStats)> {
        self.inner
            .issuers
            .iter()
            .filter_map(|i| Some((i.iss.as_str(), i.keys.as_ref()?.stats()?)))
            .collect()
    }

    /// What the verified-decision cache has done (hits, misses, inserts, evictions) and holds
    /// now; `None` when the cache is off (the policy has no enabled `[cache]`, or
    /// [`EngineBuilder::cache`] turned it off).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_ref().map(DecisionCache::stats)
    }

    /// Whether each issuer has keys to verify tokens with now, by `iss`: `Ok` for keys from a
    /// file or inline, HMAC secrets, and remote keys that were fetched and are not older than
    /// their lifetime plus `max_stale`; otherwise why not. This is what a readiness probe asks
    /// (`jwt-policy serve` answers `/readyz` from it). Asking a remote source that has no keys
    /// starts its background fetching, as a token needing them would.
    ///
    /// ```
    /// # use jwt_policy::{Policy, PolicyEngine};
    /// let engine = PolicyEngine::builder(Policy::from_file("policies/keycard-mcp.toml")?)
    ///     .context("credential.key_id", "mcp-server-key-1")
    ///     .build()?;
    /// let available = engine.keys_available();
    /// assert_eq!(available.len(), 1);
    /// assert_eq!(available[0].0, "https://abc123.keycard.cloud");
    /// assert!(available[0].1.is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys_available(&self) -> Vec<(&str, Result<(), KeyError>)> {
        self.inner
            .issuers
            .iter()
            .map(|i| {
                let available = match &i.keys {
                    Some(source) => source.keys().map(|_| ()),
                    None => Ok(()),
                };
                (i.iss.as_str(), available)
            })
            .collect()
    }

    /// The keys marked as test keys (`"x-jwt-policy-test": true`, from `jwt-policy keygen`)
    /// among those each issuer verifies with now, as (`iss`, `kid`): what `verify` and `serve`
    /// refuse to start with. A source that fetches keys is asked only once a fetch succeeded
    /// (asking one that has none would start a fetch).
    #[cfg(feature = "cli")]
    pub(crate) fn test_keys(&self) -> Vec<(String, Option<String>)> {
        let mut found = Vec::new();
        for issuer in &self.inner.issuers {
            let Some(source) = &issuer.keys else { continue };
            if source.stats().is_some_and(|s| s.fetches <= s.failures) {
                continue;
            }
            if let Ok(set) = source.keys() {
                for key in set.keys().iter().filter(|k| k.is_test_key()) {
                    found.push((issuer.iss.clone(), key.kid().map(str::to_owned)));
                }
            }
        }
        found
    }

    /// Whether `other` is this very engine (a clone of it), not merely one built alike.
    #[cfg(feature = "cli")]
    pub(crate) fn same(&self, other: &PolicyEngine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The request headers the policy's `[forward]` table makes of an allowed decision's
    /// verified claims (what `jwt-policy serve` passes to the service); none for a denial.
    pub fn forwarded_headers(
        &self,
        decision: &Decision,
    ) -> Result<Vec<(String, String)>, ForwardError> {
        match decision.claims() {
            Some(claims) => forward::headers(&self.inner.policy, claims),
            None => Ok(Vec::new()),
        }
    }

    /// This server's own client id, resolved when the engine was built.
    pub fn resource_client_id(&self) -> Option<&str> {
        self.inner.resource_client_id.as_deref()
    }

    /// Decides about `token` now, with the keys each source holds now (never waits).
    pub fn evaluate(&self, token: impl AsRef<[u8]>) -> Decision {
        self.evaluate_at(token, UnixTime::now())
    }

    /// Decides about `token` at time `now`, with the keys each source holds now (never waits).
    pub fn evaluate_at(&self, token: impl AsRef<[u8]>, now: UnixTime) -> Decision {
        self.evaluate_at_with(token, now, &NOTHING_MORE)
    }

    /// Decides about `token` now for a request that also needs what `requirement` says (a
    /// route's scopes and `route_only` rules), with the keys each source holds now.
    pub fn evaluate_with(&self, token: impl AsRef<[u8]>, requirement: &Requirement) -> Decision {
        self.evaluate_at_with(token, UnixTime::now(), requirement)
    }

    /// [`PolicyEngine::evaluate_with`] at time `now`.
    pub fn evaluate_at_with(
        &self,
        token: impl AsRef<[u8]>,
        now: UnixTime,
        requirement: &Requirement,
    ) -> Decision {
        let (token, inner) = (token.as_ref(), &self.inner);
        let Some(cache) = &inner.cache else {
            return evaluate::run(inner, token, now, requirement, &|issuer| {
                current_keys(issuer)
            })
            .0;
        };
        if let Some(hit) = cache.get(inner, token, requirement, now) {
            return hit;
        }
        let used = KeysUsed::default();
        let (decision, _) = evaluate::run(inner, token, now, requirement, &|issuer| {
            used.record(inner, issuer, current_keys(issuer))
        });
        cache.insert(token, requirement, now, &decision, &used);
        decision
    }

    /// Like [`PolicyEngine::evaluate`], but when the token names a `kid` its issuer's keys lack,
    /// awaits one [`KeySource::refresh`] and decides again (for remote keys that rotate).
    pub async fn evaluate_async(&self, token: impl AsRef<[u8]>) -> Decision {
        self.evaluate_async_at_with(token, UnixTime::now(), &NOTHING_MORE)
            .await
    }

    /// [`PolicyEngine::evaluate_async`] at time `now`.
    pub async fn evaluate_async_at(&self, token: impl AsRef<[u8]>, now: UnixTime) -> Decision {
        self.evaluate_async_at_with(token, now, &NOTHING_MORE).await
    }

    /// [`PolicyEngine::evaluate_async`] for a request that also needs what `requirement` says.
    pub async fn evaluate_async_with(
        &self,
        token: impl AsRef<[u8]>,
        requirement: &Requirement,
    ) -> Decision {
        self.evaluate_async_at_with(token, UnixTime::now(), requirement)
            .await
    }

    /// [`PolicyEngine::evaluate_async_with`] at time `now`.
    pub async fn evaluate_async_at_with(
        &self,
        token: impl AsRef<[u8]>,
        now: UnixTime,
        requirement: &Requirement,
    ) -> Decision {
        let (token, inner) = (token.as_ref(), &self.inner);
        let cache = inner.cache.as_ref();
        if let Some(hit) = cache.and_then(|c| c.get(inner, token, requirement, now)) {
            return hit;
        }
        // Which keys each decision was made with, for the cache.
        let used = KeysUsed::default();
        let keep = |decision: Decision, used: &KeysUsed| {
            if let Some(cache) = cache {
                cache.insert(token, requirement, now, &decision, used);
            }
            decision
        };
        // The token is decoded once: an evaluation that needs its issuer's keys refreshed pauses
        // at the key step and goes on from there.
        let mut buffer = Vec::new();
        let paused = match evaluate::start(inner, token, &mut buffer, now, requirement, &|issuer| {
            used.record(inner, issuer, current_keys(issuer))
        }) {
            Ok(decision) => return keep(decision, &used),
            Err(paused) => paused,
        };
        let (index, kid) = paused.refresh().clone();
        let Some(source) = inner
            .issuers
            .get(index)
            .and_then(|issuer| issuer.keys.clone())
        else {
            let decision = evaluate::resume(paused, inner, token, now, &|issuer| {
                used.record(inner, issuer, current_keys(issuer))
            });
            return keep(decision, &used);
        };
        // A key source is the service's code; if it panics, the token is denied as `internal`
        // and the caller's task goes on.
        let refreshed = match catch_unwind(AssertUnwindSafe(|| source.refresh(kid.as_deref()))) {
            Ok(future) => CatchUnwind(future).await,
            Err(_) => Err(()),
        };
        let fresh = match refreshed {
            Ok(fresh) => fresh,
            Err(()) => return evaluate::internal(inner),
        };
        // Go on with what the refresh gave: new keys, or why there are none.
        let lookup = |issuer: &CompiledIssuer| {
            let keys = match &issuer.keys {
                Some(s) if Arc::ptr_eq(s, &source) => fresh.clone(),
                _ => current_keys(issuer),
            };
            used.record(inner, issuer, keys)
        };
        let decision = evaluate::resume(paused, inner, token, now, &lookup);
        keep(decision, &used)
    }
}

/// An engine that can be replaced while it is in use: every caller gets the current one, and a
/// replacement takes effect atomically for the next decision (a decision in flight finishes with
/// the engine it started with). Cheap to clone; clones share the slot.
///
/// A fixed engine is a `SharedEngine` nobody replaces; a reloading one (`ReloadingEngine`, with
/// the `reload` feature) replaces it when its policy files change. The HTTP layer and `serve`
/// take a `SharedEngine`, so they work with either.
///
/// ```
/// use jwt_policy::{Policy, PolicyEngine, SharedEngine};
///
/// let build = |text: &str| -> Result<PolicyEngine, Box<dyn std::error::Error>> {
///     let policy = Policy::from_toml("p.toml", text, "policies")?;
///     Ok(PolicyEngine::builder(policy)
///         .context("credential.key_id", "mcp-server-key-1")
///         .build()?)
/// };
/// let text = std::fs::read_to_string("policies/keycard-mcp.toml")?;
/// let shared = SharedEngine::new(build(&text)?);
/// let before = shared.current().policy().revision().to_owned();
/// shared.replace(build(&format!("{text}\n# edited\n"))?);
/// assert_ne!(shared.current().policy().revision(), before);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedEngine(Arc<arc_swap::ArcSwap<PolicyEngine>>);

impl SharedEngine {
    /// Shares `engine`.
    pub fn new(engine: PolicyEngine) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(engine)))
    }

    /// The engine in effect now (a cheap clone: one reference count).
    pub fn current(&self) -> PolicyEngine {
        PolicyEngine::clone(&self.0.load())
    }

    /// Puts `engine` in effect for every decision that starts from now on.
    pub fn replace(&self, engine: PolicyEngine) {
        self.0.store(Arc::new(engine));
    }
}

impl From<PolicyEngine> for SharedEngine {
    fn from(engine: PolicyEngine) -> Self {
        Self::new(engine)
    }
}

impl fmt::Debug for SharedEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEngine")
            .field("policy", &self.0.load().policy().name())
            .field("revision", &self.0.load().policy().revision())
            .finish()
    }
}

/// The requirement of a request that needs nothing beyond the policy.
static NOTHING_MORE: Requirement = Requirement::new();

/// Polls a key source's future, turning a panic into `Err(())`.
struct CatchUnwind<'a>(KeysFuture<'a>);

impl Future for CatchUnwind<'_> {
    type Output = Result<Result<Arc<KeySet>, KeyError>, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(keys)) => Poll::Ready(Ok(keys)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

fn current_keys(issuer: &CompiledIssuer) -> Result<Arc<KeySet>, KeyError> {
    match &issuer.keys {
        Some(source) => source.keys(),
        None => Ok(Arc::new(KeySet::default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<PolicyEngine>();
        assert_send_sync::<Decision>();
    }

    /// Keys from the keycard-mcp JWKS that count how often they are asked for.
    #[derive(Debug)]
    struct Counted(StaticKeys, std::sync::atomic::AtomicUsize);

    impl KeySource for Counted {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.keys()
        }
    }

    fn keycard(source: Arc<Counted>) -> PolicyEngine {
        PolicyEngine::builder(Policy::from_file("policies/keycard-mcp.toml").unwrap())
            .context("credential.key_id", "mcp-server-key-1")
            .key_source_for_all(source)
            .build()
            .unwrap()
    }

    fn counted() -> Arc<Counted> {
        Arc::new(Counted(
            StaticKeys::from_file("policies/keycard-mcp.jwks.json").unwrap(),
            std::sync::atomic::AtomicUsize::new(0),
        ))
    }

    fn at() -> UnixTime {
        UnixTime::from_secs(1_767_225_600)
    }

    /// Keys that lack every `kid` until refreshed.
    #[derive(Debug)]
    struct Rotated(StaticKeys);

    impl KeySource for Rotated {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            Ok(Arc::new(KeySet::default()))
        }

        fn refresh<'a>(&'a self, _kid: Option<&'a str>) -> KeysFuture<'a> {
            Box::pin(std::future::ready(self.0.keys()))
        }
    }

    #[tokio::test]
    async fn a_refresh_for_an_unknown_kid_resumes_at_the_key_step() {
        let engine = PolicyEngine::builder(Policy::from_file("policies/keycard-mcp.toml").unwrap())
            .context("credential.key_id", "mcp-server-key-1")
            .key_source_for_all(Arc::new(Rotated(
                StaticKeys::from_file("policies/keycard-mcp.jwks.json").unwrap(),
            )))
            .build()
            .unwrap();
        let token = std::fs::read_to_string("policies/demo/zone-audience.jwt").unwrap();
        let before = crate::token::DECODED.with(|n| n.get());
        let decision = engine.evaluate_async_at(token.trim_end(), at()).await;
        assert_eq!(crate::token::DECODED.with(|n| n.get()) - before, 1);
        assert!(decision.is_allowed(), "{}", decision.explain());
        // The texts are written with the keys the refresh gave.
        let key = decision
            .checks()
            .iter()
            .find(|c| c.rule() == "key")
            .unwrap();
        assert_eq!(key.outcome(), &Outcome::Passed);
    }

    #[test]
    fn a_cloned_decision_shares_its_checks_and_claims() {
        let engine = keycard(counted());
        let token = std::fs::read_to_string("policies/demo/zone-audience.jwt").unwrap();
        let decision = engine.evaluate_at(token.trim_end(), at());
        let clone = decision.clone();
        assert!(decision.is_allowed());
        assert!(std::ptr::eq(decision.checks(), clone.checks()));
        assert!(std::ptr::eq(
            decision.claims().unwrap(),
            clone.claims().unwrap()
        ));
    }

    #[test]
    fn showing_a_decision_asks_for_no_keys_and_writes_what_deciding_found() {
        let source = counted();
        let engine = keycard(source.clone());
        let token = std::fs::read_to_string("policies/demo/zone-audience.jwt").unwrap();
        let token = token.trim_end();
        let decision = engine.evaluate_at(token, at());
        assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        let json = decision.to_json();
        let explained = decision.explain();
        assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(json.contains(r#"{"rule":"signature","outcome":"passed","detail":"`"#));
        assert!(explained.starts_with("ALLOW\n"), "{explained}");
        let payload = token.split('.').nth(1).unwrap();
        let claims = base64::Engine::decode(&crate::json::BASE64URL, payload).unwrap();
        assert_eq!(decision.claims().unwrap().json().as_bytes(), claims);

        // A token whose signature does not verify: the texts say so without verifying again.
        let (head, sig) = token.rsplit_once('.').unwrap();
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{head}.{first}{}", &sig[1..]);
        let denied = engine.evaluate_at(&forged, at());
        assert_eq!(denied.reason(), Some(Reason::InvalidSignature));
        let failed: Vec<&str> = denied.failures().map(Check::rule).collect();
        assert_eq!(failed, ["signature"]);
        assert!(denied.claims().is_none());
        assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
