//! The HTTP edge of a protected resource, on the [`http`](https://docs.rs/http) crate's types:
//! reading the bearer token of a request (RFC 6750 §2.1), the RFC 9728 protected-resource
//! metadata and where it is served, and the one mapping from what happened to a request to the
//! response to send ([`response`]): status, `WWW-Authenticate` challenge (RFC 6750 §3) and JSON
//! body. The tower layer and axum extractors (`jwt_policy::http::axum`, feature `axum`) and
//! `jwt-policy serve` answer through it, so they answer alike. The contract is in `docs/http.md`.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
//! use jwt_policy::http::{DenyBody, Situation, bearer_token, response};
//! use jwt_policy::{Policy, PolicyEngine};
//!
//! let policy = Policy::from_file("policies/keycard-mcp.toml")?;
//! let engine = PolicyEngine::builder(policy)
//!     .context("credential.key_id", "mcp-server-key-1")
//!     .build()?;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer not.a.token"));
//! let policy = engine.policy();
//! let answer = match bearer_token(&headers) {
//!     Ok(Some(token)) => {
//!         let decision = engine.evaluate(token);
//!         response(policy, Situation::Decided(&decision), DenyBody::Minimal)
//!     }
//!     Ok(None) => response(policy, Situation::NoCredentials, DenyBody::Minimal),
//!     Err(bad) => response(policy, Situation::BadRequest(&bad), DenyBody::Minimal),
//! };
//! assert_eq!(answer.status(), 401);
//! assert_eq!(
//!     answer.headers()["www-authenticate"],
//!     "Bearer error=\"invalid_token\", \
//!      error_description=\"malformed_token: the token is not a well-formed JWS\", \
//!      resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "axum")]
pub mod axum;

use ::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use ::http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::engine::{Decision, Reason, Verdict};
use crate::policy::PathError;
use crate::policy::Policy;

/// The well-known URI suffix of protected-resource metadata (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Why a request is refused before any token is evaluated (HTTP 400, `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRequest {
    /// More than one `Authorization` header: which one would count is ambiguous.
    #[error("several `authorization` headers")]
    SeveralAuthorizationHeaders,
    /// An `Authorization` header with nothing in it.
    #[error("the `authorization` header is empty")]
    EmptyAuthorization,
    /// `Bearer` with no token after it.
    #[error("`bearer` credentials with no token")]
    EmptyBearerToken,
    /// A token with a space or another character outside the RFC 6750 `b64token` syntax.
    #[error("the bearer token has a character outside the `b64token` syntax of RFC 6750 §2.1")]
    InvalidBearerToken,
    /// The request path could be read as another path, so no `[[routes]]` entry can be matched.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A forward-auth request's account of the original request (`X-Forwarded-Method` and
    /// `X-Forwarded-Uri`, or `X-Original-Method` and `X-Original-URI`) cannot be relied on: a
    /// URI without its method, a header given twice, two accounts that disagree, a method that
    /// is not an upper-case token. What is wrong, for the log.
    #[error("{0}")]
    OriginalRequest(String),
}

impl BadRequest {
    /// The `error_description` of the challenge: a fixed phrase, printable ASCII, without `"`
    /// or `\`, never holding anything the request sent.
    pub fn description(&self) -> &'static str {
        match self {
            Self::SeveralAuthorizationHeaders => "several authorization headers",
            Self::EmptyAuthorization => "the authorization header is empty",
            Self::EmptyBearerToken => "the bearer credentials hold no token",
            Self::InvalidBearerToken => "the bearer token is not a b64token (RFC 6750 section 2.1)",
            Self::Path(_) => "the request path could be read as another path",
            Self::OriginalRequest(_) => {
                "the original request method and uri are missing or ambiguous"
            }
        }
    }
}

/// The bearer token of a request, read from its one `Authorization` header (RFC 6750 §2.1),
/// never from the query string or the body.
///
/// * `Ok(None)`: no credentials: no `Authorization` header, or one with another scheme
///   (`Basic ...`). Answer with a challenge and no `error` (RFC 6750 §3.1).
/// * `Err`: a malformed request: several `Authorization` headers, an empty one, `Bearer` with no
///   token (HTTP parsers strip trailing spaces, so `Bearer ` arrives as `Bearer`), or a token
///   with a space or another character outside `b64token`.
///
/// The scheme is matched case-insensitively (`bearer`, `BEARER`); one or more spaces separate it
/// from the token.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use jwt_policy::http::{BadRequest, bearer_token};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers), Ok(None));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc.def.ghi"));
/// assert_eq!(bearer_token(&headers), Ok(Some("abc.def.ghi")));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc def"));
/// assert_eq!(bearer_token(&headers), Err(BadRequest::InvalidBearerToken));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BadRequest> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadRequest::SeveralAuthorizationHeaders);
    }
    // A field value has no leading or trailing whitespace (RFC 9110 §5.5); parsers strip it,
    // but a header built in code may still carry it.
    let value = value.as_bytes().trim_ascii();
    if value.is_empty() {
        return Err(BadRequest::EmptyAuthorization);
    }
    let scheme_end = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    // `credentials = auth-scheme 1*SP token68` (RFC 9110 §11.4).
    let token = trim_leading_spaces(rest);
    if token.is_empty() {
        return Err(BadRequest::EmptyBearerToken);
    }
    if rest.first() != Some(&b' ') || !is_b64token(token) {
        return Err(BadRequest::InvalidBearerToken);
    }
    // A b64token is ASCII.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| BadRequest::InvalidBearerToken)
}

/// The URL where the metadata of `resource_url` is published (RFC 9728 §3.1): the well-known
/// suffix inserted between the host and the path (and query), with a path of just `/` dropped.
/// `None` when `resource_url` is not an `http(s)` URL with a host (a challenge then names no
/// `resource_metadata`).
///
/// The resource URL is kept exactly as written (not normalised): the document's `resource` must
/// be identical to the URL the client derived the metadata URL from (RFC 9728 §3.3).
///
/// ```
/// use jwt_policy::http::metadata_url;
///
/// assert_eq!(
///     metadata_url("https://mcp.example.com/mcp").as_deref(),
///     Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
/// );
/// assert_eq!(
///     metadata_url("https://api.example.com").as_deref(),
///     Some("https://api.example.com/.well-known/oauth-protected-resource")
/// );
/// assert_eq!(metadata_url("urn:example:api"), None);
/// ```
pub fn metadata_url(resource_url: &str) -> Option<String> {
    let (origin, path, query) = split_resource(resource_url)?;
    Some(format!("{origin}{WELL_KNOWN}{path}{query}"))
}

/// The path of [`metadata_url`] on this server: where to serve the metadata document.
/// `/.well-known/oauth-protected-resource/mcp` for `https://mcp.example.com/mcp`. A query of the
/// resource URL is not part of it.
pub fn metadata_path(resource_url: &str) -> Option<String> {
    let (_, path, _) = split_resource(resource_url)?;
    Some(format!("{WELL_KNOWN}{path}"))
}

/// The RFC 9728 protected-resource metadata of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// `[resource] url`.
    pub resource: String,
    /// The `iss` of each trusted issuer.
    pub authorization_servers: Vec<String>,
    /// `[resource] scopes_supported`; left out of the document when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens are read from the `Authorization` header only.
    pub bearer_methods_supported: Vec<String>,
    /// `[resource] name`, when the policy has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// `[resource] documentation`, when the policy has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

impl ResourceMetadata {
    /// The metadata `policy` publishes.
    pub fn new(policy: &Policy) -> Self {
        Self {
            resource: policy.resource_url().to_owned(),
            authorization_servers: policy
                .issuers()
                .iter()
                .map(|i| i.iss().to_owned())
                .collect(),
            scopes_supported: policy.scopes_supported().to_vec(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: policy.resource_name().map(str::to_owned),
            resource_documentation: policy.resource_documentation().map(str::to_owned),
        }
    }

    /// The document as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// The answer to `GET` on [`metadata_path`]: 200, `application/json`, the
/// [`ResourceMetadata`] of `policy`.
pub fn metadata_response(policy: &Policy) -> Response<String> {
    json_response(StatusCode::OK, ResourceMetadata::new(policy).to_json())
}

/// What happened to a request at the edge; [`response`] says how to answer it.
#[derive(Debug, Clone, Copy)]
pub enum Situation<'a> {
    /// No credentials: no `Authorization` header, or another scheme than `Bearer`.
    NoCredentials,
    /// A malformed request, refused before any token is evaluated.
    BadRequest(&'a BadRequest),
    /// The engine decided about the token.
    Decided(&'a Decision),
}

/// What the body of a response holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DenyBody {
    /// `{"verdict", "reason", "policy_revision"}`: all a client needs, nothing about the policy.
    #[default]
    Minimal,
    /// The whole decision ([`Decision::to_json`]) when there is one: every check with expected
    /// and observed values. It shows the trusted issuers, key ids and expected values, so only
    /// for operators who opt in. Requests refused before a decision still get the minimal body.
    Decision,
}

/// The response for `situation`: the one place the HTTP contract lives (`docs/http.md`).
///
/// | situation | status | `WWW-Authenticate` |
/// | --- | --- | --- |
/// | no credentials | 401 | `Bearer resource_metadata="M"` |
/// | malformed request | 400 | `Bearer error="invalid_request", error_description="…", resource_metadata="M"` |
/// | token not valid here | 401 | `Bearer error="invalid_token", error_description="<reason>: <text>", resource_metadata="M"` |
/// | valid token lacking a scope or permission | 403 | `Bearer error="insufficient_scope", scope="<required scopes>", resource_metadata="M"` |
/// | `keys_unavailable` | 503 | none; `Retry-After` |
/// | `internal` | 500 | none |
/// | allow | 200 | none |
///
/// `M` is the [`metadata_url`] of the policy's resource, left out when it has none. The
/// `scope` attribute lists [`Decision::required_scopes`] (those that are RFC 6749 scope tokens),
/// and is left out when there are none. `Retry-After` is the policy's `[remote_keys] cooldown`
/// in seconds (30 by default): no key fetch a token can cause happens sooner. The body is JSON,
/// as [`DenyBody`] says; it never holds the token.
pub fn response(policy: &Policy, situation: Situation<'_>, body: DenyBody) -> Response<String> {
    let metadata = metadata_url(policy.resource_url());
    let revision = policy.revision();
    match situation {
        Situation::NoCredentials => {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                minimal(Verdict::Deny, None, revision),
            );
            challenge(&mut r, &[], metadata.as_deref());
            r
        }
        Situation::BadRequest(bad) => {
            let mut r = json_response(
                StatusCode::BAD_REQUEST,
                minimal(Verdict::Deny, Some("invalid_request"), revision),
            );
            let params = [
                ("error", "invalid_request"),
                ("error_description", bad.description()),
            ];
            challenge(&mut r, &params, metadata.as_deref());
            r
        }
        Situation::Decided(decision) => decided(policy, decision, body, metadata.as_deref()),
    }
}

/// The fixed short text of a reason code, as `error_description` says it after the code:
/// printable ASCII without `"` or `\`, never a check's detail (which may quote the token).
pub fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::TokenTooLarge => "the token is too large",
        Reason::MalformedToken => "the token is not a well-formed JWS",
        Reason::UntrustedIssuer => "the token issuer is not trusted",
        Reason::AlgorithmNotAllowed => "the signing algorithm is not allowed",
        Reason::KeyNotFound => "no trusted key matches the token",
        Reason::KeyMismatch => "the key cannot verify the token algorithm",
        Reason::InvalidSignature => "the signature does not verify",
        Reason::InvalidType => "the token type is not accepted",
        Reason::UnsupportedCriticalHeader => "the token has an unsupported critical header",
        Reason::MissingClaim => "a required claim is missing",
        Reason::InvalidClaim => "a claim is not accepted",
        Reason::Expired => "the token has expired",
        Reason::NotYetValid => "the token is not valid yet",
        Reason::IssuedInFuture => "the token is issued in the future",
        Reason::TokenTooOld => "the token is too old",
        Reason::AudienceMismatch => "the token is not for this audience",
        Reason::ResourceMismatch => "the token is not for this resource",
        Reason::InsufficientScope => "a required scope is missing",
        Reason::MissingClientId => "the token names no client",
        Reason::RuleFailed => "a rule of the policy does not hold",
        Reason::InsufficientPermission => "a required permission is missing",
        Reason::KeysUnavailable => "the keys of the issuer are unavailable",
        Reason::Internal => "internal error",
    }
}

/// The response for a decision.
fn decided(
    policy: &Policy,
    decision: &Decision,
    body: DenyBody,
    metadata: Option<&str>,
) -> Response<String> {
    let reason = match (decision.verdict(), decision.reason()) {
        (Verdict::Allow, _) => None,
        // A deny always has a reason; one without is a bug, and fails closed.
        (Verdict::Deny, reason) => Some(reason.unwrap_or(Reason::Internal)),
    };
    let text = match body {
        DenyBody::Decision => decision.to_json(),
        DenyBody::Minimal => minimal(
            decision.verdict(),
            reason.map(Reason::as_str),
            decision.policy_revision(),
        ),
    };
    let Some(reason) = reason else {
        return json_response(StatusCode::OK, text);
    };
    let status =
        StatusCode::from_u16(reason.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, text);
    match status {
        StatusCode::UNAUTHORIZED => {
            let description = format!("{}: {}", reason.as_str(), reason_text(reason));
            let params = [
                ("error", reason.oauth_error()),
                ("error_description", &description),
            ];
            challenge(&mut r, &params, metadata);
        }
        StatusCode::FORBIDDEN => {
            // RFC 6749 §3.3: a scope token is NQCHAR; another could not be granted anyway.
            let scopes: Vec<&str> = decision
                .required_scopes()
                .iter()
                .map(String::as_str)
                .filter(|s| is_scope_token(s))
                .collect();
            let scope = scopes.join(" ");
            let mut params = vec![("error", reason.oauth_error())];
            if !scope.is_empty() {
                params.push(("scope", &scope));
            }
            challenge(&mut r, &params, metadata);
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            let cooldown = policy.remote_keys().cooldown;
            let secs = cooldown.as_secs() + u64::from(cooldown.subsec_nanos() > 0);
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        _ => {}
    }
    r
}

/// `{"verdict": ..., "reason": ..., "policy_revision": ...}` as one line of JSON.
fn minimal(verdict: Verdict, reason: Option<&str>, revision: &str) -> String {
    json_body(verdict, reason, Some(revision))
}

/// The minimal body, where the revision may be unknown (`null`).
fn json_body(verdict: Verdict, reason: Option<&str>, revision: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Minimal<'a> {
        verdict: Verdict,
        reason: Option<&'a str>,
        policy_revision: Option<&'a str>,
    }
    serde_json::to_string(&Minimal {
        verdict,
        reason,
        policy_revision: revision,
    })
    .unwrap_or_else(|_| "{}".to_owned())
}

/// A response with `status` and a JSON body.
fn json_response(status: StatusCode, body: String) -> Response<String> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Sets `WWW-Authenticate: Bearer` with `params`, then `resource_metadata` when there is one.
fn challenge(r: &mut Response<String>, params: &[(&str, &str)], metadata: Option<&str>) {
    let mut value = String::from("Bearer");
    let all = params
        .iter()
        .copied()
        .chain(metadata.map(|m| ("resource_metadata", m)));
    for (i, (name, v)) in all.enumerate() {
        value.push_str(if i == 0 { " " } else { ", " });
        value.push_str(name);
        value.push('=');
        value.push_str(&quoted(v));
    }
    // Every value is printable ASCII by construction (fixed phrases, NQCHAR scopes, a checked
    // URL), and `quoted` escapes the rest; a value that still is not a header value would be a
    // bug here: the bare scheme is a valid challenge.
    let header = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"));
    r.headers_mut().insert(WWW_AUTHENTICATE, header);
}

/// An RFC 9110 `quoted-string`: `"` and `\` escaped, any other character outside printable
/// ASCII replaced by `?` (a header value cannot carry it).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// RFC 6749 §3.3 `scope-token = 1*NQCHAR`, `NQCHAR = %x21 / %x23-5B / %x5D-7E`.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    let (body, _padding) = token.split_at(body_len);
    !body.is_empty()
        && body
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn trim_leading_spaces(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|&&b| b == b' ').count();
    bytes.get(n..).unwrap_or_default()
}

/// A resource URL as origin (`https://host:port`), path (empty for none or `/`) and query (with
/// its `?`), when it is an `http(s)` URL with a host.
///
/// Hand-written on the text rather than taken from `url::Url`, which normalises (case, default
/// port, percent-encoding, an empty path becomes `/`): the metadata URL must be the resource URL
/// as written, with the suffix inserted (RFC 9728 §3.1, §3.3). `url` still checks that it is
/// a URL.
fn split_resource(resource_url: &str) -> Option<(&str, &str, &str)> {
    // Only characters a URI may hold (RFC 3986 §2), and no fragment: then the URL is also
    // usable as is in a header value.
    let uri_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&b);
    if !resource_url.bytes().all(uri_char) {
        return None;
    }
    let parsed = url::Url::parse(resource_url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return None;
    }
    let authority_start = resource_url.find("://")? + 3;
    let after_scheme = resource_url.get(authority_start..)?;
    let authority_len = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
    if authority_len == 0 {
        return None;
    }
    let (origin, rest) = resource_url.split_at(authority_start + authority_len);
    let (path, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    // "Any terminating slash following the host component MUST be removed" (RFC 9728 §3.1).
    let path = if path == "/" { "" } else { path };
    Some((origin, path, query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Check, Outcome, Principal};
    use std::sync::Arc;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let token = |values: &[&[u8]]| bearer_token(&headers(values)).map(|t| t.map(str::to_owned));
        assert_eq!(token(&[]), Ok(None));
        assert_eq!(token(&[b"Basic dXNlcg=="]), Ok(None));
        assert_eq!(token(&[b"Bearerx abc"]), Ok(None));
        assert_eq!(token(&[b"Bearer a.b.c"]), Ok(Some("a.b.c".into())));
        assert_eq!(token(&[b"bearer a.b.c"]), Ok(Some("a.b.c".into())));
        assert_eq!(token(&[b"BEARER   a.b.c"]), Ok(Some("a.b.c".into())));
        assert_eq!(token(&[b"Bearer a.b.c "]), Ok(Some("a.b.c".into())));
        assert_eq!(
            token(&[b"Bearer aZ09-._~+/=="]),
            Ok(Some("aZ09-._~+/==".into()))
        );
        assert_eq!(
            token(&[b"Bearer a", b"Bearer a"]),
            Err(BadRequest::SeveralAuthorizationHeaders)
        );
        assert_eq!(
            token(&[b"Basic x", b"Bearer a"]),
            Err(BadRequest::SeveralAuthorizationHeaders)
        );
        assert_eq!(token(&[b""]), Err(BadRequest::EmptyAuthorization));
        assert_eq!(token(&[b"   "]), Err(BadRequest::EmptyAuthorization));
        assert_eq!(token(&[b"Bearer"]), Err(BadRequest::EmptyBearerToken));
        assert_eq!(token(&[b"Bearer   "]), Err(BadRequest::EmptyBearerToken));
        for bad in [
            &b"Bearer a b"[..],
            b"Bearer a,b",
            b"Bearer \"a\"",
            b"Bearer a=b",
            b"Bearer ==",
            b"Bearer\ta",
            b"Bearer a\tb",
            b"Bearer a\xc3\xa9",
            b"Bearer a%20",
        ] {
            assert_eq!(
                token(&[bad]),
                Err(BadRequest::InvalidBearerToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn metadata_urls_insert_the_well_known_suffix_after_the_host() {
        let cases = [
            (
                "https://mcp.example.com/mcp",
                Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
            ),
            (
                "https://api.example.com",
                Some("https://api.example.com/.well-known/oauth-protected-resource"),
            ),
            (
                "https://api.example.com/",
                Some("https://api.example.com/.well-known/oauth-protected-resource"),
            ),
            (
                "http://127.0.0.1:8080/a/b/",
                Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b/"),
            ),
            (
                "https://x.example/?tenant=1",
                Some("https://x.example/.well-known/oauth-protected-resource?tenant=1"),
            ),
            (
                "https://x.example/r?tenant=1",
                Some("https://x.example/.well-known/oauth-protected-resource/r?tenant=1"),
            ),
            // As written: not lower-cased, the port kept.
            (
                "HTTPS://MCP.Example.com:443/MCP",
                Some("HTTPS://MCP.Example.com:443/.well-known/oauth-protected-resource/MCP"),
            ),
            ("urn:example:api", None),
            ("ftp://files.example.com/x", None),
            ("https:///x", None),
            ("https://exa mple.com/", None),
            ("https://example.com/\"x", None),
            ("https://example.com/é", None),
            ("mailto:a@example.com", None),
        ];
        for (resource, expected) in cases {
            assert_eq!(metadata_url(resource).as_deref(), expected, "{resource}");
        }
        assert_eq!(
            metadata_path("https://mcp.example.com/mcp").as_deref(),
            Some("/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            metadata_path("https://api.example.com").as_deref(),
            Some("/.well-known/oauth-protected-resource")
        );
        assert_eq!(
            metadata_path("https://x.example/r?tenant=1").as_deref(),
            Some("/.well-known/oauth-protected-resource/r")
        );
        assert_eq!(metadata_path("urn:example:api"), None);
    }

    #[test]
    fn every_description_is_a_safe_quoted_string_value() {
        let safe = |s: &str| {
            s.bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        };
        for reason in Reason::ALL {
            assert!(safe(reason_text(reason)), "{reason}");
            assert!(!reason_text(reason).is_empty());
        }
        for bad in every_bad_request() {
            assert!(safe(bad.description()), "{bad}");
        }
    }

    fn every_bad_request() -> [BadRequest; 6] {
        let path = crate::policy::request_path("//x").unwrap_err();
        [
            BadRequest::SeveralAuthorizationHeaders,
            BadRequest::EmptyAuthorization,
            BadRequest::EmptyBearerToken,
            BadRequest::InvalidBearerToken,
            BadRequest::Path(path),
            BadRequest::OriginalRequest("x".into()),
        ]
    }

    #[test]
    fn docs_list_every_error_description() {
        let docs = include_str!("../../docs/http.md");
        for reason in Reason::ALL.into_iter().filter(|r| r.http_status() == 401) {
            let row = format!("| `{}` | `{}` |", reason.as_str(), reason_text(reason));
            assert!(docs.contains(&row), "docs/http.md lacks `{row}`");
        }
        for bad in every_bad_request() {
            let cell = format!("| `{}` |\n", bad.description());
            assert!(docs.contains(&cell), "docs/http.md lacks `{cell}`");
        }
    }

    #[test]
    fn quoted_strings_escape_quotes_and_backslashes() {
        assert_eq!(quoted("a b"), "\"a b\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("é\n"), "\"??\"");
    }

    /// A JWK set holding one Ed25519 public key.
    const JWKS: &str = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "YqKfvsdpa_cuW643O5G0bb-0lcZ2Z9nvDodj5drIyAU"}]}"#;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "[resource]\nurl = \"https://mcp.example.com/mcp\"\n\n[[issuers]]\niss = \"https://issuer.example.com\"\nalgorithms = [\"EdDSA\"]\njwks = '{JWKS}'\n\n[audience]\naccept = [{{ value = \"https://mcp.example.com/mcp\" }}]\n{extra}"
        );
        Policy::from_toml("p.toml", text, ".").unwrap()
    }

    fn denied(reason: Reason, required_scopes: &[&str]) -> Decision {
        Decision::with_checks(
            Verdict::Deny,
            Principal::default(),
            vec![Check {
                rule: "scopes".into(),
                outcome: Outcome::Failed {
                    reason,
                    expected: "x".into(),
                    observed: "y".into(),
                },
                detail: "the token said \"secret\"".into(),
            }],
            required_scopes.iter().map(|s| (*s).to_owned()).collect(),
            None,
            Arc::from("0123456789abcdef"),
        )
    }

    fn challenge_of(r: &Response<String>) -> Option<&str> {
        r.headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    const M: &str =
        "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"";

    #[test]
    fn each_situation_has_its_status_challenge_and_body() {
        let p = policy("");
        let rev = p.revision().to_owned();
        let r = response(&p, Situation::NoCredentials, DenyBody::Minimal);
        assert_eq!(r.status(), 401);
        assert_eq!(challenge_of(&r), Some(format!("Bearer {M}").as_str()));
        assert_eq!(
            r.body(),
            &format!("{{\"verdict\":\"deny\",\"reason\":null,\"policy_revision\":\"{rev}\"}}")
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");

        let r = response(
            &p,
            Situation::BadRequest(&BadRequest::EmptyBearerToken),
            DenyBody::Decision,
        );
        assert_eq!(r.status(), 400);
        assert_eq!(
            challenge_of(&r),
            Some(format!("Bearer error=\"invalid_request\", error_description=\"the bearer credentials hold no token\", {M}").as_str())
        );
        assert_eq!(
            r.body(),
            &format!(
                "{{\"verdict\":\"deny\",\"reason\":\"invalid_request\",\"policy_revision\":\"{rev}\"}}"
            )
        );

        let d = denied(Reason::TokenTooOld, &[]);
        let r = response(&p, Situation::Decided(&d), DenyBody::Minimal);
        assert_eq!(r.status(), 401);
        assert_eq!(
            challenge_of(&r),
            Some(format!("Bearer error=\"invalid_token\", error_description=\"token_too_old: the token is too old\", {M}").as_str())
        );
        // The decision's revision, not the policy's: the decision says which policy decided.
        assert_eq!(
            r.body(),
            "{\"verdict\":\"deny\",\"reason\":\"token_too_old\",\"policy_revision\":\"0123456789abcdef\"}"
        );
        // The full body is the decision; the challenge never quotes a check's detail.
        let r = response(&p, Situation::Decided(&d), DenyBody::Decision);
        assert_eq!(r.body(), &d.to_json());
        assert!(!challenge_of(&r).unwrap().contains("secret"));

        let r = response(
            &p,
            Situation::Decided(&denied(Reason::KeysUnavailable, &[])),
            DenyBody::Minimal,
        );
        assert_eq!(r.status(), 503);
        assert_eq!(challenge_of(&r), None);
        assert_eq!(r.headers()[RETRY_AFTER], "30");

        let r = response(
            &p,
            Situation::Decided(&denied(Reason::Internal, &[])),
            DenyBody::Minimal,
        );
        assert_eq!(r.status(), 500);
        assert_eq!(challenge_of(&r), None);
        assert_eq!(r.headers().get(RETRY_AFTER), None);
    }

    #[test]
    fn retry_after_is_the_policy_s_cooldown() {
        let p = policy("[remote_keys]\ncooldown = \"2m\"\n");
        let r = response(
            &p,
            Situation::Decided(&denied(Reason::KeysUnavailable, &[])),
            DenyBody::Minimal,
        );
        assert_eq!(r.headers()[RETRY_AFTER], "120");
    }

    #[test]
    fn a_403_names_the_required_scope_tokens_or_none() {
        let p = policy("");
        let r = response(
            &p,
            Situation::Decided(&denied(Reason::InsufficientScope, &["a", "b:c"])),
            DenyBody::Minimal,
        );
        assert_eq!(r.status(), 403);
        assert_eq!(
            challenge_of(&r),
            Some(format!("Bearer error=\"insufficient_scope\", scope=\"a b:c\", {M}").as_str())
        );
        // A permission rule failed, and the request needed no scope: no `scope` attribute.
        let r = response(
            &p,
            Situation::Decided(&denied(Reason::InsufficientPermission, &[])),
            DenyBody::Minimal,
        );
        assert_eq!(r.status(), 403);
        assert_eq!(
            challenge_of(&r),
            Some(format!("Bearer error=\"insufficient_scope\", {M}").as_str())
        );
        // Values no RFC 6749 scope token can have are left out, not sent half-escaped.
        let r = response(
            &p,
            Situation::Decided(&denied(Reason::InsufficientScope, &["ok", "a\"b", "é"])),
            DenyBody::Minimal,
        );
        assert_eq!(
            challenge_of(&r),
            Some(format!("Bearer error=\"insufficient_scope\", scope=\"ok\", {M}").as_str())
        );
    }

    #[test]
    fn a_resource_without_a_metadata_url_gets_challenges_without_it() {
        let p = Policy::from_toml(
            "p.toml",
            format!("[resource]\nurl = \"urn:example:api\"\n\n[[issuers]]\niss = \"https://issuer.example.com\"\nalgorithms = [\"EdDSA\"]\njwks = '{JWKS}'\n\n[audience]\naccept = [{{ value = \"urn:example:api\" }}]\n"),
            ".",
        )
        .unwrap();
        let r = response(&p, Situation::NoCredentials, DenyBody::Minimal);
        assert_eq!(challenge_of(&r), Some("Bearer"));
        let r = response(
            &p,
            Situation::Decided(&denied(Reason::Expired, &[])),
            DenyBody::Minimal,
        );
        assert_eq!(
            challenge_of(&r),
            Some(
                "Bearer error=\"invalid_token\", error_description=\"expired: the token has expired\""
            )
        );
    }

    #[test]
    fn the_metadata_document_follows_the_policy() {
        let p = policy("");
        assert_eq!(
            ResourceMetadata::new(&p).to_json(),
            "{\"resource\":\"https://mcp.example.com/mcp\",\"authorization_servers\":[\"https://issuer.example.com\"],\"bearer_methods_supported\":[\"header\"]}"
        );
        let text = format!(
            "[resource]\nurl = \"https://mcp.example.com/mcp\"\nscopes_supported = [\"a\", \"b\"]\nname = \"Demo\"\ndocumentation = \"https://docs.example.com\"\n\n[[issuers]]\niss = \"https://one.example.com\"\nalgorithms = [\"EdDSA\"]\njwks = '{JWKS}'\n\n[[issuers]]\niss = \"https://two.example.com\"\nalgorithms = [\"EdDSA\"]\njwks = '{JWKS}'\n\n[audience]\naccept = [{{ value = \"https://mcp.example.com/mcp\" }}]\n"
        );
        let p = Policy::from_toml("p.toml", text, ".").unwrap();
        let r = metadata_response(&p);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            r.body(),
            "{\"resource\":\"https://mcp.example.com/mcp\",\"authorization_servers\":[\"https://one.example.com\",\"https://two.example.com\"],\"scopes_supported\":[\"a\",\"b\"],\"bearer_methods_supported\":[\"header\"],\"resource_name\":\"Demo\",\"resource_documentation\":\"https://docs.example.com\"}"
        );
    }
}
