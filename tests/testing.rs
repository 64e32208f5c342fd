//! `jwt_policy::testing`: a service's own tests reach allow, 401 and 403 from a shipped policy
//! with test issuers standing in for its issuers' keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use jwt_policy::testing::{TestIssuers, TestingError};
use jwt_policy::{Algorithm, Policy, PolicyEngine, Reason, UnixTime};
use serde_json::{Value, json};

const NOW: i64 = 1_767_225_600;
const ZONE: &str = "https://abc123.keycard.cloud";
const RESOURCE: &str = "https://mcp.example.com/mcp";

fn keycard() -> Policy {
    Policy::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/keycard-mcp.toml"
    ))
    .unwrap()
}

fn setup() -> (TestIssuers, PolicyEngine) {
    let policy = keycard();
    let issuers = TestIssuers::new(&policy).unwrap();
    let engine = issuers
        .engine_builder(policy)
        .context("credential.key_id", "k1")
        .build()
        .unwrap();
    (issuers, engine)
}

fn claims() -> Value {
    json!({ "aud": RESOURCE, "client_id": "c1", "scope": "mcp:tools" })
}

fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}

fn reason(engine: &PolicyEngine, token: &str, at: i64) -> Option<Reason> {
    let decision = engine.evaluate_at(token, UnixTime::from_secs(at));
    assert_eq!(decision.is_allowed(), decision.reason().is_none());
    decision.reason()
}

#[test]
fn a_minted_token_is_allowed() {
    let (issuers, engine) = setup();
    assert_eq!(issuers.algorithm(ZONE).unwrap(), Algorithm::ES256);
    let token = issuers.mint(ZONE, claims(), now()).unwrap();
    let decision = engine.evaluate_at(&token, now());
    assert!(decision.is_allowed(), "{}", decision.explain());
    assert_eq!(decision.principal().client_id.as_deref(), Some("c1"));
    assert_eq!(decision.principal().issuer.as_deref(), Some(ZONE));
}

#[test]
fn expired_and_wrong_audience_tokens_are_401() {
    let (issuers, engine) = setup();
    let token = issuers.mint(ZONE, claims(), now()).unwrap();
    // Ten minutes, plus the policy's 30 s leeway.
    assert_eq!(reason(&engine, &token, NOW + 629), None);
    assert_eq!(reason(&engine, &token, NOW + 630), Some(Reason::Expired));
    assert_eq!(Reason::Expired.http_status(), 401);

    let token = issuers
        .token(ZONE)
        .unwrap()
        .claims(claims())
        .claims(json!({ "aud": "https://other.example.com" }))
        .sign(now())
        .unwrap();
    let r = reason(&engine, &token, NOW).unwrap();
    assert_eq!(r, Reason::AudienceMismatch);
    assert_eq!(r.http_status(), 401);

    // A default claim left out: the policy requires `exp`.
    let token = issuers
        .token(ZONE)
        .unwrap()
        .claims(claims())
        .without("exp")
        .sign(now())
        .unwrap();
    assert_eq!(reason(&engine, &token, NOW), Some(Reason::MissingClaim));
}

#[test]
fn a_missing_scope_is_403() {
    let (issuers, engine) = setup();
    let token = issuers
        .mint(
            ZONE,
            json!({ "aud": RESOURCE, "client_id": "c1", "scope": "mcp:prompts" }),
            now(),
        )
        .unwrap();
    let r = reason(&engine, &token, NOW).unwrap();
    assert_eq!(r, Reason::InsufficientScope);
    assert_eq!(r.http_status(), 403);
}

#[test]
fn header_overrides_are_signed_as_given() {
    let (issuers, engine) = setup();
    let token = issuers
        .token(ZONE)
        .unwrap()
        .claims(claims())
        .header(json!({ "typ": "JWT" }))
        .sign(now())
        .unwrap();
    assert_eq!(reason(&engine, &token, NOW), Some(Reason::InvalidType));
    let token = issuers
        .token(ZONE)
        .unwrap()
        .claims(claims())
        .header(json!({ "kid": "nope" }))
        .sign(now())
        .unwrap();
    assert_eq!(reason(&engine, &token, NOW), Some(Reason::KeyNotFound));
}

#[test]
fn the_policy_keys_are_not_used_and_another_issuer_is_refused() {
    let policy = keycard();
    let issuers = TestIssuers::new(&policy).unwrap();
    // An engine built without the test issuers does not know their keys.
    let plain = PolicyEngine::builder(policy)
        .context("credential.key_id", "k1")
        .build()
        .unwrap();
    let token = issuers.mint(ZONE, claims(), now()).unwrap();
    assert!(!plain.evaluate_at(&token, now()).is_allowed());

    assert_eq!(
        issuers.mint("https://other.example", claims(), now()),
        Err(TestingError::UnknownIssuer("https://other.example".into()))
    );
    let err = issuers.mint(ZONE, json!([1]), now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the claims must be a JSON object; found `[1]`"
    );
}

#[test]
fn each_issuer_gets_a_key_for_an_algorithm_it_allows_and_hmac_issuers_a_secret() {
    let text = r#"
version = 1

[resource]
url = "https://api.example.com"

[[issuers]]
iss = "https://internal.example.com"
algorithms = ["HS256"]
hmac_secrets = [{ env = "JWT_POLICY_TESTING_NEVER_SET", kid = "2026-01" }]

[[issuers]]
iss = "https://rsa.example.com"
algorithms = ["PS256", "RS256"]
jwks_url = "https://rsa.example.com/jwks.json"

[[issuers]]
iss = "https://ed.example.com"
algorithms = ["EdDSA", "ES384"]
jwks_url = "https://ed.example.com/jwks.json"

[audience]
accept = [{ value = "https://api.example.com" }]
"#;
    let policy = Policy::from_toml("hs.toml", text, env!("CARGO_MANIFEST_DIR")).unwrap();
    let issuers = TestIssuers::new(&policy).unwrap();
    // Neither the unset variable nor the network is used.
    let engine = issuers.engine_builder(policy).build().unwrap();
    for (iss, alg) in [
        ("https://internal.example.com", Algorithm::HS256),
        ("https://rsa.example.com", Algorithm::RS256),
        ("https://ed.example.com", Algorithm::EdDSA),
    ] {
        assert_eq!(issuers.algorithm(iss).unwrap(), alg);
        assert_eq!(
            issuers.keys(iss).unwrap().is_none(),
            alg == Algorithm::HS256
        );
        let token = issuers
            .mint(
                iss,
                json!({ "aud": "https://api.example.com", "client_id": "c1" }),
                now(),
            )
            .unwrap();
        let decision = engine.evaluate_at(&token, now());
        assert!(decision.is_allowed(), "{iss}: {}", decision.explain());
    }
    // A token of one issuer signed by another's key is refused.
    let token = issuers
        .token("https://rsa.example.com")
        .unwrap()
        .claims(json!({ "aud": "https://api.example.com", "client_id": "c1", "iss": "https://ed.example.com" }))
        .sign(now())
        .unwrap();
    assert_eq!(
        engine.evaluate_at(&token, now()).reason(),
        Some(Reason::AlgorithmNotAllowed)
    );
}
