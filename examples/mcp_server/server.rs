//! The MCP server of the example, in a module of its own so that `tests/mcp_example.rs` runs the
//! very same code (it includes this file with `#[path]`).
//!
//! * `POST`/`GET`/`DELETE /mcp`: MCP over streamable HTTP (`rmcp`), behind a [`PolicyLayer`]
//!   deciding with the reference policy (`policies/keycard-mcp.toml`) for the resource
//!   `http://127.0.0.1:PORT/mcp`.
//! * `GET /.well-known/oauth-protected-resource/mcp`: its RFC 9728 metadata, no token needed.
//! * One tool, `whoami`: the client id of the token that called it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::Router;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_policy::http::axum::{Authorized, PolicyLayer, metadata_router};
use jwt_policy::{KeySet, Policy, PolicyEngine, StaticKeys};
use rmcp::handler::server::tool::Extension;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde_json::json;

/// Anything that stops the server from starting.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The reference policy's issuer (its authorization zone).
pub(crate) const ZONE: &str = "https://abc123.keycard.cloud";
/// Where the reference policy lives (its `jwks_file` is resolved there, though unused here).
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
/// The resource URL the shipped reference policy names, replaced by this server's.
const REFERENCE_RESOURCE: &str = "https://mcp.example.com/mcp";
/// This server's own client id, for the policy's `[resource_client_id]` (which refuses the
/// `ua:` ids that change on every restart).
const SERVER_KEY_ID: &str = "mcp-server-demo";

/// The signing side of the demo: an Ed25519 key made at start-up. The server trusts only this
/// key for the zone, so tokens from anywhere else (the shipped demo tokens included) are refused.
#[derive(Clone)]
pub(crate) struct DemoIssuer {
    key: Arc<Ed25519KeyPair>,
}

impl DemoIssuer {
    /// The `kid` of the key.
    const KID: &str = "mcp-server-demo-key";

    /// A fresh key.
    fn generate() -> Result<Self, Error> {
        Ok(Self {
            key: Arc::new(Ed25519KeyPair::generate()?),
        })
    }

    /// The public key, as the engine trusts it.
    fn key_set(&self) -> Result<KeySet, Error> {
        let jwks = json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": Self::KID,
            "x": URL_SAFE_NO_PAD.encode(self.key.public_key().as_ref()),
        }]});
        Ok(KeySet::from_jwks(jwks.to_string().as_bytes())?)
    }

    /// An access token of the zone (`at+jwt`, scope `mcp:tools`, valid for an hour) for
    /// `audience`, naming `resource` (RFC 8707) when given, on behalf of `client_id`.
    pub(crate) fn token(
        &self,
        audience: &str,
        resource: Option<&str>,
        client_id: &str,
    ) -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": Self::KID });
        let mut claims = json!({
            "iss": ZONE, "sub": "demo-user", "aud": audience, "client_id": client_id,
            "scope": "mcp:tools", "iat": now, "exp": now + 3600,
        });
        if let (Some(resource), Some(map)) = (resource, claims.as_object_mut()) {
            map.insert("resource".to_owned(), resource.into());
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(input.as_bytes());
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// The server, bound and ready to serve.
pub(crate) struct McpServer {
    listener: tokio::net::TcpListener,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its resource URL, `http://ADDR/mcp` (the policy's `[resource] url`).
    pub(crate) resource: String,
    /// The key it trusts.
    pub(crate) issuer: DemoIssuer,
    app: Router,
}

impl McpServer {
    /// Binds `127.0.0.1:port` (0: a free port) and builds the server for that address.
    pub(crate) async fn bind(port: u16) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let resource = format!("http://{addr}/mcp");
        let issuer = DemoIssuer::generate()?;
        let engine = engine(&resource, &issuer)?;

        let mcp = StreamableHttpService::new(
            || Ok(WhoAmI),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let app = Router::new()
            .route_service("/mcp", mcp)
            // Every request to `/mcp` (`initialize`, each call, the event stream, `DELETE`)
            // carries its own token and is decided on its own.
            .route_layer(PolicyLayer::new(engine.clone()))
            .merge(metadata_router(engine));
        Ok(Self {
            listener,
            addr,
            resource,
            issuer,
            app,
        })
    }

    /// Serves until the process ends.
    pub(crate) async fn serve(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.app).await
    }
}

/// The reference policy with `resource` as its resource, trusting only `issuer`'s key for the
/// zone.
fn engine(resource: &str, issuer: &DemoIssuer) -> Result<PolicyEngine, Error> {
    let text = std::fs::read_to_string(format!("{POLICIES}/keycard-mcp.toml"))?
        .replace(REFERENCE_RESOURCE, resource);
    let policy = Policy::from_toml("keycard-mcp.toml", text, POLICIES)?;
    if policy.resource_url() != resource {
        return Err(format!(
            "policies/keycard-mcp.toml no longer names `{REFERENCE_RESOURCE}` as its resource"
        )
        .into());
    }
    let keys = StaticKeys::new(issuer.key_set()?);
    Ok(PolicyEngine::builder(policy)
        .context("credential.key_id", SERVER_KEY_ID)
        .key_source(ZONE, Arc::new(keys))
        .build()?)
}

/// The MCP server's tools.
#[derive(Debug, Clone, Copy)]
struct WhoAmI;

#[tool_router]
impl WhoAmI {
    /// rmcp hands each tool call the HTTP request that carried it; the layer put its allowing
    /// decision there.
    #[tool(description = "The client id of the caller, as its access token names it")]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> Result<String, ErrorData> {
        // Without a layer in front, fail closed rather than answer for nobody.
        let who = parts.extensions.get::<Authorized>().ok_or_else(|| {
            ErrorData::internal_error("no policy layer in front of the tool", None)
        })?;
        // The policy requires a client id (`[client_id] required = true`).
        who.client_id()
            .map(str::to_owned)
            .ok_or_else(|| ErrorData::internal_error("the allowed token names no client", None))
    }
}

#[tool_handler(
    name = "jwt-policy-mcp-demo",
    instructions = "Call `whoami` to see which client id your access token names"
)]
impl ServerHandler for WhoAmI {}
