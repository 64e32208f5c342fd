//! `jwt-policy serve`, the forward-auth server, as a real process on 127.0.0.1 (ephemeral ports)
//! driven by a real HTTP client: the status table of `/auth`, the identity and `[forward]`
//! headers, the metadata, health, readiness and metrics endpoints, reloads (file changes,
//! SIGHUP, under load), graceful shutdown, and the logs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/serve.rs"]
mod serve_process;
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Value, json};
use serve_process::{Serve, closed_port, metric};
use support::http::{KeyServer, Reply};
use support::*;

/// The metadata URL of the reference policy's resource.
const M: &str =
    "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"";

/// What the tests add to the reference policy: a route needing `mcp:admin` (and more for
/// `DELETE`), and a `[forward]` claim.
const ROUTES: &str = r#"
[[routes]]
path = "/admin"
scopes = ["mcp:admin"]

[[routes]]
path = "/admin"
methods = ["DELETE"]
scopes = ["mcp:admin", "mcp:delete"]

[forward]
headers = [{ claim = "tid", header = "X-Auth-Tenant" }]
"#;

/// A directory holding the reference policy (its keys in `keys.json` beside it) with [`ROUTES`].
struct Setup {
    dir: tempfile::TempDir,
    key: TestKey,
}

impl Setup {
    fn new() -> Self {
        let key = TestKey::rsa("k1", "RS256", 0);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.json"), jwks(&[&key])).unwrap();
        let setup = Self { dir, key };
        setup.write_policy(&setup.policy_text(""));
        setup
    }

    /// The reference policy with its keys from `keys.json`, [`ROUTES`] and `extra`.
    fn policy_text(&self, extra: &str) -> String {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/keycard-mcp.toml"
        ))
        .unwrap();
        replace(
            &shipped,
            "jwks_file = \"keycard-mcp.jwks.json\"",
            "jwks_file = \"keys.json\"",
        ) + ROUTES
            + extra
    }

    fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    /// Replaces the policy atomically (a new file renamed over it, as editors and deployments do).
    fn write_policy(&self, text: &str) {
        let tmp = self.dir.path().join(".policy.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policy()).unwrap();
    }

    /// The revision of the policy as it is on disk.
    fn revision(&self) -> String {
        jwt_policy::Policy::from_file(self.policy())
            .unwrap_or_else(|e| panic!("{e}"))
            .revision()
            .to_owned()
    }

    /// `--policy`, an ephemeral port, the fixed clock and the context, then `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--policy",
            self.policy().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--now",
            &NOW.to_string(),
            "--context",
            "credential.key_id=stable-1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    fn start(&self, extra: &[&str]) -> Serve {
        Serve::start(&self.args(extra))
    }

    /// A token the reference policy allows at `NOW`, with `changes` and a tenant.
    fn token(&self, changes: Value) -> String {
        let claims = with_changes(claims_with(json!({ "tid": "tenant-7" })), changes);
        self.key.sign(&claims)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A response's status, headers and body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn get(serve: &Serve, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(&client(), serve, reqwest::Method::GET, path, headers).await
}

async fn send(
    client: &reqwest::Client,
    serve: &Serve,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client.request(method, serve.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET /auth` with these headers.
async fn auth(serve: &Serve, headers: &[(&str, &str)]) -> Answer {
    get(serve, "/auth", headers).await
}

fn minimal(reason: Option<&str>, revision: &str) -> Value {
    json!({ "verdict": "deny", "reason": reason, "policy_revision": revision })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_status_table_through_auth() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    assert_ne!(serve.addr.port(), 0, "the real port is printed");
    let rev = setup.revision();
    let good = format!("Bearer {}", setup.token(json!({})));

    // No credentials: 401, a challenge naming the metadata and no error.
    let a = auth(&serve, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(format!("Bearer {M}").as_str())
    );
    assert_eq!(a.json(), minimal(None, &rev));
    assert_eq!(a.header("x-auth-subject"), None);
    // Another scheme is no credentials too.
    let a = auth(&serve, &[("authorization", "Basic dXNlcjpwdw==")]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(format!("Bearer {M}").as_str())
    );

    // Malformed requests: 400 invalid_request.
    let bad = |description: &str| {
        format!("Bearer error=\"invalid_request\", error_description=\"{description}\", {M}")
    };
    let a = auth(&serve, &[("authorization", "Bearer")]).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.header("www-authenticate"),
        Some(bad("the bearer credentials hold no token").as_str())
    );
    assert_eq!(a.json(), minimal(Some("invalid_request"), &rev));
    let a = auth(
        &serve,
        &[("authorization", &good), ("authorization", &good)],
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.header("www-authenticate"),
        Some(bad("several authorization headers").as_str())
    );
    for (method, uri) in [
        ("X-Forwarded-Method", "X-Forwarded-Uri"),
        ("X-Original-Method", "X-Original-URI"),
    ] {
        for path in ["/mcp/../admin", "/admin/%2e%2e/mcp", "//admin", "/%61dmin"] {
            let a = auth(
                &serve,
                &[("authorization", &good), (method, "GET"), (uri, path)],
            )
            .await;
            assert_eq!(a.status, 400, "{uri}: {path}");
            assert_eq!(
                a.header("www-authenticate"),
                Some(bad("the request path could be read as another path").as_str()),
                "{uri}: {path}"
            );
            assert_eq!(a.header("x-auth-subject"), None);
        }
    }

    // A token not valid here: 401 invalid_token with the reason code.
    let expired = setup.token(json!({ "exp": NOW - 3600 }));
    let a = auth(&serve, &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"expired: the token has expired\", {M}"
            )
            .as_str()
        )
    );
    assert_eq!(a.json(), minimal(Some("expired"), &rev));
    assert!(!a.body.contains(&expired));

    // A valid token lacking the route's scope: 403 naming the policy's and the route's scopes.
    for (method, uri) in [
        ("X-Forwarded-Method", "X-Forwarded-Uri"),
        ("X-Original-Method", "X-Original-URI"),
    ] {
        let a = auth(
            &serve,
            &[
                ("authorization", &good),
                (method, "GET"),
                (uri, "/admin/users?x=1"),
            ],
        )
        .await;
        assert_eq!(a.status, 403, "{uri}");
        assert_eq!(
            a.header("www-authenticate"),
            Some(
                format!("Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\", {M}")
                    .as_str()
            )
        );
        assert_eq!(a.json(), minimal(Some("insufficient_scope"), &rev));
        // The route listing the method is more specific.
        let a = auth(
            &serve,
            &[
                ("authorization", &good),
                (method, "DELETE"),
                (uri, "/admin"),
            ],
        )
        .await;
        assert_eq!(a.status, 403);
        assert_eq!(
            a.header("www-authenticate"),
            Some(
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin mcp:delete\", {M}"
                )
                .as_str()
            )
        );
    }
    // Outside the route, and without any original URI, only the policy's own requirements.
    let a = auth(
        &serve,
        &[
            ("authorization", &good),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/administrator"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    let a = auth(&serve, &[("authorization", &good)]).await;
    assert_eq!(a.status, 200);

    // Allowed: every identity header and the `[forward]` header.
    let admin = setup.token(json!({ "scope": "mcp:tools mcp:admin" }));
    let a = auth(
        &serve,
        &[
            ("authorization", &format!("Bearer {admin}")),
            ("X-Original-Method", "POST"),
            ("X-Original-URI", "/admin/users"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-auth-subject"), Some("user-123"));
    assert_eq!(a.header("x-auth-client-id"), Some("client-abc"));
    assert_eq!(a.header("x-auth-scopes"), Some("mcp:tools mcp:admin"));
    assert_eq!(a.header("x-auth-issuer"), Some(ZONE));
    assert_eq!(a.header("x-auth-audience"), Some(RESOURCE));
    assert_eq!(a.header("x-auth-policy-revision"), Some(rev.as_str()));
    assert_eq!(a.header("x-auth-tenant"), Some("tenant-7"));
    assert_eq!(a.header("www-authenticate"), None);
    assert_eq!(a.json()["verdict"], "allow");
    // Absent values set no header.
    let anonymous = setup.token(json!({ "sub": null, "tid": null }));
    let a = auth(&serve, &[("authorization", &format!("Bearer {anonymous}"))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-auth-subject"), None);
    assert_eq!(a.header("x-auth-tenant"), None);
    assert_eq!(a.header("x-auth-client-id"), Some("client-abc"));

    // Any method reaches /auth (Envoy sends the original one), and so do paths below it
    // (Envoy appends the original path to its `path_prefix`).
    let a = send(
        &client(),
        &serve,
        reqwest::Method::POST,
        "/auth",
        &[("authorization", &good)],
    )
    .await;
    assert_eq!(a.status, 200);
    let a = get(&serve, "/auth/mcp/tools", &[("authorization", &good)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        get(&serve, "/elsewhere", &[("authorization", &good)])
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_request_must_be_told_once_and_whole() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    let good = format!("Bearer {}", setup.token(json!({})));
    let description = "the original request method and uri are missing or ambiguous";
    let bad = format!("Bearer error=\"invalid_request\", error_description=\"{description}\", {M}");
    let refused: [&[(&str, &str)]; 6] = [
        // A URI without its method: which routes apply is unknown.
        &[("X-Forwarded-Uri", "/admin")],
        &[("X-Original-URI", "/admin")],
        // Two accounts that disagree: a client may have sent one of them through the proxy.
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/mcp"),
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/admin"),
        ],
        // The same header twice.
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/mcp"),
            ("X-Forwarded-Uri", "/admin"),
        ],
        // Not a method, or one a route listing `DELETE` would not match while a server might
        // still read it as `DELETE`.
        &[("X-Forwarded-Method", "G T"), ("X-Forwarded-Uri", "/mcp")],
        &[
            ("X-Forwarded-Method", "delete"),
            ("X-Forwarded-Uri", "/admin"),
        ],
    ];
    for headers in refused {
        let mut all = vec![("authorization", good.as_str())];
        all.extend_from_slice(headers);
        let a = auth(&serve, &all).await;
        assert_eq!(a.status, 400, "{headers:?}");
        assert_eq!(
            a.header("www-authenticate"),
            Some(bad.as_str()),
            "{headers:?}"
        );
    }
    // Both accounts, agreeing: fine.
    let a = auth(
        &serve,
        &[
            ("authorization", &good),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/mcp"),
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/mcp"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_claim_that_is_not_printable_ascii_is_refused() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    for (tid, shown) in [
        (json!("t\u{e9}"), "\\u{e9}"),
        (json!("a\nb"), "\\n"),
        (json!({"x": 1}), "an object"),
    ] {
        let token = setup.token(json!({ "tid": tid }));
        let a = auth(&serve, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(a.status, 401, "{tid}");
        assert_eq!(
            a.header("www-authenticate"),
            Some(
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"invalid_claim: a claim is not accepted\", {M}"
                )
                .as_str()
            )
        );
        assert_eq!(a.header("x-auth-tenant"), None);
        assert_eq!(a.header("x-auth-subject"), None);
        assert_eq!(a.json(), minimal(Some("invalid_claim"), &setup.revision()));
        // The log names the claim, the header and what is wrong.
        assert!(
            serve.wait_for_log(Duration::from_secs(5), |l| l
                .contains("claim `tid` cannot be forwarded as header `X-Auth-Tenant`")
                && l.contains(shown)),
            "{:#?}",
            serve.logs()
        );
    }
    // Nor an identity header: a subject a header cannot carry, or a scope with a space.
    let token = setup.token(json!({ "sub": "us\u{e9}r" }));
    let a = auth(&serve, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["reason"], "invalid_claim");
    assert!(serve.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("claim `sub` cannot be forwarded as header `X-Auth-Subject`")
    }));
    let token = setup.token(json!({ "scope": null, "scp": ["mcp:tools", "read admin"] }));
    let a = auth(&serve, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(a.status, 401);
    assert!(serve.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("cannot be forwarded as header `X-Auth-Scopes`")
    }));
    // With full deny bodies, the decision says so too.
    let serve = setup.start(&["--full-deny-body"]);
    let token = setup.token(json!({ "tid": "t\u{e9}" }));
    let a = auth(&serve, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(a.status, 401);
    let body = a.json();
    assert_eq!(body["reason"], "invalid_claim");
    let check = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "forward:X-Auth-Tenant")
        .unwrap();
    assert_eq!(check["outcome"], "failed");
    assert!(
        check["detail"].as_str().unwrap().contains("claim `tid`"),
        "{check}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_deny_bodies_are_the_decision_only_when_asked_for() {
    let setup = Setup::new();
    let expired = setup.token(json!({ "exp": NOW - 3600 }));
    let serve = setup.start(&[]);
    let a = auth(&serve, &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_eq!(a.json(), minimal(Some("expired"), &setup.revision()));
    let serve = setup.start(&["--full-deny-body"]);
    let a = auth(&serve, &[("authorization", &format!("Bearer {expired}"))]).await;
    let body = a.json();
    assert_eq!(body["reason"], "expired");
    assert_eq!(body["client_id"], "client-abc");
    assert!(body["checks"].as_array().unwrap().len() > 5);
    assert!(!a.body.contains(&expired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_unavailable_is_503_with_retry_after() {
    let setup = Setup::new();
    let url = format!("http://127.0.0.1:{}/jwks.json", closed_port());
    setup.write_policy(
        &setup
            .policy_text(
                "\n[remote_keys]\nstartup = \"lazy\"\ncooldown = \"7s\"\ntimeout = \"1s\"\n",
            )
            .replace(
                "jwks_file = \"keys.json\"",
                &format!("jwks_url = \"{url}\""),
            ),
    );
    let serve = setup.start(&[]);
    let token = setup.token(json!({}));
    let a = auth(&serve, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("www-authenticate"), None);
    assert_eq!(a.header("retry-after"), Some("7"));
    assert_eq!(
        a.json(),
        minimal(Some("keys_unavailable"), &setup.revision())
    );
    assert_eq!(get(&serve, "/readyz", &[]).await.status, 503);
    assert_eq!(get(&serve, "/healthz", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_health_and_readiness() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    let a = get(&serve, "/.well-known/oauth-protected-resource/mcp", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.json(),
        json!({
            "resource": RESOURCE,
            "authorization_servers": [ZONE],
            "scopes_supported": ["mcp:tools", "mcp:resources", "mcp:prompts"],
            "bearer_methods_supported": ["header"],
        })
    );
    let head = send(
        &client(),
        &serve,
        reqwest::Method::HEAD,
        "/.well-known/oauth-protected-resource/mcp",
        &[],
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(
        get(&serve, "/.well-known/oauth-protected-resource", &[])
            .await
            .status,
        404
    );
    let health = get(&serve, "/healthz", &[]).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    // Static keys: ready from the start.
    let ready = get(&serve, "/readyz", &[]).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
}

/// A policy whose issuer's keys come from `url`, fetched lazily.
fn remote_policy(setup: &Setup, url: &str, remote_keys: &str) -> String {
    setup
        .policy_text(&format!("\n[remote_keys]\n{remote_keys}\n"))
        .replace(
            "jwks_file = \"keys.json\"",
            &format!("jwks_url = \"{url}\""),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_remote_keys_and_metrics_count_the_fetches() {
    let setup = Setup::new();
    let keys = KeyServer::start().await;
    keys.set("/jwks.json", Reply::status(503));
    setup.write_policy(&remote_policy(
        &setup,
        &keys.url("/jwks.json"),
        "startup = \"lazy\"\ncooldown = \"1s\"",
    ));
    let serve = Serve::spawn(setup.args(&[])).await;

    let ready = get(&serve, "/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body,
        format!("keys unavailable for issuer `{ZONE}`\n")
    );
    // The first probe started the fetching; it fails until the key server answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while keys.hits("/jwks.json") == 0 {
        assert!(Instant::now() < deadline, "no fetch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    keys.set("/jwks.json", Reply::json(jwks(&[&setup.key])).max_age(3600));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = get(&serve, "/readyz", &[]).await;
        if ready.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = setup.token(json!({}));
    assert_eq!(
        auth(&serve, &[("authorization", &format!("Bearer {token}"))])
            .await
            .status,
        200
    );

    let text = get(&serve, "/metrics", &[]).await.body;
    let fetches = |result: &str| {
        metric(
            &text,
            &format!("jwt_policy_key_fetches_total{{issuer=\"{ZONE}\",result=\"{result}\"}}"),
        )
    };
    assert!(fetches("failure").unwrap() >= 1.0, "{text}");
    assert_eq!(fetches("success"), Some(1.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_durations_and_reloads() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    let metrics = || async { get(&serve, "/metrics", &[]).await };
    let m = metrics().await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // Counters with labels appear with their first count; these are there from the start.
    for name in [
        "# TYPE jwt_policy_decision_duration_seconds histogram",
        "# TYPE jwt_policy_reloads_total counter",
    ] {
        assert!(m.body.contains(name), "{name} in\n{}", m.body);
    }
    assert_eq!(
        metric(&m.body, "jwt_policy_decision_duration_seconds_count"),
        Some(0.0)
    );
    let good = format!("Bearer {}", setup.token(json!({})));
    let expired = format!("Bearer {}", setup.token(json!({ "exp": NOW - 3600 })));
    for headers in [
        vec![("authorization", good.as_str())],
        vec![("authorization", good.as_str())],
        vec![("authorization", expired.as_str())],
        vec![],
        vec![("authorization", "Bearer")],
        vec![
            ("authorization", good.as_str()),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/admin"),
        ],
    ] {
        auth(&serve, &headers).await;
    }
    let text = metrics().await.body;
    assert!(
        text.contains("# TYPE jwt_policy_decisions_total counter"),
        "{text}"
    );
    let decisions = |verdict: &str, reason: &str| {
        metric(
            &text,
            &format!("jwt_policy_decisions_total{{verdict=\"{verdict}\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(decisions("allow", "none"), Some(2.0), "{text}");
    assert_eq!(decisions("deny", "expired"), Some(1.0), "{text}");
    assert_eq!(decisions("deny", "no_credentials"), Some(1.0), "{text}");
    assert_eq!(decisions("deny", "invalid_request"), Some(1.0), "{text}");
    assert_eq!(decisions("deny", "insufficient_scope"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "jwt_policy_decision_duration_seconds_count"),
        Some(6.0),
        "{text}"
    );
    assert!(metric(&text, "jwt_policy_decision_duration_seconds_sum").unwrap() > 0.0);
    assert_eq!(
        metric(&text, "jwt_policy_reloads_total{result=\"success\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "jwt_policy_reloads_total{result=\"failure\"}"),
        Some(0.0),
        "{text}"
    );

    // A reload, then a policy that does not compile.
    setup.write_policy(&setup.policy_text("\n# edited\n"));
    let reloaded = setup.revision();
    wait_for_revision(&serve, &good, &reloaded).await;
    setup.write_policy("[resource\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics().await.body;
        if metric(&text, "jwt_policy_reloads_total{result=\"failure\"}") == Some(1.0) {
            assert_eq!(
                metric(&text, "jwt_policy_reloads_total{result=\"success\"}"),
                Some(1.0),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed reload counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The running policy stays.
    let a = auth(&serve, &[("authorization", &good)]).await;
    assert_eq!(a.header("x-auth-policy-revision"), Some(reloaded.as_str()));
}

/// Asks `/auth` with `authorization` until the answer names `revision` (at most 10 s).
async fn wait_for_revision(serve: &Serve, authorization: &str, revision: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = auth(serve, &[("authorization", authorization)]).await;
        if a.header("x-auth-policy-revision") == Some(revision) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "revision {revision} never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_takes_effect_and_an_invalid_one_is_logged_and_ignored() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    let good = format!("Bearer {}", setup.token(json!({})));
    assert_eq!(auth(&serve, &[("authorization", &good)]).await.status, 200);
    // Require a scope the token lacks: the change is in effect within seconds.
    setup.write_policy(&replace(
        &setup.policy_text(""),
        "required = [\"mcp:tools\"]",
        "required = [\"mcp:tools\", \"mcp:prompts\"]",
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = auth(&serve, &[("authorization", &good)]).await;
        if a.status == 403 {
            assert_eq!(a.json()["policy_revision"], setup.revision());
            break;
        }
        assert!(Instant::now() < deadline, "the change never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An invalid policy: logged with its located diagnostics; the running one stays.
    let running = setup.revision();
    setup.write_policy(&setup.policy_text("\n[tyme]\nleeway = \"30s\"\n"));
    assert!(
        serve.wait_for_log(Duration::from_secs(10), |l| l
            .contains("policy reload failed")),
        "{:#?}",
        serve.logs()
    );
    let logs = serve.logs().join("\n");
    assert!(logs.contains("error[unknown-key]"), "{logs}");
    assert!(logs.contains("policy.toml:"), "{logs}");
    let a = auth(&serve, &[("authorization", &good)]).await;
    assert_eq!(
        (a.status, a.json()["policy_revision"].as_str()),
        (403, Some(running.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_now_and_does_not_stop_the_server() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    let good = format!("Bearer {}", setup.token(json!({})));
    let first = setup.revision();
    serve.signal("HUP");
    assert!(
        serve.wait_for_log(Duration::from_secs(10), |l| {
            l.contains(&format!("SIGHUP: policy unchanged, revision `{first}`"))
        }),
        "{:#?}",
        serve.logs()
    );
    let a = auth(&serve, &[("authorization", &good)]).await;
    assert_eq!(
        (a.status, a.header("x-auth-policy-revision")),
        (200, Some(first.as_str()))
    );

    // Written, then SIGHUP at once: the reload does not wait for the watcher's quiet period.
    setup.write_policy(&setup.policy_text("\n# by sighup\n"));
    let second = setup.revision();
    serve.signal("HUP");
    assert!(
        serve.wait_for_log(Duration::from_secs(10), |l| {
            l.contains(&format!("SIGHUP: policy reloaded, revision `{second}`"))
        }),
        "{:#?}",
        serve.logs()
    );
    let a = auth(&serve, &[("authorization", &good)]).await;
    assert_eq!(a.header("x-auth-policy-revision"), Some(second.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_fails_no_request() {
    let setup = Setup::new();
    let serve = Arc::new(setup.start(&[]));
    let good = format!("Bearer {}", setup.token(json!({})));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (serve, good, stop, done) = (serve.clone(), good.clone(), stop.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            let mut failures = Vec::new();
            let mut revisions = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let a = send(
                    &client,
                    &serve,
                    reqwest::Method::GET,
                    "/auth",
                    &[("authorization", &good)],
                )
                .await;
                if a.status == 200 {
                    revisions.insert(a.header("x-auth-policy-revision").unwrap().to_owned());
                } else {
                    failures.push(format!("{} {}", a.status, a.body));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (failures, revisions)
        }));
    }
    for i in 0..30 {
        let text = if i == 15 {
            // Once, a policy that does not compile.
            setup.policy_text("\n[audience\n")
        } else {
            setup.policy_text(&format!("\n# edit {i}\n"))
        };
        setup.write_policy(&text);
        tokio::time::sleep(Duration::from_millis(if i % 5 == 0 { 400 } else { 60 })).await;
    }
    setup.write_policy(&setup.policy_text("\n# final\n"));
    let last = setup.revision();
    wait_for_revision(&serve, &good, &last).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        let (failures, revisions) = client.await.unwrap();
        assert_eq!(failures, Vec::<String>::new());
        seen.extend(revisions);
    }
    assert!(
        done.load(Ordering::Relaxed) > 100,
        "only {} requests",
        done.load(Ordering::Relaxed)
    );
    assert!(seen.contains(&last));
    assert!(seen.len() >= 3, "the clients saw {} revisions", seen.len());
    let text = get(&serve, "/metrics", &[]).await.body;
    assert!(
        metric(&text, "jwt_policy_reloads_total{result=\"failure\"}").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "jwt_policy_reloads_total{result=\"success\"}").unwrap() >= 3.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let setup = Setup::new();
    let keys = KeyServer::start().await;
    // The key server holds the first (lazy) fetch for two seconds.
    keys.set(
        "/jwks.json",
        Reply::json(jwks(&[&setup.key])).delayed(Duration::from_secs(2)),
    );
    setup.write_policy(&setup.policy_text("\n[remote_keys]\nstartup = \"lazy\"\n"));
    let url = keys.url("/jwks.json");
    let mut serve = Serve::spawn(setup.args(&["--jwks-url", &url])).await;
    let addr = serve.addr;
    let token = setup.token(json!({}));
    let in_flight = tokio::spawn(async move {
        client()
            .get(format!("http://{addr}/auth"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while keys.hits("/jwks.json") == 0 {
        assert!(Instant::now() < deadline, "the request never fetched keys");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.signal("TERM");
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-auth-policy-revision"]
            .to_str()
            .unwrap(),
        setup.revision()
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = serve.wait(Duration::from_secs(20));
        (status, serve.stderr(), serve.logs())
    })
    .await
    .unwrap();
    let (status, stderr, logs) = status;
    let status = status.unwrap_or_else(|| panic!("still running:\n{stderr:#?}\n{logs:#?}"));
    assert_eq!(status.code(), Some(0), "{stderr:#?}\n{logs:#?}");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn a_request_that_never_ends_does_not_hold_the_shutdown() {
    use std::io::Write;
    let setup = Setup::new();
    let mut serve = setup.start(&["--shutdown-grace", "1"]);
    // Half a request: the server waits for the rest.
    let mut stalled = std::net::TcpStream::connect(serve.addr).unwrap();
    stalled
        .write_all(b"GET /auth HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    serve.signal("TERM");
    let status = serve.wait(Duration::from_secs(20)).expect("still running");
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() >= Duration::from_secs(1));
    assert!(
        serve.wait_for_log(Duration::from_secs(2), |l| l
            .contains("requests still in flight 1 s after the signal")),
        "{:#?}",
        serve.logs()
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_line_per_decision_without_the_token() {
    let setup = Setup::new();
    let serve = Serve::start_with_env(
        &setup.args(&["--log-format", "json"]),
        &[("RUST_LOG", "debug")],
    );
    let token = setup.token(json!({ "secret_claim": "do-not-log-me" }));
    let expired = setup.token(json!({ "exp": NOW - 3600, "secret_claim": "do-not-log-me" }));
    let a = auth(
        &serve,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/mcp/tools?access_token=abc"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    let a = auth(&serve, &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_eq!(a.status, 401);
    assert!(serve.wait_for_log(Duration::from_secs(5), |l| l.contains("\"expired\"")));
    let logs = serve.logs();
    let lines: Vec<Value> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 2, "{logs:#?}");
    let allow = decisions[0];
    assert_eq!(allow["level"], "INFO");
    assert!(allow["timestamp"].is_string());
    assert_eq!(allow["verdict"], "allow");
    assert_eq!(allow["reason"], "none");
    assert_eq!(allow["status"], 200);
    assert_eq!(allow["client_id"], "client-abc");
    assert_eq!(allow["subject"], "user-123");
    assert_eq!(allow["issuer"], ZONE);
    assert_eq!(allow["policy_revision"], setup.revision());
    assert_eq!(allow["method"], "POST");
    // The path, not the query (it may carry secrets).
    assert_eq!(allow["path"], "/mcp/tools");
    assert!(allow["duration_ms"].as_f64().unwrap() > 0.0);
    let deny = decisions[1];
    assert_eq!(
        (
            deny["verdict"].as_str(),
            deny["reason"].as_str(),
            deny["status"].as_i64()
        ),
        (Some("deny"), Some("expired"), Some(401))
    );
    // At debug, the whole decision, as JSON.
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"
            && l["decision"]
                .as_str()
                .is_some_and(|d| d.contains("\"checks\""))),
        "{logs:#?}"
    );
    let all = logs.join("\n");
    for secret in [
        &token,
        &expired,
        token.rsplit('.').next().unwrap(),
        "do-not-log-me",
        "access_token=abc",
    ] {
        assert!(!all.contains(secret), "the logs hold `{secret}`");
    }
    assert!(
        serve.stderr().iter().all(|l| l.starts_with("listening on")),
        "{:#?}",
        serve.stderr()
    );
}

#[test]
fn text_logs_are_readable_lines() {
    let setup = Setup::new();
    let serve = setup.start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = setup.token(json!({ "sub": "user\nINFO forged line" }));
    // Refused: a header cannot carry the subject.
    let a = runtime.block_on(auth(
        &serve,
        &[("authorization", &format!("Bearer {token}"))],
    ));
    assert_eq!(a.status, 401);
    assert!(serve.wait_for_log(Duration::from_secs(5), |l| l.contains(" decision ")));
    let logs = serve.logs();
    let line = logs.iter().find(|l| l.contains(" decision ")).unwrap();
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("verdict=deny")
            && line.contains("reason=invalid_claim")
            && line.contains("status=401"),
        "{line}"
    );
    // A value from the token cannot start a line of its own.
    assert!(line.contains("subject=user\\nINFO forged line"), "{line}");
    assert!(!logs.iter().any(|l| l.starts_with("INFO forged line")));
}

#[test]
fn errors_before_start_exit_2() {
    let setup = Setup::new();
    // An invalid policy: the located diagnostics.
    let bad = setup.dir.path().join("bad.toml");
    std::fs::write(&bad, setup.policy_text("\n[tyme]\nleeway = \"30s\"\n")).unwrap();
    let mut args = setup.args(&[]);
    args[1] = bad.to_str().unwrap().to_owned();
    let (code, stderr) = Serve::try_start(&args, &[]).err().unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("error[unknown-key]") && stderr.contains("bad.toml:"),
        "{stderr}"
    );
    // The server's own client id is missing.
    let args: Vec<String> = setup.args(&[])[..6].to_vec();
    let (code, stderr) = Serve::try_start(&args, &[]).err().unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("help: pass `--context credential.key_id=VALUE`"),
        "{stderr}"
    );
    // The address is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut args = setup.args(&[]);
    args[3] = addr.clone();
    let (code, stderr) = Serve::try_start(&args, &[]).err().unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on `{addr}`")),
        "{stderr}"
    );
    // A bad clock, a bad key URL, a bad log filter.
    for (extra, env, message) in [
        (
            vec!["--now", "soon"],
            vec![],
            "`--now soon` is not a time in Unix seconds",
        ),
        (
            vec!["--jwks-url", "http://keys.example.com/jwks.json"],
            vec![],
            "plain http only from a loopback host",
        ),
        (
            vec![],
            vec![("RUST_LOG", "info,jwt_policy=loud")],
            "`RUST_LOG`",
        ),
    ] {
        let mut args = setup.args(&[]);
        if extra.first() == Some(&"--now") {
            args[5] = extra[1].to_owned();
        } else {
            args.extend(extra.iter().map(|s| (*s).to_owned()));
        }
        let (code, stderr) = Serve::try_start(&args, &env).err().unwrap();
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(message), "{message} in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_decision_cache() {
    let setup = Setup::new();
    setup.write_policy(&setup.policy_text("\n[cache]\nenabled = true\n"));
    let serve = setup.start(&[]);
    let good = format!("Bearer {}", setup.token(json!({})));
    let expired = format!("Bearer {}", setup.token(json!({ "exp": NOW - 3600 })));
    for authorization in [&good, &good, &expired, &good] {
        auth(&serve, &[("authorization", authorization)]).await;
    }
    let text = get(&serve, "/metrics", &[]).await.body;
    let cache = |event: &str| {
        metric(
            &text,
            &format!("jwt_policy_decision_cache_total{{event=\"{event}\"}}"),
        )
    };
    assert!(
        text.contains("# TYPE jwt_policy_decision_cache_total counter"),
        "{text}"
    );
    // The good token is decided once, then answered from the cache; the expired one is not
    // cached.
    assert_eq!(cache("hit"), Some(2.0), "{text}");
    assert_eq!(cache("miss"), Some(2.0), "{text}");
    assert_eq!(cache("insert"), Some(1.0), "{text}");
    assert_eq!(cache("eviction"), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "jwt_policy_decision_cache_entries"),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(&text, "jwt_policy_decision_cache_bytes").unwrap() > 1000.0,
        "{text}"
    );

    // A reload starts a new, empty cache; the counters add up what each engine did.
    setup.write_policy(&setup.policy_text("\n[cache]\nenabled = true\n# edited\n"));
    wait_for_revision(&serve, &good, &setup.revision()).await;
    let text = get(&serve, "/metrics", &[]).await.body;
    let misses = metric(&text, "jwt_policy_decision_cache_total{event=\"miss\"}").unwrap();
    assert!(misses >= 3.0, "{text}");
    assert_eq!(
        metric(&text, "jwt_policy_decision_cache_entries"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_policy_is_decided_beside_counted_and_logged_never_enforced() {
    let setup = Setup::new();
    // The candidate: the same policy, but every request needs `mcp:admin` too.
    let candidate = setup.dir.path().join("candidate.toml");
    std::fs::write(
        &candidate,
        replace(
            &setup.policy_text(""),
            "required = [\"mcp:tools\"]",
            "required = [\"mcp:tools\", \"mcp:admin\"]",
        ),
    )
    .unwrap();
    let serve = Serve::start_with_env(
        &setup.args(&[
            "--shadow-policy",
            candidate.to_str().unwrap(),
            "--log-format",
            "json",
        ]),
        &[],
    );
    let good = format!("Bearer {}", setup.token(json!({})));
    let admin = format!(
        "Bearer {}",
        setup.token(json!({ "scope": "mcp:tools mcp:admin" }))
    );
    let expired = format!("Bearer {}", setup.token(json!({ "exp": NOW - 3600 })));
    // In effect: the policy of `--policy` only. The candidate would refuse `good`.
    assert_eq!(auth(&serve, &[("authorization", &good)]).await.status, 200);
    assert_eq!(auth(&serve, &[("authorization", &admin)]).await.status, 200);
    assert_eq!(
        auth(&serve, &[("authorization", &expired)]).await.status,
        401
    );
    // The candidate's own routes apply: `/admin` (DELETE) needs `mcp:delete` in both.
    let deleting = auth(
        &serve,
        &[
            ("authorization", &admin),
            ("X-Forwarded-Method", "DELETE"),
            ("X-Forwarded-Uri", "/admin/x"),
        ],
    )
    .await;
    assert_eq!(deleting.status, 403);
    assert!(serve.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("the shadow policy disagrees")
    }));
    // The comparison runs after the answer: wait for all four to be counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = get(&serve, "/metrics", &[]).await.body;
        if metric(&text, "jwt_policy_shadow_decisions_total") == Some(4.0)
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metric(&text, "jwt_policy_shadow_decisions_total"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "jwt_policy_shadow_disagreements_total{active=\"allow\",candidate=\"insufficient_scope\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // Agreements (the admin token, the expired one, the refused DELETE) are not disagreements.
    assert_eq!(
        text.matches("jwt_policy_shadow_disagreements_total{")
            .count(),
        1,
        "{text}"
    );
    let logs = serve.logs();
    let disagreements: Vec<Value> = logs
        .iter()
        .filter(|l| l.contains("the shadow policy disagrees"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(disagreements.len(), 1, "{logs:?}");
    let line = &disagreements[0];
    assert_eq!(line["active"], "allow", "{line}");
    assert_eq!(line["candidate"], "insufficient_scope", "{line}");
    assert_eq!(line["subject"], "user-123", "{line}");
    assert!(
        !line.to_string().contains(&good[7..]),
        "the token is never logged"
    );
}

#[test]
fn an_invalid_shadow_policy_stops_serve_from_starting() {
    let setup = Setup::new();
    let candidate = setup.dir.path().join("candidate.toml");
    std::fs::write(&candidate, "[time]\nleway = 30\n").unwrap();
    let args = setup.args(&["--shadow-policy", candidate.to_str().unwrap()]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
        .arg("serve")
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `leway`"), "{err}");
    assert!(
        err.contains(&format!(
            "the shadow policy `{}` cannot be used",
            candidate.display()
        )),
        "{err}"
    );
}
