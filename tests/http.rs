//! The HTTP edge end to end: a real axum server on 127.0.0.1, a real HTTP client (reqwest) and
//! real signed tokens. Every row of the status table in docs/http.md, the `WWW-Authenticate`
//! challenges byte for byte, the RFC 9728 metadata document, per-route and policy routes, the
//! extractors, the full-body opt-in and a replaced engine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::{any, get};
use axum::{Json, Router};
use jwt_policy::http::DenyBody;
use jwt_policy::http::axum::{Authorized, PolicyLayer, VerifiedClaims, metadata_router};
use jwt_policy::{KeyError, KeySet, KeySource, PolicyEngine, Requirement, SharedEngine};
use serde_json::{Value, json};
use support::http::{KeyServer, Reply};
use support::*;

/// The metadata URL of the reference policy's resource (RFC 9728 §3.1 path insertion).
const M: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// Seconds since the epoch, now: the layer decides on the system clock.
fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// Claims the reference policy allows now, with `changes` applied (`null` removes a claim).
fn live(changes: Value) -> Value {
    let now = now();
    let base = with_changes(good_claims(), json!({ "exp": now + 3600, "iat": now - 60 }));
    with_changes(base, changes)
}

/// The reference engine trusting `key`.
fn reference(key: &TestKey) -> PolicyEngine {
    engine(&keycard_policy(&[key]), CTX)
}

/// Serves `app` on an ephemeral port of 127.0.0.1; returns `http://127.0.0.1:PORT`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    text: String,
    body: Value,
}

impl Answer {
    /// The `WWW-Authenticate` header, which must be there.
    #[track_caller]
    fn challenge(&self) -> &str {
        self.challenge.as_deref().expect("no WWW-Authenticate")
    }
}

/// GETs `url` with these headers (appended in order, so a name may repeat).
async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        let mut all = response.headers().get_all(name).iter();
        let first = all.next().map(|v| v.to_str().unwrap().to_owned());
        assert!(all.next().is_none(), "several `{name}` headers");
        first
    };
    let (status, challenge, retry_after, content_type) = (
        response.status().as_u16(),
        header("www-authenticate"),
        header("retry-after"),
        header("content-type"),
    );
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        retry_after,
        content_type,
        text,
        body,
    }
}

/// GETs `url` with `Authorization: Bearer TOKEN`.
async fn get_bearer(url: &str, token: &str) -> Answer {
    get_with(url, &[("authorization", &format!("Bearer {token}"))]).await
}

/// A handler that shows who the layer let in.
async fn whoami(who: Authorized) -> Json<Value> {
    let p = who.principal();
    Json(json!({
        "client_id": who.client_id(),
        "subject": who.subject(),
        "scopes": who.scopes(),
        "issuer": p.issuer,
        "policy_revision": who.policy_revision(),
    }))
}

/// `/mcp/tools` behind `layer`, and the metadata document beside it.
async fn protected(layer: PolicyLayer, engine: SharedEngine) -> String {
    let app = Router::new()
        .route("/mcp/tools", get(whoami))
        .route_layer(layer)
        .merge(metadata_router(engine));
    serve(app).await
}

/// The reference engine trusting `key`, served behind the default layer.
async fn reference_server(key: &TestKey) -> (String, PolicyEngine) {
    let engine = reference(key);
    let base = protected(PolicyLayer::new(engine.clone()), engine.clone().into()).await;
    (base, engine)
}

/// The minimal deny body.
fn minimal(reason: Value, revision: &str) -> Value {
    json!({ "verdict": "deny", "reason": reason, "policy_revision": revision })
}

mod credentials {
    use super::*;

    #[tokio::test]
    async fn no_authorization_header_is_401_with_only_resource_metadata() {
        let key = TestKey::es256("k1");
        let (base, engine) = reference_server(&key).await;
        let a = get_with(&format!("{base}/mcp/tools"), &[]).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.challenge(), format!("Bearer resource_metadata=\"{M}\""));
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(a.body, minimal(Value::Null, engine.policy().revision()));
        assert_eq!(a.retry_after, None);
    }

    #[tokio::test]
    async fn another_scheme_is_no_credentials() {
        let key = TestKey::es256("k1");
        let (base, _) = reference_server(&key).await;
        for value in ["Basic dXNlcjpwYXNz", "Bearerish abc", "DPoP abc.def.ghi"] {
            let a = get_with(&format!("{base}/mcp/tools"), &[("authorization", value)]).await;
            assert_eq!(a.status, 401, "{value}");
            assert_eq!(a.challenge(), format!("Bearer resource_metadata=\"{M}\""));
            assert_eq!(a.body["reason"], Value::Null);
        }
    }

    #[tokio::test]
    async fn a_token_in_the_query_string_is_ignored() {
        let key = TestKey::es256("k1");
        let (base, _) = reference_server(&key).await;
        let token = key.sign(&live(json!({})));
        let a = get_with(&format!("{base}/mcp/tools?access_token={token}"), &[]).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.challenge(), format!("Bearer resource_metadata=\"{M}\""));
        // The same token in the header is let in: the query string was the only difference.
        let a = get_bearer(&format!("{base}/mcp/tools"), &token).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }

    #[tokio::test]
    async fn several_authorization_headers_are_400() {
        let key = TestKey::es256("k1");
        let (base, engine) = reference_server(&key).await;
        let token = key.sign(&live(json!({})));
        let bearer = format!("Bearer {token}");
        let a = get_with(
            &format!("{base}/mcp/tools"),
            &[("authorization", &bearer), ("authorization", &bearer)],
        )
        .await;
        assert_eq!(a.status, 400);
        assert_eq!(
            a.challenge(),
            format!(
                "Bearer error=\"invalid_request\", error_description=\"several authorization headers\", resource_metadata=\"{M}\""
            )
        );
        assert_eq!(
            a.body,
            minimal(json!("invalid_request"), engine.policy().revision())
        );
    }

    #[tokio::test]
    async fn bearer_with_nothing_after_it_is_400() {
        let key = TestKey::es256("k1");
        let (base, _) = reference_server(&key).await;
        // HTTP parsers strip trailing spaces: `Bearer ` arrives as `Bearer`.
        for value in ["Bearer", "Bearer ", "bearer   "] {
            let a = get_with(&format!("{base}/mcp/tools"), &[("authorization", value)]).await;
            assert_eq!(a.status, 400, "{value:?}");
            assert_eq!(
                a.challenge(),
                format!(
                    "Bearer error=\"invalid_request\", error_description=\"the bearer credentials hold no token\", resource_metadata=\"{M}\""
                ),
                "{value:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_outside_the_b64token_syntax_is_400() {
        let key = TestKey::es256("k1");
        let (base, _) = reference_server(&key).await;
        let token = key.sign(&live(json!({})));
        for value in [
            format!("Bearer {token} extra"),
            format!("Bearer {token},x"),
            format!("Bearer \"{token}\""),
            "Bearer a=b".to_owned(),
        ] {
            let a = get_with(&format!("{base}/mcp/tools"), &[("authorization", &value)]).await;
            assert_eq!(a.status, 400, "{value}");
            assert_eq!(
                a.challenge(),
                format!(
                    "Bearer error=\"invalid_request\", error_description=\"the bearer token is not a b64token (RFC 6750 section 2.1)\", resource_metadata=\"{M}\""
                )
            );
            assert!(!a.text.contains(&token), "the body repeats the token");
        }
    }

    #[tokio::test]
    async fn the_scheme_is_case_insensitive() {
        let key = TestKey::es256("k1");
        let (base, _) = reference_server(&key).await;
        let token = key.sign(&live(json!({})));
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let a = get_with(
                &format!("{base}/mcp/tools"),
                &[("authorization", &format!("{scheme} {token}"))],
            )
            .await;
            assert_eq!(a.status, 200, "{scheme}: {}", a.text);
        }
    }
}

mod decisions {
    use super::*;

    #[tokio::test]
    async fn an_allowed_token_reaches_the_handler_with_its_principal() {
        let key = TestKey::es256("k1");
        let (base, engine) = reference_server(&key).await;
        let a = get_bearer(&format!("{base}/mcp/tools"), &key.sign(&live(json!({})))).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.challenge, None);
        assert_eq!(
            a.body,
            json!({
                "client_id": "client-abc",
                "subject": "user-123",
                "scopes": ["mcp:tools", "mcp:resources"],
                "issuer": ZONE,
                "policy_revision": engine.policy().revision(),
            })
        );
    }

    #[tokio::test]
    async fn an_invalid_token_is_401_invalid_token_with_a_fixed_description() {
        let key = TestKey::es256("k1");
        let (base, engine) = reference_server(&key).await;
        let url = format!("{base}/mcp/tools");
        let cases = [
            (
                live(json!({ "exp": now() - 3600 })),
                "expired",
                "the token has expired",
            ),
            (
                live(json!({ "aud": ZONE, "resource": "https://other.example.com/mcp" })),
                "resource_mismatch",
                "the token is not for this resource",
            ),
            (
                live(json!({ "iss": "https://evil.example.com" })),
                "untrusted_issuer",
                "the token issuer is not trusted",
            ),
        ];
        for (claims, reason, text) in cases {
            let token = key.sign(&claims);
            let a = get_bearer(&url, &token).await;
            assert_eq!(a.status, 401, "{reason}: {}", a.text);
            assert_eq!(
                a.challenge(),
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{reason}: {text}\", resource_metadata=\"{M}\""
                )
            );
            assert_eq!(a.body, minimal(json!(reason), engine.policy().revision()));
        }
        // Not a JWS at all.
        let a = get_bearer(&url, "abc.def").await;
        assert_eq!(
            a.challenge(),
            format!(
                "Bearer error=\"invalid_token\", error_description=\"malformed_token: the token is not a well-formed JWS\", resource_metadata=\"{M}\""
            )
        );
    }

    #[tokio::test]
    async fn a_valid_token_lacking_a_scope_is_403_naming_the_scopes() {
        let key = TestKey::es256("k1");
        let (base, engine) = reference_server(&key).await;
        let token = key.sign(&live(json!({ "scope": "mcp:resources" })));
        let a = get_bearer(&format!("{base}/mcp/tools"), &token).await;
        assert_eq!(a.status, 403, "{}", a.text);
        assert_eq!(
            a.challenge(),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"mcp:tools\", resource_metadata=\"{M}\""
            )
        );
        assert_eq!(
            a.body,
            minimal(json!("insufficient_scope"), engine.policy().revision())
        );
    }

    #[tokio::test]
    async fn invalid_and_short_of_a_scope_is_401_not_403() {
        let key = TestKey::es256("k1");
        let (base, _) = reference_server(&key).await;
        let token = key.sign(&live(
            json!({ "scope": "mcp:resources", "exp": now() - 3600 }),
        ));
        let a = get_bearer(&format!("{base}/mcp/tools"), &token).await;
        assert_eq!(a.status, 401);
        assert!(
            a.challenge()
                .starts_with("Bearer error=\"invalid_token\", error_description=\"expired: ")
        );
    }

    #[derive(Debug)]
    struct Unavailable;

    impl KeySource for Unavailable {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            Err(KeyError::Unavailable("the key server answered 503".into()))
        }
    }

    #[tokio::test]
    async fn unavailable_keys_are_503_with_retry_after_and_no_challenge() {
        let key = TestKey::es256("k1");

        let engine = reference_builder(&[&key], "")
            .key_source(ZONE, Arc::new(Unavailable))
            .build()
            .unwrap();
        let base = protected(PolicyLayer::new(engine.clone()), engine.clone().into()).await;
        let a = get_bearer(&format!("{base}/mcp/tools"), &key.sign(&live(json!({})))).await;
        assert_eq!(a.status, 503, "{}", a.text);
        assert_eq!(a.challenge, None);
        // The policy's `[remote_keys] cooldown` (30 s by default): no refetch happens sooner.
        assert_eq!(a.retry_after.as_deref(), Some("30"));
        assert_eq!(
            a.body,
            minimal(json!("keys_unavailable"), engine.policy().revision())
        );
    }

    #[tokio::test]
    async fn internal_is_500_without_a_challenge() {
        let key = TestKey::es256("k1");
        let engine = reference(&key);
        // A requirement naming a rule the policy lacks cannot be checked: it fails closed.
        let layer =
            PolicyLayer::new(engine.clone()).require(Requirement::new().rule("no-such-rule"));
        let base = protected(layer, engine.clone().into()).await;
        let a = get_bearer(&format!("{base}/mcp/tools"), &key.sign(&live(json!({})))).await;
        assert_eq!(a.status, 500, "{}", a.text);
        assert_eq!(a.challenge, None);
        assert_eq!(a.retry_after, None);
        assert_eq!(
            a.body,
            minimal(json!("internal"), engine.policy().revision())
        );
    }

    #[tokio::test]
    async fn remote_keys_are_fetched_for_the_request_that_needs_them() {
        let key = TestKey::es256("k1");
        let server = KeyServer::start().await;
        server.set("/jwks", Reply::json(jwks(&[&key])));
        let text = replace(
            &keycard_policy(&[&key]),
            &format!("jwks = '''{}'''", jwks(&[&key])),
            &format!("jwks_url = \"{}\"", server.url("/jwks")),
        );
        // `build` fetches nothing: the layer's `evaluate_async_with` has to.
        let engine = engine(&text, CTX);
        let base = protected(PolicyLayer::new(engine.clone()), engine.into()).await;
        let a = get_bearer(&format!("{base}/mcp/tools"), &key.sign(&live(json!({})))).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(server.hits("/jwks"), 1);
    }

    #[tokio::test]
    async fn the_full_decision_body_is_opt_in_and_never_holds_the_token() {
        let key = TestKey::es256("k1");
        let engine = reference(&key);
        let token = key.sign(&live(json!({ "exp": now() - 3600 })));
        let minimal_base = protected(PolicyLayer::new(engine.clone()), engine.clone().into()).await;
        let a = get_bearer(&format!("{minimal_base}/mcp/tools"), &token).await;
        assert_eq!(
            a.body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["policy_revision", "reason", "verdict"]
        );
        let full = PolicyLayer::new(engine.clone()).deny_body(DenyBody::Decision);
        let full_base = protected(full, engine.clone().into()).await;
        let a = get_bearer(&format!("{full_base}/mcp/tools"), &token).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body["reason"], "expired");
        assert_eq!(a.body["reasons"], json!(["expired"]));
        assert_eq!(a.body["policy_revision"], engine.policy().revision());
        let exp = a.body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["rule"] == "exp")
            .unwrap();
        assert_eq!(exp["outcome"], "failed");
        assert!(!a.text.contains(&token), "the body repeats the token");
        let (_, signature) = token.rsplit_once('.').unwrap();
        assert!(!a.text.contains(signature));
        // Still the same challenge.
        assert!(
            a.challenge()
                .starts_with("Bearer error=\"invalid_token\", error_description=\"expired: ")
        );
    }
}

mod metadata {
    use super::*;

    #[tokio::test]
    async fn the_document_is_served_at_the_path_inserted_well_known_url() {
        let key = TestKey::es256("k1");
        let text = replace(
            &keycard_policy(&[&key]),
            "[resource]\n",
            "[resource]\nname = \"Example MCP server\"\ndocumentation = \"https://docs.example.com/mcp\"\n",
        );
        let engine = engine(&text, CTX);
        let base = protected(PolicyLayer::new(engine.clone()), engine.into()).await;
        let a = get_with(
            &format!("{base}/.well-known/oauth-protected-resource/mcp"),
            &[],
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            a.body,
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ZONE],
                "scopes_supported": ["mcp:tools", "mcp:resources", "mcp:prompts"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example MCP server",
                "resource_documentation": "https://docs.example.com/mcp",
            })
        );
        // Not behind the layer: no token needed.
        assert_eq!(a.challenge, None);
    }

    #[tokio::test]
    async fn a_resource_without_a_path_has_its_document_at_the_well_known_root() {
        let key = TestKey::es256("k1");
        let api = "https://api.example.com";
        let text = replace(
            &replace(
                &keycard_policy(&[&key]),
                "resource_url = \"https://mcp.example.com/mcp\"",
                &format!("resource_url = \"{api}\""),
            ),
            "scopes_supported = [\"mcp:tools\", \"mcp:resources\", \"mcp:prompts\"]\n",
            "",
        );
        let engine = engine(&text, CTX);
        let base = protected(PolicyLayer::new(engine.clone()), engine.into()).await;
        let a = get_with(&format!("{base}/.well-known/oauth-protected-resource"), &[]).await;
        assert_eq!(a.status, 200, "{}", a.text);
        // No `scopes_supported` in the policy: none in the document.
        assert_eq!(
            a.body,
            json!({
                "resource": api,
                "authorization_servers": [ZONE],
                "bearer_methods_supported": ["header"],
            })
        );
        let a = get_with(&format!("{base}/mcp/tools"), &[]).await;
        assert_eq!(
            a.challenge(),
            "Bearer resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\""
        );
        let token = key.sign(&live(json!({ "aud": api })));
        assert_eq!(
            get_bearer(&format!("{base}/mcp/tools"), &token)
                .await
                .status,
            200
        );
    }
}

mod routes {
    use super::*;

    #[tokio::test]
    async fn a_per_route_requirement_adds_its_scopes_to_the_policy_s() {
        let key = TestKey::es256("k1");
        let engine = reference(&key);
        let admin = PolicyLayer::new(engine.clone()).require(Requirement::new().scope("mcp:admin"));
        let app = Router::new()
            .route("/admin", get(whoami))
            .route_layer(admin)
            .merge(
                Router::new()
                    .route("/mcp/tools", get(whoami))
                    .route_layer(PolicyLayer::new(engine.clone())),
            );
        let base = serve(app).await;
        let tools_only = key.sign(&live(json!({})));
        assert_eq!(
            get_bearer(&format!("{base}/mcp/tools"), &tools_only)
                .await
                .status,
            200
        );
        let a = get_bearer(&format!("{base}/admin"), &tools_only).await;
        assert_eq!(a.status, 403, "{}", a.text);
        assert_eq!(
            a.challenge(),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\", resource_metadata=\"{M}\""
            )
        );
        let both = key.sign(&live(json!({ "scope": "mcp:tools mcp:admin" })));
        assert_eq!(
            get_bearer(&format!("{base}/admin"), &both).await.status,
            200
        );
    }

    /// The reference policy with `[[routes]]`: `/admin` needs `mcp:admin`, `/v1/admin` needs
    /// `mcp:v1`.
    fn routed(key: &TestKey) -> PolicyEngine {
        let text = format!(
            "{}\n[[routes]]\npath = \"/admin\"\nscopes = [\"mcp:admin\"]\n\n[[routes]]\npath = \"/v1/admin\"\nscopes = [\"mcp:v1\"]\n",
            keycard_policy(&[key])
        );
        engine(&text, CTX)
    }

    #[tokio::test]
    async fn requirements_come_from_the_policy_s_routes() {
        let key = TestKey::es256("k1");
        let engine = routed(&key);
        let app = Router::new()
            .route("/mcp/tools", get(whoami))
            .route("/admin/{*rest}", any(whoami))
            .layer(PolicyLayer::new(engine.clone()).routes_from_policy());
        let base = serve(app).await;
        let tools_only = key.sign(&live(json!({})));
        assert_eq!(
            get_bearer(&format!("{base}/mcp/tools"), &tools_only)
                .await
                .status,
            200
        );
        let a = get_bearer(&format!("{base}/admin/users"), &tools_only).await;
        assert_eq!(a.status, 403, "{}", a.text);
        assert_eq!(
            a.challenge(),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\", resource_metadata=\"{M}\""
            )
        );
        let both = key.sign(&live(json!({ "scope": "mcp:tools mcp:admin" })));
        assert_eq!(
            get_bearer(&format!("{base}/admin/users"), &both)
                .await
                .status,
            200
        );
        // `/administrator` is not under `/admin`.
        assert_eq!(
            get_bearer(&format!("{base}/administrator"), &tools_only)
                .await
                .status,
            404
        );
    }

    #[tokio::test]
    async fn a_path_that_could_mean_another_is_400_before_the_token_is_read() {
        let key = TestKey::es256("k1");
        let engine = routed(&key);
        let app = Router::new()
            .route("/mcp/tools", get(whoami))
            .layer(PolicyLayer::new(engine.clone()).routes_from_policy());
        let base = serve(app).await;
        let both = key.sign(&live(json!({ "scope": "mcp:tools mcp:admin" })));
        for path in ["/admin%2Fusers", "//admin", "/%61dmin"] {
            for headers in [vec![], vec![("authorization", format!("Bearer {both}"))]] {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let a = get_with(&format!("{base}{path}"), &headers).await;
                assert_eq!(a.status, 400, "{path}: {}", a.text);
                assert_eq!(
                    a.challenge(),
                    format!(
                        "Bearer error=\"invalid_request\", error_description=\"the request path could be read as another path\", resource_metadata=\"{M}\""
                    )
                );
                assert_eq!(
                    a.body,
                    minimal(json!("invalid_request"), engine.policy().revision())
                );
            }
        }
    }

    #[tokio::test]
    async fn a_nested_router_matches_routes_on_the_original_path() {
        let key = TestKey::es256("k1");
        let engine = routed(&key);
        let inner = Router::new()
            .route("/admin", get(whoami))
            .layer(PolicyLayer::new(engine.clone()).routes_from_policy());
        let base = serve(Router::new().nest("/v1", inner)).await;
        let tools_only = key.sign(&live(json!({})));
        // The inner router sees `/admin`; the route for `/v1/admin` applies, not `/admin`'s.
        let a = get_bearer(&format!("{base}/v1/admin"), &tools_only).await;
        assert_eq!(a.status, 403, "{}", a.text);
        assert!(
            a.challenge().contains("scope=\"mcp:tools mcp:v1\""),
            "{a:?}"
        );
    }
}

mod extractors {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Caller {
        sub: String,
        client_id: String,
        scope: String,
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct NeedsTenant {
        tenant: String,
    }

    #[tokio::test]
    async fn a_handler_gets_the_claims_in_its_own_type() {
        let key = TestKey::es256("k1");
        let engine = reference(&key);
        let app = Router::new()
            .route(
                "/me",
                get(|VerifiedClaims(caller): VerifiedClaims<Caller>| async move {
                    Json(json!({ "sub": caller.sub, "client": caller.client_id, "scope": caller.scope }))
                }),
            )
            .route_layer(PolicyLayer::new(engine));
        let base = serve(app).await;
        let a = get_bearer(&format!("{base}/me"), &key.sign(&live(json!({})))).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.body,
            json!({ "sub": "user-123", "client": "client-abc", "scope": "mcp:tools mcp:resources" })
        );
    }

    #[tokio::test]
    async fn claims_that_do_not_fit_the_service_s_type_are_500() {
        let key = TestKey::es256("k1");
        let engine = reference(&key);
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        let app = Router::new()
            .route(
                "/tenant",
                get(move |_: VerifiedClaims<NeedsTenant>| async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "ran"
                }),
            )
            .route_layer(PolicyLayer::new(engine.clone()));
        let base = serve(app).await;
        let a = get_bearer(&format!("{base}/tenant"), &key.sign(&live(json!({})))).await;
        assert_eq!(a.status, 500, "{}", a.text);
        assert_eq!(a.challenge, None);
        assert_eq!(
            a.body,
            minimal(json!("claims_do_not_fit"), engine.policy().revision())
        );
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_handler_without_the_layer_in_front_gets_500_and_never_runs() {
        let ran = Arc::new(AtomicUsize::new(0));
        let (c1, c2) = (ran.clone(), ran.clone());
        let app = Router::new()
            .route(
                "/who",
                get(move |_: Authorized| async move {
                    c1.fetch_add(1, Ordering::SeqCst);
                    "ran"
                }),
            )
            .route(
                "/claims",
                get(move |_: VerifiedClaims<Value>| async move {
                    c2.fetch_add(1, Ordering::SeqCst);
                    "ran"
                }),
            );
        let base = serve(app).await;
        let key = TestKey::es256("k1");
        let token = key.sign(&live(json!({})));
        for path in ["/who", "/claims"] {
            let a = get_bearer(&format!("{base}{path}"), &token).await;
            assert_eq!(a.status, 500, "{path}");
            assert_eq!(
                a.body,
                json!({ "verdict": "deny", "reason": "no_policy_layer", "policy_revision": null })
            );
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}

mod reload {
    use super::*;

    #[tokio::test]
    async fn a_replaced_engine_decides_the_next_request() {
        let key = TestKey::es256("k1");
        let shared = SharedEngine::new(reference(&key));
        let base = protected(PolicyLayer::new(shared.clone()), shared.clone()).await;
        let url = format!("{base}/mcp/tools");
        let token = key.sign(&live(json!({})));
        let before = get_bearer(&url, &token).await;
        assert_eq!(before.status, 200, "{}", before.text);
        // The new policy also requires `mcp:admin`.
        let stricter = replace(
            &keycard_policy(&[&key]),
            "required = [\"mcp:tools\"]",
            "required = [\"mcp:tools\", \"mcp:admin\"]",
        );
        let next = engine(&stricter, CTX);
        let revision = next.policy().revision().to_owned();
        shared.replace(next);
        let after = get_bearer(&url, &token).await;
        assert_eq!(after.status, 403, "{}", after.text);
        assert_eq!(after.body, minimal(json!("insufficient_scope"), &revision));
        assert_ne!(
            before.body["policy_revision"],
            after.body["policy_revision"]
        );
        assert!(after.challenge().contains("scope=\"mcp:tools mcp:admin\""));
    }
}
