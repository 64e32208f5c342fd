//! Real keys and real tokens for tests: keys are generated with aws-lc-rs, tokens are signed here,
//! byte for byte, so tests can also build tokens no well-behaved library would produce.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// Integration tests of the command only (not the examples that share this module).
#[cfg(all(test, feature = "cli"))]
pub mod command;
pub mod http;

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// base64url without padding.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Secret {
    Rsa(&'static RsaKeyPair),
    Ec(EcdsaKeyPair, &'static signature::EcdsaSigningAlgorithm),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A signing key with its public JWK.
pub(crate) struct TestKey {
    pub kid: String,
    /// The JWS `alg` this key signs with.
    pub alg: &'static str,
    secret: Secret,
    /// The public JWK (empty object for HMAC).
    pub jwk: Value,
}

/// RSA key generation is slow: two 2048-bit keys per test process, shared.
fn rsa_pair(slot: usize) -> &'static RsaKeyPair {
    static KEYS: [OnceLock<RsaKeyPair>; 2] = [OnceLock::new(), OnceLock::new()];
    KEYS[slot].get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
}

impl TestKey {
    /// An RSA key (`RS256`, `RS384`, `RS512`, `PS256`, `PS384` or `PS512`). `slot` 0 or 1 picks
    /// one of two shared key pairs.
    pub(crate) fn rsa(kid: &str, alg: &'static str, slot: usize) -> Self {
        let pair = rsa_pair(slot);
        let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwk = json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e) });
        Self {
            kid: kid.into(),
            alg,
            secret: Secret::Rsa(pair),
            jwk,
        }
    }

    /// A P-256 (`ES256`) key.
    pub(crate) fn es256(kid: &str) -> Self {
        Self::ec(
            kid,
            "ES256",
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            "P-256",
        )
    }

    /// A P-384 (`ES384`) key.
    pub(crate) fn es384(kid: &str) -> Self {
        Self::ec(
            kid,
            "ES384",
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            "P-384",
        )
    }

    fn ec(
        kid: &str,
        alg: &'static str,
        sa: &'static signature::EcdsaSigningAlgorithm,
        crv: &str,
    ) -> Self {
        let pair = EcdsaKeyPair::generate(sa).unwrap();
        let point = pair.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        let jwk = json!({
            "kty": "EC", "kid": kid, "crv": crv,
            "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..]),
        });
        Self {
            kid: kid.into(),
            alg,
            secret: Secret::Ec(pair, sa),
            jwk,
        }
    }

    /// An Ed25519 (`EdDSA`) key.
    pub(crate) fn ed25519(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({ "kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) });
        Self {
            kid: kid.into(),
            alg: "EdDSA",
            secret: Secret::Ed(pair),
            jwk,
        }
    }

    /// An HMAC key (`HS256`, `HS384`, `HS512`) with this secret.
    pub(crate) fn hmac(kid: &str, alg: &'static str, secret: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            alg,
            secret: Secret::Hmac(secret.to_vec()),
            jwk: json!({}),
        }
    }

    /// The JWK with its `alg` member set.
    pub(crate) fn jwk_with_alg(&self) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["alg"] = json!(self.alg);
        jwk
    }

    /// The raw signature over `input` with this key's `alg`.
    pub(crate) fn signature(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.secret {
            Secret::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("not an RSA alg: {other}"),
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, input, &mut sig).unwrap();
                sig
            }
            Secret::Ec(pair, _) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Secret::Ed(pair) => pair.sign(input).as_ref().to_vec(),
            Secret::Hmac(secret) => {
                let alg = match self.alg {
                    "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
                    "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
                    "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
                    other => panic!("not an HMAC alg: {other}"),
                };
                aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(alg, secret), input)
                    .as_ref()
                    .to_vec()
            }
        }
    }

    /// A DER-encoded ECDSA signature (what JWS forbids: it wants fixed-width r || s).
    pub(crate) fn der_signature(&self, input: &[u8]) -> Vec<u8> {
        let Secret::Ec(pair, sa) = &self.secret else {
            panic!("not an EC key")
        };
        let der_alg = if std::ptr::eq(*sa, &signature::ECDSA_P256_SHA256_FIXED_SIGNING) {
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING
        } else {
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING
        };
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let der_pair = EcdsaKeyPair::from_pkcs8(der_alg, pkcs8.as_ref()).unwrap();
        der_pair
            .sign(&SystemRandom::new(), input)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// The default header: `alg`, `typ: at+jwt`, this `kid`.
    pub(crate) fn header(&self) -> Value {
        json!({ "alg": self.alg, "typ": "at+jwt", "kid": self.kid })
    }

    /// Signs `claims` under the default header.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    /// Signs `claims` under `header`.
    pub(crate) fn sign_with(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// Signs raw header and payload text exactly as given (duplicates, odd numbers, anything).
    pub(crate) fn sign_raw(&self, header: &str, payload: &str) -> String {
        self.sign_bytes(header.as_bytes(), payload.as_bytes())
    }

    /// Signs raw header and payload bytes (not even UTF-8 needed).
    pub(crate) fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.signature(input.as_bytes());
        format!("{input}.{}", b64(sig))
    }
}

/// A JWKS document holding these keys' public JWKs.
pub(crate) fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// The reference scenario's values (`policies/keycard-mcp.toml`).
pub(crate) const RESOURCE: &str = "https://mcp.example.com/mcp";
pub(crate) const ZONE: &str = "https://abc123.keycard.cloud";
/// A fixed "now" for deterministic tests: 2026-01-01T00:00:00Z.
pub(crate) const NOW: i64 = 1_767_225_600;

/// Claims the reference policy allows at [`NOW`].
pub(crate) fn good_claims() -> Value {
    json!({
        "iss": ZONE,
        "sub": "user-123",
        "aud": RESOURCE,
        "exp": NOW + 3600,
        "iat": NOW - 60,
        "scope": "mcp:tools mcp:resources",
        "client_id": "client-abc",
    })
}

/// The reference policy (`policies/keycard-mcp.toml`) with `keys` inline instead of its JWKS file.
pub(crate) fn keycard_policy(keys: &[&TestKey]) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/keycard-mcp.toml"
    ))
    .unwrap();
    let inline = format!("jwks = '''{}'''", jwks(keys));
    let replaced = text.replace("jwks_file = \"keycard-mcp.jwks.json\"", &inline);
    assert_ne!(
        replaced, text,
        "the shipped policy no longer names its JWKS file as expected"
    );
    replaced
}

/// A builder for the reference policy trusting `keys`, with `extra` TOML appended, in the test
/// context (`credential.key_id`): a test adds its key source, cache or other settings.
pub(crate) fn reference_builder(keys: &[&TestKey], extra: &str) -> jwt_policy::EngineBuilder {
    let text = format!("{}{extra}", keycard_policy(keys));
    let policy = jwt_policy::Policy::from_toml("test.toml", text, env!("CARGO_MANIFEST_DIR"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut builder = jwt_policy::PolicyEngine::builder(policy);
    for (k, v) in CTX {
        builder = builder.context(*k, *v);
    }
    builder
}

/// Compiles a policy text (relative paths resolve against `policies/`) into an engine.
pub(crate) fn engine(policy: &str, context: &[(&str, &str)]) -> jwt_policy::PolicyEngine {
    let policy = jwt_policy::Policy::from_toml(
        "test.toml",
        policy,
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut builder = jwt_policy::PolicyEngine::builder(policy);
    for (k, v) in context {
        builder = builder.context(*k, *v);
    }
    builder.build().unwrap()
}

/// Decides about `token` at [`NOW`] + `offset` seconds.
pub(crate) fn decide(engine: &jwt_policy::PolicyEngine, token: &str) -> jwt_policy::Decision {
    engine.evaluate_at(token, jwt_policy::UnixTime::from_secs(NOW))
}

/// The reason code of a decision, `"allow"` when allowed (compact for assertions).
pub(crate) fn outcome(decision: &jwt_policy::Decision) -> String {
    match decision.reason() {
        None if decision.is_allowed() => "allow".into(),
        None => "deny-without-reason".into(),
        Some(r) => r.as_str().into(),
    }
}

/// The run-time context the reference engines in the tests are built with.
pub const CTX: &[(&str, &str)] = &[("credential.key_id", "stable-1")];

/// Replaces `from` with `to` in `text`, insisting that `from` was there.
#[track_caller]
pub fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "text lacks `{from}`");
    text.replace(from, to)
}

/// `good_claims()` with `changes` applied (a `null` change removes the claim).
pub fn claims_with(changes: Value) -> Value {
    with_changes(good_claims(), changes)
}

/// `claims` with `changes` applied (a `null` change removes the claim).
pub fn with_changes(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// The name of the first failed check ("" when none failed).
pub fn failed_rule(d: &jwt_policy::Decision) -> String {
    d.failures()
        .next()
        .map(|c| c.rule().to_owned())
        .unwrap_or_default()
}

/// Asserts an allow with no failed check.
#[track_caller]
pub fn assert_allow(d: &jwt_policy::Decision) {
    assert_eq!(outcome(d), "allow", "{}", d.explain());
    assert!(d.is_allowed());
    assert_eq!(d.failures().count(), 0, "{}", d.explain());
}

/// Asserts a deny whose deciding reason is `reason`, from the check named `rule`.
#[track_caller]
pub fn assert_deny(d: &jwt_policy::Decision, reason: &str, rule: &str) {
    assert!(!d.is_allowed(), "{}", d.explain());
    assert_eq!(outcome(d), reason, "{}", d.explain());
    assert_eq!(failed_rule(d), rule, "{}", d.explain());
}

/// The check called `rule`.
#[track_caller]
pub fn check<'d>(d: &'d jwt_policy::Decision, rule: &str) -> &'d jwt_policy::Check {
    d.checks()
        .iter()
        .find(|c| c.rule() == rule)
        .unwrap_or_else(|| panic!("no check `{rule}` in\n{}", d.explain()))
}
