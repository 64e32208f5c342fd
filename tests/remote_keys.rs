//! Remote keys against a real HTTP server on 127.0.0.1: rotation, outages, floods of unknown
//! `kid`s, discovery, `Cache-Control`, start-up modes, and no background work after the engine is
//! dropped. Lifetimes and cooldowns run on tokio's paused clock, so nothing here sleeps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use jwt_policy::{BuildError, Decision, Policy, PolicyEngine, UnixTime};
use serde_json::json;
use support::http::{KeyServer, Reply};
use support::*;

/// The reference policy with its keys at `source` (TOML lines replacing the JWKS file) and extra
/// `[remote_keys]` settings.
fn policy(source: &str, remote_keys: &str) -> Policy {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/keycard-mcp.toml"
    ))
    .unwrap();
    let text = replace(&text, "jwks_file = \"keycard-mcp.jwks.json\"", source);
    let text = format!("{text}\n[remote_keys]\n{remote_keys}\n");
    Policy::from_toml("remote.toml", text, ".").unwrap_or_else(|e| panic!("{e}"))
}

/// Settings small enough to reason about: 60 s lifetime (10 s .. 600 s), 120 s of staleness,
/// 30 s cooldown, 60 s negative cache, 2 s timeout.
const SETTINGS: &str = "cache_default = \"60s\"\ncache_min = \"10s\"\ncache_max = \"600s\"\nmax_stale = \"120s\"\ncooldown = \"30s\"\nnegative_cache = \"60s\"\ntimeout = \"2s\"";

fn jwks_url(server: &KeyServer) -> String {
    format!("jwks_url = \"{}\"", server.url("/jwks"))
}

async fn engine_for(policy: Policy) -> Result<PolicyEngine, BuildError> {
    PolicyEngine::builder(policy)
        .context("credential.key_id", "stable-1")
        .build_async()
        .await
}

/// A key server publishing `keys` at `/jwks`, and an engine (eager start-up, [`SETTINGS`])
/// fetching them from it.
async fn serving(keys: &[&TestKey]) -> (KeyServer, PolicyEngine) {
    let server = KeyServer::start().await;
    server.set("/jwks", Reply::json(jwks(keys)));
    let engine = engine_for(policy(&jwks_url(&server), SETTINGS))
        .await
        .unwrap();
    (server, engine)
}

/// Decides with the async path (refetch on unknown `kid`) at the fixed token clock.
async fn decide_async(engine: &PolicyEngine, token: &str) -> Decision {
    engine
        .evaluate_async_at(token, UnixTime::from_secs(NOW))
        .await
}

/// Lets the runtime run (background fetches included) for `secs` of paused time, in small steps
/// so IO is served between timer jumps.
async fn run_for(secs: u64) {
    for _ in 0..secs * 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (in paused time) until `path` has had `n` requests; fails after a virtual minute.
async fn until_hits(server: &KeyServer, path: &str, n: usize) {
    for _ in 0..600 {
        if server.hits(path) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{path}` had {} requests, expected {n}", server.hits(path));
}

mod rotation {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_new_kid_verifies_once_published_and_a_removed_key_stops_after_refresh() {
        let (a, b) = (TestKey::es256("key-a"), TestKey::es256("key-b"));
        let (server, engine) = serving(&[&a]).await;
        assert_eq!(server.hits("/jwks"), 1, "eager start-up fetches once");
        assert_allow(&decide_async(&engine, &a.sign(&good_claims())).await);

        // `key-b` is used before it is published: one refetch, still unknown.
        let early = decide_async(&engine, &b.sign(&good_claims())).await;
        assert_deny(&early, "key_not_found", "key");
        assert_eq!(server.hits("/jwks"), 2);

        // Published now; within the negative cache the same kid is not looked for again...
        server.set("/jwks", Reply::json(jwks(&[&a, &b])));
        run_for(20).await;
        assert_deny(
            &decide_async(&engine, &b.sign(&good_claims())).await,
            "key_not_found",
            "key",
        );
        assert_eq!(server.hits("/jwks"), 2);
        // ...after it, one refetch and the token verifies.
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_allow(&decide_async(&engine, &b.sign(&good_claims())).await);
        let fetches = server.hits("/jwks");

        // `key-a` is withdrawn: it works until the background refresh (at 80 % of 60 s) drops it.
        server.set("/jwks", Reply::json(jwks(&[&b])));
        assert_allow(&decide_async(&engine, &a.sign(&good_claims())).await);
        until_hits(&server, "/jwks", fetches + 1).await;
        run_for(1).await;
        let removed = engine.evaluate_at(a.sign(&good_claims()), UnixTime::from_secs(NOW));
        assert_deny(&removed, "key_not_found", "key");
        assert_allow(&decide_async(&engine, &b.sign(&good_claims())).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_kid_never_seen_before_verifies_at_once() {
        let (a, b) = (TestKey::es256("key-a"), TestKey::ed25519("key-b"));
        let (server, engine) = serving(&[&a]).await;
        server.set("/jwks", Reply::json(jwks(&[&a, &b])));
        // Outside any cooldown: the unknown kid causes one refetch and the token passes.
        assert_allow(&decide_async(&engine, &b.sign(&good_claims())).await);
        assert_eq!(server.hits("/jwks"), 2);
        let stats = engine.key_stats();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].0, ZONE);
        assert_eq!(
            (stats[0].1.fetches, stats[0].1.unknown_kid_refetches),
            (2, 1)
        );
        // The synchronous path sees the new key too: nothing is fetched on it.
        assert_allow(&decide(&engine, &b.sign(&good_claims())));
    }
}

mod outage {
    use super::*;

    /// Ways the key server can fail.
    #[derive(Debug, Clone, Copy)]
    enum Failure {
        Refused,
        ServerError,
        Garbage,
        TooSlow,
    }

    async fn fail(server: &KeyServer, how: Failure) {
        match how {
            Failure::Refused => server.stop(),
            Failure::ServerError => server.set("/jwks", Reply::status(500)),
            Failure::Garbage => server.set("/jwks", Reply::json("{\"keys\": [ this is not json")),
            Failure::TooSlow => {
                let slow =
                    Reply::json(jwks(&[&TestKey::es256("other")])).delayed(Duration::from_secs(10));
                server.set("/jwks", slow);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cached_keys_serve_within_max_stale_then_fail_closed() {
        for how in [
            Failure::Refused,
            Failure::ServerError,
            Failure::Garbage,
            Failure::TooSlow,
        ] {
            let key = TestKey::es256("key-a");
            let server = KeyServer::start().await;
            server.set("/jwks", Reply::json(jwks(&[&key])));
            let engine = engine_for(policy(&jwks_url(&server), SETTINGS))
                .await
                .unwrap();
            let token = key.sign(&good_claims());
            fail(&server, how).await;

            // Past the 60 s lifetime, refreshes failing: still served (stale), within 120 s.
            run_for(90).await;
            let stale = decide_async(&engine, &token).await;
            assert_allow(&stale);
            let stats = engine.key_stats()[0].1;
            assert!(stats.stale_serves >= 1, "{how:?}: {stats:?}");
            assert!(stats.failures >= 1, "{how:?}: {stats:?}");

            // Past lifetime + max_stale: fail closed, whatever the retries did.
            run_for(100).await;
            let closed = decide_async(&engine, &token).await;
            assert_deny(&closed, "keys_unavailable", "key");
            assert!(
                check(&closed, "key").detail().contains("max_stale"),
                "{how:?}: {}",
                closed.explain()
            );
            drop(engine);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_back_when_the_server_does() {
        let key = TestKey::es256("key-a");
        let (server, engine) = serving(&[&key]).await;
        server.stop();
        run_for(200).await;
        assert_deny(
            &decide_async(&engine, &key.sign(&good_claims())).await,
            "keys_unavailable",
            "key",
        );
        server.restart().await;
        // The background task retries with backoff (at most a minute apart).
        run_for(70).await;
        assert_allow(&decide_async(&engine, &key.sign(&good_claims())).await);
    }

    #[tokio::test(start_paused = true)]
    async fn eager_start_up_fails_fast_and_lazy_start_up_waits_for_the_first_token() {
        let key = TestKey::es256("key-a");
        let server = KeyServer::start().await;
        server.stop();
        let err = engine_for(policy(&jwks_url(&server), SETTINGS))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BuildError::Keys { ref iss, .. } if iss == ZONE),
            "{err}"
        );
        assert!(err.to_string().contains("cannot connect"), "{err}");

        let lazy = format!("{SETTINGS}\nstartup = \"lazy\"");
        let engine = engine_for(policy(&jwks_url(&server), &lazy)).await.unwrap();
        assert_eq!(server.hits("/jwks"), 0);
        let down = decide_async(&engine, &key.sign(&good_claims())).await;
        assert_deny(&down, "keys_unavailable", "key");
        // The cause is said once, not wrapped in a second "keys unavailable".
        let detail = check(&down, "key").detail().to_owned();
        assert_eq!(detail.matches("keys unavailable").count(), 1, "{detail}");
        assert!(detail.contains("cannot connect"), "{detail}");
        server.restart().await;
        server.set("/jwks", Reply::json(jwks(&[&key])));
        run_for(70).await;
        assert_allow(&decide_async(&engine, &key.sign(&good_claims())).await);
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_answers_and_redirects_are_refused() {
        let key = TestKey::es256("key-a");
        let server = KeyServer::start().await;
        let padding = "x".repeat(2048);
        server.set(
            "/jwks",
            Reply::json(format!(
                "{{\"keys\":{},\"pad\":\"{padding}\"}}",
                json!([key.jwk])
            )),
        );
        let small = format!("{SETTINGS}\nmax_response_bytes = 1024");
        let err = engine_for(policy(&jwks_url(&server), &small))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("response larger than 1024 bytes"),
            "{err}"
        );

        let mut redirect = Reply::status(302);
        redirect
            .headers
            .push(("Location".into(), server.url("/elsewhere")));
        server.set("/jwks", redirect);
        server.set("/elsewhere", Reply::json(jwks(&[&key])));
        let err = engine_for(policy(&jwks_url(&server), SETTINGS))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP 302"), "{err}");
        assert_eq!(server.hits("/elsewhere"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_keys_are_skipped_and_the_others_work() {
        let key = TestKey::es256("key-a");
        let server = KeyServer::start().await;
        let broken = json!({ "kty": "EC", "kid": "broken", "crv": "P-256", "x": "AAAA", "y": 7 });
        server.set(
            "/jwks",
            Reply::json(json!({ "keys": [broken, key.jwk] }).to_string()),
        );
        let engine = engine_for(policy(&jwks_url(&server), SETTINGS))
            .await
            .unwrap();
        assert_allow(&decide_async(&engine, &key.sign(&good_claims())).await);
    }
}

mod flood {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn random_unknown_kids_cause_at_most_one_fetch_per_cooldown() {
        let key = TestKey::es256("key-a");
        let (server, engine) = serving(&[&key]).await;
        let mut header = key.header();
        for window in 0..3 {
            for i in 0..1_000 {
                header["kid"] = json!(format!("random-{window}-{i}"));
                let d = decide_async(&engine, &key.sign_with(&header, &good_claims())).await;
                assert_deny(&d, "key_not_found", "key");
            }
            // One start-up fetch, then at most one per 30 s window.
            assert_eq!(server.hits("/jwks"), 1 + window + 1, "window {window}");
            tokio::time::advance(Duration::from_secs(31)).await;
        }
        let stats = engine.key_stats()[0].1;
        assert_eq!(stats.unknown_kid_refetches, 3);
        assert_eq!(stats.cooldown_skips, 3 * 999);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_concurrent_verifications_of_a_new_kid_share_one_fetch() {
        let (a, b) = (TestKey::es256("key-a"), TestKey::es256("key-b"));
        let (server, engine) = serving(&[&a]).await;
        server.set(
            "/jwks",
            Reply::json(jwks(&[&a, &b])).delayed(Duration::from_millis(200)),
        );
        let token = b.sign(&good_claims());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (engine, token) = (engine.clone(), token.clone());
            tasks.spawn(async move { decide_async(&engine, &token).await });
        }
        while let Some(d) = tasks.join_next().await {
            assert_allow(&d.unwrap());
        }
        assert_eq!(
            server.hits("/jwks"),
            2,
            "start-up, then exactly one fetch for the new kid"
        );
    }
}

mod discovery {
    use super::*;

    /// Metadata naming `issuer` and `jwks_uri`.
    fn metadata(issuer: &str, jwks_uri: &str) -> Reply {
        Reply::json(
            json!({ "issuer": issuer, "jwks_uri": jwks_uri, "response_types_supported": ["code"] })
                .to_string(),
        )
    }

    /// The reference policy with the issuer at `iss` and its keys found by discovery.
    fn discovering(iss: &str, extra: &str) -> Policy {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/keycard-mcp.toml"
        ))
        .unwrap();
        let text = replace(
            &text,
            "zone_url = \"https://abc123.keycard.cloud\"",
            &format!("zone_url = \"{iss}\""),
        );
        let text = replace(
            &text,
            "jwks_file = \"keycard-mcp.jwks.json\"",
            &format!("discovery = true\n{extra}"),
        );
        Policy::from_toml(
            "discovery.toml",
            format!("{text}\n[remote_keys]\n{SETTINGS}\n"),
            ".",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn claims_from(iss: &str) -> serde_json::Value {
        claims_with(json!({ "iss": iss }))
    }

    #[tokio::test(start_paused = true)]
    async fn rfc8414_metadata_on_the_issuers_origin() {
        let key = TestKey::es256("key-a");
        let server = KeyServer::start().await;
        let iss = server.origin();
        server.set(
            "/.well-known/oauth-authorization-server",
            metadata(&iss, &server.url("/keys")),
        );
        server.set("/keys", Reply::json(jwks(&[&key])));
        let engine = engine_for(discovering(&iss, "")).await.unwrap();
        assert_allow(&decide_async(&engine, &key.sign(&claims_from(&iss))).await);
        assert_eq!(server.hits("/.well-known/openid-configuration"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn openid_configuration_when_rfc8414_metadata_is_missing() {
        let key = TestKey::es256("key-a");
        let server = KeyServer::start().await;
        let iss = format!("{}/tenant/v2.0", server.origin());
        server.set(
            "/tenant/v2.0/.well-known/openid-configuration",
            metadata(&iss, &server.url("/tenant/keys")),
        );
        server.set("/tenant/keys", Reply::json(jwks(&[&key])));
        let engine = engine_for(discovering(&iss, "")).await.unwrap();
        assert_eq!(
            server.hits("/.well-known/oauth-authorization-server/tenant/v2.0"),
            1
        );
        assert_allow(&decide_async(&engine, &key.sign(&claims_from(&iss))).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_jwks_uri_on_another_origin_is_refused_unless_allowed() {
        let key = TestKey::es256("key-a");
        let (idp, elsewhere) = (KeyServer::start().await, KeyServer::start().await);
        let iss = idp.origin();
        idp.set(
            "/.well-known/oauth-authorization-server",
            metadata(&iss, &elsewhere.url("/keys")),
        );
        elsewhere.set("/keys", Reply::json(jwks(&[&key])));
        let err = engine_for(discovering(&iss, ""))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is on another origin than the issuer"),
            "{err}"
        );
        assert!(
            err.contains(&format!("jwks_origins = [\"{}\"]", elsewhere.origin())),
            "{err}"
        );
        assert_eq!(
            elsewhere.hits("/keys"),
            0,
            "keys on a foreign origin are never fetched"
        );

        let allowed = format!("jwks_origins = [\"{}\"]", elsewhere.origin());
        let engine = engine_for(discovering(&iss, &allowed)).await.unwrap();
        assert_allow(&decide_async(&engine, &key.sign(&claims_from(&iss))).await);
    }

    #[tokio::test(start_paused = true)]
    async fn metadata_for_another_issuer_is_refused() {
        let server = KeyServer::start().await;
        let iss = server.origin();
        server.set(
            "/.well-known/oauth-authorization-server",
            metadata("https://someone.else", &server.url("/keys")),
        );
        let err = engine_for(discovering(&iss, ""))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names issuer `https://someone.else`, not this one"),
            "{err}"
        );
        // Identical means identical: a trailing slash is another issuer (RFC 8414 §3.3).
        let slash = format!("{iss}/");
        server.set(
            "/.well-known/oauth-authorization-server",
            metadata(&slash, &server.url("/keys")),
        );
        let err = engine_for(discovering(&iss, ""))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not this one"), "{err}");
    }
}

mod cache_control {
    use super::*;

    /// The lifetime a `max-age` gives: the time until the background refresh (80 %) is seen by
    /// when the second fetch happens.
    async fn refresh_after(cache_control: &str) -> u64 {
        let key = TestKey::es256("key-a");
        let server = KeyServer::start().await;
        let mut reply = Reply::json(jwks(&[&key]));
        reply
            .headers
            .push(("Cache-Control".into(), cache_control.into()));
        server.set("/jwks", reply);
        let _engine = engine_for(policy(&jwks_url(&server), SETTINGS))
            .await
            .unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..20_000 {
            if server.hits("/jwks") >= 2 {
                return start.elapsed().as_secs();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no refresh for `Cache-Control: {cache_control}`");
    }

    #[tokio::test(start_paused = true)]
    async fn max_age_is_honoured_within_the_policy_bounds() {
        // 80 % of: max-age 100 s; 5 s clamped up to 10 s; 100000 s clamped down to 600 s.
        assert_eq!(refresh_after("public, max-age=100").await, 80);
        assert_eq!(refresh_after("max-age=5").await, 8);
        assert_eq!(refresh_after("max-age=100000").await, 480);
        // `no-store` (anywhere in the header) means as short as the policy allows, not nonstop.
        assert_eq!(refresh_after("max-age=300, no-store").await, 8);
        // No max-age: the policy's default, 60 s.
        assert_eq!(refresh_after("public").await, 48);
    }
}

mod lifecycle {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn dropping_the_engine_stops_its_background_work() {
        let key = TestKey::es256("key-a");
        let (server, engine) = serving(&[&key]).await;
        let clone = engine.clone();
        run_for(120).await;
        let refreshed = server.hits("/jwks");
        assert!(
            refreshed >= 3,
            "the background task refreshes every 48 s: {refreshed}"
        );
        drop(engine);
        run_for(120).await;
        assert!(
            server.hits("/jwks") > refreshed,
            "a clone keeps the engine alive"
        );
        drop(clone);
        let last = server.hits("/jwks");
        run_for(600).await;
        assert_eq!(
            server.hits("/jwks"),
            last,
            "no fetch after the last clone is dropped"
        );
    }
}

/// Keys no honest issuer publishes: a remote set skips them (and logs a `warn` event for each,
/// tests/remote_key_warnings.rs) and the other keys still work.
mod refused_keys {
    use super::*;

    use base64::Engine as _;
    use jwt_policy::{Algorithm, KeySource, RemoteKeys, RemoteSettings, RemoteSource};

    /// A token "signed" for `kid` without any private key: R = the identity point, S = 0, which a
    /// cofactorless check accepts for every message under the identity point as public key.
    fn forged(kid: &str, claims: &serde_json::Value) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid }).to_string();
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = [0u8; 64];
        signature[0] = 1;
        format!("{input}.{}", b64(&signature))
    }

    /// The identity point as an Ed25519 JWK.
    fn identity_jwk(kid: &str) -> serde_json::Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" })
    }

    /// What a source for an issuer allowing `algorithms` skipped in the set at `/jwks`.
    async fn skipped(server: &KeyServer, algorithms: &[Algorithm]) -> Vec<String> {
        let url = url::Url::parse(&server.url("/jwks")).unwrap();
        let source = RemoteKeys::for_issuer(
            RemoteSource::JwksUrl(url),
            RemoteSettings::default(),
            algorithms,
        )
        .unwrap();
        source.fetch_now().await.unwrap();
        source.keys().unwrap().skipped().to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_order_ed25519_key_is_skipped() {
        let good = TestKey::es256("good");
        let server = KeyServer::start().await;
        server.set(
            "/jwks",
            Reply::json(json!({ "keys": [identity_jwk("forged"), good.jwk] }).to_string()),
        );
        let engine = engine_for(policy(&jwks_url(&server), SETTINGS))
            .await
            .unwrap();
        let d = decide_async(&engine, &forged("forged", &good_claims())).await;
        assert_deny(&d, "key_not_found", "key");
        assert_allow(&decide_async(&engine, &good.sign(&good_claims())).await);
        assert_eq!(
            skipped(&server, &[Algorithm::EdDSA, Algorithm::ES256]).await,
            [
                "key 0 (`kid` `forged`): Ed25519 `x` is a point of small order: signatures could be forged for it without any private key"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_order_key_found_by_discovery_is_skipped() {
        let good = TestKey::es256("good");
        let server = KeyServer::start().await;
        let iss = server.origin();
        server.set(
            "/.well-known/oauth-authorization-server",
            Reply::json(json!({ "issuer": iss, "jwks_uri": server.url("/keys") }).to_string()),
        );
        server.set(
            "/keys",
            Reply::json(json!({ "keys": [identity_jwk("forged"), good.jwk] }).to_string()),
        );
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/keycard-mcp.toml"
        ))
        .unwrap();
        let text = replace(
            &text,
            "zone_url = \"https://abc123.keycard.cloud\"",
            &format!("zone_url = \"{iss}\""),
        );
        let text = replace(
            &text,
            "jwks_file = \"keycard-mcp.jwks.json\"",
            "discovery = true",
        );
        let policy = Policy::from_toml("discovery.toml", text, ".").unwrap();
        let engine = engine_for(policy).await.unwrap();
        let claims = claims_with(json!({ "iss": iss }));
        let d = decide_async(&engine, &forged("forged", &claims)).await;
        assert_deny(&d, "key_not_found", "key");
        assert_allow(&decide_async(&engine, &good.sign(&claims)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_rsa_key_without_alg_under_several_rsa_algorithms_is_skipped() {
        let rs256 = TestKey::rsa("r1", "RS256", 0);
        let ps256 = TestKey::rsa("r1", "PS256", 0);
        let es = TestKey::es256("e1");
        let server = KeyServer::start().await;
        server.set("/jwks", Reply::json(jwks(&[&rs256, &es])));
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/keycard-mcp.toml"
        ))
        .unwrap();
        let text = replace(
            &text,
            "jwks_file = \"keycard-mcp.jwks.json\"",
            &jwks_url(&server),
        );
        let text = replace(
            &text,
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            r#"algorithms = ["RS256", "PS256", "ES256"]"#,
        );
        let policy = Policy::from_toml(
            "remote.toml",
            format!("{text}\n[remote_keys]\n{SETTINGS}\n"),
            ".",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let engine = engine_for(policy).await.unwrap();
        for token in [rs256.sign(&good_claims()), ps256.sign(&good_claims())] {
            assert_deny(&decide_async(&engine, &token).await, "key_not_found", "key");
        }
        assert_allow(&decide_async(&engine, &es.sign(&good_claims())).await);
        use Algorithm::{ES256, PS256, RS256};
        assert_eq!(
            skipped(&server, &[RS256, PS256, ES256]).await,
            [
                "key 0 (`kid` `r1`): RSA key has no `alg`, and the issuer allows `RS256` and `PS256`: it would verify tokens of each (RFC 8725 §3.1)"
            ]
        );
        // Under one RSA algorithm the key is bound to it, and kept.
        assert!(skipped(&server, &[RS256, ES256]).await.is_empty());

        // With its `alg`, the same key works for that algorithm only.
        server.set(
            "/jwks",
            Reply::json(json!({ "keys": [rs256.jwk_with_alg(), es.jwk] }).to_string()),
        );
        run_for(60).await;
        assert_allow(&decide_async(&engine, &rs256.sign(&good_claims())).await);
        assert_deny(
            &decide_async(&engine, &ps256.sign(&good_claims())).await,
            "key_mismatch",
            "key",
        );
    }
}
