//! A protected JSON API with axum: `/mcp/tools` needs what the reference policy requires,
//! `/mcp/prompts` also needs the `mcp:prompts` scope, and the RFC 9728 metadata is served at
//! `/.well-known/oauth-protected-resource/mcp`.
//!
//! The shipped demo tokens are frozen in time, so this generates an Ed25519 key at start-up,
//! trusts only it for the reference policy's issuer, and prints two freshly signed tokens (one
//! without `mcp:prompts`) and the `curl` lines to try.
//!
//! ```text
//! cargo run --example axum_api [-- 127.0.0.1:3000]
//! ```

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_policy::http::axum::{Authorized, PolicyLayer, VerifiedClaims, metadata_router};
use jwt_policy::{KeySet, Policy, PolicyEngine, Requirement, StaticKeys};
use serde_json::{Value, json};

/// The reference policy's issuer (its authorization zone).
const ZONE: &str = "https://abc123.keycard.cloud";
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");

    // The reference policy, with this server as the resource.
    let resource = format!("{base}/mcp");
    let text = std::fs::read_to_string(format!("{POLICIES}/keycard-mcp.toml"))?
        .replace("https://mcp.example.com/mcp", &resource);
    let policy = Policy::from_toml("keycard-mcp.toml", text, POLICIES)?;

    // A key made now; the engine trusts only it for the zone (not the demo JWKS file).
    let key = Ed25519KeyPair::generate()?;
    let kid = "axum-api-demo";
    let jwks = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
    }]});
    let keys = KeySet::from_jwks(jwks.to_string().as_bytes())?;
    let engine = PolicyEngine::builder(policy)
        .context("credential.key_id", "axum-api-demo-server")
        .key_source(ZONE, Arc::new(StaticKeys::new(keys)))
        .build()?;

    let app = Router::new()
        .route("/mcp/tools", get(tools))
        .route_layer(PolicyLayer::new(engine.clone()))
        .merge(
            Router::new()
                .route("/mcp/prompts", get(prompts))
                .route_layer(
                    PolicyLayer::new(engine.clone())
                        .require(Requirement::new().scope("mcp:prompts")),
                ),
        )
        .merge(metadata_router(engine));

    let sign = |scope: &str| -> Result<String, Box<dyn std::error::Error>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
        let claims = json!({
            "iss": ZONE, "sub": "demo-user", "aud": resource, "client_id": "demo-client",
            "scope": scope, "iat": now, "exp": now + 3600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes());
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    };
    println!("listening on {base} (tokens valid for an hour)\n");
    println!("TOKEN={}", sign("mcp:tools mcp:prompts")?);
    println!("TOOLS_ONLY={}\n", sign("mcp:tools")?);
    println!(
        "curl -i {base}/mcp/tools                                      # 401, names the metadata"
    );
    println!("curl -i {base}/.well-known/oauth-protected-resource/mcp        # the metadata");
    println!("curl -i -H \"Authorization: Bearer $TOKEN\" {base}/mcp/tools      # 200");
    println!(
        "curl -i -H \"Authorization: Bearer $TOOLS_ONLY\" {base}/mcp/prompts  # 403, scope=..."
    );
    axum::serve(listener, app).await?;
    Ok(())
}

/// Needs what the policy requires; shows who called.
async fn tools(who: Authorized) -> Json<Value> {
    Json(json!({
        "tools": ["search", "fetch"],
        "client_id": who.client_id(),
        "scopes": who.scopes(),
    }))
}

/// The claims this service reads, in its own type.
#[derive(serde::Deserialize)]
struct Caller {
    sub: String,
    client_id: String,
}

/// Also needs `mcp:prompts`.
async fn prompts(VerifiedClaims(caller): VerifiedClaims<Caller>) -> Json<Value> {
    Json(json!({ "prompts": ["summarize"], "for": caller.sub, "via": caller.client_id }))
}
