//! A real nginx (`auth_request`) in front of a small service, asking `jwt-policy serve` about
//! every request, with the configuration the README shows (taken from the README itself, only
//! the addresses changed), driven by a real HTTP client.
//!
//! Needs `/usr/sbin/nginx` (Debian's `nginx-light`, which `.ci/run` installs).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/serve.rs"]
mod serve_process;
mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use serve_process::{Serve, closed_port};
use support::*;

const NGINX: &str = "/usr/sbin/nginx";

/// The README's nginx configuration: what goes in `http { }`.
fn readme_config() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = "<!-- tested by tests/nginx.rs -->\n```nginx\n";
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md lacks `{marker}`"))
        + marker.len();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_owned()
}

/// nginx, started in the foreground with a configuration of its own in a temporary directory;
/// stopped (SIGTERM, then SIGKILL) when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    prefix: PathBuf,
}

impl Nginx {
    /// Starts nginx listening on a free port of 127.0.0.1, with `http` as its `http { }` body.
    fn start(dir: &Path, http: &str, listen: &str) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install Debian's `nginx-light` (`.ci/run` does: apt-get install -y nginx-light)"
        );
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix).unwrap();
        // Worker processes run as `nobody` when started by root: they must reach the temp paths.
        for path in [dir, prefix.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let p = prefix.display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {p}/access.log;\n\
             client_body_temp_path {p}/client_body;\nproxy_temp_path {p}/proxy;\n\
             fastcgi_temp_path {p}/fastcgi;\nuwsgi_temp_path {p}/uwsgi;\nscgi_temp_path {p}/scgi;\n\
             {http}\n}}\n"
        );
        std::fs::write(prefix.join("nginx.conf"), config).unwrap();
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = listen.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status}:\n{log}");
            }
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "nginx does not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            addr,
            prefix,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would leave them running).
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The protected service: answers every request with what it received (method, URI and the
/// `X-Auth-*` headers) as JSON.
async fn start_service() -> SocketAddr {
    async fn echo(method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap) -> String {
        let auth: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-auth-"))
            .map(|(name, value)| (name.as_str().to_owned(), json!(value.to_str().unwrap())))
            .collect();
        json!({ "method": method.as_str(), "uri": uri.to_string(), "headers": auth }).to_string()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(echo))
            .await
            .unwrap();
    });
    addr
}

/// Replaces `from` with `to` in the README's configuration, insisting that it is there.
#[track_caller]
fn set(config: &str, from: &str, to: &str) -> String {
    assert!(
        config.contains(from),
        "the README's nginx configuration lacks `{from}`"
    );
    config.replace(from, to)
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
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

async fn get(nginx: &Nginx, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(nginx.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

const M: &str =
    "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"";

/// Another issuer whose keys cannot be fetched: its tokens are answered 503.
const OFFLINE: &str = "https://offline.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_in_front_of_a_service() {
    let key = TestKey::rsa("k1", "RS256", 0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), jwks(&[&key])).unwrap();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/keycard-mcp.toml"
    ))
    .unwrap();
    let offline_keys = format!("http://127.0.0.1:{}/jwks.json", closed_port());
    let policy = replace(
        &shipped,
        "jwks_file = \"keycard-mcp.jwks.json\"",
        "jwks_file = \"keys.json\"",
    ) + &format!(
        "\n[[issuers]]\niss = \"{OFFLINE}\"\nalgorithms = [\"RS256\"]\njwks_url = \"{offline_keys}\"\n\n\
             [remote_keys]\nstartup = \"lazy\"\ncooldown = \"5s\"\ntimeout = \"1s\"\n\n\
             [[routes]]\npath = \"/admin\"\nscopes = [\"mcp:admin\"]\n\n\
             [forward]\nheaders = [{{ claim = \"tid\", header = \"X-Auth-Tenant\" }}]\n"
    );
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let serve = Serve::spawn(
        [
            "--policy",
            policy_path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--now",
            &NOW.to_string(),
            "--context",
            "credential.key_id=stable-1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
    )
    .await;
    let service = start_service().await;
    let listen = format!("127.0.0.1:{}", closed_port());
    let config = readme_config();
    let config = set(
        &config,
        "server 127.0.0.1:8080;",
        &format!("server {};", serve.addr),
    );
    let config = set(
        &config,
        "server 127.0.0.1:3000;",
        &format!("server {service};"),
    );
    let config = set(&config, "listen 80;", &format!("listen {listen};"));
    let nginx = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || Nginx::start(&dir, &config, &listen)
    })
    .await
    .unwrap();

    let token = |changes: Value| {
        key.sign(&with_changes(
            claims_with(json!({ "tid": "tenant-7" })),
            changes,
        ))
    };
    let bearer = |token: String| format!("Bearer {token}");

    // Allowed: the service sees who is calling, in headers only nginx could have set.
    let good = bearer(token(json!({})));
    let a = get(
        &nginx,
        "/mcp/tools?page=2",
        &[("authorization", &good), ("x-auth-subject", "admin")],
    )
    .await;
    assert_eq!(a.status, 200, "{}\n{}", a.body, nginx.error_log());
    let seen = a.json();
    assert_eq!(seen["uri"], "/mcp/tools?page=2");
    assert_eq!(
        seen["headers"],
        json!({
            "x-auth-subject": "user-123",
            "x-auth-client-id": "client-abc",
            "x-auth-scopes": "mcp:tools mcp:resources",
            "x-auth-issuer": ZONE,
            "x-auth-audience": RESOURCE,
            "x-auth-policy-revision": jwt_policy::Policy::from_file(&policy_path).unwrap().revision(),
            "x-auth-tenant": "tenant-7",
        })
    );
    // An absent value: no header, and not the client's own.
    let a = get(
        &nginx,
        "/mcp/tools",
        &[
            ("authorization", &bearer(token(json!({ "tid": null })))),
            ("x-auth-tenant", "other"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["headers"].get("x-auth-tenant"), None);

    // No token: 401 with the challenge naming the metadata; a client's own identity headers
    // do not get it in.
    let a = get(&nginx, "/mcp/tools", &[("x-auth-subject", "admin")]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(format!("Bearer {M}").as_str())
    );
    // An invalid token: 401 invalid_token.
    let a = get(
        &nginx,
        "/mcp/tools",
        &[(
            "authorization",
            &bearer(token(json!({ "exp": NOW - 3600 }))),
        )],
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(format!("Bearer error=\"invalid_token\", error_description=\"expired: the token has expired\", {M}").as_str())
    );

    // The route's scope, read from X-Original-URI: 403 with the scopes the request needs.
    let a = get(&nginx, "/admin/users", &[("authorization", &good)]).await;
    assert_eq!(a.status, 403, "{}", nginx.error_log());
    assert_eq!(
        a.header("www-authenticate"),
        Some(
            format!("Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\", {M}")
                .as_str()
        )
    );
    // A client cannot name another route for itself.
    let a = get(
        &nginx,
        "/admin/users",
        &[
            ("authorization", &good),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/mcp"),
        ],
    )
    .await;
    assert_eq!(a.status, 403);
    let admin = bearer(token(json!({ "scope": "mcp:tools mcp:admin" })));
    let a = get(&nginx, "/admin/users", &[("authorization", &admin)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["headers"]["x-auth-scopes"], "mcp:tools mcp:admin");

    // 400 and 503 keep their status (auth_request alone would make them 500).
    // (`%61` is an encoded `a`: nginx decodes it to match its locations, the URI keeps it.)
    let a = get(&nginx, "/%61dmin/users", &[("authorization", &good)]).await;
    assert_eq!(a.status, 400, "{}", nginx.error_log());
    assert_eq!(
        a.header("www-authenticate"),
        Some(format!("Bearer error=\"invalid_request\", error_description=\"the request path could be read as another path\", {M}").as_str())
    );
    let offline = bearer(token(json!({ "iss": OFFLINE })));
    let a = get(&nginx, "/mcp/tools", &[("authorization", &offline)]).await;
    assert_eq!(a.status, 503, "{}", nginx.error_log());
    assert_eq!(a.header("retry-after"), Some("5"));
    assert_eq!(a.header("www-authenticate"), None);

    // The RFC 9728 metadata, without a token.
    let a = get(&nginx, "/.well-known/oauth-protected-resource/mcp", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["resource"], RESOURCE);
    assert_eq!(a.json()["authorization_servers"], json!([ZONE, OFFLINE]));
    drop(serve);
}
