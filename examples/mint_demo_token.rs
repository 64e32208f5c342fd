//! Regenerates the demo files beside the reference policy: fresh keys for the three algorithms it
//! allows, their public JWKS (`policies/keycard-mcp.jwks.json`) and tokens signed with the ES256
//! key (`policies/demo/*.jwt`). The private keys are thrown away, so nothing secret is ever
//! committed.
//!
//! ```text
//! cargo run --example mint_demo_token
//! ```

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use support::{NOW, RESOURCE, TestKey, ZONE, jwks};

fn main() -> std::io::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let key = TestKey::es256("demo-es256-2026");
    let rsa = TestKey::rsa("demo-rs256-2026", "RS256", 0);
    let ed = TestKey::ed25519("demo-eddsa-2026");
    std::fs::write(
        format!("{root}/keycard-mcp.jwks.json"),
        jwks(&[&rsa, &key, &ed]) + "\n",
    )?;
    let base = json!({
        "iss": ZONE,
        "sub": "user-123",
        "exp": NOW + 3600,
        "iat": NOW - 60,
        "scope": "mcp:tools mcp:resources",
        "client_id": "mcp-inspector",
        "jti": "demo-1",
    });
    let with = |changes: serde_json::Value| {
        let mut claims = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        key.sign(&claims) + "\n"
    };
    // A PKCE token of the zone: aud is the zone, the resource is named in `resource`.
    std::fs::write(
        format!("{root}/demo/zone-audience.jwt"),
        with(json!({ "aud": ZONE, "resource": RESOURCE })),
    )?;
    // The confused deputy: a zone token for another resource.
    std::fs::write(
        format!("{root}/demo/other-resource.jwt"),
        with(json!({ "aud": ZONE, "resource": "https://other.example.com/mcp" })),
    )?;
    // aud is this resource.
    std::fs::write(
        format!("{root}/demo/resource-audience.jwt"),
        with(json!({ "aud": RESOURCE })),
    )?;
    println!("wrote {root}/keycard-mcp.jwks.json and {root}/demo/*.jwt (valid at --now {NOW})");
    Ok(())
}
