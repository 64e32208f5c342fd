//! Decisions: a verdict, who the token speaks for, and every check with its outcome.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::evaluate::Replay;
use crate::text::{escape, is_deceptive};

/// Allow or deny. Exhaustive on purpose: callers handle both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check passed.
    Allow,
    /// At least one check failed.
    Deny,
}

/// The stable reason codes. Scripts and services match on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The token is larger than `limits.max_token_bytes`.
    TokenTooLarge,
    /// Not a strict compact JWS: segments, base64url, JSON, header parameter types.
    MalformedToken,
    /// `iss` names no issuer of the policy.
    UntrustedIssuer,
    /// `alg` is not in the issuer's allow-list.
    AlgorithmNotAllowed,
    /// No key of the issuer has the token's `kid` (or the token has none and one is required).
    KeyNotFound,
    /// The key the `kid` names cannot verify the token's `alg`.
    KeyMismatch,
    /// The signature does not verify.
    InvalidSignature,
    /// `typ` is missing or not an accepted value.
    InvalidType,
    /// `crit` names an extension that is not understood.
    UnsupportedCriticalHeader,
    /// A required claim is absent.
    MissingClaim,
    /// A claim has the wrong type or value.
    InvalidClaim,
    /// `now >= exp + leeway`.
    Expired,
    /// `now + leeway < nbf`.
    NotYetValid,
    /// `iat > now + leeway`.
    IssuedInFuture,
    /// `now >= iat + max_age + leeway`.
    TokenTooOld,
    /// No accepted audience is in `aud`.
    AudienceMismatch,
    /// The `resource` claim does not name this resource (or a guarded audience needs it to).
    ResourceMismatch,
    /// A required scope is not granted.
    InsufficientScope,
    /// No client id source is present.
    MissingClientId,
    /// A named rule's `require` does not hold.
    RuleFailed,
    /// A permission rule's `require` does not hold: the token is valid, but lacks a permission.
    InsufficientPermission,
    /// The issuer's keys could not be obtained.
    KeysUnavailable,
    /// A bug in this crate; please report it.
    Internal,
}

impl Reason {
    /// Every reason code.
    pub const ALL: [Reason; 23] = [
        Self::TokenTooLarge,
        Self::MalformedToken,
        Self::UntrustedIssuer,
        Self::AlgorithmNotAllowed,
        Self::KeyNotFound,
        Self::KeyMismatch,
        Self::InvalidSignature,
        Self::InvalidType,
        Self::UnsupportedCriticalHeader,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::TokenTooOld,
        Self::AudienceMismatch,
        Self::ResourceMismatch,
        Self::InsufficientScope,
        Self::MissingClientId,
        Self::RuleFailed,
        Self::InsufficientPermission,
        Self::KeysUnavailable,
        Self::Internal,
    ];

    /// The stable snake_case code, e.g. `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenTooLarge => "token_too_large",
            Self::MalformedToken => "malformed_token",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::KeyNotFound => "key_not_found",
            Self::KeyMismatch => "key_mismatch",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidType => "invalid_type",
            Self::UnsupportedCriticalHeader => "unsupported_critical_header",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::TokenTooOld => "token_too_old",
            Self::AudienceMismatch => "audience_mismatch",
            Self::ResourceMismatch => "resource_mismatch",
            Self::InsufficientScope => "insufficient_scope",
            Self::MissingClientId => "missing_client_id",
            Self::RuleFailed => "rule_failed",
            Self::InsufficientPermission => "insufficient_permission",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Internal => "internal",
        }
    }

    /// Whether this says a valid token lacks a permission (a scope, or a permission rule), as
    /// opposed to the token not being valid for this resource (or the server failing).
    pub fn is_permission(self) -> bool {
        matches!(self, Self::InsufficientScope | Self::InsufficientPermission)
    }

    /// The RFC 6750 §3.1 `error` for a `WWW-Authenticate: Bearer` challenge.
    ///
    /// `insufficient_scope` when a valid token lacks a permission, `invalid_token` for everything
    /// else (including the two server-side failures, whose HTTP status says the fault is not the
    /// client's).
    pub fn oauth_error(self) -> &'static str {
        if self.is_permission() {
            "insufficient_scope"
        } else {
            "invalid_token"
        }
    }

    /// The HTTP status to answer with: 403 when a valid token lacks a permission, 503 when keys
    /// are unavailable, 500 for an internal error, 401 otherwise.
    pub fn http_status(self) -> u16 {
        match self {
            _ if self.is_permission() => 403,
            Self::KeysUnavailable => 503,
            Self::Internal => 500,
            _ => 401,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one check ended. Exhaustive: callers handle every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed.
    Passed,
    /// The check failed.
    Failed {
        /// The stable reason code.
        reason: Reason,
        /// What the policy accepts.
        expected: String,
        /// What the token had.
        observed: String,
    },
    /// The check could not safely be made (e.g. claims of a token whose signature did not verify).
    NotEvaluated,
}

/// A check's name: a fixed check's is static, a policy's own (`required:…`, `constraint:…`,
/// `rule:…`) is made once when the engine is built and shared, so writing a decision's checks
/// does not count references of the fixed names (which every thread would share).
#[derive(Clone)]
pub(crate) enum Name {
    Fixed(&'static str),
    Shared(Arc<str>),
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Fixed(name) => name,
            Self::Shared(name) => name,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Name {}

impl From<&'static str> for Name {
    fn from(name: &'static str) -> Self {
        Self::Fixed(name)
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Self::Shared(Arc::from(name))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// One check of the policy and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub(crate) rule: Name,
    pub(crate) outcome: Outcome,
    pub(crate) detail: String,
}

impl Check {
    /// The check's stable name: `signature`, `exp`, `audience`, `required:sub`, `rule:NAME`, ...
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// How it ended.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// One readable line: what passed, what failed and why, or why it was not evaluated.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The reason code, when the check failed.
    pub fn reason(&self) -> Option<Reason> {
        match &self.outcome {
            Outcome::Failed { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Who and what an allowed token speaks for. Filled only from verified claims: a token whose
/// signature did not verify has an empty principal (its details are in the checks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Principal {
    /// `iss`.
    pub issuer: Option<String>,
    /// `sub`.
    pub subject: Option<String>,
    /// The calling client's id.
    pub client_id: Option<String>,
    /// The claim it came from (`client_id`, `azp`, ...).
    pub client_id_source: Option<String>,
    /// This server's own client id, resolved when the engine was built.
    pub resource_client_id: Option<String>,
    /// The accepted audience value that matched.
    pub audience: Option<String>,
    /// The resource the token named in its `resource` claim, when it named this one.
    pub resource: Option<String>,
    /// The granted scopes, in the order the token lists them.
    pub scopes: Vec<String>,
    /// `exp`, in whole seconds (rounded down).
    pub expires_at: Option<i64>,
}

/// A principal as the deciding run gathers it: its strings side by side in one buffer (one
/// allocation, where a [`Principal`] has one for each string), made into a [`Principal`] the first
/// time a decision is asked for it. A decision that is only tested for allow or deny never makes
/// one.
#[derive(Debug, Default)]
pub(crate) struct PrincipalDraft {
    /// Every string below, one after the other.
    text: String,
    issuer: Option<Span>,
    subject: Option<Span>,
    client_id: Option<Span>,
    client_id_source: Option<Span>,
    audience: Option<Span>,
    resource: Option<Span>,
    scopes: smallvec::SmallVec<[Span; 4]>,
    expires_at: Option<i64>,
}

/// Where a string of a [`PrincipalDraft`] lies in its buffer.
type Span = (usize, usize);

/// A field of a [`PrincipalDraft`] that holds one string.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    Issuer,
    Subject,
    ClientId,
    ClientIdSource,
    Audience,
    Resource,
}

impl PrincipalDraft {
    fn span(&mut self, value: &str) -> Span {
        let start = self.text.len();
        if self.text.capacity() == 0 {
            // The strings of a token's principal: most fit, so the buffer is allocated once.
            self.text.reserve(256);
        }
        self.text.push_str(value);
        (start, self.text.len())
    }

    /// Sets a string field.
    pub(crate) fn set(&mut self, field: Field, value: &str) {
        let span = Some(self.span(value));
        *match field {
            Field::Issuer => &mut self.issuer,
            Field::Subject => &mut self.subject,
            Field::ClientId => &mut self.client_id,
            Field::ClientIdSource => &mut self.client_id_source,
            Field::Audience => &mut self.audience,
            Field::Resource => &mut self.resource,
        } = span;
    }

    /// Adds a granted scope.
    pub(crate) fn scope(&mut self, scope: &str) {
        let span = self.span(scope);
        self.scopes.push(span);
    }

    /// Sets `expires_at`.
    pub(crate) fn expires_at(&mut self, seconds: i64) {
        self.expires_at = Some(seconds);
    }

    /// The principal, with this server's own client id.
    fn principal(&self, resource_client_id: Option<String>) -> Principal {
        let text = |&(start, end): &Span| self.text.get(start..end).unwrap_or_default().to_owned();
        let field = |span: &Option<Span>| span.as_ref().map(text);
        Principal {
            issuer: field(&self.issuer),
            subject: field(&self.subject),
            client_id: field(&self.client_id),
            client_id_source: field(&self.client_id_source),
            resource_client_id,
            audience: field(&self.audience),
            resource: field(&self.resource),
            scopes: self.scopes.iter().map(text).collect(),
            expires_at: self.expires_at,
        }
    }
}

/// The verified claims of an allowed token: its payload, as JSON text that parsed strictly
/// (no duplicate members, bounded nesting) and whose signature verified.
///
/// Read them as JSON ([`Claims::to_value`]) or into the service's own type
/// ([`Claims::deserialize`]). A decision holds them only when it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims(Arc<str>);

/// The verified claims do not have the shape the service asked for.
#[derive(Debug, thiserror::Error)]
#[error("the verified claims do not fit: {0}")]
pub struct ClaimsError(#[from] serde_json::Error);

impl Claims {
    pub(crate) fn new(json: String) -> Self {
        Self(Arc::from(json))
    }

    /// The payload's JSON text, exactly as the token carried it.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The claims as a JSON value. Fails only for numbers `serde_json` cannot hold (such as
    /// `1e400`, which strict decoding accepts as a JSON number).
    pub fn to_value(&self) -> Result<serde_json::Value, ClaimsError> {
        Ok(serde_json::from_str(&self.0)?)
    }

    /// The claims deserialized into the service's own type.
    ///
    /// ```
    /// # use jwt_policy::{Policy, PolicyEngine, UnixTime};
    /// #[derive(serde::Deserialize)]
    /// struct Caller {
    ///     sub: String,
    ///     client_id: String,
    /// }
    /// # let engine = PolicyEngine::builder(Policy::from_file("policies/keycard-mcp.toml")?)
    /// #     .context("credential.key_id", "mcp-server-key-1")
    /// #     .build()?;
    /// # let token = std::fs::read_to_string("policies/demo/zone-audience.jwt")?;
    /// let decision = engine.evaluate_at(token.trim_end(), UnixTime::from_secs(1_767_225_600));
    /// let caller: Caller = decision.claims().expect("allowed").deserialize()?;
    /// assert_eq!(caller.client_id, "mcp-inspector");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClaimsError> {
        Ok(serde_json::from_str(&self.0)?)
    }
}

/// The answer for one token: a value, never an error. Cheap to clone (one reference count).
///
/// A decision is made without the texts of its checks; [`Decision::checks`], [`Decision::explain`],
/// [`Decision::to_json`] and the verified [`Decision::claims`] are written the first time one of
/// them is asked for (then kept). The [`Decision::principal`] is gathered while deciding and made
/// into its strings on first ask.
#[derive(Clone)]
pub struct Decision(Arc<Data>);

struct Data {
    verdict: Verdict,
    /// Who the token speaks for, once made (from `draft`, for a decision made by an evaluation).
    principal: OnceLock<Principal>,
    draft: PrincipalDraft,
    /// The reason of each failed check, in check order.
    failed: Vec<Reason>,
    /// The scopes the request needed: the policy's, then the requirement's.
    required_scopes: Vec<String>,
    policy_revision: Arc<str>,
    /// Every check with its texts, once written.
    checks: OnceLock<Vec<Check>>,
    /// The verified claims (on allow only), once read.
    claims: OnceLock<Option<Claims>>,
    /// How to write the checks and the claims, for a decision made by an evaluation.
    replay: Option<Replay>,
    /// When the decision holds, for the decision cache: `Some` once the signature verified, in an
    /// engine with a cache (the times the time checks compared `now` with); `None` otherwise.
    window: Option<Box<super::time::Window>>,
}

impl Decision {
    /// A decision made by an evaluation, whose texts and claims `replay` writes when asked.
    pub(crate) fn replayed(
        verdict: Verdict,
        draft: PrincipalDraft,
        failed: Vec<Reason>,
        required_scopes: Vec<String>,
        policy_revision: Arc<str>,
        replay: Replay,
        window: Option<super::time::Window>,
    ) -> Self {
        Self(Arc::new(Data {
            verdict,
            principal: OnceLock::new(),
            draft,
            failed,
            required_scopes,
            policy_revision,
            checks: OnceLock::new(),
            claims: OnceLock::new(),
            replay: Some(replay),
            window: window.map(Box::new),
        }))
    }

    /// This decision with its checks and claims written, holding nothing of the engine that
    /// made it: what a decision cache keeps (inside that engine, where a reference back to it
    /// would never be freed).
    pub(crate) fn detached(&self) -> Self {
        let data = &*self.0;
        Self(Arc::new(Data {
            verdict: data.verdict,
            principal: OnceLock::from(self.principal().clone()),
            draft: PrincipalDraft::default(),
            failed: data.failed.clone(),
            required_scopes: data.required_scopes.clone(),
            policy_revision: data.policy_revision.clone(),
            checks: OnceLock::from(self.checks().to_vec()),
            claims: OnceLock::from(self.claims().cloned()),
            replay: None,
            window: data.window.clone(),
        }))
    }

    /// When the decision holds, if it was made for a decision cache (see [`Data::window`]).
    pub(crate) fn window(&self) -> Option<super::time::Window> {
        self.0.window.as_deref().copied()
    }

    /// A decision whose checks are already written.
    pub(crate) fn with_checks(
        verdict: Verdict,
        principal: Principal,
        checks: Vec<Check>,
        required_scopes: Vec<String>,
        claims: Option<Claims>,
        policy_revision: Arc<str>,
    ) -> Self {
        Self(Arc::new(Data {
            verdict,
            principal: OnceLock::from(principal),
            draft: PrincipalDraft::default(),
            failed: checks.iter().filter_map(Check::reason).collect(),
            required_scopes,
            policy_revision,
            checks: OnceLock::from(checks),
            claims: OnceLock::from(claims),
            replay: None,
            window: None,
        }))
    }

    /// The verified claims, when the token is allowed; `None` on deny (a denied token's claims
    /// are not to be acted on, even where its signature verified).
    pub fn claims(&self) -> Option<&Claims> {
        let data = &*self.0;
        data.claims
            .get_or_init(|| match (data.verdict, &data.replay) {
                (Verdict::Allow, Some(replay)) => replay.payload().map(Claims::new),
                _ => None,
            })
            .as_ref()
    }

    /// Every scope this request needed (the policy's `[scopes] required`, then those of the
    /// route or [`Requirement`](crate::Requirement)), in that order: what an
    /// `insufficient_scope` challenge names.
    pub fn required_scopes(&self) -> &[String] {
        &self.0.required_scopes
    }

    /// The [revision](crate::Policy::revision) of the policy that decided.
    pub fn policy_revision(&self) -> &str {
        &self.0.policy_revision
    }

    /// Allow or deny.
    pub fn verdict(&self) -> Verdict {
        self.0.verdict
    }

    /// Whether the token may pass.
    pub fn is_allowed(&self) -> bool {
        self.0.verdict == Verdict::Allow
    }

    /// The deciding reason: the first failed check's in check order that says the token is not
    /// valid here, else the first that says it lacks a permission (so a token that is both
    /// invalid and short of a scope is 401 `invalid_token`, never 403: RFC 6750 §3.1). `None`
    /// when allowed.
    pub fn reason(&self) -> Option<Reason> {
        let mut permission = None;
        for reason in self.0.failed.iter().copied() {
            if !reason.is_permission() {
                return Some(reason);
            }
            permission.get_or_insert(reason);
        }
        permission
    }

    /// The reason of every failed check, in check order, each code once.
    pub fn reasons(&self) -> Vec<Reason> {
        let mut reasons: Vec<Reason> = Vec::new();
        for reason in self.0.failed.iter().copied() {
            // At most one per reason code (a few dozen): the list stays tiny.
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        reasons
    }

    /// Who the token speaks for.
    pub fn principal(&self) -> &Principal {
        let data = &*self.0;
        data.principal.get_or_init(|| {
            let resource_client_id = data
                .replay
                .as_ref()
                .and_then(Replay::resource_client_id)
                .map(str::to_owned);
            data.draft.principal(resource_client_id)
        })
    }

    /// Every check, in the order they are made.
    pub fn checks(&self) -> &[Check] {
        let data = &*self.0;
        data.checks.get_or_init(|| match &data.replay {
            Some(replay) => {
                let checks = replay.checks();
                // The texts are written by the same checks that decided: the same failures.
                debug_assert_eq!(
                    checks.iter().filter_map(Check::reason).collect::<Vec<_>>(),
                    data.failed,
                    "{checks:?}"
                );
                checks
            }
            None => Vec::new(),
        })
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks().iter().filter(|c| c.reason().is_some())
    }

    /// The decision as one line of JSON with the stable field names (see the README).
    pub fn to_json(&self) -> String {
        // Written directly (the fields in this fixed order) rather than through a serialized
        // tree: this is on every logged decision.
        let mut out = String::with_capacity(2048);
        out.push_str(r#"{"verdict":"#);
        string(&mut out, verdict_str(self.verdict()));
        out.push_str(r#","reason":"#);
        match self.reason() {
            Some(reason) => string(&mut out, reason.as_str()),
            None => out.push_str("null"),
        }
        out.push_str(r#","reasons":["#);
        for (i, reason) in self.reasons().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, reason.as_str());
        }
        out.push(']');
        let p = self.principal();
        for (name, value) in [
            ("issuer", &p.issuer),
            ("subject", &p.subject),
            ("client_id", &p.client_id),
            ("client_id_source", &p.client_id_source),
            ("resource_client_id", &p.resource_client_id),
            ("audience", &p.audience),
            ("resource", &p.resource),
        ] {
            out.push(',');
            string(&mut out, name);
            out.push(':');
            match value {
                Some(value) => string(&mut out, value),
                None => out.push_str("null"),
            }
        }
        out.push_str(r#","scopes":["#);
        for (i, scope) in p.scopes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, scope);
        }
        out.push_str(r#"],"expires_at":"#);
        match p.expires_at {
            Some(at) => out.push_str(&at.to_string()),
            None => out.push_str("null"),
        }
        out.push_str(r#","policy_revision":"#);
        string(&mut out, self.policy_revision());
        out.push_str(r#","checks":["#);
        for (i, check) in self.checks().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"rule":"#);
            string(&mut out, &check.rule);
            out.push_str(r#","outcome":"#);
            string(
                &mut out,
                match check.outcome {
                    Outcome::Passed => "passed",
                    Outcome::NotEvaluated => "not_evaluated",
                    Outcome::Failed { .. } => "failed",
                },
            );
            out.push_str(r#","detail":"#);
            string(&mut out, &check.detail);
            if let Outcome::Failed {
                reason,
                expected,
                observed,
            } = &check.outcome
            {
                out.push_str(r#","reason":"#);
                string(&mut out, reason.as_str());
                out.push_str(r#","expected":"#);
                string(&mut out, expected);
                out.push_str(r#","observed":"#);
                string(&mut out, observed);
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }

    /// The human explanation in a few lines: the verdict, who the token speaks for, which
    /// audience alternative matched, and each failed check with expected vs observed.
    /// [`Decision::checks`] (and the JSON) hold every check.
    pub fn explain(&self) -> String {
        let mut out = match self.reason() {
            None => "ALLOW\n".to_owned(),
            Some(reason) => format!(
                "DENY: {reason} ({} HTTP {})\n",
                reason.oauth_error(),
                reason.http_status()
            ),
        };
        let p = self.principal();
        let client = match (&p.client_id, &p.client_id_source) {
            (Some(id), Some(source)) => Some(format!("{id} (from `{source}`)")),
            _ => None,
        };
        let scopes = (!p.scopes.is_empty()).then(|| p.scopes.join(" "));
        let expires = p.expires_at.map(|e| e.to_string());
        let who: Vec<String> = [
            ("issuer", &p.issuer),
            ("subject", &p.subject),
            ("client", &client),
            ("scopes", &scopes),
            ("expires", &expires),
            ("resource client", &p.resource_client_id),
        ]
        .into_iter()
        // Principal values come from the token: escaped, so they cannot forge lines.
        .filter_map(|(label, value)| value.as_ref().map(|v| format!("{label} {}", escape(v))))
        .collect();
        if !who.is_empty() {
            out.push_str(&format!("  {}\n", who.join(", ")));
        }
        if let Some(audience) = self
            .checks()
            .iter()
            .find(|c| &*c.rule == "audience" && c.outcome == Outcome::Passed)
        {
            out.push_str(&format!("  audience: {}\n", audience.detail));
        }
        for check in self.failures() {
            if let Outcome::Failed {
                reason,
                expected,
                observed,
            } = &check.outcome
            {
                out.push_str(&format!(
                    "  {} failed [{reason}]: {}\n    expected: {expected}\n    observed: {observed}\n",
                    check.rule, check.detail
                ));
            }
        }
        let count =
            |o: fn(&Outcome) -> bool| self.checks().iter().filter(|c| o(&c.outcome)).count();
        let passed = count(|o| matches!(o, Outcome::Passed));
        let failed = count(|o| matches!(o, Outcome::Failed { .. }));
        let skipped = count(|o| matches!(o, Outcome::NotEvaluated));
        out.push_str(&format!(
            "  checks: {passed} passed, {failed} failed, {skipped} not evaluated"
        ));
        if let Some(first) = self
            .checks()
            .iter()
            .find(|c| c.outcome == Outcome::NotEvaluated)
        {
            out.push_str(&format!(" ({})", first.detail));
        }
        out.push('\n');
        out
    }
}

impl PartialEq for Decision {
    fn eq(&self, other: &Self) -> bool {
        self.verdict() == other.verdict()
            && self.principal() == other.principal()
            && self.checks() == other.checks()
            && self.required_scopes() == other.required_scopes()
            && self.claims() == other.claims()
            && self.policy_revision() == other.policy_revision()
    }
}

impl Eq for Decision {}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("verdict", &self.verdict())
            .field("principal", self.principal())
            .field("checks", &self.checks())
            .field("required_scopes", &self.required_scopes())
            .field("claims", &self.claims())
            .field("policy_revision", &self.policy_revision())
            .finish()
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explain())
    }
}

fn verdict_str(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

/// Writes `value` as a JSON string: `"` and `\` escaped, control characters below U+0020 as
/// `\b \f \n \r \t` or `\u00xx` (as `serde_json` writes them), and the characters that
/// reorder or break lines ([`is_deceptive`]) as `\uXXXX` escapes: the same JSON value, but a
/// log line that shows what it holds.
fn string(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = value.as_bytes();
    // `bytes[plain..i]` is written as it is, once an escape (or the end) is reached.
    let mut plain = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if bytes.get(i..i + 8).is_some_and(is_plain) {
            i += 8;
            continue;
        }
        let (escape, code, len): (&str, u32, usize) = match b {
            b'"' => ("\\\"", 0, 1),
            b'\\' => ("\\\\", 0, 1),
            b'\n' => ("\\n", 0, 1),
            b'\r' => ("\\r", 0, 1),
            b'\t' => ("\\t", 0, 1),
            0x08 => ("\\b", 0, 1),
            0x0c => ("\\f", 0, 1),
            0x00..=0x1f => ("", u32::from(b), 1),
            // The lead bytes of the deceptive characters (U+061C; U+200E to U+2069).
            0xd8 | 0xe2 => match value.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) if is_deceptive(c) => ("", u32::from(c), c.len_utf8()),
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(value.get(plain..i).unwrap_or_default());
        if escape.is_empty() {
            // Every escaped character is in the Basic Multilingual Plane: four hex digits.
            out.push_str("\\u");
            for shift in [12, 8, 4, 0] {
                let digit = HEX
                    .get(((code >> shift) & 0xf) as usize)
                    .copied()
                    .unwrap_or(b'0');
                out.push(char::from(digit));
            }
        } else {
            out.push_str(escape);
        }
        i += len;
        plain = i;
    }
    out.push_str(value.get(plain..).unwrap_or_default());
    out.push('"');
}

/// Whether eight bytes are all printable ASCII other than `"` and `\\` (written as they are).
fn is_plain(chunk: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether some byte of `x` is below `n` (n <= 0x80): the bytes' borrow into their high bit.
    let has_below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0;
    let mut word = [0; 8];
    if chunk.len() != 8 {
        return false;
    }
    word.copy_from_slice(chunk);
    let x = u64::from_ne_bytes(word);
    x & HIGHS == 0
        && !has_below(x, 0x20)
        && !has_below(x ^ (ONES * u64::from(b'"')), 1)
        && !has_below(x ^ (ONES * u64::from(b'\\')), 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A decision holding every kind of value `to_json` writes: each outcome, absent and present
    /// principal fields, and strings with quotes, backslashes, control, deceptive and non-BMP
    /// characters.
    fn tricky() -> Decision {
        let text = "a\"b\\c\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}/é\u{2028}\u{202e}😀";
        Decision::with_checks(
            Verdict::Deny,
            Principal {
                issuer: Some(text.into()),
                subject: None,
                client_id: Some("c".into()),
                client_id_source: Some("client_id".into()),
                resource_client_id: None,
                audience: Some("https://a.example".into()),
                resource: None,
                scopes: vec!["read".into(), text.into()],
                expires_at: Some(-17),
            },
            vec![
                Check {
                    rule: "size".into(),
                    outcome: Outcome::Passed,
                    detail: "10 bytes".into(),
                },
                Check {
                    rule: "rule:x\u{2029}".into(),
                    outcome: Outcome::Failed {
                        reason: Reason::InsufficientPermission,
                        expected: text.into(),
                        observed: String::new(),
                    },
                    detail: text.into(),
                },
                Check {
                    rule: "exp".into(),
                    outcome: Outcome::NotEvaluated,
                    detail: "why".into(),
                },
                Check {
                    rule: "issuer".into(),
                    outcome: Outcome::Failed {
                        reason: Reason::UntrustedIssuer,
                        expected: "e".into(),
                        observed: "o".into(),
                    },
                    detail: "d".into(),
                },
            ],
            vec!["s".into()],
            None,
            Arc::from("0123456789abcdef"),
        )
    }

    proptest::proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them_with_deceptive_characters_escaped(
            value in "([a-z `]{0,12}|.|[\u{0}-\u{1f}\u{2028}\u{202e}\u{61c}\"\\\\])*"
        ) {
            let mut out = String::new();
            string(&mut out, &value);
            let mut expected = String::new();
            for c in serde_json::to_string(&value).unwrap().chars() {
                if is_deceptive(c) {
                    expected.push_str(&format!("\\u{:04x}", u32::from(c)));
                } else {
                    expected.push(c);
                }
            }
            proptest::prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn to_json_writes_every_field_with_json_escapes() {
        let expected = r#"{"verdict":"deny","reason":"untrusted_issuer","reasons":["insufficient_permission","untrusted_issuer"],"issuer":"a\"b\\c\u0001\b\f\n\r\t\u001f/é\u2028\u202e😀","subject":null,"client_id":"c","client_id_source":"client_id","resource_client_id":null,"audience":"https://a.example","resource":null,"scopes":["read","a\"b\\c\u0001\b\f\n\r\t\u001f/é\u2028\u202e😀"],"expires_at":-17,"policy_revision":"0123456789abcdef","checks":[{"rule":"size","outcome":"passed","detail":"10 bytes"},{"rule":"rule:x\u2029","outcome":"failed","detail":"a\"b\\c\u0001\b\f\n\r\t\u001f/é\u2028\u202e😀","reason":"insufficient_permission","expected":"a\"b\\c\u0001\b\f\n\r\t\u001f/é\u2028\u202e😀","observed":""},{"rule":"exp","outcome":"not_evaluated","detail":"why"},{"rule":"issuer","outcome":"failed","detail":"d","reason":"untrusted_issuer","expected":"e","observed":"o"}]}"#;
        let json = tricky().to_json();
        assert_eq!(json.replace('\u{7f}', ""), expected);
        assert!(json.contains('\u{7f}'));
        let empty = Decision::with_checks(
            Verdict::Allow,
            Principal::default(),
            Vec::new(),
            Vec::new(),
            None,
            Arc::from("r"),
        );
        assert_eq!(
            empty.to_json(),
            r#"{"verdict":"allow","reason":null,"reasons":[],"issuer":null,"subject":null,"client_id":null,"client_id_source":null,"resource_client_id":null,"audience":null,"resource":null,"scopes":[],"expires_at":null,"policy_revision":"r","checks":[]}"#
        );
    }
}
