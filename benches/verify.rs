//! What a decision costs, on a corpus made here (keys generated with aws-lc-rs, tokens signed
//! in the bench, claims laid out as in the shared benchmark corpus that `jwt-policy bench` is
//! run on), per algorithm, against the signature check alone.
//!
//! ```text
//! cargo bench --bench verify
//! cargo bench --bench verify -- --quick ES256/    # one group, briefly
//! ```
//!
//! * `RS256/`, `ES256/`, `EdDSA/`, `HS256/`, each with:
//!   * `signature_only`: `jsonwebtoken::crypto::verify` on a token already split into signing
//!     input and signature, its `DecodingKey` built once: the floor for a verifier built on
//!     jsonwebtoken;
//!   * `jsonwebtoken_decode`: `jsonwebtoken::decode::<Value>` checking `iss`, `aud`, `exp` and
//!     `nbf`: what a service that uses jsonwebtoken alone does;
//!   * `evaluate`: the full decision (`PolicyEngine::evaluate_at`) with a policy like the shared
//!     corpus's `policies/bench-*.toml`;
//!   * `evaluate_to_json`: the same, then `Decision::to_json`;
//!   * `prepared_key`: the signature check alone with aws-lc's ready key, parsed once (the floor
//!     of the engine's own check: base64url decoding of the signature and the signature math).
//! * `cache_hit/RS256`, `cache_hit/HS256`: the full decision with the verified-decision cache
//!   on (`[cache]`), every token already decided once: what a repeated token costs (the goal
//!   is at most 500 ns, 2M decisions/s per core).
//! * `decode_only/untrusted_issuer`: strict decoding and everything up to the issuer check, which
//!   denies (no signature check).
//! * `deny/malformed`, `deny/bad_signature`, `deny/expired`: the deny paths.
//! * `compile/keycard_mcp`: the reference policy's text to an engine.
//!
//! Each bench cycles through 64 distinct tokens.
//!
//! On a shared machine the benches of a group run minutes apart under different loads; with
//! `VERIFY_PAIRED=1` the bench also times `evaluate`, `signature_only` and `prepared_key` in
//! alternating batches and prints each algorithm's ratio of `signature_only` to `evaluate` (above
//! 1: the full decision is faster than jsonwebtoken's signature check alone).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use jwt_policy::{CacheSettings, Policy, PolicyEngine, UnixTime};
use serde_json::{Value, json};
use support::*;

/// The shared corpus's issuer and audiences.
const ISS: &str = "https://zone-7f3a9c.auth.example.com";
const RESOURCE_URL: &str = "https://mcp.example.com/mcp";
/// Tokens per algorithm.
const TOKENS: usize = 64;

/// The bench policy for one algorithm (as the shared corpus's `policies/bench-*.toml`), keys
/// given by `keys` (`jwks = '''...'''` or `hmac_secrets = [...]`).
fn bench_policy(alg: &str, keys: &str) -> String {
    format!(
        r#"version = 1

[resource]
url = "{RESOURCE_URL}"
claim = "optional"

[[issuers]]
iss = "{ISS}"
algorithms = ["{alg}"]
{keys}

[header]
typ = ["at+jwt"]
kid = "required"
crit = []

[time]
leeway = 0
exp = "required"
nbf = "required"
iat = "required"

[audience]
accept = [
  {{ value = "{RESOURCE_URL}" }},
  {{ value = "{ISS}", resource = "{RESOURCE_URL}" }},
]

[scopes]
claims = [{{ claim = "scope", format = "space_delimited" }}]
required = []

[client_id]
sources = [{{ claim = "client_id" }}]
required = true
"#
    )
}

/// The claims of the `i`th token, laid out as in the shared corpus: `aud` cycles through a
/// string, a one-element array, both audiences, and another API with the zone.
fn corpus_claims(i: usize, now: i64) -> Value {
    let aud = match i % 4 {
        0 => json!(RESOURCE_URL),
        1 => json!([RESOURCE_URL]),
        2 => json!([RESOURCE_URL, ISS]),
        _ => json!(["https://other-api.example.com", ISS]),
    };
    let scope = [
        "mcp:tools",
        "mcp:tools mcp:resources",
        "openid",
        "profile email",
    ][i % 4];
    let iat = now - (i % 900) as i64;
    json!({
        "iss": ISS,
        "sub": format!("user-{i}"),
        "aud": aud,
        "exp": iat + 5 * 365 * 86_400,
        "iat": iat,
        "nbf": iat - 5,
        "scope": scope,
        "client_id": format!("client-{}", i % 7),
        "resource": RESOURCE_URL,
        "jti": format!("00000000-0000-4000-8000-{i:012}"),
    })
}

/// A key ready to verify, as the engine holds it.
enum Prepared {
    Public(signature::ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl Prepared {
    fn of(key: &TestKey, secret: Option<&[u8]>) -> Prepared {
        let field = |name: &str| {
            URL_SAFE_NO_PAD
                .decode(key.jwk[name].as_str().unwrap())
                .unwrap()
        };
        match key.alg {
            "RS256" => Prepared::Public(
                signature::RsaPublicKeyComponents {
                    n: field("n"),
                    e: field("e"),
                }
                .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                .unwrap(),
            ),
            "ES256" => {
                let point = [&[4u8][..], &field("x"), &field("y")].concat();
                Prepared::Public(
                    signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .unwrap(),
                )
            }
            "EdDSA" => Prepared::Public(
                signature::ParsedPublicKey::new(&signature::ED25519, field("x")).unwrap(),
            ),
            "HS256" => Prepared::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret.unwrap()))),
            other => panic!("{other}"),
        }
    }

    fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature_b64) else {
            return false;
        };
        match self {
            Prepared::Public(key) => key.verify_sig(message, &signature).is_ok(),
            Prepared::Hmac(key) => hmac::verify(key, message, &signature).is_ok(),
        }
    }
}

/// One algorithm's key, engine, tokens and floor key.
struct Corpus {
    key: TestKey,
    engine: PolicyEngine,
    tokens: Vec<String>,
    decoding: DecodingKey,
    prepared: Prepared,
}

impl Corpus {
    /// `secret`: the HMAC secret `key` signs with, if it is an HMAC key.
    fn new(key: TestKey, secret: Option<&[u8]>, dir: &Path, now: i64) -> Self {
        let (keys, decoding) = if let Some(secret) = secret {
            std::fs::write(dir.join("hs256.secret"), secret).unwrap();
            (
                format!(
                    "hmac_secrets = [{{ file = \"hs256.secret\", kid = \"{}\" }}]",
                    key.kid
                ),
                DecodingKey::from_secret(secret),
            )
        } else {
            let jwk: Jwk = serde_json::from_value(key.jwk_with_alg()).unwrap();
            (
                format!("jwks = '''{{\"keys\": [{}]}}'''", key.jwk_with_alg()),
                DecodingKey::from_jwk(&jwk).unwrap(),
            )
        };
        let prepared = Prepared::of(&key, secret);
        let text = bench_policy(key.alg, &keys);
        let policy =
            Policy::from_toml("bench.toml", &text, dir).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let engine = PolicyEngine::builder(policy).build().unwrap();
        let tokens = (0..TOKENS)
            .map(|i| key.sign(&corpus_claims(i, now)))
            .collect();
        Self {
            key,
            engine,
            tokens,
            decoding,
            prepared,
        }
    }
}

/// Round-robin over `items`: a different token each iteration.
fn cycle<'a, T>(items: &'a [T]) -> impl FnMut() -> &'a T {
    let mut i = 0;
    move || {
        i = (i + 1) % items.len();
        &items[i]
    }
}

fn bench(c: &mut Criterion) {
    // jsonwebtoken reads the system clock: the tokens are made valid at it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap();
    let at = UnixTime::from_secs(now);
    let dir = tempfile::tempdir().unwrap();
    let secret: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
    let corpora: Vec<Corpus> = [
        (TestKey::rsa("bench-rs256", "RS256", 0), None),
        (TestKey::es256("bench-es256"), None),
        (TestKey::ed25519("bench-eddsa"), None),
        (
            TestKey::hmac("bench-hs256", "HS256", &secret),
            Some(secret.as_slice()),
        ),
    ]
    .into_iter()
    .map(|(key, secret)| Corpus::new(key, secret, dir.path(), now))
    .collect();

    let paired = std::env::var_os("VERIFY_PAIRED").is_some();
    let mut ratios = Vec::new();
    for corpus in &corpora {
        let alg: jsonwebtoken::Algorithm = corpus.key.alg.parse().unwrap();
        let split: Vec<(&str, &str)> = corpus
            .tokens
            .iter()
            .map(|t| t.rsplit_once('.').unwrap())
            .collect();
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[RESOURCE_URL, ISS]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        for (token, (input, signature)) in corpus.tokens.iter().zip(&split) {
            assert_allow(&corpus.engine.evaluate_at(token, at));
            assert!(
                jsonwebtoken::crypto::verify(signature, input.as_bytes(), &corpus.decoding, alg)
                    .unwrap()
            );
            jsonwebtoken::decode::<Value>(token, &corpus.decoding, &validation).unwrap();
            assert!(corpus.prepared.verify(input.as_bytes(), signature));
        }

        let mut group = c.benchmark_group(corpus.key.alg);
        group.bench_function("signature_only", |b| {
            let mut next = cycle(&split);
            b.iter(|| {
                let (input, signature) = next();
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    input.as_bytes(),
                    &corpus.decoding,
                    alg,
                )
            })
        });
        group.bench_function("jsonwebtoken_decode", |b| {
            let mut next = cycle(&corpus.tokens);
            b.iter(|| {
                jsonwebtoken::decode::<Value>(black_box(next()), &corpus.decoding, &validation)
            })
        });
        group.bench_function("evaluate", |b| {
            let mut next = cycle(&corpus.tokens);
            b.iter(|| corpus.engine.evaluate_at(black_box(next()), at))
        });
        group.bench_function("evaluate_to_json", |b| {
            let mut next = cycle(&corpus.tokens);
            b.iter(|| corpus.engine.evaluate_at(black_box(next()), at).to_json())
        });
        group.bench_function("prepared_key", |b| {
            let mut next = cycle(&split);
            b.iter(|| {
                let (input, signature) = next();
                corpus
                    .prepared
                    .verify(input.as_bytes(), black_box(signature))
            })
        });
        group.finish();
        if paired {
            let mut evaluate_next = cycle(&corpus.tokens);
            let mut floor_next = cycle(&split);
            let mut prepared_next = cycle(&split);
            let [evaluate_us, floor_us, prepared_us] = paired_medians([
                &mut || {
                    black_box(corpus.engine.evaluate_at(black_box(evaluate_next()), at));
                },
                &mut || {
                    let (input, signature) = floor_next();
                    black_box(jsonwebtoken::crypto::verify(
                        black_box(signature),
                        input.as_bytes(),
                        &corpus.decoding,
                        alg,
                    ))
                    .ok();
                },
                &mut || {
                    let (input, signature) = prepared_next();
                    black_box(
                        corpus
                            .prepared
                            .verify(input.as_bytes(), black_box(signature)),
                    );
                },
            ]);
            ratios.push(format!(
                "{}: evaluate {evaluate_us:.2} µs, signature_only {floor_us:.2} µs, prepared_key {prepared_us:.2} µs; signature_only / evaluate = {:.2}",
                corpus.key.alg,
                floor_us / evaluate_us
            ));
        }
    }
    for line in &ratios {
        println!("paired {line}");
    }

    // Repeated tokens with the cache on: the same policies, each token decided once to fill it.
    let mut group = c.benchmark_group("cache_hit");
    for corpus in corpora
        .iter()
        .filter(|c| ["RS256", "HS256"].contains(&c.key.alg))
    {
        let engine = PolicyEngine::builder(corpus.engine.policy().clone())
            .cache(Some(CacheSettings::default()))
            .build()
            .unwrap();
        for token in &corpus.tokens {
            assert_allow(&engine.evaluate_at(token, at));
        }
        for token in &corpus.tokens {
            assert_allow(&engine.evaluate_at(token, at));
        }
        let stats = engine.cache_stats().unwrap();
        assert_eq!(stats.hits, TOKENS as u64, "{stats:?}");
        group.bench_function(corpus.key.alg, |b| {
            let mut next = cycle(&corpus.tokens);
            b.iter(|| engine.evaluate_at(black_box(next()), at))
        });
    }
    group.finish();

    // The deny paths, with the ES256 corpus's engine.
    let es = &corpora[1];
    let untrusted: Vec<String> = (0..TOKENS)
        .map(|i| {
            let mut claims = corpus_claims(i, now);
            claims["iss"] = json!("https://untrusted.example.com");
            es.key.sign(&claims)
        })
        .collect();
    let bad_signature: Vec<String> = es
        .tokens
        .iter()
        .map(|t| {
            // Another token's signature: well-formed, the right length, wrong.
            let (input, _) = t.rsplit_once('.').unwrap();
            let other = es.key.sign(&json!({ "iss": ISS }));
            format!("{input}.{}", other.rsplit_once('.').unwrap().1)
        })
        .collect();
    let expired: Vec<String> = (0..TOKENS)
        .map(|i| es.key.sign(&corpus_claims(i, now - 6 * 365 * 86_400)))
        .collect();
    let malformed: Vec<String> = (0..TOKENS)
        .map(|i| format!("{}.not-a-token", "x".repeat(100 + i)))
        .collect();
    for (tokens, reason, rule) in [
        (&untrusted, "untrusted_issuer", "issuer"),
        (&bad_signature, "invalid_signature", "signature"),
        (&expired, "expired", "exp"),
    ] {
        for token in tokens {
            let d = es.engine.evaluate_at(token, at);
            assert_eq!(outcome(&d), reason, "{}", d.explain());
            assert_eq!(failed_rule(&d), rule, "{}", d.explain());
        }
    }
    for token in &malformed {
        assert_eq!(
            outcome(&es.engine.evaluate_at(token, at)),
            "malformed_token"
        );
    }
    c.bench_function("decode_only/untrusted_issuer", |b| {
        let mut next = cycle(&untrusted);
        b.iter(|| es.engine.evaluate_at(black_box(next()), at))
    });
    let mut group = c.benchmark_group("deny");
    for (name, tokens) in [
        ("malformed", &malformed),
        ("bad_signature", &bad_signature),
        ("expired", &expired),
    ] {
        group.bench_function(name, |b| {
            let mut next = cycle(tokens);
            b.iter(|| es.engine.evaluate_at(black_box(next()), at))
        });
    }
    group.finish();

    // The reference policy with its keys inline: reading, validating, compiling its patterns and
    // building the engine.
    let keys: Vec<&TestKey> = corpora.iter().take(3).map(|c| &c.key).collect();
    let reference = keycard_policy(&keys);
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    c.bench_function("compile/keycard_mcp", |b| {
        b.iter(|| {
            let policy =
                Policy::from_toml("keycard-mcp.toml", black_box(&reference), policies).unwrap();
            PolicyEngine::builder(policy)
                .context("credential.key_id", "stable-1")
                .build()
                .unwrap()
        })
    });
}

/// The median time of one call of each of `runs`, in µs, timed in alternating batches of about
/// 2 ms each (51 rounds, the order rotating each round), so that a load that comes and goes
/// weighs on all of them alike.
fn paired_medians<const N: usize>(mut runs: [&mut dyn FnMut(); N]) -> [f64; N] {
    let batch: Vec<u32> = runs
        .iter_mut()
        .map(|run| {
            let start = std::time::Instant::now();
            let mut calls = 0u32;
            while start.elapsed().as_micros() < 2000 {
                run();
                calls += 1;
            }
            calls
        })
        .collect();
    let mut samples = vec![Vec::new(); N];
    for round in 0..51 {
        for i in 0..N {
            let which = (i + round) % N;
            let start = std::time::Instant::now();
            for _ in 0..batch[which] {
                runs[which]();
            }
            samples[which].push(start.elapsed().as_secs_f64() * 1e6 / f64::from(batch[which]));
        }
    }
    std::array::from_fn(|i| {
        samples[i].sort_by(f64::total_cmp);
        samples[i][samples[i].len() / 2]
    })
}

criterion_group!(benches, bench);
criterion_main!(benches);
