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

/// One check of the policy and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub(crate) rule: Arc<str>,
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
/// them is asked for (then kept).
#[derive(Clone)]
pub struct Decision(Arc<Data>);

struct Data {
    verdict: Verdict,
    principal: Principal,
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
}

impl Decision {
    /// A decision made by an evaluation, whose texts and claims `replay` writes when asked.
    pub(crate) fn replayed(
        verdict: Verdict,
        principal: Principal,
        failed: Vec<Reason>,
        required_scopes: Vec<String>,
        policy_revision: Arc<str>,
        replay: Replay,
    ) -> Self {
        Self(Arc::new(Data {
            verdict,
            principal,
            failed,
            required_scopes,
            policy_revision,
            checks: OnceLock::new(),
            claims: OnceLock::new(),
            replay: Some(replay),
        }))
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
            principal,
            failed: checks.iter().filter_map(Check::reason).collect(),
            required_scopes,
            policy_revision,
            checks: OnceLock::from(checks),
            claims: OnceLock::from(claims),
            replay: None,
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
        &self.0.principal
    }

    /// Every check, in the order they are made.
    pub fn checks(&self) -> &[Check] {
        let data = &*self.0;
        data.checks.get_or_init(|| match &data.replay {
            Some(replay) => replay.checks(),
            None => Vec::new(),
        })
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks().iter().filter(|c| c.reason().is_some())
    }

    /// The decision as one line of JSON with the stable field names (see the README).
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct JsonCheck<'a> {
            rule: &'a str,
            outcome: &'static str,
            detail: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<Reason>,
            #[serde(skip_serializing_if = "Option::is_none")]
            expected: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            observed: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct JsonDecision<'a> {
            verdict: Verdict,
            reason: Option<Reason>,
            reasons: Vec<Reason>,
            #[serde(flatten)]
            principal: &'a Principal,
            policy_revision: &'a str,
            checks: Vec<JsonCheck<'a>>,
        }
        let checks = self
            .checks()
            .iter()
            .map(|c| {
                let (outcome, reason, expected, observed) = match &c.outcome {
                    Outcome::Passed => ("passed", None, None, None),
                    Outcome::NotEvaluated => ("not_evaluated", None, None, None),
                    Outcome::Failed {
                        reason,
                        expected,
                        observed,
                    } => (
                        "failed",
                        Some(*reason),
                        Some(expected.as_str()),
                        Some(observed.as_str()),
                    ),
                };
                JsonCheck {
                    rule: &c.rule,
                    outcome,
                    detail: &c.detail,
                    reason,
                    expected,
                    observed,
                }
            })
            .collect();
        let json = JsonDecision {
            verdict: self.verdict(),
            reason: self.reason(),
            reasons: self.reasons(),
            principal: self.principal(),
            policy_revision: self.policy_revision(),
            checks,
        };
        // Serializing strings, numbers and unit enums into a String cannot fail.
        let text = serde_json::to_string(&json).unwrap_or_else(|_| {
            r#"{"verdict":"deny","reason":"internal","reasons":["internal"]}"#.to_owned()
        });
        escape_deceptive(text)
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

/// JSON text with the characters that reorder or break lines written as `\uXXXX` escapes: the
/// same JSON value, but a log line that shows what it holds. These characters can only occur
/// inside strings, where the escape means exactly the character.
fn escape_deceptive(json: String) -> String {
    if !json.chars().any(is_deceptive) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_deceptive(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}
