//! The validated policy: every value checked, every variable substituted, every regex compiled.
//! Nothing here is re-checked when a token is evaluated.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use regex_automata::meta;

use super::diagnostic::{Diagnostic, SourceFile};
use super::pattern;
use super::routes::{self, PathError, Requirement, Route};
use crate::algorithm::Algorithm;

/// A claim named by its path from the top of the payload: `["sub"]`, `["realm_access", "roles"]`.
///
/// Top-level names may contain dots (`https://example.com/roles`), so nesting is written as a
/// TOML array in the policy, never as a dotted string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClaimPath(pub(crate) Vec<String>);

impl ClaimPath {
    /// A top-level claim.
    pub(crate) fn top(name: &str) -> Self {
        Self(vec![name.to_owned()])
    }

    /// The path segments.
    pub(crate) fn segments(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => f.write_str(one),
            many => {
                for (i, segment) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(segment)?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a claim (or header parameter) must be present, is checked only when present, or is
/// not looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Absent fails.
    Required,
    /// Checked when present.
    Optional,
    /// Never checked.
    Ignored,
}

/// How a claim that carries several values is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueFormat {
    /// A JSON string, taken as one value.
    String,
    /// A JSON string holding values separated by U+0020 (RFC 6749 `scope`).
    SpaceDelimited,
    /// A JSON array of strings.
    Array,
    /// A string (one value) or an array of strings.
    StringOrArray,
    /// A space-delimited string or an array of strings.
    SpaceDelimitedOrArray,
}

impl ValueFormat {
    /// The policy spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::SpaceDelimited => "space_delimited",
            Self::Array => "array",
            Self::StringOrArray => "string_or_array",
            Self::SpaceDelimitedOrArray => "space_delimited_or_array",
        }
    }
}

/// A JSON type a claim can be required to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    /// `"..."`
    String,
    /// Any number.
    Number,
    /// A number with no fractional part.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// `[...]`
    Array,
    /// `{...}`
    Object,
    /// `null`
    Null,
}

impl JsonType {
    /// The policy spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
            Self::Array => "array",
            Self::Object => "object",
            Self::Null => "null",
        }
    }
}

/// A scalar from the policy that a claim can be compared with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    /// A string.
    String(String),
    /// A number, as the text of a JSON number (compared exactly, `1` equals `1.0`).
    Number(String),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => write!(f, "`{s}`"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A regular expression in the policy's dialect (see `docs/policy.md`, "Regex dialect"),
/// compiled, with the text it was written as.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// The pattern after substitution (each variable's value escaped).
    pub(crate) source: String,
    pub(crate) regex: meta::Regex,
    pub(crate) span: Range<usize>,
}

impl Pattern {
    /// Compiles `source`, written at `span`; the error says what is wrong with it, in one line.
    pub(crate) fn new(source: String, span: Range<usize>) -> Result<Self, String> {
        let parsed = pattern::parse(&source)?;
        let regex = pattern::compile(&parsed.hir)?;
        Ok(Self {
            source,
            regex,
            span,
        })
    }

    /// The pattern as written in the policy.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches anywhere in `value` (anchor it with `^...$` to match all of it).
    pub(crate) fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// One test on one claim; all the tests given must hold.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    pub(crate) path: ClaimPath,
    /// When the claim is absent: `true` passes (nothing to test), `false` fails.
    pub(crate) if_present: bool,
    pub(crate) tests: Vec<ClaimTest>,
    pub(crate) span: Range<usize>,
}

/// The closed set of tests a [`Constraint`] can make.
#[derive(Debug, Clone)]
pub(crate) enum ClaimTest {
    /// `present = true` / `present = false`.
    Present(bool),
    /// The claim equals the literal.
    Equals(Literal),
    /// The claim equals one of the literals.
    OneOf(Vec<Literal>),
    /// The claim is a string starting with this.
    Prefix(String),
    /// The claim is a string ending with this.
    Suffix(String),
    /// The claim is a string the pattern matches.
    Regex(Pattern),
    /// The claim's values (per `format`) include this one.
    Contains(String, ValueFormat),
    /// The claim's values include at least one of these.
    ContainsAny(Vec<String>, ValueFormat),
    /// The claim's values include all of these.
    ContainsAll(Vec<String>, ValueFormat),
    /// The claim has this JSON type.
    Type(JsonType),
}

/// A condition of a rule: a constraint, or a combination of conditions.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    /// One claim constraint.
    Claim(Constraint),
    /// Every condition holds (true when empty).
    All(Vec<Condition>),
    /// At least one condition holds (false when empty).
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
}

/// A named conditional rule: when `when` holds (or always, without `when`), `require` must hold.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    /// A permission rule: when it fails, the token is valid but lacks a permission (403).
    pub(crate) permission: bool,
    /// Applied only to requests whose route (or [`Requirement`](crate::Requirement)) names it.
    pub(crate) route_only: bool,
    pub(crate) when: Option<Condition>,
    pub(crate) require: Condition,
    /// Where `when` is written, if it is.
    pub(crate) when_span: Option<Range<usize>>,
    /// Where `require` is written.
    pub(crate) require_span: Range<usize>,
}

/// One accepted audience value, with its guard.
#[derive(Debug, Clone)]
pub(crate) struct AudienceAlternative {
    pub(crate) value: String,
    /// When set, the `resource` claim must name this value for the alternative to match.
    pub(crate) resource: Option<String>,
    pub(crate) span: Range<usize>,
}

/// Whether any or all alternatives must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// At least one.
    Any,
    /// Every one.
    All,
}

/// The audience rule.
#[derive(Debug, Clone)]
pub(crate) struct AudienceRule {
    pub(crate) mode: Match,
    pub(crate) accept: Vec<AudienceAlternative>,
}

/// What `aud` must say: the accepted alternatives (without `[audience]`, this resource's own
/// URL), or, where the policy opts out explicitly with `accept = "any"`, anything well-formed.
#[derive(Debug, Clone)]
pub(crate) enum Audience {
    /// `aud` must match the alternatives.
    Accept(AudienceRule),
    /// `accept = "any"`: the audience is not compared (linted as `no-audience-rule`).
    Any,
}

/// An issuer's public keys.
#[derive(Debug, Clone)]
pub(crate) enum IssuerKeys {
    /// A `jwks_file` or inline `jwks`, loaded when the policy was validated.
    Static(std::sync::Arc<crate::jwks::KeySet>),
    /// A `jwks_url`, or the `jwks_uri` found by `discovery`.
    Remote(crate::jwks::RemoteSource),
}

/// A verified claim that `jwt-policy serve` passes on as a request header on allow (`[forward]`).
#[derive(Debug, Clone)]
pub(crate) struct ForwardHeader {
    pub(crate) path: ClaimPath,
    pub(crate) header: String,
    /// Joins the items of an array claim.
    pub(crate) separator: String,
    pub(crate) span: Range<usize>,
}

/// Where an HMAC secret comes from. The policy names it; it never contains it.
#[derive(Debug, Clone)]
pub(crate) enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (one trailing newline is removed).
    File(PathBuf),
    /// The secret itself, put in place of the policy's by `jwt_policy::testing` (a policy file
    /// never gives one).
    #[cfg(feature = "testing")]
    Bytes(std::sync::Arc<[u8]>),
}

/// An HMAC secret the policy names explicitly.
#[derive(Debug, Clone)]
pub(crate) struct HmacSecret {
    pub(crate) kid: Option<String>,
    pub(crate) source: SecretSource,
    pub(crate) span: Range<usize>,
}

/// A trusted issuer: its exact `iss`, its algorithms, and where its keys come from.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(crate) iss: String,
    pub(crate) algorithms: Vec<Algorithm>,
    /// Where its public keys come from.
    pub(crate) keys: Option<IssuerKeys>,
    pub(crate) hmac_secrets: Vec<HmacSecret>,
    /// Where the JWKS (`jwks_file` or `jwks`) is named.
    pub(crate) keys_span: Option<Range<usize>>,
}

impl Issuer {
    /// The exact `iss` value.
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// The algorithms allowed for this issuer.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

/// Header rules.
#[derive(Debug, Clone)]
pub(crate) struct HeaderRules {
    /// Accepted `typ` values, lowercased; empty means `typ` is not checked.
    pub(crate) typ: Vec<String>,
    pub(crate) kid: Presence,
    /// `crit` entries the embedding service processes itself.
    pub(crate) crit: Vec<String>,
}

/// Time rules. All durations in whole seconds.
#[derive(Debug, Clone)]
pub(crate) struct TimeRules {
    pub(crate) leeway: u64,
    pub(crate) exp: Presence,
    pub(crate) nbf: Presence,
    pub(crate) iat: Presence,
    pub(crate) max_age: Option<u64>,
}

/// Which claims carry scopes and which scopes are required.
#[derive(Debug, Clone)]
pub(crate) struct ScopeRules {
    pub(crate) claims: Vec<(String, ValueFormat)>,
    pub(crate) required: Vec<String>,
}

/// Where an identifier comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdSource {
    /// A top-level claim of the token.
    Claim(String),
    /// A value the embedding service provides when it builds the engine.
    Context(String),
    /// A fixed value.
    Value(String),
}

impl fmt::Display for IdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Claim(name) => write!(f, "claim `{name}`"),
            Self::Context(key) => write!(f, "context `{key}`"),
            Self::Value(_) => f.write_str("the policy's fixed value"),
        }
    }
}

/// Ordered sources for an identifier, with patterns it must (not) match.
#[derive(Debug, Clone)]
pub(crate) struct IdRule {
    pub(crate) sources: Vec<IdSource>,
    pub(crate) required: bool,
    pub(crate) allow: Option<Pattern>,
    pub(crate) refuse: Vec<Pattern>,
}

impl IdRule {
    /// Why `id` is refused by the rule's patterns, if it is.
    pub(crate) fn refusal(&self, id: &str) -> Option<String> {
        if let Some(allow) = &self.allow
            && !allow.is_match(id)
        {
            return Some(format!("must match `{}`", allow.as_str()));
        }
        self.refuse
            .iter()
            .find(|p| p.is_match(id))
            .map(|p| format!("must not match `{}`", p.as_str()))
    }
}

/// The bounds of the verified-decision cache (`[cache]` in the policy,
/// [`EngineBuilder::cache`](crate::EngineBuilder::cache) in code): at most `max_entries`
/// decisions, and at most `max_bytes` of tokens and decisions (as estimated when they are
/// cached). Both bounds hold at every moment.
///
/// ```
/// use std::num::{NonZeroU64, NonZeroUsize};
/// use jwt_policy::CacheSettings;
///
/// let settings = CacheSettings::new(
///     NonZeroUsize::new(50_000).expect("not zero"),
///     NonZeroU64::new(64 << 20).expect("not zero"),
/// );
/// assert_eq!(settings.max_entries(), 50_000);
/// assert_eq!(CacheSettings::default().max_bytes(), 16 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    max_entries: std::num::NonZeroUsize,
    max_bytes: std::num::NonZeroU64,
}

impl CacheSettings {
    /// The default `max_entries`: 10,000 decisions.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
    /// The default `max_bytes`: 16 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;

    /// A cache of at most `max_entries` decisions and `max_bytes` bytes.
    pub fn new(max_entries: std::num::NonZeroUsize, max_bytes: std::num::NonZeroU64) -> Self {
        Self {
            max_entries,
            max_bytes,
        }
    }

    /// The most decisions the cache holds.
    pub fn max_entries(&self) -> usize {
        self.max_entries.get()
    }

    /// The most bytes (tokens and decisions, estimated) the cache holds.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.get()
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_entries: std::num::NonZeroUsize::new(Self::DEFAULT_MAX_ENTRIES)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            max_bytes: std::num::NonZeroU64::new(Self::DEFAULT_MAX_BYTES)
                .unwrap_or(std::num::NonZeroU64::MIN),
        }
    }
}

/// A validated policy, ready to be compiled into a [`PolicyEngine`](crate::PolicyEngine).
///
/// Made by [`Policy::from_file`] or [`Policy::from_toml`]; it cannot be built half-way.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) resource_url: String,
    pub(crate) resource_name: Option<String>,
    pub(crate) resource_documentation: Option<String>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) resource_claim: Presence,
    pub(crate) max_token_bytes: usize,
    pub(crate) header: HeaderRules,
    pub(crate) time: TimeRules,
    pub(crate) issuers: Vec<Issuer>,
    pub(crate) audience: Audience,
    pub(crate) required_claims: Vec<ClaimPath>,
    pub(crate) constraints: Vec<Constraint>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) scopes: ScopeRules,
    pub(crate) client_id: IdRule,
    pub(crate) resource_client_id: Option<IdRule>,
    pub(crate) routes: Vec<Route>,
    pub(crate) forward: Vec<ForwardHeader>,
    pub(crate) remote_keys: crate::jwks::RemoteSettings,
    /// `[cache]`: `None` when decisions are not cached.
    pub(crate) cache: Option<CacheSettings>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// See [`Policy::revision`].
    pub(crate) revision: String,
    /// See [`Policy::files`].
    pub(crate) files: Vec<PathBuf>,
    pub(crate) source: std::sync::Arc<SourceFile>,
}

impl Policy {
    /// The file name (or label) the policy was read from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This server's resource URL (RFC 8707 / RFC 9728 `resource`).
    pub fn resource_url(&self) -> &str {
        &self.resource_url
    }

    /// A human-readable name of this resource (`[resource] name`, RFC 9728 `resource_name`).
    pub fn resource_name(&self) -> Option<&str> {
        self.resource_name.as_deref()
    }

    /// Where a developer reads how to use this resource (`[resource] documentation`, RFC 9728
    /// `resource_documentation`).
    pub fn resource_documentation(&self) -> Option<&str> {
        self.resource_documentation.as_deref()
    }

    /// The scopes this resource supports, for RFC 9728 metadata.
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// The scopes every request needs (`[scopes] required`); a route's scopes come on top
    /// (see [`Policy::requirement_for`]).
    ///
    /// ```
    /// let policy = jwt_policy::Policy::from_file("policies/keycard-mcp.toml")?;
    /// assert_eq!(policy.required_scopes(), ["mcp:tools"]);
    /// # Ok::<(), jwt_policy::PolicyError>(())
    /// ```
    pub fn required_scopes(&self) -> &[String] {
        &self.scopes.required
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// How remote keys are fetched and cached (`[remote_keys]`).
    pub fn remote_keys(&self) -> &crate::jwks::RemoteSettings {
        &self.remote_keys
    }

    /// The bounds of the verified-decision cache, when the policy's `[cache]` enables it.
    pub fn cache(&self) -> Option<CacheSettings> {
        self.cache
    }

    /// What a request with this method and URI (path and query, as a proxy forwards it)
    /// requires beyond the policy, from the most specific `[[routes]]` entry: the longest path
    /// prefix (matched on whole segments, case-sensitively), then one listing the method over
    /// one listing none. Nothing when no route applies. A path that could be read as another
    /// (`..`, `//`, an encoded `/`) is refused: answer such a request with 400.
    pub fn requirement_for(&self, method: &str, uri: &str) -> Result<Requirement, PathError> {
        let path = routes::request_path(uri)?;
        Ok(routes::matching(&self.routes, method, path)
            .map(|route| route.requirement.clone())
            .unwrap_or_default())
    }

    /// The name of the route a request with `method` on `path` (checked by
    /// [`request_path`](crate::policy::request_path)) falls under, if any.
    #[cfg(feature = "cli")]
    pub(crate) fn route_for(&self, method: &str, path: &str) -> Option<String> {
        routes::matching(&self.routes, method, path).map(routes::route_name)
    }

    /// The names of the routes, in policy order.
    #[cfg(feature = "cli")]
    pub(crate) fn route_names(&self) -> Vec<String> {
        self.routes.iter().map(routes::route_name).collect()
    }

    /// A short fingerprint (16 hex digits) of the policy text and the key set files it names:
    /// the same files give the same revision on every replica, any change gives another.
    /// Decisions carry it, so a log line says which policy decided. HMAC secrets are not part
    /// of it.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The files the policy names (key sets, HMAC secret files), resolved against its directory:
    /// what to watch, besides the policy itself, to notice a change.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The lints the policy triggered (it is valid, but these patterns are dangerous).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The policy text, for rendering [`Policy::warnings`] with [`SourceFile::render`](crate::policy::SourceFile::render).
    pub fn source(&self) -> &SourceFile {
        &self.source
    }
}
