//! A tower layer that lets a request through only when the policy allows its bearer token, and
//! axum extractors for what the layer learnt.
//!
//! ```
//! use axum::{Router, routing::get};
//! use jwt_policy::http::axum::{Authorized, PolicyLayer, metadata_router};
//! use jwt_policy::{Policy, PolicyEngine, Requirement};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = PolicyEngine::builder(Policy::from_file("policies/keycard-mcp.toml")?)
//!     .context("credential.key_id", "mcp-server-key-1")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/mcp", get(|who: Authorized| async move { format!("{:?}", who.client_id()) }))
//!     .route_layer(PolicyLayer::new(engine.clone()))
//!     .merge(
//!         Router::new()
//!             .route("/admin", get(|| async { "admin" }))
//!             .route_layer(PolicyLayer::new(engine.clone()).require(Requirement::new().scope("mcp:admin"))),
//!     )
//!     .merge(metadata_router(engine));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::axum::Router;
use ::axum::extract::{FromRequestParts, OriginalUri};
use ::axum::response::IntoResponse;
use ::axum::routing::get;
use ::http::request::Parts;
use ::http::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    BadRequest, DenyBody, Situation, bearer_token, json_body, json_response, metadata_path,
    metadata_response, response,
};
use crate::engine::{Claims, ClaimsError, Decision, Principal, SharedEngine, Verdict};
use crate::policy::Requirement;

/// A tower [`Layer`] that decides about each request's bearer token with the engine current at
/// that request, answers every denial itself (the responses of [`response`]), and hands an
/// allowed request on with an [`Authorized`] in its extensions.
///
/// * [`PolicyLayer::require`]: what the routes it wraps need beyond the policy (a scope, a
///   `route_only` rule).
/// * [`PolicyLayer::routes_from_policy`]: the policy's `[[routes]]` entry for the request's
///   method and path applies too; a path that could be read as another is answered 400.
/// * [`PolicyLayer::deny_body`]: the whole decision in denial bodies (operators only).
///
/// Tokens are decided with `evaluate_async_with`, so remote keys are fetched when a token needs
/// them, and with [`SharedEngine::current`], so a replaced (reloaded) engine decides from the
/// next request on.
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    engine: SharedEngine,
    requirement: Arc<Requirement>,
    routes: bool,
    body: DenyBody,
}

impl PolicyLayer {
    /// A layer deciding with `engine` (a [`PolicyEngine`](crate::PolicyEngine) or a
    /// [`SharedEngine`] that may be replaced).
    pub fn new(engine: impl Into<SharedEngine>) -> Self {
        Self {
            engine: engine.into(),
            requirement: Arc::new(Requirement::new()),
            routes: false,
            body: DenyBody::Minimal,
        }
    }

    /// Also requires what `requirement` says, for every request through this layer (use it as a
    /// `route_layer` on the routes that need it). Adds to an earlier `require`.
    pub fn require(mut self, requirement: Requirement) -> Self {
        self.requirement = Arc::new(self.requirement.and(&requirement));
        self
    }

    /// Also applies the policy's `[[routes]]` entry for the request's method and path (the path
    /// the server received, before a nested router stripped its prefix). A path the policy
    /// refuses to match (`..`, `//`, an encoded `/`) is answered 400 before the token is read.
    pub fn routes_from_policy(mut self) -> Self {
        self.routes = true;
        self
    }

    /// What denial bodies hold: [`DenyBody::Minimal`] (the default) or the whole decision.
    pub fn deny_body(mut self, body: DenyBody) -> Self {
        self.body = body;
        self
    }

    /// Decides about the request: the response that refuses it, or `None` with [`Authorized`]
    /// put in its extensions.
    async fn refusal(&self, parts: &mut Parts) -> Option<Response<String>> {
        let engine = self.engine.current();
        let policy = engine.policy();
        let refuse = |situation| Some(response(policy, situation, self.body));
        let requirement = if self.routes {
            let uri = parts
                .extensions
                .get::<OriginalUri>()
                .map_or(&parts.uri, |original| &original.0);
            let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
            match policy.requirement_for(parts.method.as_str(), target) {
                Ok(route) => Cow::Owned(self.requirement.and(&route)),
                Err(e) => {
                    tracing::info!(%e, "request refused");
                    return refuse(Situation::BadRequest(&BadRequest::Path(e)));
                }
            }
        } else {
            Cow::Borrowed(&*self.requirement)
        };
        let token = match bearer_token(&parts.headers) {
            Ok(Some(token)) => token,
            Ok(None) => return refuse(Situation::NoCredentials),
            Err(bad) => {
                tracing::info!(%bad, "request refused");
                return refuse(Situation::BadRequest(&bad));
            }
        };
        let decision = engine.evaluate_async_with(token, &requirement).await;
        if !decision.is_allowed() {
            tracing::info!(decision = %decision.to_json(), "token denied");
            return refuse(Situation::Decided(&decision));
        }
        tracing::debug!(decision = %decision.to_json(), "token allowed");
        parts.extensions.insert(Authorized {
            decision: Arc::new(decision),
        });
        None
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The [`Service`] of a [`PolicyLayer`] around `S`.
#[derive(Debug, Clone)]
pub struct PolicyService<S> {
    inner: S,
    layer: PolicyLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PolicyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one to call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match layer.refusal(&mut parts).await {
                None => inner.call(Request::from_parts(parts, body)).await,
                Some(refused) => Ok(refused.map(ResBody::from)),
            }
        })
    }
}

/// What the [`PolicyLayer`] let in: the allowing decision. An extractor: a handler that takes it
/// runs only behind the layer (without it, the request is answered 500 and the handler never
/// runs).
///
/// ```
/// use jwt_policy::http::axum::Authorized;
///
/// async fn handler(who: Authorized) -> String {
///     format!("{} as {}", who.client_id().unwrap_or("?"), who.subject().unwrap_or("?"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authorized {
    decision: Arc<Decision>,
}

impl Authorized {
    /// The whole decision (every check, the principal, the claims).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Who the token speaks for.
    pub fn principal(&self) -> &Principal {
        self.decision.principal()
    }

    /// The calling client's id.
    pub fn client_id(&self) -> Option<&str> {
        self.principal().client_id.as_deref()
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.principal().subject.as_deref()
    }

    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.principal().issuer.as_deref()
    }

    /// The granted scopes, in the token's order.
    pub fn scopes(&self) -> &[String] {
        &self.principal().scopes
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().iter().any(|s| s == scope)
    }

    /// The revision of the policy that allowed the request.
    pub fn policy_revision(&self) -> &str {
        self.decision.policy_revision()
    }

    /// The verified claims (see [`VerifiedClaims`] to have them in the service's own type).
    pub fn claims(&self) -> Option<&Claims> {
        self.decision.claims()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authorized {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authorized>()
            .cloned()
            .ok_or(Rejection::NoPolicyLayer)
    }
}

/// The verified claims of the allowed token, deserialized into the service's type `T`. Claims
/// that do not fit `T` are answered 500 (`claims_do_not_fit`): the policy let the token in, so
/// it is the service's type, not the token, that is wrong; make the policy require what `T`
/// needs (`[claims] required`) and such tokens are refused with 401 instead.
///
/// ```
/// use jwt_policy::http::axum::VerifiedClaims;
///
/// #[derive(serde::Deserialize)]
/// struct Caller {
///     sub: String,
///     client_id: String,
/// }
///
/// async fn handler(VerifiedClaims(caller): VerifiedClaims<Caller>) -> String {
///     format!("{} via {}", caller.sub, caller.client_id)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedClaims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for VerifiedClaims<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let who = Authorized::from_request_parts(parts, state).await?;
        let not_fitting = |error: ClaimsError| Rejection::ClaimsDoNotFit {
            policy_revision: who.policy_revision().to_owned(),
            error,
        };
        let Some(claims) = who.claims() else {
            // The engine hands claims over with every allow: this would be a bug.
            let missing = <serde_json::Error as serde::de::Error>::custom("no verified claims");
            return Err(not_fitting(missing.into()));
        };
        claims
            .deserialize()
            .map(VerifiedClaims)
            .map_err(not_fitting)
    }
}

/// Why an extractor of this module could not give a handler what it asked for. The request is
/// answered 500 with `{"verdict": "deny", "reason": CODE, "policy_revision": ...}` and the
/// handler does not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No [`PolicyLayer`] in front of the handler (`reason` `no_policy_layer`): a
    /// configuration error, failing closed.
    #[error("no `PolicyLayer` in front of a handler that asks for what only it provides")]
    NoPolicyLayer,
    /// The verified claims do not fit the handler's type (`reason` `claims_do_not_fit`).
    #[error("{error}")]
    ClaimsDoNotFit {
        /// The revision of the policy that allowed the token.
        policy_revision: String,
        /// What did not fit.
        error: ClaimsError,
    },
}

impl Rejection {
    /// The `reason` of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoPolicyLayer => "no_policy_layer",
            Self::ClaimsDoNotFit { .. } => "claims_do_not_fit",
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> ::axum::response::Response {
        tracing::error!(error = %self, "request refused");
        let revision = match &self {
            Self::NoPolicyLayer => None,
            Self::ClaimsDoNotFit {
                policy_revision, ..
            } => Some(policy_revision.as_str()),
        };
        let body = json_body(Verdict::Deny, Some(self.code()), revision);
        json_response(StatusCode::INTERNAL_SERVER_ERROR, body).map(::axum::body::Body::from)
    }
}

/// A router answering `GET` (and `HEAD`) on the [`metadata_path`] of the engine's resource
/// with its RFC 9728 metadata ([`metadata_response`]), to merge into the service's router (after
/// its `route_layer`, so that no token is needed). The document follows the engine current at
/// each request; the path is the one of the resource URL when the router is made. A resource
/// URL that is not `http(s)` has no metadata path: the router is empty.
pub fn metadata_router<S>(engine: impl Into<SharedEngine>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let engine = engine.into();
    let Some(path) = metadata_path(engine.current().policy().resource_url()) else {
        return Router::new();
    };
    let served = path.clone();
    let handler = move || {
        let engine = engine.current();
        let policy = engine.policy();
        // A replaced policy naming another resource publishes its metadata elsewhere.
        let answer = if metadata_path(policy.resource_url()).as_deref() == Some(served.as_str()) {
            metadata_response(policy)
        } else {
            json_response(StatusCode::NOT_FOUND, "{}".to_owned())
        };
        std::future::ready(answer.map(::axum::body::Body::from))
    };
    // The path is a literal (no `{`, `}`): segments starting with `:` or `*` are literal too.
    Router::new()
        .without_v07_checks()
        .route(&path, get(handler))
}
