//! `jwt-policy serve --policy POLICY [--listen ADDR] [...]`: the forward-auth server.
//!
//! A proxy (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`, Envoy `ext_authz`)
//! asks `/auth` about each request it receives; the answer is the one `jwt_policy::http` gives
//! (status, challenge, body), plus the identity headers on allow. The policy is followed by a
//! `ReloadingEngine`; SIGHUP reloads now; SIGTERM and Ctrl-C stop accepting, let the requests
//! in flight finish, and exit 0. `docs/http.md` ("`jwt-policy serve`") is the user's view.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{any, get};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{
    EXIT_ERROR, EXIT_OK, EngineArgs, Engines, TestKeyArgs, build_error, refuse_test_keys,
};
use crate::engine::{Decision, ForwardError, PolicyEngine, SharedEngine, Verdict};
use crate::http::{
    BadRequest, DenyBody, Situation, bearer_token, is_scope_token, metadata_path,
    metadata_response, response,
};
use crate::json::UnixTime;
use crate::policy::{Policy, Requirement};
use crate::reload::{
    Comparison, ReloadError, ReloadOutcome, ReloadStatus, ReloadingEngine, Shadow,
};
use crate::text::escape;

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The policy file; it and the files it names are watched, and a change takes effect
    /// without a restart (SIGHUP: now).
    #[arg(long, value_name = "POLICY")]
    policy: PathBuf,
    /// The address to listen on (`127.0.0.1:0`: a free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    test_keys: TestKeyArgs,
    /// Log lines as text, or as one JSON object per line (on stdout; `RUST_LOG` filters).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Put the whole decision in denial bodies: it shows trusted issuers, key ids and expected
    /// values, so it is for operators debugging their own clients.
    #[arg(long)]
    full_deny_body: bool,
    /// A candidate policy to decide every token with as well, never enforced: the requests on
    /// which it disagrees with the policy in effect are logged and counted
    /// (`jwt_policy_shadow_disagreements_total`). Watched and reloaded like `--policy`.
    #[arg(long, value_name = "POLICY")]
    shadow_policy: Option<PathBuf>,
    /// After SIGTERM or Ctrl-C, how long the requests in flight may take to finish before the
    /// process exits without them.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_grace: u64,
}

/// Runs `serve` until SIGTERM or Ctrl-C; the exit code.
pub(crate) fn run(args: &Args) -> Result<u8, String> {
    let now = args.engine.now()?;
    init_logs(args.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let code = runtime.block_on(serve(args, now));
    // Background work (key refreshes, the reloader) is abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Log lines go to stdout, filtered by `RUST_LOG` (`info` when unset).
fn init_logs(format: LogFormat) -> Result<(), String> {
    let filter: Targets = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => text.parse().map_err(|e| {
            format!("the environment variable `RUST_LOG` is not a log filter: `{text}` ({e})")
        })?,
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    // The builder's own filter lets everything through: `filter` decides.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_max_level(tracing::Level::TRACE);
    let installed = match format {
        LogFormat::Text => builder.finish().with(filter).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(filter)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot set up logging: {e}"))
}

async fn serve(args: &Args, now: Option<UnixTime>) -> Result<u8, String> {
    // Read once before the reloader does, for `--jwks` (checked against the issuers) and
    // `--jwks-url`.
    let policy = match Policy::from_file(&args.policy) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_ERROR);
        }
    };
    let engines = Arc::new(Engines::new(&args.engine, &policy)?);
    drop(policy);
    let shadow = match &args.shadow_policy {
        Some(path) => match start_shadow(path, &args.engine).await? {
            Some(shadow) => Some(shadow),
            None => return Ok(EXIT_ERROR),
        },
        None => None,
    };
    let build = move |policy| engines.builder(policy);
    let reloading = match ReloadingEngine::start(&args.policy, build).await {
        Ok(reloading) => reloading,
        Err(ReloadError::Policy(e)) => {
            // Located diagnostics, each with its own `error[...]`.
            eprintln!("{e}");
            return Ok(EXIT_ERROR);
        }
        Err(ReloadError::Build(e)) => return Err(build_error(&e)),
        Err(e) => return Err(e.to_string()),
    };
    let engine = reloading.current();
    // At start only: a reload that brings a test key in is not refused (docs/policy.md, "Test keys").
    refuse_test_keys(&args.test_keys, &engine)?;
    let warnings = engine.policy().warnings();
    if !warnings.is_empty() {
        let source = engine.policy().source();
        let rendered: Vec<String> = warnings.iter().map(|d| source.render(d)).collect();
        tracing::warn!(
            policy = %args.policy.display(),
            warnings = %rendered.join("\n"),
            "the policy draws {} warning{}",
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
    }

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on `{}`: {}",
                args.listen,
                crate::text::io_message(&e)
            )
        })?;
    let addr = listener.local_addr().map_err(|e| {
        format!(
            "cannot listen on `{}`: {}",
            args.listen,
            crate::text::io_message(&e)
        )
    })?;
    // Before saying that it listens: from then on, these signals must not kill the process.
    let signals = Signals::new()?;

    let metrics = Arc::new(Metrics::new(shadow.is_some()));
    let app = Arc::new(App {
        shadow,
        engine: reloading.shared(),
        reloading: reloading.clone(),
        now,
        body: if args.full_deny_body {
            DenyBody::Decision
        } else {
            DenyBody::Minimal
        },
        metrics: metrics.clone(),
    });
    tokio::spawn(count_reloads(reloading.clone(), metrics));
    let router = Router::new()
        .route("/auth", any(auth))
        // Envoy's `ext_authz` appends the original path to its `path_prefix`.
        .route("/auth/{*rest}", any(auth))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(metadata)
        .with_state(app);

    tracing::info!(
        policy = %args.policy.display(),
        revision = %engine.policy().revision(),
        %addr,
        "serving"
    );
    drop(engine);
    eprintln!("listening on http://{addr}");
    let (stopping, mut stop) = tokio::sync::watch::channel(false);
    let stopped = async move {
        signals.run(reloading).await;
        let _ = stopping.send(true);
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(stopped);
    // A request that never ends (a client that sends half a request) does not hold the process.
    let grace = Duration::from_secs(args.shutdown_grace);
    let deadline = async move {
        if stop.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server.into_future() => {
            served.map_err(|e| format!("the server failed: {}", crate::text::io_message(&e)))?;
        }
        () = deadline => tracing::warn!(
            "requests still in flight {} s after the signal: stopping without them",
            grace.as_secs()
        ),
    }
    tracing::info!("stopped");
    Ok(EXIT_OK)
}

/// Starts following the candidate policy of `--shadow-policy`, with the same flags as the
/// policy in effect; `None` (after saying why) when it is invalid.
async fn start_shadow(path: &PathBuf, flags: &EngineArgs) -> Result<Option<Shadow>, String> {
    let policy = match Policy::from_file(path) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "error: the shadow policy `{}` cannot be used",
                path.display()
            );
            return Ok(None);
        }
    };
    let engines = Arc::new(Engines::new(flags, &policy)?);
    drop(policy);
    let shadow = match Shadow::start(path, move |policy| engines.builder(policy)).await {
        Ok(shadow) => shadow,
        Err(ReloadError::Policy(e)) => {
            eprintln!("{e}");
            return Ok(None);
        }
        Err(ReloadError::Build(e)) => return Err(build_error(&e)),
        Err(e) => return Err(e.to_string()),
    };
    tracing::info!(
        shadow_policy = %path.display(),
        revision = %shadow.candidate().status().revision,
        "deciding with a shadow policy too (never enforced)"
    );
    Ok(Some(shadow))
}

/// Decides the request again with the shadow policy, after the answer went out, and counts and
/// logs a disagreement.
fn compare_in_background(
    app: &App,
    shadow: &Shadow,
    active: &Decision,
    token: &str,
    original: Option<(&str, &str)>,
) {
    let (shadow, active, token) = (shadow.clone(), active.clone(), token.to_owned());
    let original = original.map(|(m, u)| (m.to_owned(), u.to_owned()));
    let metrics = app.metrics.clone();
    let now = app.now.unwrap_or_else(UnixTime::now);
    tokio::spawn(async move {
        let request = original.as_ref().map(|(m, u)| (m.as_str(), u.as_str()));
        let Ok(comparison) = shadow.compare(&active, &token, request, now).await else {
            return;
        };
        metrics.record_shadow(&active, &comparison);
        if !comparison.agrees {
            let candidate = &comparison.candidate;
            tracing::info!(
                active = outcome_str(&active),
                candidate = outcome_str(candidate),
                candidate_revision = %candidate.policy_revision(),
                method = original.as_ref().map(|(m, _)| m.as_str()),
                uri = original.as_ref().map(|(_, u)| escape(u)).as_deref(),
                subject = active.principal().subject.as_deref(),
                client_id = active.principal().client_id.as_deref(),
                "the shadow policy disagrees"
            );
        }
    });
}

/// A decision's outcome for the shadow's metrics and log: `allow`, or its reason code.
fn outcome_str(decision: &Decision) -> &'static str {
    if decision.is_allowed() {
        "allow"
    } else {
        decision.reason().map_or("internal", |r| r.as_str())
    }
}

/// What every handler shares.
struct App {
    /// `--shadow-policy`: the candidate decided beside the policy in effect.
    shadow: Option<Shadow>,
    engine: SharedEngine,
    reloading: ReloadingEngine,
    /// `--now`: the frozen clock.
    now: Option<UnixTime>,
    body: DenyBody,
    metrics: Arc<Metrics>,
}

/// `ANY /auth`: the forward-auth check.
async fn auth(State(app): State<Arc<App>>, request: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    // One engine for the whole request: a reload in the meantime takes the next one.
    let engine = app.engine.current();
    let (parts, _body) = request.into_parts();
    let answer = check(&app, &engine, &parts).await;
    let elapsed = started.elapsed();
    app.metrics.record(&answer, elapsed);
    log(&engine, &answer, elapsed);
    answer.response.map(Body::from)
}

/// The answer to one `/auth` request, with what the log and the metrics say about it.
struct Answer {
    response: Response<String>,
    verdict: Verdict,
    /// The metrics' and the log's `reason`: a reason code, `invalid_request`, `no_credentials`,
    /// or `none` (allowed).
    reason: &'static str,
    decision: Option<Decision>,
    /// The original request's method and URI, as the proxy told them.
    original: Option<(String, String)>,
}

async fn check(app: &App, engine: &PolicyEngine, parts: &Parts) -> Answer {
    let policy = engine.policy();
    let refused =
        |situation: Situation<'_>, reason: &'static str, original: Option<(&str, &str)>| Answer {
            response: response(policy, situation, app.body),
            verdict: Verdict::Deny,
            reason,
            decision: None,
            original: original.map(|(m, u)| (m.to_owned(), u.to_owned())),
        };
    let original = match original_request(&parts.headers) {
        Ok(original) => original,
        Err(bad) => {
            tracing::info!(%bad, "request refused");
            return refused(Situation::BadRequest(&bad), "invalid_request", None);
        }
    };
    // No URI, no route: only the policy's own requirements.
    let requirement = match original {
        Some((method, uri)) => match policy.requirement_for(method, uri) {
            Ok(requirement) => requirement,
            Err(e) => {
                let bad = BadRequest::Path(e);
                tracing::info!(%bad, "request refused");
                return refused(Situation::BadRequest(&bad), "invalid_request", original);
            }
        },
        None => Requirement::new(),
    };
    let token = match bearer_token(&parts.headers) {
        Ok(Some(token)) => token,
        Ok(None) => return refused(Situation::NoCredentials, "no_credentials", original),
        Err(bad) => {
            tracing::info!(%bad, "request refused");
            return refused(Situation::BadRequest(&bad), "invalid_request", original);
        }
    };
    let decision = match app.now {
        Some(now) => {
            engine
                .evaluate_async_at_with(token, now, &requirement)
                .await
        }
        None => engine.evaluate_async_with(token, &requirement).await,
    };
    if let Some(shadow) = &app.shadow {
        compare_in_background(app, shadow, &decision, token, original);
    }
    let decision = if decision.is_allowed() {
        match identity_headers(engine, &decision) {
            Ok(headers) => {
                let mut response = response(policy, Situation::Decided(&decision), app.body);
                response.headers_mut().extend(headers);
                return Answer {
                    response,
                    verdict: Verdict::Allow,
                    reason: "none",
                    decision: Some(decision),
                    original: original.map(|(m, u)| (m.to_owned(), u.to_owned())),
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "a verified claim cannot be passed on: request refused");
                decision.refuse_forwarding(&e)
            }
        }
    } else {
        decision
    };
    Answer {
        response: response(policy, Situation::Decided(&decision), app.body),
        verdict: Verdict::Deny,
        reason: decision.reason().map_or("internal", |r| r.as_str()),
        decision: Some(decision),
        original: original.map(|(m, u)| (m.to_owned(), u.to_owned())),
    }
}

/// The original request, as the proxy tells it: `X-Forwarded-Method` and `X-Forwarded-Uri`
/// (Traefik, Caddy, Envoy) or `X-Original-Method` and `X-Original-URI` (nginx). `None` when
/// neither URI header is there.
///
/// Refused (400) rather than guessed: a URI without its method (which routes apply depends on
/// it), a header given twice, and both accounts present but naming different requests. A
/// proxy sets its own headers and passes the client's other headers on, so a client could add
/// the other account to steer the route: only agreeing accounts are used.
fn original_request(headers: &HeaderMap) -> Result<Option<(&str, &str)>, BadRequest> {
    let forwarded = account(headers, "X-Forwarded-Method", "X-Forwarded-Uri")?;
    let original = account(headers, "X-Original-Method", "X-Original-URI")?;
    match (forwarded, original) {
        (Some(a), Some(b)) if a != b => Err(BadRequest::OriginalRequest(
            "`X-Forwarded-Method`/`X-Forwarded-Uri` and `X-Original-Method`/`X-Original-URI` name different requests".to_owned(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// One proxy's account of the original request: its method and URI headers.
fn account<'h>(
    headers: &'h HeaderMap,
    method: &str,
    uri: &str,
) -> Result<Option<(&'h str, &'h str)>, BadRequest> {
    let method_value = single(headers, method)?;
    let Some(uri_value) = single(headers, uri)? else {
        return Ok(None);
    };
    let Some(method_value) = method_value else {
        return Err(BadRequest::OriginalRequest(format!(
            "`{uri}` comes without `{method}`"
        )));
    };
    // RFC 9110 §9.1: a method is a case-sensitive token. Routes list upper-case methods, and a
    // server behind the proxy might read `delete` as `DELETE`: refused rather than matched
    // against no route.
    let upper_token = !method_value.is_empty()
        && method_value.bytes().all(|b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        });
    if !upper_token {
        return Err(BadRequest::OriginalRequest(format!(
            "`{method}` `{}` is not an upper-case method name",
            escape(method_value)
        )));
    }
    Ok(Some((method_value, uri_value)))
}

/// The one value of header `name`, if any.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, BadRequest> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadRequest::OriginalRequest(format!(
            "`{name}` is given more than once"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| BadRequest::OriginalRequest(format!("`{name}` is not printable ASCII")))
}

/// The headers an allowed request carries to the service: who the token speaks for, then the
/// policy's `[forward]` claims. A value a header cannot carry faithfully is an error: the
/// request is refused rather than passed on without it, or with another value.
fn identity_headers(
    engine: &PolicyEngine,
    decision: &Decision,
) -> Result<Vec<(HeaderName, HeaderValue)>, ForwardError> {
    let who = decision.principal();
    let mut out = Vec::with_capacity(8);
    let client_claim = who.client_id_source.as_deref().unwrap_or("client_id");
    let scopes = scopes_value(engine.policy(), decision)?;
    // (header, as the documentation spells it, the claim it comes from, value)
    let standard = [
        (
            "x-auth-subject",
            "X-Auth-Subject",
            "sub",
            who.subject.as_deref(),
        ),
        (
            "x-auth-client-id",
            "X-Auth-Client-Id",
            client_claim,
            who.client_id.as_deref(),
        ),
        ("x-auth-scopes", "X-Auth-Scopes", "scope", scopes.as_deref()),
        (
            "x-auth-issuer",
            "X-Auth-Issuer",
            "iss",
            who.issuer.as_deref(),
        ),
        (
            "x-auth-audience",
            "X-Auth-Audience",
            "aud",
            who.audience.as_deref(),
        ),
        (
            "x-auth-policy-revision",
            "X-Auth-Policy-Revision",
            "policy_revision",
            Some(decision.policy_revision()),
        ),
    ];
    for (header, shown, claim, value) in standard {
        if let Some(value) = value {
            let fail = |why| forward_error(claim, shown, why);
            out.push((
                HeaderName::from_static(header),
                header_value(value).map_err(fail)?,
            ));
        }
    }
    for (header, value) in engine.forwarded_headers(decision)? {
        let fail = |why| forward_error(&claim_of(engine.policy(), &header), &header, why);
        let name = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| fail("it is not a header name".to_owned()))?;
        out.push((name, header_value(&value).map_err(fail)?));
    }
    Ok(out)
}

/// The granted scopes, space-separated; `None` when there are none. A scope that is not an
/// RFC 6749 scope token (it has a space, `"` or `\`, or is not printable ASCII) is an error:
/// the service would read `read admin` as two scopes.
fn scopes_value(policy: &Policy, decision: &Decision) -> Result<Option<String>, ForwardError> {
    let scopes = &decision.principal().scopes;
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        // Name the scope claim the token has (the policy may read several).
        let present = decision
            .claims()
            .and_then(|c| c.to_value().ok())
            .and_then(|claims| {
                policy
                    .scopes
                    .claims
                    .iter()
                    .find(|(name, _)| claims.get(name).is_some())
                    .map(|(name, _)| name.clone())
            })
            .unwrap_or_else(|| "scope".to_owned());
        return Err(ForwardError {
            claim: present,
            header: "X-Auth-Scopes".to_owned(),
            why: format!(
                "it grants `{}`, which is not an RFC 6749 scope token",
                escape(bad)
            ),
        });
    }
    Ok((!scopes.is_empty()).then(|| scopes.join(" ")))
}

/// `value` as a header value, when a header carries it as it is: printable ASCII, without
/// leading or trailing spaces (parsers strip them, so ` admin` would arrive as `admin`).
fn header_value(value: &str) -> Result<HeaderValue, String> {
    if let Some(bad) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "it holds {}, which is not printable ASCII",
            bad.escape_default()
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err("it starts or ends with a space, which a header does not keep".to_owned());
    }
    HeaderValue::from_str(value).map_err(|_| "it is not a header value".to_owned())
}

fn forward_error(claim: &str, header: &str, why: String) -> ForwardError {
    ForwardError {
        claim: claim.to_owned(),
        header: header.to_owned(),
        why,
    }
}

/// The claim the policy forwards as `header`, dotted.
fn claim_of(policy: &Policy, header: &str) -> String {
    policy
        .forward
        .iter()
        .find(|f| f.header == header)
        .map_or_else(String::new, |f| f.path.to_string())
}

/// One log line per `/auth` request; the whole decision at debug. Never the token; of the
/// claims, only who the token speaks for.
fn log(engine: &PolicyEngine, answer: &Answer, elapsed: Duration) {
    let who = answer.decision.as_ref().map(Decision::principal);
    // Values from the request or the token: control and deceptive characters escaped, so a
    // value cannot start a line of its own or reorder what a reader sees.
    let shown = |value: Option<&str>| value.map(|v| tracing::field::display(escape(v)));
    let revision = answer
        .decision
        .as_ref()
        .map_or(engine.policy().revision(), Decision::policy_revision);
    // The path only: a query may carry secrets.
    let path = answer
        .original
        .as_ref()
        .map(|(_, uri)| uri.split(['?', '#']).next().unwrap_or_default());
    tracing::info!(
        verdict = %verdict_str(answer.verdict),
        reason = %answer.reason,
        status = answer.response.status().as_u16(),
        client_id = shown(who.and_then(|p| p.client_id.as_deref())),
        subject = shown(who.and_then(|p| p.subject.as_deref())),
        issuer = shown(who.and_then(|p| p.issuer.as_deref())),
        policy_revision = %revision,
        method = shown(answer.original.as_ref().map(|(m, _)| m.as_str())),
        path = shown(path),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "decision"
    );
    if let Some(decision) = &answer.decision {
        tracing::debug!(decision = %decision.to_json(), "decision detail");
    }
}

fn verdict_str(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

/// `GET /healthz`: 200 while the process runs.
async fn healthz() -> Response<Body> {
    text(StatusCode::OK, "ok\n".to_owned())
}

/// `GET /readyz`: 200 when every issuer of the engine in effect has keys to verify with, else
/// 503 naming those that have none.
async fn readyz(State(app): State<Arc<App>>) -> Response<Body> {
    let engine = app.engine.current();
    let missing: Vec<&str> = engine
        .keys_available()
        .into_iter()
        .filter(|(_, available)| available.is_err())
        .map(|(iss, _)| iss)
        .collect();
    match missing.as_slice() {
        [] => text(StatusCode::OK, "ready\n".to_owned()),
        [one] => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("keys unavailable for issuer `{one}`\n"),
        ),
        several => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("keys unavailable for issuers `{}`\n", several.join("`, `")),
        ),
    }
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics_text(State(app): State<Arc<App>>) -> Response<Body> {
    app.metrics
        .sync(&app.engine.current(), &app.reloading.status());
    let mut out = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut out, &app.metrics.registry)
        .is_err()
    {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n".to_owned(),
        );
    }
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    r
}

/// `GET` (or `HEAD`) on the metadata path of the resource in effect: the RFC 9728 document.
/// Everything else: 404. Taken from the engine in effect at each request, so a reloaded policy
/// naming another resource publishes at its own path at once.
async fn metadata(State(app): State<Arc<App>>, method: Method, uri: Uri) -> Response<Body> {
    let engine = app.engine.current();
    let policy = engine.policy();
    let path = metadata_path(policy.resource_url());
    if (method == Method::GET || method == Method::HEAD) && path.as_deref() == Some(uri.path()) {
        return metadata_response(policy).map(Body::from);
    }
    text(StatusCode::NOT_FOUND, "not found\n".to_owned())
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The signals `serve` answers: SIGHUP reloads; SIGTERM and Ctrl-C (SIGINT) stop it.
struct Signals {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes the signals over from now on (their default action would end the process).
    fn new() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let take = |kind: SignalKind, name: &str| {
                signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
            };
            Ok(Self {
                hangup: take(SignalKind::hangup(), "SIGHUP")?,
                terminate: take(SignalKind::terminate(), "SIGTERM")?,
                interrupt: take(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Reloads on each SIGHUP; returns at the first SIGTERM or Ctrl-C.
    async fn run(self, reloading: ReloadingEngine) {
        #[cfg(unix)]
        {
            let Self {
                mut hangup,
                mut terminate,
                mut interrupt,
            } = self;
            loop {
                tokio::select! {
                    Some(()) = hangup.recv() => reload(&reloading).await,
                    _ = terminate.recv() => {
                        tracing::info!("SIGTERM: finishing the requests in flight, then stopping");
                        return;
                    }
                    _ = interrupt.recv() => {
                        tracing::info!("SIGINT: finishing the requests in flight, then stopping");
                        return;
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = reloading;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: finishing the requests in flight, then stopping");
        }
    }
}

/// SIGHUP: reads the policy now, whatever the watcher has seen.
#[cfg(unix)]
async fn reload(reloading: &ReloadingEngine) {
    match reloading.reload_now().await {
        Ok(ReloadOutcome::Reloaded { revision }) => {
            tracing::info!(%revision, "SIGHUP: policy reloaded, revision `{revision}`");
        }
        Ok(ReloadOutcome::Unchanged { revision }) => {
            tracing::info!(%revision, "SIGHUP: policy unchanged, revision `{revision}`");
        }
        // The reloader has logged why, with the diagnostics.
        Err(_) => tracing::warn!(
            revision = %reloading.status().revision,
            "SIGHUP: reload failed, the running policy stays"
        ),
    }
}

/// Keeps the reload and key fetch counters up to date after each reload, so that an engine's
/// key fetches are counted before it is retired.
async fn count_reloads(reloading: ReloadingEngine, metrics: Arc<Metrics>) {
    let mut status = reloading.subscribe();
    let shared = reloading.shared();
    // The receiver keeps no reloader running: only `reloading` does.
    drop(reloading);
    while status.changed().await.is_ok() {
        let now = status.borrow_and_update().clone();
        metrics.sync(&shared.current(), &now);
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    verdict: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyFetchLabels {
    issuer: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    event: &'static str,
}

const CACHE_EVENTS: [&str; 4] = ["hit", "miss", "insert", "eviction"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    active: &'static str,
    candidate: &'static str,
}

/// The shadow policy's counters (`--shadow-policy`).
struct ShadowMetrics {
    compared: Counter,
    disagreements: Family<ShadowLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// The `/metrics` registry. Decisions are counted as they are made; reloads and key fetches
/// are read from the reloader's status and the engine's key counters (`sync`), which start
/// again at zero in every new engine: the counters here add up what each engine did.
struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    duration: Histogram,
    key_fetches: Family<KeyFetchLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    shadow: Option<ShadowMetrics>,
    tally: Mutex<Tally>,
}

/// What `sync` has counted so far.
#[derive(Default)]
struct Tally {
    /// Reloads, failures, unchanged attempts.
    reloads: [u64; 3],
    /// The engine whose key counters were read last (kept until the next read, so that what
    /// it fetched after that is counted when it is retired).
    engine: Option<PolicyEngine>,
    /// Its successful and failed fetches, per issuer, as counted.
    seen: HashMap<String, (u64, u64)>,
    /// Its decision cache's hits, misses, inserts and evictions, as counted.
    cache_seen: [u64; 4],
}

const RELOAD_RESULTS: [&str; 3] = ["success", "failure", "unchanged"];

impl Metrics {
    fn new(shadow: bool) -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "jwt_policy_decisions",
            "Answers to /auth, by verdict and reason (a reason code, invalid_request, no_credentials, or none when allowed)",
            decisions.clone(),
        );
        // From 50 µs (a signature check) to 10 s (a slow key fetch).
        let duration = Histogram::new([
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register_with_unit(
            "jwt_policy_decision_duration",
            "Time to answer /auth",
            Unit::Seconds,
            duration.clone(),
        );
        let key_fetches = Family::<KeyFetchLabels, Counter>::default();
        registry.register(
            "jwt_policy_key_fetches",
            "Remote key fetches, by issuer and result (success, failure)",
            key_fetches.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "jwt_policy_reloads",
            "Policy reload attempts, by result (success, failure, unchanged)",
            reloads.clone(),
        );
        for result in RELOAD_RESULTS {
            let _ = reloads.get_or_create(&ReloadLabels { result });
        }
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "jwt_policy_decision_cache",
            "Decision cache lookups and changes, by event (hit, miss, insert, eviction), over every engine",
            cache.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "jwt_policy_decision_cache_entries",
            "Decisions the cache of the engine in effect holds",
            cache_entries.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "jwt_policy_decision_cache_bytes",
            "Bytes (estimated) the cache of the engine in effect holds",
            cache_bytes.clone(),
        );
        let shadow = shadow.then(|| {
            let compared = Counter::default();
            registry.register(
                "jwt_policy_shadow_decisions",
                "Tokens the shadow policy decided too (never enforced)",
                compared.clone(),
            );
            let disagreements = Family::<ShadowLabels, Counter>::default();
            registry.register(
                "jwt_policy_shadow_disagreements",
                "Tokens on which the shadow policy disagrees with the policy in effect, by each one's outcome (allow or a reason code)",
                disagreements.clone(),
            );
            ShadowMetrics {
                compared,
                disagreements,
            }
        });
        Self {
            registry,
            decisions,
            duration,
            key_fetches,
            reloads,
            cache,
            cache_entries,
            cache_bytes,
            shadow,
            tally: Mutex::new(Tally::default()),
        }
    }

    /// Counts one decision of the shadow policy, and a disagreement.
    fn record_shadow(&self, active: &Decision, comparison: &Comparison) {
        let Some(shadow) = &self.shadow else {
            return;
        };
        shadow.compared.inc();
        if !comparison.agrees {
            shadow
                .disagreements
                .get_or_create(&ShadowLabels {
                    active: outcome_str(active),
                    candidate: outcome_str(&comparison.candidate),
                })
                .inc();
        }
    }

    fn record(&self, answer: &Answer, elapsed: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                verdict: verdict_str(answer.verdict),
                reason: answer.reason,
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Adds what happened since the last call: reload attempts, and the key fetches of the
    /// engine read last time and of `engine` (the one in effect).
    fn sync(&self, engine: &PolicyEngine, status: &ReloadStatus) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let Tally {
            reloads,
            engine: last,
            seen,
            cache_seen,
        } = &mut *tally;
        let now = [status.reloads, status.failures, status.unchanged];
        for ((result, counted), now) in RELOAD_RESULTS.into_iter().zip(reloads).zip(now) {
            if now > *counted {
                self.reloads
                    .get_or_create(&ReloadLabels { result })
                    .inc_by(now - *counted);
                *counted = now;
            }
        }
        if let Some(previous) = last.take() {
            self.count_fetches(&previous, seen);
            self.count_cache(&previous, cache_seen);
            if !previous.same(engine) {
                seen.clear();
                *cache_seen = [0; 4];
            }
        }
        self.count_fetches(engine, seen);
        self.count_cache(engine, cache_seen);
        let stats = engine.cache_stats().unwrap_or_default();
        self.cache_entries
            .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
        self.cache_bytes
            .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
        *last = Some(engine.clone());
    }

    /// Adds what `engine`'s decision cache did since `counted`.
    fn count_cache(&self, engine: &PolicyEngine, counted: &mut [u64; 4]) {
        let Some(stats) = engine.cache_stats() else {
            return;
        };
        let now = [stats.hits, stats.misses, stats.inserts, stats.evictions];
        for ((event, counted), now) in CACHE_EVENTS.into_iter().zip(counted).zip(now) {
            // Created at zero, so that a cache that has not evicted yet says so.
            let counter = self.cache.get_or_create(&CacheLabels { event });
            if now > *counted {
                counter.inc_by(now - *counted);
                *counted = now;
            }
        }
    }

    fn count_fetches(&self, engine: &PolicyEngine, seen: &mut HashMap<String, (u64, u64)>) {
        for (iss, stats) in engine.key_stats() {
            // A fetch is counted when it starts and as a failure when it fails: one in flight
            // now counts as a success until then. Counters never go back; the next success of
            // this engine is then not counted again.
            let successes = stats.fetches.saturating_sub(stats.failures);
            let counted = seen.entry(iss.to_owned()).or_default();
            for (result, now, counted) in [
                ("success", successes, &mut counted.0),
                ("failure", stats.failures, &mut counted.1),
            ] {
                if now > *counted {
                    self.key_fetches
                        .get_or_create(&KeyFetchLabels {
                            issuer: iss.to_owned(),
                            result,
                        })
                        .inc_by(now - *counted);
                    *counted = now;
                }
            }
        }
    }
}
