//! `jwt_policy._jwt_policy`: the native module of the `jwt_policy` Python package.
//!
//! Everything is decided by the `jwt-policy` crate: this module only converts between Python and
//! Rust values. Verification runs without the GIL (`Python::detach`), so Python threads verify in
//! parallel; `evaluate_async` awaits the engine's future on a tokio runtime, so remote keys are
//! fetched without blocking the asyncio event loop. The HTTP answers (status, `WWW-Authenticate`
//! challenge, body) and the RFC 9728 metadata come from `jwt_policy::http`, never rebuilt here.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use ::http::{HeaderMap, HeaderValue, Response};
use jwt_policy::http::{
    BadRequest, DenyBody, ResourceMetadata, Situation, bearer_token, metadata_path,
    metadata_response, metadata_url, reason_text, response,
};
use jwt_policy::{Outcome, Requirement, Severity, StaticKeys, UnixTime, Verdict};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::create_exception!(
    jwt_policy,
    PolicyError,
    PyValueError,
    "An invalid policy. `str()` is the located rendering `jwt-policy check` prints; \
     `.diagnostics` holds each problem as a `Diagnostic`."
);

pyo3::create_exception!(
    jwt_policy,
    EngineError,
    PyValueError,
    "A valid policy the engine cannot be built from: a missing or refused resource client id, \
     keys or a secret that cannot be read."
);

/// One located problem in a policy file.
#[pyclass(frozen, module = "jwt_policy", get_all)]
struct Diagnostic {
    /// `"error"` or `"warning"`.
    severity: &'static str,
    /// The stable diagnostic code, e.g. `unknown-key`.
    code: &'static str,
    /// One lowercase line, user values in backticks.
    message: String,
    /// What to do about it, when there is something useful to say.
    help: Option<String>,
    /// The policy's file name (or label).
    file: String,
    /// 1-based line, `None` when the diagnostic is about the policy as a whole.
    line: Option<usize>,
    /// 1-based column in characters, `None` when the diagnostic is about the policy as a whole.
    column: Option<usize>,
    /// The rendering `jwt-policy check` prints for this diagnostic alone.
    rendered: String,
}

#[pymethods]
impl Diagnostic {
    fn __repr__(&self) -> String {
        let at = match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.file),
            _ => self.file.clone(),
        };
        format!(
            "Diagnostic({}[{}] at {at}: {})",
            self.severity, self.code, self.message
        )
    }

    fn __str__(&self) -> String {
        self.rendered.clone()
    }
}

fn diagnostic(source: &jwt_policy::policy::SourceFile, d: &jwt_policy::Diagnostic) -> Diagnostic {
    let at = d.span.as_ref().map(|span| source.line_col(span.start));
    Diagnostic {
        severity: match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        code: d.kind.code(),
        message: d.message.clone(),
        help: d.help.clone(),
        file: source.name().to_owned(),
        line: at.map(|(line, _)| line),
        column: at.map(|(_, column)| column),
        rendered: source.render(d),
    }
}

/// A `PolicyError` exception whose `str()` is the rendering of `check`, with `.diagnostics`.
fn policy_error(py: Python<'_>, e: &jwt_policy::PolicyError) -> PyErr {
    let err = PolicyError::new_err(e.to_string());
    let diagnostics: Vec<Diagnostic> = e
        .diagnostics()
        .iter()
        .map(|d| diagnostic(e.source(), d))
        .collect();
    match err.value(py).setattr("diagnostics", diagnostics) {
        Ok(()) => err,
        Err(set) => set,
    }
}

/// A validated policy.
#[pyclass(frozen, module = "jwt_policy")]
#[derive(Clone)]
struct Policy {
    inner: jwt_policy::Policy,
}

#[pymethods]
impl Policy {
    /// Reads and validates the policy at `path`; relative file names inside it are resolved
    /// against its directory. Raises `PolicyError`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| jwt_policy::Policy::from_file(&path))
            .map(|inner| Self { inner })
            .map_err(|e| policy_error(py, &e))
    }

    /// Validates policy `text`, naming it `name` in diagnostics; relative file names inside it
    /// are resolved against `base_dir` (the current directory by default). Raises `PolicyError`.
    #[staticmethod]
    #[pyo3(signature = (text, name = "policy.toml".to_owned(), base_dir = None))]
    fn from_str(
        py: Python<'_>,
        text: String,
        name: String,
        base_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let base_dir = base_dir.unwrap_or_else(|| PathBuf::from("."));
        py.detach(|| jwt_policy::Policy::from_toml(name, text, &base_dir))
            .map(|inner| Self { inner })
            .map_err(|e| policy_error(py, &e))
    }

    /// The file name (or label) the policy was read from.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// `[resource] url`.
    #[getter]
    fn resource_url(&self) -> &str {
        self.inner.resource_url()
    }

    /// `[resource] name`.
    #[getter]
    fn resource_name(&self) -> Option<&str> {
        self.inner.resource_name()
    }

    /// `[resource] documentation`.
    #[getter]
    fn resource_documentation(&self) -> Option<&str> {
        self.inner.resource_documentation()
    }

    /// `[resource] scopes_supported`.
    #[getter]
    fn scopes_supported(&self) -> Vec<String> {
        self.inner.scopes_supported().to_vec()
    }

    /// `[scopes] required`: the scopes every request needs.
    #[getter]
    fn required_scopes(&self) -> Vec<String> {
        self.inner.required_scopes().to_vec()
    }

    /// The `iss` of each trusted issuer, in policy order.
    #[getter]
    fn issuers(&self) -> Vec<String> {
        self.inner
            .issuers()
            .iter()
            .map(|i| i.iss().to_owned())
            .collect()
    }

    /// A short fingerprint of the policy text and the key files it names.
    #[getter]
    fn revision(&self) -> &str {
        self.inner.revision()
    }

    /// The lints (warnings) of this valid policy.
    #[getter]
    fn warnings(&self) -> Vec<Diagnostic> {
        self.inner
            .warnings()
            .iter()
            .map(|d| diagnostic(self.inner.source(), d))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Policy(name={:?}, resource_url={:?}, revision={:?})",
            self.inner.name(),
            self.inner.resource_url(),
            self.inner.revision()
        )
    }
}

/// One check of a decision and its outcome.
#[pyclass(frozen, module = "jwt_policy", get_all)]
struct Check {
    /// The check's name, e.g. `signature`, `audience`, `rule:…`.
    rule: String,
    /// `"passed"`, `"failed"` or `"not_evaluated"`.
    outcome: &'static str,
    /// The reason code of a failed check.
    reason: Option<&'static str>,
    /// What the policy accepts (failed checks).
    expected: Option<String>,
    /// What the token had (failed checks).
    observed: Option<String>,
    /// The check's one-line detail.
    detail: String,
}

#[pymethods]
impl Check {
    fn __repr__(&self) -> String {
        match self.reason {
            Some(reason) => format!("Check({}: {} {reason})", self.rule, self.outcome),
            None => format!("Check({}: {})", self.rule, self.outcome),
        }
    }
}

/// What the engine decided about one token: the verdict, who the token speaks for, and every
/// check with its outcome.
#[pyclass(frozen, module = "jwt_policy")]
#[derive(Clone)]
struct Decision {
    inner: jwt_policy::Decision,
}

#[pymethods]
impl Decision {
    /// Whether every check passed.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.is_allowed()
    }

    /// `"allow"` or `"deny"`.
    #[getter]
    fn verdict(&self) -> &'static str {
        match self.inner.verdict() {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }

    /// The reason code of the first failed check (`None` on allow), e.g. `audience_mismatch`.
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        self.inner.reason().map(|r| r.as_str())
    }

    /// The reason code of every failed check, in check order.
    #[getter]
    fn reasons(&self) -> Vec<&'static str> {
        self.inner
            .reasons()
            .into_iter()
            .map(|r| r.as_str())
            .collect()
    }

    /// The fixed short text of `reason` (the one a challenge's `error_description` carries).
    #[getter]
    fn reason_text(&self) -> Option<&'static str> {
        self.inner.reason().map(reason_text)
    }

    /// The OAuth error of the denial (`invalid_token`, `insufficient_scope`, ...), `None` on
    /// allow.
    #[getter]
    fn oauth_error(&self) -> Option<&'static str> {
        self.inner.reason().map(|r| r.oauth_error())
    }

    /// The HTTP status to answer with: 200 on allow, else 401, 403, 503 or 500.
    #[getter]
    fn http_status(&self) -> u16 {
        self.inner.reason().map_or(200, |r| r.http_status())
    }

    /// `iss` (verified claims only).
    #[getter]
    fn issuer(&self) -> Option<&str> {
        self.inner.principal().issuer.as_deref()
    }

    /// `sub`.
    #[getter]
    fn subject(&self) -> Option<&str> {
        self.inner.principal().subject.as_deref()
    }

    /// The calling client's id.
    #[getter]
    fn client_id(&self) -> Option<&str> {
        self.inner.principal().client_id.as_deref()
    }

    /// The claim the client id came from (`client_id`, `azp`, ...).
    #[getter]
    fn client_id_source(&self) -> Option<&str> {
        self.inner.principal().client_id_source.as_deref()
    }

    /// This server's own client id, resolved when the engine was built.
    #[getter]
    fn resource_client_id(&self) -> Option<&str> {
        self.inner.principal().resource_client_id.as_deref()
    }

    /// The accepted audience value that matched.
    #[getter]
    fn audience(&self) -> Option<&str> {
        self.inner.principal().audience.as_deref()
    }

    /// The resource the token named in its `resource` claim, when it named this one.
    #[getter]
    fn resource(&self) -> Option<&str> {
        self.inner.principal().resource.as_deref()
    }

    /// The granted scopes, in token order.
    #[getter]
    fn scopes(&self) -> Vec<String> {
        self.inner.principal().scopes.clone()
    }

    /// `exp` in whole seconds.
    #[getter]
    fn expires_at(&self) -> Option<i64> {
        self.inner.principal().expires_at
    }

    /// Every scope the request needed.
    #[getter]
    fn required_scopes(&self) -> Vec<String> {
        self.inner.required_scopes().to_vec()
    }

    /// The revision of the policy that decided.
    #[getter]
    fn policy_revision(&self) -> &str {
        self.inner.policy_revision()
    }

    /// Every check with its outcome.
    #[getter]
    fn checks(&self) -> Vec<Check> {
        self.inner
            .checks()
            .iter()
            .map(|c| {
                let (outcome, reason, expected, observed) = match c.outcome() {
                    Outcome::Passed => ("passed", None, None, None),
                    Outcome::Failed {
                        reason,
                        expected,
                        observed,
                    } => (
                        "failed",
                        Some(reason.as_str()),
                        Some(expected.clone()),
                        Some(observed.clone()),
                    ),
                    _ => ("not_evaluated", None, None, None),
                };
                Check {
                    rule: c.rule().to_owned(),
                    outcome,
                    reason,
                    expected,
                    observed,
                    detail: c.detail().to_owned(),
                }
            })
            .collect()
    }

    /// The verified claims as a `dict` on allow; `None` on deny.
    #[getter]
    fn claims<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.inner.claims() {
            Some(claims) => {
                let loads = py.import("json")?.getattr("loads")?;
                Ok(Some(loads.call1((claims.json(),))?))
            }
            None => Ok(None),
        }
    }

    /// The decision as one line of JSON (what `jwt-policy verify --format json` prints).
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// The decision as text, one check a line (what `jwt-policy verify` prints).
    fn explain(&self) -> String {
        self.inner.explain()
    }

    fn __repr__(&self) -> String {
        match self.inner.reason() {
            Some(reason) => format!("Decision(verdict='deny', reason='{}')", reason.as_str()),
            None => format!(
                "Decision(verdict='allow', client_id={:?})",
                self.inner.principal().client_id.as_deref().unwrap_or("")
            ),
        }
    }

    fn __str__(&self) -> String {
        self.inner.explain()
    }
}

/// An HTTP answer of the contract: status, headers (`WWW-Authenticate`, `Retry-After`,
/// `Content-Type`) and a JSON body.
#[pyclass(frozen, module = "jwt_policy", get_all)]
struct HttpResponse {
    /// The status code.
    status: u16,
    /// The headers, lowercase names, in order.
    headers: Vec<(String, String)>,
    /// The body (JSON).
    body: String,
}

impl From<Response<String>> for HttpResponse {
    fn from(r: Response<String>) -> Self {
        Self {
            status: r.status().as_u16(),
            headers: r
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: r.into_body(),
        }
    }
}

#[pymethods]
impl HttpResponse {
    /// The value of header `name` (case-insensitive), `None` when absent.
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn __repr__(&self) -> String {
        format!("HttpResponse(status={})", self.status)
    }
}

/// What the engine made of one HTTP request: the decision (when a token was evaluated) and the
/// response to send instead of the application's (`None` when the request may go on).
#[pyclass(frozen, module = "jwt_policy", get_all)]
struct RequestOutcome {
    /// Whether the request may reach the application.
    allowed: bool,
    /// The decision about the bearer token; `None` when the request had no token or was
    /// malformed.
    decision: Option<Py<Decision>>,
    /// The refusal to send (401, 400, 403, 503, 500); `None` when allowed.
    response: Option<Py<HttpResponse>>,
}

#[pymethods]
impl RequestOutcome {
    fn __repr__(&self) -> String {
        format!("RequestOutcome(allowed={})", self.allowed)
    }
}

/// A policy compiled with what only the running service knows: its context values and keys.
#[pyclass(frozen, module = "jwt_policy")]
struct PolicyEngine {
    inner: jwt_policy::PolicyEngine,
    /// A fixed clock, for tests and demos only.
    now: Option<UnixTime>,
    /// Whether some issuer's keys are fetched over HTTP: their background refresh needs a
    /// runtime to run on, entered while deciding.
    remote: bool,
}

/// Seconds since the epoch as the engine's time; a float is rounded down.
fn unix_time(secs: f64) -> PyResult<UnixTime> {
    if !secs.is_finite() || secs.abs() > 1e15 {
        return Err(PyValueError::new_err(format!(
            "`now` must be a finite number of seconds since the epoch, not {secs}"
        )));
    }
    // In range: checked above.
    Ok(UnixTime::from_secs(secs.floor() as i64))
}

/// The `Authorization` header values of a request, as the engine's header map.
fn authorization_headers(values: Vec<String>) -> PyResult<HeaderMap> {
    let mut headers = HeaderMap::new();
    for value in values {
        let value = HeaderValue::from_str(&value).map_err(|_| {
            PyValueError::new_err("an `authorization` header value is not a valid header value")
        })?;
        headers.append(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Where a request stands before any token is evaluated.
enum Before {
    /// Refused already (no credentials, malformed request).
    Refused(Response<String>),
    /// A token to evaluate against this requirement.
    Evaluate(String, Requirement),
}

impl PolicyEngine {
    fn at(&self, now: Option<f64>) -> PyResult<UnixTime> {
        match now {
            Some(secs) => unix_time(secs),
            None => Ok(self.now.unwrap_or_else(UnixTime::now)),
        }
    }

    fn decide(
        &self,
        token: &str,
        now: UnixTime,
        requirement: &Requirement,
    ) -> jwt_policy::Decision {
        let _runtime = self
            .remote
            .then(|| pyo3_async_runtimes::tokio::get_runtime().enter());
        self.inner.evaluate_at_with(token, now, requirement)
    }

    fn before(
        &self,
        authorization: Vec<String>,
        method: &str,
        path: Option<&str>,
    ) -> PyResult<Before> {
        let policy = self.inner.policy();
        let refuse = |situation| response(policy, situation, DenyBody::Minimal);
        let requirement = match path {
            Some(path) => match policy.requirement_for(method, path) {
                Ok(requirement) => requirement,
                Err(e) => {
                    let bad = BadRequest::Path(e);
                    return Ok(Before::Refused(refuse(Situation::BadRequest(&bad))));
                }
            },
            None => Requirement::new(),
        };
        let headers = authorization_headers(authorization)?;
        Ok(match bearer_token(&headers) {
            Ok(Some(token)) => Before::Evaluate(token.to_owned(), requirement),
            Ok(None) => Before::Refused(refuse(Situation::NoCredentials)),
            Err(bad) => Before::Refused(refuse(Situation::BadRequest(&bad))),
        })
    }

    fn outcome(
        py: Python<'_>,
        policy: &jwt_policy::Policy,
        decision: Option<jwt_policy::Decision>,
        refused: Option<Response<String>>,
    ) -> PyResult<RequestOutcome> {
        let refusal = match (&decision, refused) {
            (_, Some(r)) => Some(r),
            (Some(d), None) if !d.is_allowed() => {
                Some(response(policy, Situation::Decided(d), DenyBody::Minimal))
            }
            _ => None,
        };
        Ok(RequestOutcome {
            allowed: refusal.is_none(),
            decision: decision
                .map(|inner| Py::new(py, Decision { inner }))
                .transpose()?,
            response: refusal
                .map(|r| Py::new(py, HttpResponse::from(r)))
                .transpose()?,
        })
    }
}

#[pymethods]
impl PolicyEngine {
    /// Compiles `policy` with the run-time `context` values it refers to (e.g.
    /// `{"credential.key_id": "…"}`). `jwks`, a JWKS file, replaces every issuer's public keys.
    /// `now` (seconds since the epoch) fixes the clock of every evaluation: for tests and demos
    /// only. Raises `EngineError`.
    #[new]
    #[pyo3(signature = (policy, context = None, jwks = None, *, now = None))]
    fn new(
        py: Python<'_>,
        policy: &Policy,
        context: Option<HashMap<String, String>>,
        jwks: Option<PathBuf>,
        now: Option<f64>,
    ) -> PyResult<Self> {
        let now = now.map(unix_time).transpose()?;
        let policy = policy.inner.clone();
        let built = py.detach(move || {
            let mut builder = jwt_policy::PolicyEngine::builder(policy);
            for (key, value) in context.unwrap_or_default() {
                builder = builder.context(key, value);
            }
            if let Some(path) = jwks {
                let keys = StaticKeys::from_file(&path)
                    .map_err(|e| format!("jwks `{}`: {e}", path.display()))?;
                builder = builder.key_source_for_all(Arc::new(keys));
            }
            builder.build().map_err(|e| match &e {
                jwt_policy::BuildError::MissingResourceClientId { contexts, .. }
                    if !contexts.is_empty() =>
                {
                    let keys: Vec<String> = contexts.iter().map(|k| format!("`{k}`")).collect();
                    format!(
                        "{e}\n  help: pass {} in `context` (this server's own client id)",
                        keys.join(" or ")
                    )
                }
                _ => e.to_string(),
            })
        });
        let inner = built.map_err(EngineError::new_err)?;
        let remote = !inner.key_stats().is_empty();
        Ok(Self { inner, now, remote })
    }

    /// The policy the engine was compiled from.
    #[getter]
    fn policy(&self) -> Policy {
        Policy {
            inner: self.inner.policy().clone(),
        }
    }

    /// This server's own client id, resolved when the engine was built.
    #[getter]
    fn resource_client_id(&self) -> Option<&str> {
        self.inner.resource_client_id()
    }

    /// `[scopes] required` of the policy.
    #[getter]
    fn required_scopes(&self) -> Vec<String> {
        self.inner.policy().required_scopes().to_vec()
    }

    /// Decides about `token` now (or at `now`, seconds since the epoch), with the keys each
    /// source holds now; never waits. The GIL is released while the token is verified.
    #[pyo3(signature = (token, now = None))]
    fn evaluate(&self, py: Python<'_>, token: &str, now: Option<f64>) -> PyResult<Decision> {
        let now = self.at(now)?;
        let inner = py.detach(|| self.decide(token, now, &Requirement::new()));
        Ok(Decision { inner })
    }

    /// Like `evaluate`, awaitable: when the token names a key its issuer's remote key set lacks
    /// (or the keys are not fetched yet), the keys are fetched first, on a tokio runtime, without
    /// blocking the event loop.
    #[pyo3(signature = (token, now = None))]
    fn evaluate_async<'py>(
        &self,
        py: Python<'py>,
        token: String,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = self.at(now)?;
        let engine = self.inner.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let inner = engine.evaluate_async_at(token, now).await;
            Ok(Decision { inner })
        })
    }

    /// The HTTP answer for `decision` (`None`: a request without credentials): 401 or 403 with
    /// the RFC 6750 challenge, 503 with `Retry-After`, 500, or 200 on allow.
    #[pyo3(signature = (decision = None))]
    fn response(&self, decision: Option<&Decision>) -> HttpResponse {
        let situation = match decision {
            Some(d) => Situation::Decided(&d.inner),
            None => Situation::NoCredentials,
        };
        response(self.inner.policy(), situation, DenyBody::Minimal).into()
    }

    /// The `WWW-Authenticate` challenge for `decision` (`None`: a request without
    /// credentials); `None` when the answer has none (allow, 503, 500).
    #[pyo3(signature = (decision = None))]
    fn challenge(&self, decision: Option<&Decision>) -> Option<String> {
        let situation = match decision {
            Some(d) => Situation::Decided(&d.inner),
            None => Situation::NoCredentials,
        };
        response(self.inner.policy(), situation, DenyBody::Minimal)
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The RFC 9728 protected-resource metadata document, as one line of JSON.
    fn metadata_json(&self) -> String {
        ResourceMetadata::new(self.inner.policy()).to_json()
    }

    /// The answer to `GET metadata_path`: 200 with the metadata document.
    fn metadata_response(&self) -> HttpResponse {
        metadata_response(self.inner.policy()).into()
    }

    /// Where this server serves its metadata document, e.g.
    /// `/.well-known/oauth-protected-resource/mcp`; `None` when the resource is not an HTTP URL.
    #[getter]
    fn metadata_path(&self) -> Option<String> {
        metadata_path(self.inner.policy().resource_url())
    }

    /// The metadata document's URL, as challenges name it in `resource_metadata`.
    #[getter]
    fn metadata_url(&self) -> Option<String> {
        metadata_url(self.inner.policy().resource_url())
    }

    /// Decides about an HTTP request from its `Authorization` header values (every one of
    /// them: several is a malformed request) and, when `path` is given, the policy's
    /// `[[routes]]` for `method` and `path`. Never waits for keys.
    #[pyo3(signature = (authorization, method = "GET", path = None, now = None))]
    fn authorize(
        &self,
        py: Python<'_>,
        authorization: Vec<String>,
        method: &str,
        path: Option<&str>,
        now: Option<f64>,
    ) -> PyResult<RequestOutcome> {
        let now = self.at(now)?;
        let policy = self.inner.policy();
        match self.before(authorization, method, path)? {
            Before::Refused(r) => Self::outcome(py, policy, None, Some(r)),
            Before::Evaluate(token, requirement) => {
                let decision = py.detach(|| self.decide(&token, now, &requirement));
                Self::outcome(py, policy, Some(decision), None)
            }
        }
    }

    /// Like `authorize`, awaitable, fetching remote keys when needed (see `evaluate_async`).
    #[pyo3(signature = (authorization, method = "GET", path = None, now = None))]
    fn authorize_async<'py>(
        &self,
        py: Python<'py>,
        authorization: Vec<String>,
        method: &str,
        path: Option<&str>,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = self.at(now)?;
        let engine = self.inner.clone();
        let before = self.before(authorization, method, path)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let (decision, refused) = match before {
                Before::Refused(r) => (None, Some(r)),
                Before::Evaluate(token, requirement) => (
                    Some(
                        engine
                            .evaluate_async_at_with(token, now, &requirement)
                            .await,
                    ),
                    None,
                ),
            };
            Python::attach(|py| Self::outcome(py, engine.policy(), decision, refused))
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "PolicyEngine(policy={:?}, resource_url={:?})",
            self.inner.policy().name(),
            self.inner.policy().resource_url()
        )
    }
}

/// The native module: the classes `jwt_policy` re-exports.
#[pymodule]
fn _jwt_policy(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Policy>()?;
    m.add_class::<PolicyEngine>()?;
    m.add_class::<Decision>()?;
    m.add_class::<Check>()?;
    m.add_class::<Diagnostic>()?;
    m.add_class::<HttpResponse>()?;
    m.add_class::<RequestOutcome>()?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("EngineError", py.get_type::<EngineError>())?;
    Ok(())
}
