//! Library-level scenarios with real tokens signed in the tests: every algorithm family, every
//! reason code, the reference (Keycard zone) scenario, exact time and size boundaries, client ids,
//! scopes, claim constraints and rules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use jwt_policy::{Decision, Outcome, Policy, PolicyEngine, UnixTime};
use serde_json::{Value, json};
use support::*;

/// The reference policy's algorithm line, replaced to allow other algorithms.
const REFERENCE_ALGS: &str = r#"algorithms = ["RS256", "ES256", "EdDSA"]"#;

/// The reference policy with `keys` inline and its issuer allowing `algs` (a TOML array).
fn policy_allowing(algs: &str, keys: &[&TestKey]) -> String {
    replace(
        &keycard_policy(keys),
        REFERENCE_ALGS,
        &format!("algorithms = {algs}"),
    )
}

/// `key` and the reference engine trusting it.
fn with_reference(key: TestKey) -> (TestKey, PolicyEngine) {
    let engine = reference(&[&key]);
    (key, engine)
}

/// The reference engine for these keys.
fn reference(keys: &[&TestKey]) -> PolicyEngine {
    engine(&keycard_policy(keys), CTX)
}

/// Decides at whole second `secs`.
fn at(engine: &PolicyEngine, token: &str, secs: i64) -> Decision {
    engine.evaluate_at(token, UnixTime::from_secs(secs))
}

/// Decides at an exact (possibly fractional) time written as seconds.
fn at_text(engine: &PolicyEngine, token: &str, now: &str) -> Decision {
    engine.evaluate_at(token, UnixTime::parse(now).unwrap())
}

/// Serializes `claims` with claim `name` written as the raw JSON number text `raw`.
fn with_raw_number(claims: &Value, name: &str, raw: &str) -> String {
    let mut claims = claims.clone();
    claims[name] = json!("@RAW@");
    let text = claims.to_string();
    replace(&text, "\"@RAW@\"", raw)
}

mod algorithms {
    use super::*;

    fn accepted_with(key: &TestKey) {
        let policy = policy_allowing(&format!("[\"{}\"]", key.alg), &[key]);
        let engine = engine(&policy, CTX);
        let token = key.sign(&good_claims());
        let d = decide(&engine, &token);
        assert_allow(&d);
        assert!(
            check(&d, "signature").detail().contains(key.alg),
            "{}",
            d.explain()
        );
        // The same key, but a signature over other bytes, does not verify.
        let (input, _) = token.rsplit_once('.').unwrap();
        let other = key.sign(&claims_with(json!({ "sub": "someone-else" })));
        let (_, other_sig) = other.rsplit_once('.').unwrap();
        let d = decide(&engine, &format!("{input}.{other_sig}"));
        assert_deny(&d, "invalid_signature", "signature");
    }

    #[test]
    fn rsa_pkcs1() {
        for alg in ["RS256", "RS384", "RS512"] {
            accepted_with(&TestKey::rsa(&format!("k-{alg}"), alg, 0));
        }
    }

    #[test]
    fn rsa_pss() {
        for alg in ["PS256", "PS384", "PS512"] {
            accepted_with(&TestKey::rsa(&format!("k-{alg}"), alg, 1));
        }
    }

    #[test]
    fn ecdsa() {
        accepted_with(&TestKey::es256("k-es256"));
        accepted_with(&TestKey::es384("k-es384"));
    }

    #[test]
    fn eddsa() {
        accepted_with(&TestKey::ed25519("k-ed"));
    }

    #[test]
    fn an_algorithm_the_issuer_does_not_allow_is_refused_even_with_a_fitting_key() {
        // The reference issuer allows RS256, ES256, EdDSA: the same RSA key signing PS256 or
        // RS512 is refused before any key is looked at.
        for alg in ["RS384", "RS512", "PS256", "PS384", "PS512"] {
            let key = TestKey::rsa("k1", alg, 0);
            let d = decide(&reference(&[&key]), &key.sign(&good_claims()));
            assert_deny(&d, "algorithm_not_allowed", "algorithm");
            assert_eq!(check(&d, "key").outcome(), &Outcome::NotEvaluated);
            assert_eq!(check(&d, "signature").outcome(), &Outcome::NotEvaluated);
        }
        let key = TestKey::es384("e384");
        let d = decide(&reference(&[&key]), &key.sign(&good_claims()));
        assert_deny(&d, "algorithm_not_allowed", "algorithm");
    }

    /// A policy whose issuer allows RS256 (public keys) and `alg` with the secret in `path`.
    fn hmac_policy(alg: &str, path: &std::path::Path, rsa: &TestKey) -> String {
        replace(
            &keycard_policy(&[rsa]),
            REFERENCE_ALGS,
            &format!(
                "algorithms = [\"RS256\", \"{alg}\"]\nhmac_secrets = [{{ kid = \"h1\", file = '{}' }}]",
                path.display()
            ),
        )
    }

    #[test]
    fn hmac_with_a_secret_the_policy_names() {
        let rsa = TestKey::rsa("k1", "RS256", 0);
        // 64 bytes: long enough for HS512 (RFC 7518 §3.2).
        let secret: Vec<u8> = (0..64u8).map(|i| b'a' + i % 26).collect();
        for alg in ["HS256", "HS384", "HS512"] {
            let file = tempfile::NamedTempFile::new().unwrap();
            // A trailing newline (as editors write) is not part of the secret.
            std::fs::write(file.path(), [secret.as_slice(), b"\n"].concat()).unwrap();
            let engine = engine(&hmac_policy(alg, file.path(), &rsa), CTX);
            let key = TestKey::hmac("h1", alg, &secret);
            let d = decide(&engine, &key.sign(&good_claims()));
            assert_allow(&d);
            // The issuer's RSA key still works beside it.
            assert_allow(&decide(&engine, &rsa.sign(&good_claims())));
            // Another secret does not verify.
            let wrong = TestKey::hmac("h1", alg, &[b'z'; 64]);
            let d = decide(&engine, &wrong.sign(&good_claims()));
            assert_deny(&d, "invalid_signature", "signature");
            // A `kid` naming no secret.
            let unnamed = TestKey::hmac("h2", alg, &secret);
            let d = decide(&engine, &unnamed.sign(&good_claims()));
            assert_deny(&d, "key_not_found", "key");
        }
    }

    /// Builds the HMAC policy for `alg` with a secret of `len` bytes.
    fn build_with_secret(alg: &str, len: usize) -> Result<PolicyEngine, jwt_policy::BuildError> {
        let rsa = TestKey::rsa("k1", "RS256", 0);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![b's'; len]).unwrap();
        let text = hmac_policy(alg, file.path(), &rsa);
        let policy = Policy::from_toml("test.toml", text, env!("CARGO_MANIFEST_DIR")).unwrap();
        PolicyEngine::builder(policy)
            .context("credential.key_id", "stable-1")
            .build()
    }

    #[test]
    fn hmac_secret_too_short_for_an_allowed_algorithm_refuses_to_build() {
        // RFC 7518 §3.2: HS512 needs a 64-byte secret; 40 bytes would do for HS256 only.
        let err = build_with_secret("HS512", 40).unwrap_err();
        assert!(
            err.to_string()
                .contains("is 40 bytes; the issuer's HMAC algorithms need at least 64"),
            "{err}"
        );
    }

    #[test]
    fn hmac_secret_shorter_than_32_bytes_refuses_to_build() {
        let err = build_with_secret("HS256", 31).unwrap_err();
        assert!(
            matches!(err, jwt_policy::BuildError::Keys { .. }),
            "{err:?}"
        );
    }
}

mod reasons {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use jwt_policy::{KeyError, KeySet, KeySource, Reason};

    use super::*;

    #[derive(Debug)]
    struct Unavailable;

    impl KeySource for Unavailable {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            Err(KeyError::Unavailable("the key server answered 503".into()))
        }
    }

    #[derive(Debug)]
    struct Panics;

    impl KeySource for Panics {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            panic!("a key source with a bug")
        }
    }

    fn engine_with_source(key: &TestKey, source: Arc<dyn KeySource>) -> PolicyEngine {
        reference_builder(&[key], "")
            .key_source(ZONE, source)
            .build()
            .unwrap()
    }

    #[test]
    fn keys_unavailable_from_a_failing_key_source() {
        let key = TestKey::rsa("k1", "RS256", 0);
        let engine = engine_with_source(&key, Arc::new(Unavailable));
        let d = decide(&engine, &key.sign(&good_claims()));
        assert_deny(&d, "keys_unavailable", "key");
        assert!(check(&d, "key").detail().contains("503"), "{}", d.explain());
        let reason = d.reason().unwrap();
        assert_eq!(reason.http_status(), 503);
        assert_eq!(check(&d, "signature").outcome(), &Outcome::NotEvaluated);
        assert_eq!(
            d.principal().resource_client_id.as_deref(),
            Some("stable-1")
        );
    }

    #[test]
    fn a_panicking_key_source_gives_internal_not_an_unwind() {
        let key = TestKey::rsa("k1", "RS256", 0);
        let engine = engine_with_source(&key, Arc::new(Panics));
        let token = key.sign(&good_claims());
        let d = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(&engine, &token)))
            .expect("the engine let a panic unwind into its caller");
        assert_deny(&d, "internal", "internal");
        assert_eq!(d.reason().unwrap().http_status(), 500);
        assert_eq!(d.principal().subject, None);
        // The engine is still usable afterwards.
        let d = decide(&engine, &token);
        assert_deny(&d, "internal", "internal");
    }

    /// Every reason code, each produced by a real token (or key source) through the library.
    #[test]
    fn every_reason_code_is_produced() {
        let key = TestKey::rsa("k1", "RS256", 0);
        let other_pair = TestKey::rsa("k1", "RS256", 1);
        let es = TestKey::es256("e1");
        let engine = reference(&[&key]);
        let sign = |changes: Value| key.sign(&claims_with(changes));
        let with_header = |extra: Value| {
            let mut header = key.header();
            for (k, v) in extra.as_object().unwrap() {
                header[k] = v.clone();
            }
            key.sign_with(&header, &good_claims())
        };

        let max_age = engine_for(&replace(
            &keycard_policy(&[&key]),
            "leeway = \"30s\"",
            "leeway = \"30s\"\nmax_age = \"5m\"",
        ));
        let rules = engine_for(&format!(
            "{}\n[[rules]]\nname = \"needs-tenant\"\nrequire = {{ claim = \"tenant\", equals = \"acme\" }}\n\n[[rules]]\nname = \"paid\"\npermission = true\nrequire = {{ claim = \"plan\", if_present = true, equals = \"paid\" }}\n",
            keycard_policy(&[&key])
        ));

        let cases: Vec<(Reason, Decision)> = vec![
            (Reason::TokenTooLarge, decide(&engine, &"a".repeat(16_385))),
            (Reason::MalformedToken, decide(&engine, "not.a.token")),
            (
                Reason::UntrustedIssuer,
                decide(&engine, &sign(json!({ "iss": "https://evil.example" }))),
            ),
            (
                Reason::AlgorithmNotAllowed,
                decide(
                    &engine,
                    &TestKey::rsa("k1", "RS384", 0).sign(&good_claims()),
                ),
            ),
            (
                Reason::KeyNotFound,
                decide(&engine, &with_header(json!({ "kid": "nope" }))),
            ),
            (
                Reason::KeyMismatch,
                decide(
                    &engine,
                    &es.sign_with(
                        &json!({ "alg": "ES256", "typ": "at+jwt", "kid": "k1" }),
                        &good_claims(),
                    ),
                ),
            ),
            (
                Reason::InvalidSignature,
                decide(&engine, &other_pair.sign(&good_claims())),
            ),
            (
                Reason::InvalidType,
                decide(&engine, &with_header(json!({ "typ": "JWT" }))),
            ),
            (
                Reason::UnsupportedCriticalHeader,
                decide(
                    &engine,
                    &with_header(json!({ "crit": ["ext"], "ext": true })),
                ),
            ),
            (
                Reason::MissingClaim,
                decide(&engine, &sign(json!({ "exp": null }))),
            ),
            (
                Reason::InvalidClaim,
                decide(&engine, &sign(json!({ "exp": "soon" }))),
            ),
            (
                Reason::Expired,
                decide(&engine, &sign(json!({ "exp": NOW - 30 }))),
            ),
            (
                Reason::NotYetValid,
                decide(&engine, &sign(json!({ "nbf": NOW + 31 }))),
            ),
            (
                Reason::IssuedInFuture,
                decide(&engine, &sign(json!({ "iat": NOW + 31 }))),
            ),
            (
                Reason::TokenTooOld,
                decide(&max_age, &sign(json!({ "iat": NOW - 330 }))),
            ),
            (
                Reason::AudienceMismatch,
                decide(
                    &engine,
                    &sign(json!({ "aud": "https://other.example.com/mcp" })),
                ),
            ),
            (
                Reason::ResourceMismatch,
                decide(&engine, &sign(json!({ "aud": ZONE }))),
            ),
            (
                Reason::InsufficientScope,
                decide(&engine, &sign(json!({ "scope": "mcp:resources" }))),
            ),
            (
                Reason::MissingClientId,
                decide(&engine, &sign(json!({ "client_id": null }))),
            ),
            (
                Reason::RuleFailed,
                decide(&rules, &sign(json!({ "tenant": "other" }))),
            ),
            (
                Reason::InsufficientPermission,
                decide(&rules, &sign(json!({ "tenant": "acme", "plan": "trial" }))),
            ),
            (
                Reason::KeysUnavailable,
                decide(
                    &engine_with_source(&key, Arc::new(Unavailable)),
                    &key.sign(&good_claims()),
                ),
            ),
            (
                Reason::Internal,
                decide(
                    &engine_with_source(&key, Arc::new(Panics)),
                    &key.sign(&good_claims()),
                ),
            ),
        ];
        for (reason, d) in &cases {
            assert!(!d.is_allowed(), "{reason}: {}", d.explain());
            assert_eq!(d.reason(), Some(*reason), "{reason}: {}", d.explain());
            // The JSON carries the same code.
            let json: Value = serde_json::from_str(&d.to_json()).unwrap();
            assert_eq!(json["verdict"], "deny");
            assert_eq!(json["reason"], reason.as_str());
        }
        let produced: BTreeSet<&str> = cases.iter().map(|(r, _)| r.as_str()).collect();
        let all: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(produced, all);
        assert_eq!(cases.len(), Reason::ALL.len());
    }

    fn engine_for(policy: &str) -> PolicyEngine {
        engine(policy, CTX)
    }
}

mod key_sources {
    use std::sync::Arc;

    use jwt_policy::jwks::KeysFuture;
    use jwt_policy::{KeyError, KeySet, KeySource};

    use super::*;

    fn set(keys: &[&TestKey]) -> Arc<KeySet> {
        Arc::new(KeySet::from_jwks(jwks(keys).as_bytes()).unwrap())
    }

    /// Holds `old` until asked to refresh, then answers `new`.
    #[derive(Debug)]
    struct Rotating {
        old: Arc<KeySet>,
        new: Arc<KeySet>,
    }

    impl KeySource for Rotating {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            Ok(self.old.clone())
        }

        fn refresh<'a>(&'a self, _kid: Option<&'a str>) -> KeysFuture<'a> {
            Box::pin(std::future::ready(Ok(self.new.clone())))
        }
    }

    /// Answers its keys, but panics when asked to refresh (before or while being awaited).
    #[derive(Debug)]
    struct PanicsOnRefresh {
        keys: Arc<KeySet>,
        in_future: bool,
    }

    impl KeySource for PanicsOnRefresh {
        fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
            Ok(self.keys.clone())
        }

        fn refresh<'a>(&'a self, _kid: Option<&'a str>) -> KeysFuture<'a> {
            if self.in_future {
                Box::pin(async { panic!("a refresh future with a bug") })
            } else {
                panic!("a refresh with a bug")
            }
        }
    }

    fn engine_with_source(key: &TestKey, source: Arc<dyn KeySource>) -> PolicyEngine {
        reference_builder(&[key], "")
            .key_source(ZONE, source)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn evaluate_async_refreshes_for_an_unknown_kid() {
        let old = TestKey::es256("old");
        let new = TestKey::es256("new");
        let engine = engine_with_source(
            &old,
            Arc::new(Rotating {
                old: set(&[&old]),
                new: set(&[&old, &new]),
            }),
        );
        let token = new.sign(&good_claims());
        assert_deny(&decide(&engine, &token), "key_not_found", "key");
        let d = engine
            .evaluate_async_at(&token, UnixTime::from_secs(NOW))
            .await;
        assert_allow(&d);
        // A kid the refreshed set lacks too.
        let stranger = TestKey::es256("stranger");
        let d = engine
            .evaluate_async_at(stranger.sign(&good_claims()), UnixTime::from_secs(NOW))
            .await;
        assert_deny(&d, "key_not_found", "key");
    }

    #[test]
    fn a_key_source_for_an_unknown_issuer_is_refused() {
        let key = TestKey::es256("e1");

        let err = reference_builder(&[&key], "")
            .key_source(
                "https://elsewhere.example",
                Arc::new(jwt_policy::StaticKeys::from_arc(set(&[&key]))),
            )
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            jwt_policy::BuildError::UnknownIssuer("https://elsewhere.example".into())
        );
    }

    #[tokio::test]
    async fn a_panicking_refresh_gives_internal_not_an_unwind() {
        for in_future in [false, true] {
            let key = TestKey::es256("e1");
            let engine = engine_with_source(
                &key,
                Arc::new(PanicsOnRefresh {
                    keys: set(&[&key]),
                    in_future,
                }),
            );
            let token = TestKey::es256("rotated").sign(&good_claims());
            let handle = tokio::spawn(async move {
                engine
                    .evaluate_async_at(token, UnixTime::from_secs(NOW))
                    .await
            });
            let d = handle
                .await
                .expect("evaluate_async let a key source's panic unwind into its caller");
            assert_deny(&d, "internal", "internal");
        }
    }
}

mod reference_scenario {
    use super::*;

    fn setup() -> (TestKey, PolicyEngine) {
        with_reference(TestKey::es256("zone-key"))
    }

    #[test]
    fn audience_is_the_resource() {
        let (key, engine) = setup();
        let d = decide(&engine, &key.sign(&good_claims()));
        assert_allow(&d);
        let p = d.principal();
        assert_eq!(p.audience.as_deref(), Some(RESOURCE));
        assert_eq!(p.resource, None);
        assert_eq!(p.issuer.as_deref(), Some(ZONE));
        assert_eq!(p.subject.as_deref(), Some("user-123"));
        assert_eq!(p.expires_at, Some(NOW + 3600));
        assert_eq!(p.resource_client_id.as_deref(), Some("stable-1"));
        // Naming this resource in `resource` too is fine, and reported.
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "resource": RESOURCE }))),
        );
        assert_allow(&d);
        assert_eq!(d.principal().audience.as_deref(), Some(RESOURCE));
        assert_eq!(d.principal().resource.as_deref(), Some(RESOURCE));
    }

    #[test]
    fn zone_audience_naming_this_resource() {
        let (key, engine) = setup();
        for resource in [
            json!(RESOURCE),
            json!([RESOURCE]),
            json!(["https://other.example.com/mcp", RESOURCE]),
        ] {
            let d = decide(
                &engine,
                &key.sign(&claims_with(json!({ "aud": ZONE, "resource": resource }))),
            );
            assert_allow(&d);
            assert_eq!(d.principal().audience.as_deref(), Some(ZONE));
            assert_eq!(d.principal().resource.as_deref(), Some(RESOURCE));
            assert!(
                check(&d, "audience").detail().contains("resource"),
                "{}",
                d.explain()
            );
        }
    }

    #[test]
    fn zone_audience_without_resource_or_for_another_resource() {
        let (key, engine) = setup();
        // No `resource`: the confused deputy the policy exists to stop.
        let d = decide(&engine, &key.sign(&claims_with(json!({ "aud": ZONE }))));
        assert_deny(&d, "resource_mismatch", "audience");
        assert_eq!(d.principal().audience, None);
        // Another resource of the same zone.
        for resource in [
            json!("https://other.example.com/mcp"),
            json!(["https://other.example.com/mcp"]),
        ] {
            let d = decide(
                &engine,
                &key.sign(&claims_with(json!({ "aud": ZONE, "resource": resource }))),
            );
            assert_deny(&d, "resource_mismatch", "audience");
            let failed: Vec<(&str, &str)> = d
                .failures()
                .map(|c| (c.rule(), c.reason().map_or("", |r| r.as_str())))
                .collect();
            assert_eq!(
                failed,
                [
                    ("audience", "resource_mismatch"),
                    ("resource", "resource_mismatch")
                ],
                "{}",
                d.explain()
            );
            assert_eq!(d.principal().resource, None);
        }
    }

    #[test]
    fn resource_audience_but_resource_claim_names_another() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "resource": "https://other.example.com/mcp" }),
            )),
        );
        assert_deny(&d, "resource_mismatch", "resource");
        assert_eq!(check(&d, "audience").outcome(), &Outcome::Passed);
    }

    #[test]
    fn malformed_resource_claim() {
        let (key, engine) = setup();
        for resource in [json!([]), json!(42), json!([RESOURCE, 1]), json!({})] {
            let d = decide(
                &engine,
                &key.sign(&claims_with(json!({ "aud": ZONE, "resource": resource }))),
            );
            assert!(!d.is_allowed(), "{}", d.explain());
            assert!(
                d.reasons().iter().any(|r| r.as_str() == "invalid_claim"),
                "{resource}: {}",
                d.explain()
            );
            assert_eq!(
                check(&d, "resource").reason().map(|r| r.as_str()),
                Some("invalid_claim")
            );
        }
    }

    #[test]
    fn audience_arrays() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "aud": ["https://a.example", RESOURCE, "https://b.example"] }),
            )),
        );
        assert_allow(&d);
        assert_eq!(d.principal().audience.as_deref(), Some(RESOURCE));
        // The zone without a resource beside the resource URL: the resource URL matches.
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "aud": [ZONE, RESOURCE] }))),
        );
        assert_allow(&d);
        assert_eq!(d.principal().audience.as_deref(), Some(RESOURCE));
        // Only others.
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "aud": ["https://a.example", "https://b.example"] }),
            )),
        );
        assert_deny(&d, "audience_mismatch", "audience");
        // Only the zone, with the resource: allowed.
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "aud": ["https://a.example", ZONE], "resource": RESOURCE }),
            )),
        );
        assert_allow(&d);
        assert_eq!(d.principal().audience.as_deref(), Some(ZONE));
    }

    #[test]
    fn audience_values_compare_exactly() {
        let (key, engine) = setup();
        for aud in [
            "https://mcp.example.com/mcp/",
            "https://MCP.example.com/mcp",
            "HTTPS://mcp.example.com/mcp",
            "https://mcp.example.com/MCP",
            "https://mcp.example.com:443/mcp",
            " https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp#",
        ] {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "aud": aud }))));
            assert_deny(&d, "audience_mismatch", "audience");
        }
        for zone in [
            "https://abc123.keycard.cloud/",
            "https://ABC123.keycard.cloud",
            "HTTPS://abc123.keycard.cloud",
        ] {
            let d = decide(
                &engine,
                &key.sign(&claims_with(json!({ "aud": zone, "resource": RESOURCE }))),
            );
            assert_deny(&d, "audience_mismatch", "audience");
        }
        for resource in [
            "https://mcp.example.com/mcp/",
            "https://MCP.example.com/mcp",
        ] {
            let d = decide(
                &engine,
                &key.sign(&claims_with(json!({ "aud": ZONE, "resource": resource }))),
            );
            assert_deny(&d, "resource_mismatch", "audience");
        }
    }

    #[test]
    fn malformed_or_missing_audience() {
        let (key, engine) = setup();
        for aud in [json!([]), json!(42), json!([RESOURCE, 42]), json!(null)] {
            let mut claims = good_claims();
            claims["aud"] = aud.clone();
            let d = decide(&engine, &key.sign(&claims));
            assert_deny(&d, "invalid_claim", "audience");
        }
        let d = decide(&engine, &key.sign(&claims_with(json!({ "aud": null }))));
        assert_deny(&d, "missing_claim", "audience");
    }
}

mod boundaries {
    use super::*;

    fn setup() -> (TestKey, PolicyEngine) {
        with_reference(TestKey::ed25519("ed"))
    }

    #[test]
    fn exp_with_leeway() {
        let (key, engine) = setup();
        let token = key.sign(&claims_with(json!({ "exp": NOW })));
        assert_allow(&at(&engine, &token, NOW + 30 - 1));
        let d = at(&engine, &token, NOW + 30);
        assert_deny(&d, "expired", "exp");
        assert!(
            matches!(check(&d, "exp").outcome(), Outcome::Failed { expected, .. } if expected.contains("30")),
            "{}",
            d.explain()
        );
        assert_eq!(d.principal().expires_at, Some(NOW));
    }

    #[test]
    fn nbf_with_leeway() {
        let (key, engine) = setup();
        let token = key.sign(&claims_with(json!({ "nbf": NOW, "iat": NOW - 100 })));
        assert_allow(&at(&engine, &token, NOW - 30));
        assert_deny(&at(&engine, &token, NOW - 30 - 1), "not_yet_valid", "nbf");
    }

    #[test]
    fn iat_with_leeway() {
        let (key, engine) = setup();
        let token = key.sign(&claims_with(json!({ "iat": NOW })));
        assert_allow(&at(&engine, &token, NOW - 30));
        assert_deny(
            &at(&engine, &token, NOW - 30 - 1),
            "issued_in_future",
            "iat",
        );
    }

    #[test]
    fn max_age_with_leeway() {
        let key = TestKey::ed25519("ed");
        let policy = replace(
            &keycard_policy(&[&key]),
            "leeway = \"30s\"",
            "leeway = \"30s\"\nmax_age = \"5m\"",
        );
        let engine = engine(&policy, CTX);
        let token = key.sign(&claims_with(json!({ "iat": NOW, "exp": NOW + 10_000 })));
        assert_allow(&at(&engine, &token, NOW + 300 + 30 - 1));
        assert_deny(
            &at(&engine, &token, NOW + 300 + 30),
            "token_too_old",
            "max_age",
        );
        // `max_age` makes `iat` required.
        let token = key.sign(&claims_with(json!({ "iat": null })));
        assert_deny(&at(&engine, &token, NOW), "missing_claim", "iat");
    }

    fn no_leeway() -> (TestKey, PolicyEngine) {
        let key = TestKey::ed25519("ed");
        let policy = replace(&keycard_policy(&[&key]), "leeway = \"30s\"", "leeway = 0");
        let engine = engine(&policy, CTX);
        (key, engine)
    }

    #[test]
    fn fractional_exp_is_compared_exactly() {
        let (key, engine) = no_leeway();
        let token = key.sign_raw(
            &key.header().to_string(),
            &with_raw_number(&good_claims(), "exp", "1767225600.5"),
        );
        assert_allow(&at(&engine, &token, NOW));
        assert_allow(&at_text(&engine, &token, "1767225600.499999999"));
        assert_deny(&at_text(&engine, &token, "1767225600.5"), "expired", "exp");
        assert_deny(&at(&engine, &token, NOW + 1), "expired", "exp");
        // The principal reports whole seconds, rounded down.
        assert_eq!(at(&engine, &token, NOW).principal().expires_at, Some(NOW));
    }

    #[test]
    fn nanosecond_exp() {
        let (key, engine) = no_leeway();
        let token = key.sign_raw(
            &key.header().to_string(),
            &with_raw_number(&good_claims(), "exp", "1767225600.000000001"),
        );
        assert_allow(&at_text(&engine, &token, "1767225600"));
        assert_allow(&at_text(&engine, &token, "1767225600.000000000"));
        assert_deny(
            &at_text(&engine, &token, "1767225600.000000001"),
            "expired",
            "exp",
        );
        // Written with an exponent, the same instant.
        let token = key.sign_raw(
            &key.header().to_string(),
            &with_raw_number(&good_claims(), "exp", "1.767225600000000001e9"),
        );
        assert_allow(&at_text(&engine, &token, "1767225600"));
        assert_deny(
            &at_text(&engine, &token, "1767225600.000000001"),
            "expired",
            "exp",
        );
    }

    #[test]
    fn nanosecond_exp_with_leeway() {
        let (key, engine) = setup();
        let token = key.sign_raw(
            &key.header().to_string(),
            &with_raw_number(&good_claims(), "exp", "1767225600.000000001"),
        );
        assert_allow(&at_text(&engine, &token, "1767225630"));
        assert_deny(
            &at_text(&engine, &token, "1767225630.000000001"),
            "expired",
            "exp",
        );
    }

    #[test]
    fn fractional_nbf_and_iat() {
        let (key, engine) = no_leeway();
        let claims = with_raw_number(&claims_with(json!({ "iat": null })), "nbf", "1767225600.25");
        let token = key.sign_raw(&key.header().to_string(), &claims);
        assert_deny(
            &at_text(&engine, &token, "1767225600.249999999"),
            "not_yet_valid",
            "nbf",
        );
        assert_allow(&at_text(&engine, &token, "1767225600.25"));
        let claims = with_raw_number(&good_claims(), "iat", "1767225600.25");
        let token = key.sign_raw(&key.header().to_string(), &claims);
        assert_deny(
            &at_text(&engine, &token, "1767225600.249999999"),
            "issued_in_future",
            "iat",
        );
        assert_allow(&at_text(&engine, &token, "1767225600.25"));
    }

    /// A token of exactly `len` bytes: the reference claims padded with a `pad` claim (and, when
    /// the payload alone cannot reach `len`, an extra header member).
    fn token_of_length(key: &TestKey, len: usize) -> String {
        let sig_len = b64(key.signature(b"x")).len();
        for header_pad in 0..4 {
            let mut header = key.header();
            if header_pad > 0 {
                header["x"] = json!("h".repeat(header_pad));
            }
            let header_len = b64(header.to_string()).len();
            let base = claims_with(json!({ "pad": "" })).to_string().len();
            let fixed = header_len + sig_len + 2;
            let Some(room) = len.checked_sub(fixed) else {
                continue;
            };
            // Payload base64 length is ceil(4n/3): find n with exactly `room`.
            let n = (room * 3) / 4;
            for n in n.saturating_sub(2)..n + 3 {
                if n >= base && b64(vec![0u8; n]).len() == room {
                    let claims = claims_with(json!({ "pad": "p".repeat(n - base) }));
                    let token = key.sign_with(&header, &claims);
                    assert_eq!(token.len(), len);
                    return token;
                }
            }
        }
        panic!("cannot build a token of {len} bytes");
    }

    #[test]
    fn size_limit_is_inclusive() {
        let (key, engine) = setup();
        let exact = token_of_length(&key, 16_384);
        assert_eq!(exact.len(), 16_384);
        assert_allow(&decide(&engine, &exact));
        let over = token_of_length(&key, 16_385);
        assert_eq!(over.len(), 16_385);
        let d = decide(&engine, &over);
        assert_deny(&d, "token_too_large", "size");
        // Nothing else was looked at.
        assert!(
            d.checks()
                .iter()
                .skip(1)
                .all(|c| c.outcome() == &Outcome::NotEvaluated),
            "{}",
            d.explain()
        );
        assert_eq!(d.principal().subject, None);
    }
}

mod client_ids {
    use jwt_policy::BuildError;

    use super::*;

    fn setup() -> (TestKey, PolicyEngine) {
        with_reference(TestKey::es256("e1"))
    }

    #[test]
    fn client_id_claim_first() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "azp": "from-azp" }))),
        );
        assert_allow(&d);
        assert_eq!(d.principal().client_id.as_deref(), Some("client-abc"));
        assert_eq!(d.principal().client_id_source.as_deref(), Some("client_id"));
    }

    #[test]
    fn azp_when_client_id_is_absent() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "client_id": null, "azp": "from-azp" }),
            )),
        );
        assert_allow(&d);
        assert_eq!(d.principal().client_id.as_deref(), Some("from-azp"));
        assert_eq!(d.principal().client_id_source.as_deref(), Some("azp"));
    }

    #[test]
    fn neither_client_id_nor_azp() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "client_id": null }))),
        );
        assert_deny(&d, "missing_client_id", "client_id");
        assert_eq!(d.principal().client_id, None);
    }

    #[test]
    fn malformed_client_id_does_not_fall_through_to_azp() {
        let (key, engine) = setup();
        for bad in [json!(42), json!(""), json!(["client-abc"]), json!(true)] {
            let d = decide(
                &engine,
                &key.sign(&claims_with(json!({ "client_id": bad, "azp": "from-azp" }))),
            );
            assert_deny(&d, "invalid_claim", "client_id");
            assert_eq!(d.principal().client_id, None);
        }
        // `null` is present, and not a string.
        let mut claims = claims_with(json!({ "azp": "from-azp" }));
        claims["client_id"] = Value::Null;
        let d = decide(&engine, &key.sign(&claims));
        assert_deny(&d, "invalid_claim", "client_id");
    }

    fn build_for(key: &TestKey, context: &[(&str, &str)]) -> Result<PolicyEngine, BuildError> {
        let policy = Policy::from_toml(
            "test.toml",
            keycard_policy(&[key]),
            env!("CARGO_MANIFEST_DIR"),
        )
        .unwrap();
        let mut builder = PolicyEngine::builder(policy);
        for (k, v) in context {
            builder = builder.context(*k, *v);
        }
        builder.build()
    }

    fn build(context: &[(&str, &str)]) -> Result<PolicyEngine, BuildError> {
        build_for(&TestKey::es256("e1"), context)
    }

    #[test]
    fn resource_client_id_prefers_the_credential_key_id() {
        let engine = build(&[
            ("credential.key_id", "stable-1"),
            ("registration.client_id", "ua:abc123"),
        ])
        .unwrap();
        assert_eq!(engine.resource_client_id(), Some("stable-1"));
    }

    #[test]
    fn resource_client_id_falls_back_to_the_registered_client_id() {
        let engine = build(&[("registration.client_id", "registered-1")]).unwrap();
        assert_eq!(engine.resource_client_id(), Some("registered-1"));
        // An empty credential key id counts as not provided.
        let engine = build(&[
            ("credential.key_id", ""),
            ("registration.client_id", "registered-1"),
        ])
        .unwrap();
        assert_eq!(engine.resource_client_id(), Some("registered-1"));
    }

    #[test]
    fn unstable_ua_ids_are_refused_when_the_engine_is_built() {
        for context in [
            vec![("credential.key_id", "ua:0f3c9e")],
            vec![("registration.client_id", "ua:0f3c9e")],
            vec![
                ("credential.key_id", "ua:0f3c9e"),
                ("registration.client_id", "registered-1"),
            ],
        ] {
            let err = build(&context).unwrap_err();
            match &err {
                BuildError::RefusedResourceClientId { value, from, why } => {
                    assert_eq!(value, "ua:0f3c9e");
                    assert!(from.contains(context[0].0), "{from}");
                    assert!(why.contains("^ua:"), "{why}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
            let message = err.to_string();
            assert!(message.contains("`ua:0f3c9e`"), "{message}");
        }
    }

    #[test]
    fn no_resource_client_id_at_all() {
        for context in [
            vec![],
            vec![("unrelated", "x")],
            vec![("credential.key_id", "")],
        ] {
            let err = build(&context).unwrap_err();
            match &err {
                BuildError::MissingResourceClientId {
                    tried, contexts, ..
                } => {
                    assert!(tried.contains("credential.key_id"), "{tried}");
                    assert!(tried.contains("registration.client_id"), "{tried}");
                    assert_eq!(contexts, &["credential.key_id", "registration.client_id"]);
                }
                other => panic!("expected a missing id, got {other:?}"),
            }
        }
    }

    #[test]
    fn resolved_resource_client_id_is_in_every_decision() {
        let key = TestKey::es256("e1");
        let other = TestKey::es256("e1");
        let engine = build_for(&key, &[("registration.client_id", "registered-1")]).unwrap();
        let decisions = [
            decide(&engine, &key.sign(&good_claims())),
            decide(&engine, &key.sign(&claims_with(json!({ "aud": ZONE })))),
            decide(&engine, &other.sign(&good_claims())),
            decide(&engine, "not.a.token"),
            decide(&engine, &"x".repeat(20_000)),
            decide(&engine, ""),
        ];
        assert!(decisions[0].is_allowed());
        for d in &decisions {
            assert_eq!(
                d.principal().resource_client_id.as_deref(),
                Some("registered-1"),
                "{}",
                d.explain()
            );
            let json: Value = serde_json::from_str(&d.to_json()).unwrap();
            assert_eq!(json["resource_client_id"], "registered-1");
        }
    }

    #[test]
    fn resource_client_id_is_in_an_internal_decision_too() {
        #[derive(Debug)]
        struct Panics;
        impl jwt_policy::KeySource for Panics {
            fn keys(&self) -> Result<std::sync::Arc<jwt_policy::KeySet>, jwt_policy::KeyError> {
                panic!("a key source with a bug")
            }
        }
        let key = TestKey::es256("e1");

        let engine = reference_builder(&[&key], "")
            .key_source(ZONE, std::sync::Arc::new(Panics))
            .build()
            .unwrap();
        let d = decide(&engine, &key.sign(&good_claims()));
        assert_eq!(outcome(&d), "internal");
        assert_eq!(
            d.principal().resource_client_id.as_deref(),
            Some("stable-1")
        );
    }
}

mod scopes {
    use super::*;

    fn setup() -> (TestKey, PolicyEngine) {
        with_reference(TestKey::es256("e1"))
    }

    #[test]
    fn space_delimited_scope_grants() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "scope": "mcp:resources  mcp:tools " }),
            )),
        );
        assert_allow(&d);
        assert_eq!(d.principal().scopes, ["mcp:resources", "mcp:tools"]);
    }

    #[test]
    fn scp_array_grants() {
        let (key, engine) = setup();
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "scope": null, "scp": ["mcp:tools", "x"] }),
            )),
        );
        assert_allow(&d);
        assert_eq!(d.principal().scopes, ["mcp:tools", "x"]);
        // Either claim may grant.
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "scope": "mcp:resources", "scp": ["mcp:tools"] }),
            )),
        );
        assert_allow(&d);
    }

    #[test]
    fn only_u0020_separates_scopes() {
        let (key, engine) = setup();
        for scope in [
            "mcp:resources\tmcp:tools",
            "mcp:resources\nmcp:tools",
            "mcp:resources\u{a0}mcp:tools",
            "mcp:resources,mcp:tools",
        ] {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "scope": scope }))));
            assert_deny(&d, "insufficient_scope", "scopes");
            assert_eq!(d.reason().unwrap().http_status(), 403);
            assert_eq!(d.reason().unwrap().oauth_error(), "insufficient_scope");
        }
    }

    #[test]
    fn near_miss_scopes_do_not_grant() {
        let (key, engine) = setup();
        for scope in ["mcp:toolsx", "MCP:TOOLS", "mcp:tool", "", " "] {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "scope": scope }))));
            assert_deny(&d, "insufficient_scope", "scopes");
        }
        let d = decide(&engine, &key.sign(&claims_with(json!({ "scope": null }))));
        assert_deny(&d, "insufficient_scope", "scopes");
    }

    #[test]
    fn malformed_scope_claims() {
        let (key, engine) = setup();
        // `scp` is declared as an array in the reference policy.
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "scope": null, "scp": "mcp:tools" }))),
        );
        assert_deny(&d, "invalid_claim", "scopes");
        // `scope` is declared as a space-delimited string.
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "scope": ["mcp:tools"] }))),
        );
        assert_deny(&d, "invalid_claim", "scopes");
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "scp": ["mcp:tools", 7] }))),
        );
        assert_deny(&d, "invalid_claim", "scopes");
    }
}

mod constraints_and_rules {
    use super::*;

    /// An engine for the reference policy plus `extra` TOML (appended at the end).
    fn with(extra: &str) -> (TestKey, PolicyEngine) {
        let key = TestKey::ed25519("ed");
        let policy = format!("{}\n{extra}\n", keycard_policy(&[&key]));
        let engine = engine(&policy, CTX);
        (key, engine)
    }

    /// One constraint: claim values that pass, and values that fail with `reason`
    /// (`null` in `pass`/`fail` means "the claim is absent").
    struct Case {
        constraint: &'static str,
        rule: &'static str,
        pass: Vec<Value>,
        fail: Vec<(Value, &'static str)>,
    }

    fn claim_x(value: &Value) -> Value {
        let mut claims = good_claims();
        if !value.is_null() {
            claims["x"] = value.clone();
        }
        claims
    }

    #[test]
    fn each_constraint_type() {
        let cases = vec![
            Case {
                constraint: r#"{ claim = "x", present = true }"#,
                rule: "constraint:x",
                pass: vec![json!("a"), json!(0), json!([])],
                fail: vec![(Value::Null, "missing_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", present = false }"#,
                rule: "constraint:x",
                pass: vec![Value::Null],
                fail: vec![
                    (json!("a"), "invalid_claim"),
                    (json!(false), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", equals = "acme" }"#,
                rule: "constraint:x",
                pass: vec![json!("acme")],
                fail: vec![
                    (json!("ACME"), "invalid_claim"),
                    (json!("acme "), "invalid_claim"),
                    (json!(["acme"]), "invalid_claim"),
                    (Value::Null, "missing_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", equals = 1 }"#,
                rule: "constraint:x",
                pass: vec![json!(1), json!(1.0)],
                fail: vec![
                    (json!("1"), "invalid_claim"),
                    (json!(1.5), "invalid_claim"),
                    (json!(true), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", equals = true }"#,
                rule: "constraint:x",
                pass: vec![json!(true)],
                fail: vec![
                    (json!("true"), "invalid_claim"),
                    (json!(1), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", one_of = ["a", "b", 3] }"#,
                rule: "constraint:x",
                pass: vec![json!("a"), json!("b"), json!(3)],
                fail: vec![(json!("c"), "invalid_claim"), (json!("3"), "invalid_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", prefix = "team-" }"#,
                rule: "constraint:x",
                pass: vec![json!("team-a"), json!("team-")],
                fail: vec![
                    (json!("xteam-a"), "invalid_claim"),
                    (json!(["team-a"]), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", suffix = "@example.com" }"#,
                rule: "constraint:x",
                pass: vec![json!("ann@example.com")],
                fail: vec![
                    (json!("ann@example.com.evil"), "invalid_claim"),
                    (json!(42), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", regex = "^[a-z]+-[0-9]+$" }"#,
                rule: "constraint:x",
                pass: vec![json!("abc-12")],
                fail: vec![
                    (json!("abc-12x"), "invalid_claim"),
                    (json!("xabc-12\n"), "invalid_claim"),
                    (json!(12), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", contains = "admin" }"#,
                rule: "constraint:x",
                pass: vec![json!(["user", "admin"]), json!("admin")],
                // A string is one value in the default `string_or_array` format.
                fail: vec![
                    (json!(["user"]), "invalid_claim"),
                    (json!("user admin"), "invalid_claim"),
                    (json!({ "admin": true }), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", format = "space_delimited", contains = "admin" }"#,
                rule: "constraint:x",
                pass: vec![json!("user admin")],
                fail: vec![
                    (json!("user\tadmin"), "invalid_claim"),
                    (json!(["admin"]), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", format = "array", contains_any = ["a", "b"] }"#,
                rule: "constraint:x",
                pass: vec![json!(["x", "b"]), json!(["a"])],
                fail: vec![
                    (json!(["x"]), "invalid_claim"),
                    (json!([]), "invalid_claim"),
                    (json!("a"), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", contains_all = ["a", "b"] }"#,
                rule: "constraint:x",
                pass: vec![json!(["b", "c", "a"])],
                fail: vec![
                    (json!(["a"]), "invalid_claim"),
                    (json!("a b"), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", type = "integer" }"#,
                rule: "constraint:x",
                pass: vec![json!(3), json!(-7), json!(3.0)],
                fail: vec![(json!(3.5), "invalid_claim"), (json!("3"), "invalid_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", type = "number" }"#,
                rule: "constraint:x",
                pass: vec![json!(3), json!(1.5)],
                fail: vec![(json!("1.5"), "invalid_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", type = "string" }"#,
                rule: "constraint:x",
                pass: vec![json!(""), json!("s")],
                fail: vec![(json!(1), "invalid_claim"), (json!(["s"]), "invalid_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", type = "boolean" }"#,
                rule: "constraint:x",
                pass: vec![json!(false)],
                fail: vec![
                    (json!("false"), "invalid_claim"),
                    (json!(0), "invalid_claim"),
                ],
            },
            Case {
                constraint: r#"{ claim = "x", type = "array" }"#,
                rule: "constraint:x",
                pass: vec![json!([]), json!([1, "a"])],
                fail: vec![(json!({}), "invalid_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", type = "object" }"#,
                rule: "constraint:x",
                pass: vec![json!({}), json!({ "a": 1 })],
                fail: vec![(json!([]), "invalid_claim")],
            },
            Case {
                constraint: r#"{ claim = "x", if_present = true, equals = "on" }"#,
                rule: "constraint:x",
                pass: vec![Value::Null, json!("on")],
                fail: vec![(json!("off"), "invalid_claim")],
            },
            Case {
                constraint: r#"{ path = ["x", "org", "id"], equals = "o1" }"#,
                rule: "constraint:x.org.id",
                pass: vec![json!({ "org": { "id": "o1" } })],
                fail: vec![
                    (json!({ "org": { "id": "o2" } }), "invalid_claim"),
                    (json!({ "org": {} }), "missing_claim"),
                    (json!({ "org": "o1" }), "missing_claim"),
                    (json!("o1"), "missing_claim"),
                    (Value::Null, "missing_claim"),
                ],
            },
        ];
        for case in &cases {
            let (key, engine) = with(&format!("[claims]\nconstraints = [{}]", case.constraint));
            for value in &case.pass {
                let d = decide(&engine, &key.sign(&claim_x(value)));
                assert!(
                    d.is_allowed(),
                    "{} with x = {value}: {}",
                    case.constraint,
                    d.explain()
                );
                assert_eq!(check(&d, case.rule).outcome(), &Outcome::Passed);
            }
            for (value, reason) in &case.fail {
                let d = decide(&engine, &key.sign(&claim_x(value)));
                assert_eq!(
                    outcome(&d),
                    *reason,
                    "{} with x = {value}: {}",
                    case.constraint,
                    d.explain()
                );
                assert_eq!(failed_rule(&d), case.rule, "{}", d.explain());
            }
        }
    }

    #[test]
    fn type_null() {
        let (key, engine) = with(
            r#"[claims]
constraints = [{ claim = "x", type = "null" }]"#,
        );
        let mut claims = good_claims();
        claims["x"] = Value::Null;
        assert_allow(&decide(&engine, &key.sign(&claims)));
        claims["x"] = json!(0);
        assert_deny(
            &decide(&engine, &key.sign(&claims)),
            "invalid_claim",
            "constraint:x",
        );
        let claims = good_claims();
        assert_deny(
            &decide(&engine, &key.sign(&claims)),
            "missing_claim",
            "constraint:x",
        );
    }

    #[test]
    fn required_claims() {
        let (key, engine) = with(
            r#"[claims]
required = ["sub", ["org", "id"]]"#,
        );
        let ok = claims_with(json!({ "org": { "id": 7 } }));
        let d = decide(&engine, &key.sign(&ok));
        assert_allow(&d);
        assert_eq!(check(&d, "required:sub").outcome(), &Outcome::Passed);
        assert_eq!(check(&d, "required:org.id").outcome(), &Outcome::Passed);
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "sub": null, "org": { "id": 7 } }))),
        );
        assert_deny(&d, "missing_claim", "required:sub");
        let d = decide(&engine, &key.sign(&good_claims()));
        assert_deny(&d, "missing_claim", "required:org.id");
        // Every failure is reported.
        let d = decide(&engine, &key.sign(&claims_with(json!({ "sub": null }))));
        assert_eq!(
            d.failures()
                .map(|c| c.rule().to_owned())
                .collect::<Vec<_>>(),
            ["required:sub", "required:org.id"]
        );
    }

    const RULES: &str = r#"
[[rules]]
name = "admin-needs-mfa"
description = "admins must have signed in with MFA"
when = { claim = "role", equals = "admin" }
require = { claim = "amr", format = "array", contains = "mfa" }

[[rules]]
name = "tenant"
require = { any = [
  { claim = "tenant", equals = "acme" },
  { all = [
    { claim = "tenant", prefix = "acme-" },
    { not = { claim = "sandbox", equals = true } },
  ] },
] }
"#;

    fn rules_claims(changes: Value) -> Value {
        with_changes(claims_with(json!({ "tenant": "acme" })), changes)
    }

    #[test]
    fn when_require() {
        let (key, engine) = with(RULES);
        // The rule does not apply to non-admins.
        let d = decide(&engine, &key.sign(&rules_claims(json!({ "role": "user" }))));
        assert_allow(&d);
        assert!(
            check(&d, "rule:admin-needs-mfa")
                .detail()
                .contains("does not apply"),
            "{}",
            d.explain()
        );
        let d = decide(&engine, &key.sign(&rules_claims(json!({}))));
        assert_allow(&d);
        // Admins with MFA.
        let d = decide(
            &engine,
            &key.sign(&rules_claims(
                json!({ "role": "admin", "amr": ["pwd", "mfa"] }),
            )),
        );
        assert_allow(&d);
        assert_eq!(
            check(&d, "rule:admin-needs-mfa").outcome(),
            &Outcome::Passed
        );
        // Admins without; an `amr` the rule cannot read (not an array) is a malformed claim.
        for (amr, reason) in [
            (json!(["pwd"]), "rule_failed"),
            (json!(null), "rule_failed"),
            (json!("mfa"), "invalid_claim"),
        ] {
            let d = decide(
                &engine,
                &key.sign(&rules_claims(json!({ "role": "admin", "amr": amr }))),
            );
            assert_deny(&d, reason, "rule:admin-needs-mfa");
            match check(&d, "rule:admin-needs-mfa").outcome() {
                Outcome::Failed { expected, .. } => {
                    assert_eq!(expected, "admins must have signed in with MFA");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn all_any_not() {
        let (key, engine) = with(RULES);
        for tenant in [
            json!({ "tenant": "acme" }),
            json!({ "tenant": "acme-eu" }),
            json!({ "tenant": "acme-eu", "sandbox": false }),
            json!({ "tenant": "acme", "sandbox": true }),
        ] {
            let d = decide(&engine, &key.sign(&rules_claims(tenant.clone())));
            assert!(d.is_allowed(), "{tenant}: {}", d.explain());
        }
        for (tenant, reason) in [
            (
                json!({ "tenant": "acme-eu", "sandbox": true }),
                "rule_failed",
            ),
            (json!({ "tenant": "other" }), "rule_failed"),
            (json!({ "tenant": null }), "rule_failed"),
            // A number cannot be compared with a string: undecided, a malformed claim.
            (json!({ "tenant": 1 }), "invalid_claim"),
        ] {
            let d = decide(&engine, &key.sign(&rules_claims(tenant.clone())));
            assert_eq!(outcome(&d), reason, "{tenant}: {}", d.explain());
            assert_eq!(failed_rule(&d), "rule:tenant");
        }
    }

    #[test]
    fn rules_are_not_evaluated_on_unverified_tokens() {
        let (key, engine) = with(RULES);
        let attacker = TestKey::ed25519("ed");
        let d = decide(
            &engine,
            &attacker.sign(&rules_claims(json!({ "tenant": "other" }))),
        );
        assert_deny(&d, "invalid_signature", "signature");
        assert_eq!(check(&d, "rule:tenant").outcome(), &Outcome::NotEvaluated);
        assert_eq!(
            check(&d, "rule:admin-needs-mfa").outcome(),
            &Outcome::NotEvaluated
        );
        let _ = key;
    }

    /// Conditions have three outcomes: an absent claim makes a constraint not hold; a claim of
    /// another type (or `null`) makes it undecided; `all`/`any`/`not` follow Kleene logic.
    mod three_valued {
        use super::*;

        const ADMINS: &str = r#"
[[rules]]
name = "admins-need-mfa"
when = { claim = "role", equals = "admin" }
require = { claim = "amr", format = "array", contains = "mfa" }
"#;

        const GUESTS: &str = r#"
[[rules]]
name = "no-guests"
require = { not = { claim = "role", equals = "guest" } }
"#;

        fn decide_with(policy: &str, changes: Value) -> Decision {
            let (key, engine) = with(policy);
            decide(&engine, &key.sign(&claims_with(changes)))
        }

        fn failures(d: &Decision) -> Vec<(String, String)> {
            d.failures()
                .map(|c| {
                    let reason = c.reason().map_or("", |r| r.as_str());
                    (c.rule().to_owned(), reason.to_owned())
                })
                .collect()
        }

        #[test]
        fn a_when_of_another_type_does_not_make_the_rule_silently_not_apply() {
            // `role = ["admin"]` is an array: `equals = "admin"` cannot decide whether the rule
            // applies, and `require` does not hold: deny, as a malformed claim.
            let d = decide_with(ADMINS, json!({ "role": ["admin"] }));
            assert_deny(&d, "invalid_claim", "rule:admins-need-mfa");
            let detail = check(&d, "rule:admins-need-mfa").detail().to_owned();
            assert!(detail.contains("undecided"), "{detail}");
            // Whether it applies or not, a `require` that holds is enough.
            let d = decide_with(ADMINS, json!({ "role": ["admin"], "amr": ["mfa"] }));
            assert_allow(&d);
            // A string role decides as before.
            assert_allow(&decide_with(ADMINS, json!({ "role": "user" })));
            let d = decide_with(ADMINS, json!({ "role": "admin" }));
            assert_deny(&d, "rule_failed", "rule:admins-need-mfa");
            // `null` is not a value either.
            let raw_null = decide_raw(&format!("{ADMINS}{GUESTS}"), "role", "null");
            assert_eq!(
                failures(&raw_null),
                [
                    (
                        "rule:admins-need-mfa".to_owned(),
                        "invalid_claim".to_owned()
                    ),
                    ("rule:no-guests".to_owned(), "invalid_claim".to_owned()),
                ],
                "{}",
                raw_null.explain()
            );
        }

        /// Signs the good claims with `name` set to the raw JSON text `raw`.
        fn decide_raw(policy: &str, name: &str, raw: &str) -> Decision {
            let (key, engine) = with(policy);
            let payload = with_raw_number(&good_claims(), name, raw);
            decide(&engine, &key.sign_raw(&key.header().to_string(), &payload))
        }

        #[test]
        fn not_of_an_undecided_condition_is_undecided() {
            let d = decide_with(GUESTS, json!({ "role": ["guest"] }));
            assert_deny(&d, "invalid_claim", "rule:no-guests");
            // Absent: the constraint does not hold, so its `not` holds (as before).
            assert_allow(&decide_with(GUESTS, json!({})));
            assert_allow(&decide_with(GUESTS, json!({ "role": "user" })));
            let d = decide_with(GUESTS, json!({ "role": "guest" }));
            assert_deny(&d, "rule_failed", "rule:no-guests");
        }

        #[test]
        fn all_and_any_follow_kleene_logic() {
            let policy = r#"
[[rules]]
name = "any"
require = { any = [{ claim = "tier", equals = "gold" }, { claim = "vip", equals = true }] }

[[rules]]
name = "all"
require = { all = [{ claim = "org", prefix = "acme" }, { claim = "region", equals = "eu" }] }
"#;
            let base = json!({ "org": "acme-1", "region": "eu", "tier": "gold" });
            assert_allow(&decide_with(policy, base.clone()));
            // any: one true is enough, even beside an undecided one.
            let d = decide_with(policy, with_changes(base.clone(), json!({ "vip": "yes" })));
            assert_allow(&d);
            // any: undecided and false is undecided; false and false is false.
            let d = decide_with(
                policy,
                with_changes(base.clone(), json!({ "tier": "silver", "vip": "yes" })),
            );
            assert_deny(&d, "invalid_claim", "rule:any");
            let d = decide_with(
                policy,
                with_changes(base.clone(), json!({ "tier": "silver" })),
            );
            assert_deny(&d, "rule_failed", "rule:any");
            // all: one false is enough to fail, even beside an undecided one.
            let d = decide_with(
                policy,
                with_changes(base.clone(), json!({ "org": 7, "region": "us" })),
            );
            assert_deny(&d, "rule_failed", "rule:all");
            // all: undecided and true is undecided.
            let d = decide_with(policy, with_changes(base, json!({ "org": 7 })));
            assert_deny(&d, "invalid_claim", "rule:all");
        }

        #[test]
        fn present_true_and_false_on_null_are_both_undecided() {
            let policy = r#"
[[rules]]
name = "has-x"
require = { claim = "x", present = true }

[[rules]]
name = "no-x"
require = { claim = "x", present = false }
"#;
            let d = decide_raw(policy, "x", "null");
            assert_eq!(
                failures(&d),
                [
                    ("rule:has-x".to_owned(), "invalid_claim".to_owned()),
                    ("rule:no-x".to_owned(), "invalid_claim".to_owned()),
                ],
                "{}",
                d.explain()
            );
            let d = decide_with(policy, json!({ "x": 1 }));
            assert_deny(&d, "rule_failed", "rule:no-x");
            let d = decide_with(policy, json!({}));
            assert_deny(&d, "rule_failed", "rule:has-x");
        }

        #[test]
        fn a_type_test_decides_any_type() {
            let policy = r#"
[[rules]]
name = "groups-listed"
when = { claim = "groups", type = "array" }
require = { claim = "groups", format = "array", contains = "staff" }
"#;
            assert_allow(&decide_with(policy, json!({ "groups": "staff" })));
            assert_allow(&decide_with(policy, json!({ "groups": ["staff"] })));
            let d = decide_with(policy, json!({ "groups": ["x"] }));
            assert_deny(&d, "rule_failed", "rule:groups-listed");
        }
    }
}

/// Behaviour an experienced user relies on at the edges of the policy language.
mod edges {
    use super::*;

    #[test]
    fn typ_is_a_media_type_with_application_implied() {
        // RFC 7515 §4.1.9: `at+jwt` and `application/at+jwt` name one type, in any case.
        let key = TestKey::es256("ec");
        let policy = replace(
            &keycard_policy(&[&key]),
            r#"typ = ["at+jwt", "application/at+jwt"]"#,
            r#"typ = ["at+jwt"]"#,
        );
        let engine = engine(&policy, CTX);
        for typ in ["at+jwt", "application/at+jwt", "Application/AT+JWT"] {
            let mut header = key.header();
            header["typ"] = json!(typ);
            assert_allow(&decide(&engine, &key.sign_with(&header, &good_claims())));
        }
        for typ in [
            "jwt",
            "application/jwt",
            "at+jwt; charset=utf-8",
            "text/at+jwt",
        ] {
            let mut header = key.header();
            header["typ"] = json!(typ);
            assert_deny(
                &decide(&engine, &key.sign_with(&header, &good_claims())),
                "invalid_type",
                "typ",
            );
        }
    }

    #[test]
    fn scopes_are_only_reported_when_none_is_required() {
        let key = TestKey::es256("ec");
        let policy = replace(
            &keycard_policy(&[&key]),
            r#"required = ["mcp:tools"]"#,
            "required = []",
        );
        let engine = engine(&policy, CTX);
        // `scope` must be space-delimited, but nothing depends on it: reported, not denied.
        let d = decide(
            &engine,
            &key.sign(&claims_with(
                json!({ "scope": ["mcp:tools"], "scp": ["a", "b"] }),
            )),
        );
        assert_allow(&d);
        assert_eq!(d.principal().scopes, vec!["a", "b"]);
        assert!(
            check(&d, "scopes")
                .detail()
                .contains("not read: `scope` must be a space-delimited string, not an array")
        );
        // With a scope required, the same token is denied: a malformed scope claim never grants.
        let (key, engine) = (
            key,
            super::support::engine(&keycard_policy(&[&TestKey::es256("ec")]), CTX),
        );
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "scope": ["mcp:tools"] }))),
        );
        assert!(!d.is_allowed());
    }

    #[test]
    fn null_is_not_a_value() {
        let key = TestKey::es256("ec");
        let policy = format!(
            "{}\n[claims]\nrequired = [\"sub\"]\nconstraints = [{{ claim = \"tid\", present = true }}]\n",
            keycard_policy(&[&key])
        );
        let engine = engine(&policy, CTX);
        assert_allow(&decide(
            &engine,
            &key.sign(&claims_with(json!({ "tid": "t1" }))),
        ));
        // (`claims_with` removes claims set to null; these tokens carry an explicit null.)
        let with_null = |name: &str, tid: Value| {
            let mut claims = good_claims();
            claims["tid"] = tid;
            claims[name] = Value::Null;
            key.sign(&claims)
        };
        let d = decide(&engine, &with_null("sub", json!("t1")));
        assert_deny(&d, "invalid_claim", "required:sub");
        let d = decide(&engine, &with_null("tid", Value::Null));
        assert_deny(&d, "invalid_claim", "constraint:tid");
        let d = decide(&engine, &key.sign(&good_claims()));
        assert_deny(&d, "missing_claim", "constraint:tid");
    }

    #[test]
    fn every_check_has_its_own_name() {
        let key = TestKey::es256("ec");
        let policy = format!(
            "{}\n[claims]\nconstraints = [\n  {{ claim = \"tid\", prefix = \"t\" }},\n  {{ claim = \"tid\", suffix = \"1\" }},\n]\n",
            keycard_policy(&[&key])
        );
        let engine = engine(&policy, CTX);
        let d = decide(&engine, &key.sign(&claims_with(json!({ "tid": "x2" }))));
        let failed: Vec<&str> = d.failures().map(|c| c.rule()).collect();
        assert_eq!(failed, vec!["constraint:tid", "constraint:tid#2"]);
        // A top-level claim named `a.b` and the nested `a` → `b` are two checks with two names.
        let policy = replace(
            &policy,
            "[claims]\n",
            "[claims]\nrequired = [\"a.b\", [\"a\", \"b\"]]\n",
        );
        let d = decide(
            &super::engine(&policy, CTX),
            &key.sign(&claims_with(json!({ "a.b": 1, "tid": "t1" }))),
        );
        let required: Vec<(&str, bool)> = d
            .checks()
            .iter()
            .filter(|c| c.rule().starts_with("required:"))
            .map(|c| (c.rule(), c.reason().is_none()))
            .collect();
        assert_eq!(
            required,
            [("required:a.b", true), ("required:a.b#2", false)]
        );
        let names: Vec<&str> = d.checks().iter().map(|c| c.rule()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}

mod audience_by_default {
    use super::*;

    const AUDIENCE_TABLE: &str = "[audience]\naccept = [\n  { value = \"${resource_url}\" },\n  { value = \"${zone_url}\", resource = \"${resource_url}\" },\n]\n";

    fn without_audience_table(key: &TestKey) -> String {
        replace(&keycard_policy(&[key]), AUDIENCE_TABLE, "")
    }

    #[test]
    fn without_an_audience_table_aud_must_name_the_resource() {
        let key = TestKey::es256("ec");
        let engine = engine(&without_audience_table(&key), CTX);
        assert_allow(&decide(&engine, &key.sign(&good_claims())));
        let other = key.sign(&claims_with(json!({ "aud": "https://other.example.com" })));
        assert_deny(&decide(&engine, &other), "audience_mismatch", "audience");
        // The zone is not an audience by default either, guarded or not.
        let zone = key.sign(&claims_with(json!({ "aud": ZONE, "resource": RESOURCE })));
        assert_deny(&decide(&engine, &zone), "audience_mismatch", "audience");
        let none = key.sign(&claims_with(json!({ "aud": null })));
        assert_deny(&decide(&engine, &none), "missing_claim", "audience");
    }

    #[test]
    fn any_audience_is_an_explicit_opt_out_that_check_warns_about() {
        let key = TestKey::es256("ec");
        let text = replace(
            &without_audience_table(&key),
            "[scopes]",
            "[audience]\naccept = \"any\"\n\n[scopes]",
        );
        let policy = Policy::from_toml("any.toml", text.as_str(), ".").unwrap();
        let codes: Vec<&str> = policy.warnings().iter().map(|w| w.kind.code()).collect();
        assert!(codes.contains(&"no-audience-rule"), "{codes:?}");
        let engine = engine(&text, CTX);
        for aud in [
            json!("https://other.example.com"),
            json!(["a", "b"]),
            json!(null),
        ] {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "aud": aud }))));
            assert_allow(&d);
            assert_eq!(d.principal().audience, None);
        }
        // Any audience, but still a well-formed one.
        for bad in [json!([]), json!(7), json!(["a", 1])] {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "aud": bad }))));
            assert_deny(&d, "invalid_claim", "audience");
        }
    }
}

/// The policy's regex dialect: a variable is inserted as a literal, the Perl classes `\d` `\w`
/// `\s` `\b` are ASCII, and the `unanchored-regex` lint reads the parsed pattern.
mod regex_dialect {
    use super::*;
    use jwt_policy::policy::DiagnosticKind;

    /// The reference engine with one constraint on claim `x`: `test` is the rest of its inline
    /// table (`regex = '...'`). `vars` is added to `[vars]`.
    fn constrained(vars: &str, test: &str) -> (TestKey, PolicyEngine) {
        let key = TestKey::ed25519("ed");
        let policy = replace(
            &keycard_policy(&[&key]),
            "[vars]\n",
            &format!("[vars]\n{vars}\n"),
        );
        let policy = format!("{policy}\n[claims]\nconstraints = [{{ claim = \"x\", {test} }}]\n");
        let engine = engine(&policy, CTX);
        (key, engine)
    }

    /// Checks that the constraint `test` allows each of `pass` and denies each of `fail` (with
    /// `invalid_claim`, from `constraint:x`).
    #[track_caller]
    fn matches_only(vars: &str, test: &str, pass: &[&str], fail: &[&str]) {
        let (key, engine) = constrained(vars, test);
        for value in pass {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "x": value }))));
            assert!(d.is_allowed(), "{test} with x = {value:?}: {}", d.explain());
        }
        for value in fail {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "x": value }))));
            assert!(
                !d.is_allowed(),
                "{test} with x = {value:?}: {}",
                d.explain()
            );
            assert_deny(&d, "invalid_claim", "constraint:x");
        }
    }

    #[test]
    fn a_variable_is_inserted_as_a_literal() {
        // `zone_url` is `https://abc123.keycard.cloud`: its dots match only dots, while the rest
        // of the pattern (`[a-z]+`) stays regex text.
        matches_only(
            "",
            "regex = '^${zone_url}/orgs/[a-z]+$'",
            &["https://abc123.keycard.cloud/orgs/x"],
            &[
                "https://abc123Xkeycard.cloud/orgs/x",
                "https://abc123.keycardXcloud/orgs/x",
                "https://abc123.keycard.cloud/orgs/X",
            ],
        );
        // Every metacharacter of the value is literal, and so is its space even where the
        // pattern ignores whitespace (`x` flag).
        matches_only(
            "team = 'dev ops+ (a|b)'",
            "regex = '(?x) ^ ${team} $'",
            &["dev ops+ (a|b)"],
            &["devops+ (a|b)", "dev opss a", "dev ops+ a", "dev ops (a|b)"],
        );
        // A quantifier after the variable applies to its last character, as after any literal.
        matches_only("v = 'ab'", "regex = '^${v}+$'", &["ab", "abbb"], &["abab"]);
    }

    #[test]
    fn perl_classes_are_ascii() {
        matches_only(
            "",
            r"regex = '^\d{6}$'",
            &["123456"],
            &["１２３４５６", "١٢٣٤٥٦", "12345６"],
        );
        matches_only("", r"regex = '^\w+$'", &["abc_9"], &["é", "abcé", "ǅ"]);
        matches_only(
            "",
            r"regex = '^a\sb$'",
            &["a b", "a\tb"],
            &["a\u{a0}b", "a\u{2003}b"],
        );
        // Inside a bracket class too.
        matches_only("", r"regex = '^[\d_]+$'", &["1_2"], &["١", "1_٢"]);
        // The negated classes are their complements: any character but an ASCII digit.
        matches_only("", r"regex = '^\D+$'", &["١٢", "ab"], &["1", "a1"]);
        matches_only("", r"regex = '^[^\W_]+$'", &["ab9"], &["a_b", "é"]);
        matches_only("", r"regex = '^\S+$'", &["a\u{a0}b"], &["a b"]);
        // `é` is not an ASCII word character, so there is a word boundary after `x`.
        matches_only("", r"regex = '^x\b.*$'", &["x-y", "xé"], &["xy"]);
        matches_only("", r"regex = '^x\B.*$'", &["xy"], &["xé", "x-"]);
        // What is written as Unicode stays Unicode: `\p{..}` classes and literal characters.
        matches_only("", r"regex = '^\p{Nd}+$'", &["١٢٣", "123"], &["a"]);
        matches_only("", r"regex = '^é+$'", &["éé"], &["e"]);
    }

    /// The `unanchored-regex` warnings (message, help) of the reference policy plus `extra`,
    /// with `[client_id]` extended by `client_id`.
    fn unanchored(client_id: &str, extra: &str) -> Vec<(String, String)> {
        let key = TestKey::ed25519("ed");
        let policy = replace(
            &keycard_policy(&[&key]),
            "[client_id]\n",
            &format!("[client_id]\n{client_id}\n"),
        );
        let policy = Policy::from_toml(
            "test.toml",
            format!("{policy}\n{extra}\n"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        policy
            .warnings()
            .iter()
            .filter(|w| w.kind == DiagnosticKind::UnanchoredRegex)
            .map(|w| (w.message.clone(), w.help.clone().unwrap_or_default()))
            .collect()
    }

    fn constraint(regex: &str) -> String {
        format!("[claims]\nconstraints = [{{ claim = \"x\", regex = '{regex}' }}]")
    }

    #[test]
    fn anchoring_is_read_from_the_parsed_pattern() {
        for anchored in [
            r"^a$",
            r"\Aa\z",
            r"^(?:a|b)$",
            r"^[](]$",
            r"^[]|]$",
            r"^[|]$",
            r"^a\\$",
            r"^a$|^b$",
            r"(?x) ^ a $ ",
            r"(?i)^a$",
        ] {
            assert_eq!(unanchored("", &constraint(anchored)), vec![], "{anchored}");
        }
        for open in [
            r"^a|b$",
            r"^[](]a|b$",
            r"(?m)^a$",
            r"^(?m)a$",
            r"^a\$",
            r"^a",
            r"a$",
            r"a",
        ] {
            assert_eq!(unanchored("", &constraint(open)).len(), 1, "{open}");
        }
    }

    #[test]
    fn the_warning_says_which_end_is_open_and_offers_the_simpler_test() {
        let one = |regex: &str| unanchored("", &constraint(regex));
        let pair = |m: &str, h: &str| vec![(m.to_owned(), h.to_owned())];
        assert_eq!(
            one("^org_"),
            pair(
                "regex `^org_` is not anchored at the end: it matches any value that starts with a match",
                "to test only the start write `prefix = \"org_\"`; to match whole values write `^(?:org_)$`",
            )
        );
        assert_eq!(
            one(r"@example\.com$"),
            pair(
                r"regex `@example\.com$` is not anchored at the start: it matches any value that ends with a match",
                r#"to test only the end write `suffix = "@example.com"`; to match whole values write `^(?:@example\.com)$`"#,
            )
        );
        assert_eq!(
            one("^user-[0-9]+"),
            pair(
                "regex `^user-[0-9]+` is not anchored at the end: it matches any value that starts with a match",
                "to match whole values write `^(?:user-[0-9]+)$`; if a partial match is intended, say so: `^(?:user-[0-9]+).*$`",
            )
        );
        assert_eq!(
            one("admin"),
            pair(
                "regex `admin` is not anchored: it matches any value that contains a match",
                "to match whole values write `^(?:admin)$`; if a partial match is intended, say so: `^.*(?:admin).*$`",
            )
        );
        assert_eq!(
            one("^admin|user$"),
            pair(
                "regex `^admin|user$` is not anchored: each anchor binds to one alternative of the top-level `|`",
                "group the alternatives between the anchors: `^(?:admin|user)$`",
            )
        );
        // In a rule's `require` too.
        assert_eq!(
            unanchored(
                "",
                "[[rules]]\nname = \"r\"\nrequire = { claim = \"x\", regex = '^org_' }"
            ),
            one("^org_")
        );
        // `allow` is a pattern only: there is no `prefix` to offer.
        assert_eq!(
            unanchored("allow = '^org_'", ""),
            pair(
                "regex `^org_` is not anchored at the end: it matches any value that starts with a match",
                "to match whole values write `^(?:org_)$`; if a partial match is intended, say so: `^(?:org_).*$`",
            )
        );
    }
}

/// 401 or 403: a token that is not valid for this resource is `invalid_token` whatever else
/// failed; only a valid token lacking a permission is `insufficient_scope`.
mod validity_before_permission {
    use super::*;

    const RULES: &str = r#"
[[rules]]
name = "needs-admin-role"
permission = true
require = { claim = "roles", format = "array", contains = "admin" }

[[rules]]
name = "tenant"
require = { claim = "tenant", equals = "acme" }
"#;

    fn engine_with_rules(key: &TestKey) -> PolicyEngine {
        engine(&format!("{}\n{RULES}", keycard_policy(&[key])), CTX)
    }

    fn claims(changes: Value) -> Value {
        with_changes(
            claims_with(json!({ "roles": ["admin"], "tenant": "acme" })),
            changes,
        )
    }

    fn status(d: &Decision) -> (&'static str, &'static str, u16) {
        let reason = d.reason().unwrap();
        (reason.as_str(), reason.oauth_error(), reason.http_status())
    }

    #[test]
    fn a_missing_client_id_outranks_a_missing_scope() {
        let key = TestKey::es256("ec");
        let engine = reference(&[&key]);
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "client_id": null, "scope": "other" }))),
        );
        assert_eq!(
            d.reasons().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ["insufficient_scope", "missing_client_id"],
            "check order is kept in `reasons`"
        );
        assert_eq!(status(&d), ("missing_client_id", "invalid_token", 401));
        // Only the scope missing: 403, and step-up can help.
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "scope": "other" }))),
        );
        assert_eq!(
            status(&d),
            ("insufficient_scope", "insufficient_scope", 403)
        );
    }

    #[test]
    fn a_failed_permission_rule_is_403_and_other_rules_401() {
        let key = TestKey::es256("ec");
        let engine = engine_with_rules(&key);
        assert_allow(&decide(&engine, &key.sign(&claims(json!({})))));
        let d = decide(&engine, &key.sign(&claims(json!({ "roles": ["reader"] }))));
        assert_deny(&d, "insufficient_permission", "rule:needs-admin-role");
        assert_eq!(
            status(&d),
            ("insufficient_permission", "insufficient_scope", 403)
        );
        // No roles at all: the permission is missing too.
        let d = decide(&engine, &key.sign(&claims(json!({ "roles": null }))));
        assert_eq!(
            status(&d),
            ("insufficient_permission", "insufficient_scope", 403)
        );
        // A rule that is not a permission rule: the token is not valid here.
        let d = decide(&engine, &key.sign(&claims(json!({ "tenant": "other" }))));
        assert_eq!(status(&d), ("rule_failed", "invalid_token", 401));
        // An undecided permission rule says the token is malformed, not that it lacks a role.
        let d = decide(&engine, &key.sign(&claims(json!({ "roles": "admin" }))));
        assert_eq!(status(&d), ("invalid_claim", "invalid_token", 401));
    }

    #[test]
    fn any_validity_failure_outranks_a_missing_permission() {
        let key = TestKey::es256("ec");
        let engine = engine_with_rules(&key);
        for (changes, reason) in [
            (json!({ "roles": ["reader"], "exp": NOW - 60 }), "expired"),
            (
                json!({ "roles": ["reader"], "tenant": "other" }),
                "rule_failed",
            ),
            (
                json!({ "scope": "x", "aud": "https://other.example.com" }),
                "audience_mismatch",
            ),
            (json!({ "scope": "x", "client_id": 7 }), "invalid_claim"),
        ] {
            let d = decide(&engine, &key.sign(&claims(changes.clone())));
            assert_eq!(
                d.reason().map(|r| r.as_str()),
                Some(reason),
                "{changes}: {}",
                d.explain()
            );
            assert_eq!(d.reason().unwrap().http_status(), 401);
            let json: Value = serde_json::from_str(&d.to_json()).unwrap();
            assert_eq!(json["reason"], reason);
        }
        // Two permissions missing: the first in check order decides.
        let d = decide(
            &engine,
            &key.sign(&claims(json!({ "roles": ["reader"], "scope": "x" }))),
        );
        assert_eq!(
            status(&d),
            ("insufficient_permission", "insufficient_scope", 403)
        );
    }
}

/// What one route requires beyond the policy, and what an allowed decision hands the service.
mod requirements {
    use super::*;
    use jwt_policy::Requirement;

    const ROUTES: &str = r#"
[[rules]]
name = "admin-role"
permission = true
route_only = true
require = { claim = "roles", format = "array", contains = "admin" }

[[routes]]
path = "/admin"
scopes = ["mcp:admin"]
rules = ["admin-role"]

[[routes]]
path = "/admin/reports"
methods = ["GET"]
scopes = ["mcp:reports"]
"#;

    fn setup() -> (TestKey, PolicyEngine) {
        let key = TestKey::es256("ec");
        let engine = engine(&format!("{}\n{ROUTES}", keycard_policy(&[&key])), CTX);
        (key, engine)
    }

    fn at_route(engine: &PolicyEngine, token: &str, req: &Requirement) -> Decision {
        engine.evaluate_at_with(token, UnixTime::from_secs(NOW), req)
    }

    #[test]
    fn a_requirement_adds_scopes_and_route_only_rules() {
        let (key, engine) = setup();
        let plain = key.sign(&good_claims());
        // Without a requirement the route-only rule is not even listed.
        let d = decide(&engine, &plain);
        assert_allow(&d);
        assert!(d.checks().iter().all(|c| c.rule() != "rule:admin-role"));
        assert_eq!(d.required_scopes(), ["mcp:tools"]);

        let admin = Requirement::new().scope("mcp:admin").rule("admin-role");
        let d = at_route(&engine, &plain, &admin);
        assert_eq!(
            d.reasons().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ["insufficient_permission", "insufficient_scope"]
        );
        assert_eq!(d.required_scopes(), ["mcp:tools", "mcp:admin"]);
        assert!(check(&d, "scopes").detail().contains("mcp:admin"));
        assert_eq!(
            check(&d, "rule:admin-role").reason().map(|r| r.as_str()),
            Some("insufficient_permission")
        );
        let granted = key.sign(&claims_with(
            json!({ "scope": "mcp:tools mcp:admin", "roles": ["admin"] }),
        ));
        assert_allow(&at_route(&engine, &granted, &admin));
        // A requirement never removes what the policy requires.
        let only_admin = key.sign(&claims_with(
            json!({ "scope": "mcp:admin", "roles": ["admin"] }),
        ));
        let d = at_route(&engine, &only_admin, &admin);
        assert_eq!(d.reason().map(|r| r.as_str()), Some("insufficient_scope"));
    }

    #[test]
    fn a_requirement_naming_an_unknown_rule_fails_closed() {
        let (key, engine) = setup();
        let token = key.sign(&good_claims());
        for name in ["no-such-rule", ""] {
            let d = at_route(&engine, &token, &Requirement::new().rule(name));
            assert_deny(&d, "internal", &format!("rule:{name}"));
        }
    }

    #[test]
    fn routes_in_the_policy_give_the_requirement_of_a_request() {
        let (_, engine) = setup();
        let policy = engine.policy();
        let req = |method: &str, uri: &str| policy.requirement_for(method, uri);
        assert_eq!(req("GET", "/mcp").unwrap(), Requirement::new());
        assert_eq!(
            req("POST", "/admin/users?x=1").unwrap(),
            Requirement::new().scope("mcp:admin").rule("admin-role")
        );
        assert_eq!(
            req("GET", "/admin/reports/7").unwrap(),
            Requirement::new().scope("mcp:reports")
        );
        // POST is not listed on the more specific route: the `/admin` one applies.
        assert_eq!(
            req("POST", "/admin/reports").unwrap(),
            Requirement::new().scope("mcp:admin").rule("admin-role")
        );
        assert_eq!(req("GET", "/administrator").unwrap(), Requirement::new());
        for sneaky in [
            "/x/../admin",
            "/admin/%2e%2e/mcp",
            "//admin",
            "/%61dmin",
            "/admin%2Fx",
        ] {
            assert!(req("GET", sneaky).is_err(), "{sneaky}");
        }
    }

    #[test]
    fn an_allowed_decision_hands_over_the_verified_claims() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Caller {
            sub: String,
            client_id: String,
            tenant: Tenant,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Tenant {
            id: u32,
        }
        let (key, engine) = with_reference(TestKey::es256("ec"));
        let d = decide(
            &engine,
            &key.sign(&claims_with(json!({ "tenant": { "id": 7 } }))),
        );
        assert_allow(&d);
        let claims = d.claims().expect("an allow carries the claims");
        assert_eq!(claims.to_value().unwrap()["tenant"]["id"], 7);
        let caller: Caller = claims.deserialize().unwrap();
        assert_eq!(
            caller,
            Caller {
                sub: "user-123".into(),
                client_id: "client-abc".into(),
                tenant: Tenant { id: 7 }
            }
        );
        // A struct the claims do not fit is an error, not a panic.
        assert!(claims.deserialize::<Tenant>().is_err());
        // Never on deny, even for a correctly signed token.
        let d = decide(&engine, &key.sign(&claims_with(json!({ "scope": "x" }))));
        assert!(!d.is_allowed());
        assert_eq!(d.claims(), None);
    }

    #[test]
    fn every_decision_names_the_policy_revision() {
        let key = TestKey::es256("ec");
        let text = keycard_policy(&[&key]);
        let a = Policy::from_toml("a.toml", text.as_str(), ".").unwrap();
        let b = Policy::from_toml("b.toml", text.as_str(), ".").unwrap();
        let changed = Policy::from_toml("a.toml", format!("{text}\n# edited\n"), ".").unwrap();
        assert_eq!(a.revision().len(), 16);
        assert!(a.revision().bytes().all(|b| b.is_ascii_hexdigit()));
        // The same text gives the same revision, whatever the file is called.
        assert_eq!(a.revision(), b.revision());
        assert_ne!(a.revision(), changed.revision());
        let revision = a.revision().to_owned();
        let engine = jwt_policy::PolicyEngine::builder(a)
            .context("credential.key_id", "k")
            .build()
            .unwrap();
        for token in [key.sign(&good_claims()), "x".into()] {
            let d = decide(&engine, &token);
            assert_eq!(d.policy_revision(), revision);
            let json: Value = serde_json::from_str(&d.to_json()).unwrap();
            assert_eq!(json["policy_revision"], revision.as_str());
        }
    }

    #[test]
    fn the_revision_covers_the_key_files_the_policy_names() {
        let dir = tempfile::tempdir().unwrap();
        let key = TestKey::es256("ec");
        let policy = replace(
            &keycard_policy(&[&key]),
            &format!("jwks = '''{}'''", jwks(&[&key])),
            "jwks_file = \"keys.json\"",
        );
        std::fs::write(dir.path().join("policy.toml"), &policy).unwrap();
        std::fs::write(dir.path().join("keys.json"), jwks(&[&key])).unwrap();
        let first = Policy::from_file(dir.path().join("policy.toml")).unwrap();
        assert_eq!(first.files(), [dir.path().join("keys.json")]);
        std::fs::write(
            dir.path().join("keys.json"),
            jwks(&[&key, &TestKey::es256("e2")]),
        )
        .unwrap();
        let second = Policy::from_file(dir.path().join("policy.toml")).unwrap();
        assert_ne!(first.revision(), second.revision());
    }
}

/// `[forward]`: verified claims `serve` passes on as headers.
mod forwarded_claims {
    use super::*;

    const FORWARD: &str = r#"
[forward]
headers = [
  { claim = "tid", header = "X-Auth-Tenant" },
  { path = ["realm", "roles"], header = "X-Auth-Roles", separator = " " },
  { claim = "level", header = "X-Auth-Level" },
  { claim = "absent", header = "X-Auth-Absent" },
]
"#;

    #[test]
    fn claims_become_headers_on_allow_only() {
        let key = TestKey::es256("ec");
        let engine = engine(&format!("{}\n{FORWARD}", keycard_policy(&[&key])), CTX);
        let claims = claims_with(json!({
            "tid": "acme", "realm": { "roles": ["reader", "writer"] }, "level": 3
        }));
        let d = decide(&engine, &key.sign(&claims));
        assert_allow(&d);
        assert_eq!(
            engine.forwarded_headers(&d).unwrap(),
            [
                ("X-Auth-Tenant".to_owned(), "acme".to_owned()),
                ("X-Auth-Roles".to_owned(), "reader writer".to_owned()),
                ("X-Auth-Level".to_owned(), "3".to_owned()),
            ]
        );
        let denied = decide(
            &engine,
            &key.sign(&with_changes(claims, json!({ "scope": "x" }))),
        );
        assert_eq!(engine.forwarded_headers(&denied).unwrap(), []);
    }

    #[test]
    fn values_a_header_cannot_carry_are_refused_not_forwarded() {
        let key = TestKey::es256("ec");
        let engine = engine(&format!("{}\n{FORWARD}", keycard_policy(&[&key])), CTX);
        for (tid, why) in [
            (json!("acme\r\nX-Admin: 1"), "not printable ASCII"),
            (json!("ácme"), "not printable ASCII"),
            (json!({ "id": 1 }), "an object"),
            (json!(["a", ["b"]]), "an array"),
        ] {
            let d = decide(&engine, &key.sign(&claims_with(json!({ "tid": tid }))));
            assert_allow(&d);
            let err = engine.forwarded_headers(&d).unwrap_err();
            assert_eq!(err.header, "X-Auth-Tenant");
            assert!(err.to_string().contains(why), "{err}");
        }
    }
}
