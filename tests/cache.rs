//! The verified-decision cache: opt-in, keyed on the whole token and the requirement, time
//! re-checked on every hit, invalidated by a key change, never caching what must not be cached,
//! and bounded under a flood of unique tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::{Arc, Mutex};

use jwt_policy::{
    CacheSettings, CacheStats, Decision, KeyError, KeySet, KeySource, Policy, PolicyEngine,
    Requirement, UnixTime,
};
use serde_json::json;
use support::*;

const CACHE: &str = "\n[cache]\nenabled = true\n";

/// The reference engine for `key`, with `extra` policy text appended.
fn cached_engine(key: &TestKey, extra: &str) -> PolicyEngine {
    engine(&format!("{}{CACHE}{extra}", keycard_policy(&[key])), CTX)
}

fn at(engine: &PolicyEngine, token: &str, now: UnixTime) -> Decision {
    engine.evaluate_at(token, now)
}

fn secs(s: i64) -> UnixTime {
    UnixTime::from_secs(s)
}

fn stats(engine: &PolicyEngine) -> CacheStats {
    engine.cache_stats().expect("the cache is on")
}

fn settings(entries: usize, bytes: u64) -> CacheSettings {
    CacheSettings::new(
        NonZeroUsize::new(entries).unwrap(),
        NonZeroU64::new(bytes).unwrap(),
    )
}

#[test]
fn a_repeated_token_is_answered_from_the_cache() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let token = key.sign(&good_claims());
    let first = decide(&engine, &token);
    assert_allow(&first);
    assert_eq!((stats(&engine).hits, stats(&engine).inserts), (0, 1));
    let second = decide(&engine, &token);
    assert_eq!(second, first);
    assert_eq!(second.to_json(), first.to_json());
    let s = stats(&engine);
    assert_eq!((s.hits, s.misses, s.inserts, s.entries), (1, 1, 1, 1));
    // The same token with one more byte is another token.
    let longer = format!("{token}A");
    assert!(!decide(&engine, &longer).is_allowed());
    assert_eq!(stats(&engine).hits, 1);
}

#[test]
fn the_cache_is_off_unless_enabled() {
    let key = TestKey::es256("ec");
    let plain = engine(&keycard_policy(&[&key]), CTX);
    assert_eq!(plain.cache_stats(), None);
    let disabled = engine(
        &format!("{}\n[cache]\nenabled = false\n", keycard_policy(&[&key])),
        CTX,
    );
    assert_eq!(disabled.cache_stats(), None);
    let sized = engine(
        &format!(
            "{}\n[cache]\nenabled = true\nmax_entries = 500\nmax_bytes = \"1MiB\"\n",
            keycard_policy(&[&key])
        ),
        CTX,
    );
    assert_eq!(sized.policy().cache(), Some(settings(500, 1 << 20)));
    assert_eq!(sized.cache_stats(), Some(CacheStats::default()));
    // Code decides over the policy, both ways.
    let policy = sized.policy().clone();
    let off = PolicyEngine::builder(policy.clone())
        .context("credential.key_id", "stable-1")
        .cache(None)
        .build()
        .unwrap();
    assert_eq!(off.cache_stats(), None);
    let on = PolicyEngine::builder(plain.policy().clone())
        .context("credential.key_id", "stable-1")
        .cache(Some(CacheSettings::default()))
        .build()
        .unwrap();
    let token = key.sign(&good_claims());
    decide(&on, &token);
    decide(&on, &token);
    assert_eq!(stats(&on).hits, 1);
}

#[test]
fn a_cached_allow_expires_exactly_with_the_token() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let exp = NOW + 3600;
    let token = key.sign(&claims_with(json!({ "exp": exp })));
    assert_allow(&at(&engine, &token, secs(NOW)));
    // The policy's leeway is 30 s: the last allowed instant is one nanosecond before exp + 30.
    let last = UnixTime::parse(&format!("{}.999999999", exp + 29)).unwrap();
    assert_allow(&at(&engine, &token, last));
    assert_allow(&at(&engine, &token, secs(exp + 29)));
    assert_eq!(stats(&engine).hits, 2);
    let d = at(&engine, &token, secs(exp + 30));
    assert_deny(&d, "expired", "exp");
    assert_eq!(
        check(&d, "exp").detail(),
        format!("expired at {exp} (leeway 30 s)")
    );
    assert_eq!(stats(&engine).hits, 2);
    // The expired decision is not cached, and the stale entry is gone.
    assert_deny(&at(&engine, &token, secs(exp + 31)), "expired", "exp");
    let s = stats(&engine);
    assert_eq!((s.hits, s.inserts, s.entries), (2, 1, 0));
}

#[test]
fn a_cached_decision_is_not_valid_before_nbf_or_iat() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let nbf = NOW - 100;
    let token = key.sign(&claims_with(json!({ "nbf": nbf, "iat": NOW - 200 })));
    assert_allow(&at(&engine, &token, secs(NOW)));
    assert_allow(&at(&engine, &token, secs(nbf - 30)));
    assert_eq!(stats(&engine).hits, 1);
    assert_deny(&at(&engine, &token, secs(nbf - 31)), "not_yet_valid", "nbf");
    assert_eq!(stats(&engine).hits, 1);

    let iat = NOW - 100;
    let token = key.sign(&claims_with(json!({ "iat": iat })));
    assert_allow(&at(&engine, &token, secs(NOW)));
    assert_allow(&at(&engine, &token, secs(iat - 30)));
    assert_eq!(stats(&engine).hits, 2);
    assert_deny(
        &at(&engine, &token, secs(iat - 31)),
        "issued_in_future",
        "iat",
    );
    assert_eq!(stats(&engine).hits, 2);
}

#[test]
fn a_cached_decision_is_not_valid_past_the_maximum_age() {
    let key = TestKey::es256("ec");
    let policy = replace(
        &keycard_policy(&[&key]),
        "iat = \"optional\"",
        "iat = \"optional\"\nmax_age = \"1h\"",
    );
    let engine = engine(&format!("{policy}{CACHE}"), CTX);
    let iat = NOW - 60;
    let token = key.sign(&claims_with(json!({ "iat": iat, "exp": NOW + 86_400 })));
    assert_allow(&at(&engine, &token, secs(NOW)));
    assert_allow(&at(&engine, &token, secs(iat + 3600 + 29)));
    assert_eq!(stats(&engine).hits, 1);
    assert_deny(
        &at(&engine, &token, secs(iat + 3600 + 30)),
        "token_too_old",
        "max_age",
    );
    assert_eq!(stats(&engine).hits, 1);
}

#[test]
fn a_route_requirement_is_part_of_the_key() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let token = key.sign(&good_claims());
    let admin = Requirement::new().scope("mcp:admin");
    let now = secs(NOW);
    for round in 1..=2 {
        let d = engine.evaluate_at_with(&token, now, &admin);
        assert_deny(&d, "insufficient_scope", "scopes");
        assert_eq!(d.reason().unwrap().http_status(), 403);
        assert_eq!(d.required_scopes(), ["mcp:tools", "mcp:admin"]);
        let d = engine.evaluate_at(&token, now);
        assert_allow(&d);
        assert_eq!(d.required_scopes(), ["mcp:tools"]);
        let tools = Requirement::new().scope("mcp:tools");
        assert_allow(&engine.evaluate_at_with(&token, now, &tools));
        assert_eq!(stats(&engine).hits, 3 * (round - 1));
    }
    assert_eq!(stats(&engine).entries, 3);
}

/// Gives whichever key set it holds now.
#[derive(Debug)]
struct Swappable(Mutex<Arc<KeySet>>);

impl Swappable {
    fn set(&self, keys: &[&TestKey]) {
        *self.0.lock().unwrap() = key_set(keys);
    }
}

impl KeySource for Swappable {
    fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn key_set(keys: &[&TestKey]) -> Arc<KeySet> {
    Arc::new(KeySet::from_jwks(jwks(keys).as_bytes()).unwrap())
}

fn engine_with_source(key: &TestKey, source: Arc<dyn KeySource>) -> PolicyEngine {
    reference_builder(&[key], CACHE)
        .key_source(ZONE, source)
        .build()
        .unwrap()
}

#[test]
fn a_key_change_makes_cached_decisions_stale() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let source = Arc::new(Swappable(Mutex::new(key_set(&[&a]))));
    let engine = engine_with_source(&a, source.clone());
    let token = a.sign(&good_claims());
    assert_allow(&decide(&engine, &token));
    assert_allow(&decide(&engine, &token));
    assert_eq!(stats(&engine).hits, 1);
    // Key `a` rotated out: the cached allow no longer holds.
    source.set(&[&b]);
    assert_deny(&decide(&engine, &token), "key_not_found", "key");
    assert_eq!(stats(&engine).hits, 1);
    // Back, as another set: decided again, then cached again.
    source.set(&[&a, &b]);
    assert_allow(&decide(&engine, &token));
    assert_allow(&decide(&engine, &token));
    let s = stats(&engine);
    assert_eq!((s.hits, s.inserts), (2, 2));
}

#[derive(Debug)]
struct Unavailable;

impl KeySource for Unavailable {
    fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
        Err(KeyError::Unavailable("the key server answered 503".into()))
    }
}

#[test]
fn denials_before_the_signature_and_internal_errors_are_not_cached() {
    let key = TestKey::es256("ec");
    let other = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let forged = other.sign(&good_claims());
    let untrusted = key.sign(&claims_with(json!({ "iss": "https://evil.example" })));
    for _ in 0..2 {
        assert_deny(&decide(&engine, "not.a.token"), "malformed_token", "format");
        assert_deny(&decide(&engine, &forged), "invalid_signature", "signature");
        assert_deny(&decide(&engine, &untrusted), "untrusted_issuer", "issuer");
    }
    let token = key.sign(&good_claims());
    let unknown = Requirement::new().rule("no-such-rule");
    for _ in 0..2 {
        let d = engine.evaluate_at_with(&token, secs(NOW), &unknown);
        assert_deny(&d, "internal", "rule:no-such-rule");
    }
    let s = stats(&engine);
    assert_eq!((s.hits, s.inserts, s.entries), (0, 0, 0));

    let unavailable = engine_with_source(&key, Arc::new(Unavailable));
    for _ in 0..2 {
        assert_deny(&decide(&unavailable, &token), "keys_unavailable", "key");
    }
    assert_eq!(stats(&unavailable).inserts, 0);
}

#[test]
fn a_cached_denial_after_the_signature_is_kept() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let token = key.sign(&claims_with(json!({ "aud": "https://other.example" })));
    let first = decide(&engine, &token);
    assert_deny(&first, "audience_mismatch", "audience");
    assert_eq!(decide(&engine, &token), first);
    assert_eq!(stats(&engine).hits, 1);
}

#[test]
fn a_new_engine_starts_with_an_empty_cache() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let token = key.sign(&good_claims());
    decide(&engine, &token);
    decide(&engine, &token);
    let rebuilt = PolicyEngine::builder(engine.policy().clone())
        .context("credential.key_id", "stable-1")
        .build()
        .unwrap();
    assert_eq!(rebuilt.cache_stats(), Some(CacheStats::default()));
    assert_allow(&decide(&rebuilt, &token));
    assert_eq!(stats(&rebuilt).hits, 0);
}

#[tokio::test]
async fn the_async_path_uses_the_cache() {
    let key = TestKey::es256("ec");
    let engine = cached_engine(&key, "");
    let token = key.sign(&good_claims());
    let first = engine.evaluate_async_at(&token, secs(NOW)).await;
    assert_allow(&first);
    let second = engine.evaluate_async_at(&token, secs(NOW)).await;
    assert_eq!(second, first);
    assert_eq!(stats(&engine).hits, 1);
    // Sync and async share it.
    assert_eq!(decide(&engine, &token), first);
    assert_eq!(stats(&engine).hits, 2);
}

/// Floods `engine` with `count` unique tokens, checking the bounds after each.
fn flood(engine: &PolicyEngine, key: &TestKey, count: usize, max_entries: u64, max_bytes: u64) {
    let mut peak = CacheStats::default();
    for i in 0..count {
        let token = key.sign(&claims_with(
            json!({ "sub": format!("user-{i}"), "jti": "x".repeat(i % 700) }),
        ));
        assert_allow(&decide(engine, &token));
        let s = stats(engine);
        assert!(s.entries <= max_entries, "{i}: {s:?}");
        assert!(s.bytes <= max_bytes, "{i}: {s:?}");
        peak.entries = peak.entries.max(s.entries);
        peak.bytes = peak.bytes.max(s.bytes);
    }
    let s = stats(engine);
    assert_eq!(s.inserts, count as u64);
    assert!(s.evictions > 0, "{s:?}");
    // The bounds are used, not merely respected by an empty cache.
    assert!(
        peak.entries * 2 > max_entries || peak.bytes * 2 > max_bytes,
        "{peak:?}"
    );
}

#[test]
fn a_flood_of_unique_tokens_stays_within_the_entry_bound() {
    let key = TestKey::hmac("h", "HS256", &[7; 32]);
    let es = TestKey::es256("ec");
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), [7; 32]).unwrap();
    let policy = replace(
        &keycard_policy(&[&es]),
        r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
        &format!(
            "algorithms = [\"ES256\", \"HS256\"]\nhmac_secrets = [{{ kid = \"h\", file = '{}' }}]",
            secret.path().display()
        ),
    );
    let policy = Policy::from_toml("test.toml", policy, env!("CARGO_MANIFEST_DIR")).unwrap();
    let engine = |entries: usize, bytes: u64| {
        PolicyEngine::builder(policy.clone())
            .context("credential.key_id", "stable-1")
            .cache(Some(settings(entries, bytes)))
            .build()
            .unwrap()
    };
    // Few entries, plenty of bytes: the count binds.
    flood(&engine(100, 64 << 20), &key, 1_500, 100, 64 << 20);
    // Many entries, few bytes: the bytes bind (each token and decision is over a kilobyte).
    flood(&engine(100_000, 256 << 10), &key, 1_500, 100_000, 256 << 10);
}

#[test]
fn threads_sharing_the_cache_keep_it_within_its_bounds() {
    let key = TestKey::es256("ec");

    let engine = reference_builder(&[&key], "")
        .cache(Some(settings(64, 1 << 20)))
        .build()
        .unwrap();
    let repeated = key.sign(&good_claims());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (engine, key, repeated) = (&engine, &key, &repeated);
            scope.spawn(move || {
                for i in 0..150 {
                    let unique = key.sign(&claims_with(json!({ "sub": format!("{t}-{i}") })));
                    assert_allow(&decide(engine, &unique));
                    assert_allow(&decide(engine, repeated));
                    let s = stats(engine);
                    assert!(s.entries <= 64 && s.bytes <= 1 << 20, "{s:?}");
                }
            });
        }
    });
    let s = stats(&engine);
    assert_eq!(s.hits + s.misses, 4 * 150 * 2, "{s:?}");
    assert!(s.evictions > 0 && s.hits > 0, "{s:?}");
}

#[test]
fn a_cache_of_one_entry_holds_one_decision() {
    let key = TestKey::es256("ec");

    let engine = reference_builder(&[&key], "")
        .cache(Some(settings(1, 64 << 10)))
        .build()
        .unwrap();
    let first = key.sign(&good_claims());
    let second = key.sign(&claims_with(json!({ "sub": "other" })));
    for token in [&first, &first, &second, &second, &first] {
        assert_allow(&decide(&engine, token));
    }
    let s = stats(&engine);
    assert_eq!(
        (s.hits, s.inserts, s.evictions, s.entries),
        (2, 3, 2, 1),
        "{s:?}"
    );
}

#[test]
fn an_engine_with_cached_decisions_is_freed_when_dropped() {
    // A cached decision must not hold the engine that holds the cache: after a reload, the old
    // engine (its policy, keys and cache) is freed as soon as nobody uses it.
    let key = TestKey::es256("ec");
    let source = Arc::new(Swappable(Mutex::new(key_set(&[&key]))));
    let engine = engine_with_source(&key, source.clone());
    let token = key.sign(&good_claims());
    let first = decide(&engine, &token);
    assert_allow(&first);
    assert_allow(&decide(&engine, &token));
    assert_eq!(stats(&engine).hits, 1);
    // A decision the service still holds may outlive its engine, and still explain itself.
    drop(engine);
    assert!(first.checks().iter().any(|c| c.rule() == "signature"));
    drop(first);
    assert_eq!(Arc::strong_count(&source), 1, "the engine was not freed");
}
