//! What a decision costs: full evaluation of the reference policy per algorithm, against the
//! signature check alone, plus early denies.
//!
//! Each algorithm is a group of three:
//! - `evaluate`: the full decision (`PolicyEngine::evaluate_at`), with the engine's prepared key;
//! - `jsonwebtoken_verify`: `jsonwebtoken::crypto::verify` on the same key and token, which
//!   decodes the key for every call (the floor of a verifier built on it);
//! - `prepared_key`: the signature check alone with aws-lc's ready key, parsed once (the floor of
//!   the engine's own check: base64url decoding of the signature and the signature math).
//!
//! ```text
//! cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! On a shared machine the three run minutes apart under different loads; with `VERIFY_PAIRED=1`
//! the bench then also times them in alternating batches and prints each algorithm's ratio of
//! `jsonwebtoken_verify` to `evaluate` (above 1: the full decision is faster than the floor).

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

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, jwk::Jwk};
use jwt_policy::UnixTime;
use serde_json::json;
use support::*;

/// A key ready to verify, as the engine holds it.
enum Prepared {
    Public(signature::ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl Prepared {
    fn of(key: &TestKey, secret: &[u8]) -> Prepared {
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
            "HS256" => Prepared::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
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

fn bench(c: &mut Criterion) {
    // 32 bytes: the least HS256 takes (RFC 7518 §3.2).
    let secret = [0x5au8; 32];
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), secret).unwrap();
    let keys = [
        TestKey::rsa("rsa", "RS256", 0),
        TestKey::es256("ec"),
        TestKey::ed25519("ed"),
        TestKey::hmac("h1", "HS256", &secret),
    ];
    let public: Vec<&TestKey> = keys.iter().filter(|k| k.alg != "HS256").collect();
    let reference = r#"algorithms = ["RS256", "ES256", "EdDSA"]"#;
    let policy = keycard_policy(&public).replace(
        reference,
        &format!(
            "algorithms = [\"RS256\", \"ES256\", \"EdDSA\", \"HS256\"]\nhmac_secrets = [{{ kid = \"h1\", file = '{}' }}]",
            secret_file.path().display()
        ),
    );
    assert!(policy.contains("HS256"), "the reference policy changed");
    let engine = engine(&policy, &[("credential.key_id", "k")]);
    let now = UnixTime::from_secs(NOW);
    let mut claims = good_claims();
    claims["aud"] = json!(ZONE);
    claims["resource"] = json!(RESOURCE);
    let paired = std::env::var_os("VERIFY_PAIRED").is_some();
    let mut ratios = Vec::new();
    for key in &keys {
        let token = key.sign(&claims);
        let decision = engine.evaluate_at(&token, now);
        assert!(decision.is_allowed(), "{}", decision.explain());
        let (message, signature) = token.rsplit_once('.').unwrap();
        let decoding = if key.alg == "HS256" {
            DecodingKey::from_secret(&secret)
        } else {
            let jwk: Jwk = serde_json::from_value(key.jwk_with_alg()).unwrap();
            DecodingKey::from_jwk(&jwk).unwrap()
        };
        let alg: jsonwebtoken::Algorithm = key.alg.parse().unwrap();
        let prepared = Prepared::of(key, &secret);
        assert!(
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &decoding, alg).unwrap()
        );
        assert!(prepared.verify(message.as_bytes(), signature));

        let mut group = c.benchmark_group(key.alg);
        group.bench_function("evaluate", |b| {
            b.iter(|| engine.evaluate_at(black_box(&token), now))
        });
        group.bench_function("jsonwebtoken_verify", |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    message.as_bytes(),
                    &decoding,
                    alg,
                )
            })
        });
        group.bench_function("prepared_key", |b| {
            b.iter(|| prepared.verify(message.as_bytes(), black_box(signature)))
        });
        group.finish();
        if paired {
            let [evaluate_us, floor_us, prepared_us] = paired_medians([
                &|| {
                    black_box(engine.evaluate_at(black_box(&token), now));
                },
                &|| {
                    black_box(jsonwebtoken::crypto::verify(
                        black_box(signature),
                        message.as_bytes(),
                        &decoding,
                        alg,
                    ))
                    .ok();
                },
                &|| {
                    black_box(prepared.verify(message.as_bytes(), black_box(signature)));
                },
            ]);
            ratios.push(format!(
                "{}: evaluate {evaluate_us:.2} µs, jsonwebtoken_verify {floor_us:.2} µs, prepared_key {prepared_us:.2} µs; jsonwebtoken_verify / evaluate = {:.2}",
                key.alg,
                floor_us / evaluate_us
            ));
        }
    }
    for line in &ratios {
        println!("paired {line}");
    }
    let expired = {
        let mut late = claims.clone();
        late["exp"] = json!(NOW - 100);
        keys[1].sign(&late)
    };
    c.bench_function("evaluate/deny_expired_ES256", |b| {
        b.iter(|| engine.evaluate_at(black_box(&expired), now))
    });
    let garbage = "x".repeat(2000);
    c.bench_function("evaluate/deny_malformed", |b| {
        b.iter(|| engine.evaluate_at(black_box(&garbage), now))
    });
    let good = keys[1].sign(&claims);
    c.bench_function("decision/to_json", |b| {
        let d = engine.evaluate_at(&good, now);
        b.iter(|| black_box(&d).to_json())
    });
}

/// The median time of one call of each of `runs`, in µs, timed in alternating batches of about
/// 2 ms each (51 rounds, the order rotating each round), so that a load that comes and goes
/// weighs on all of them alike.
fn paired_medians<const N: usize>(runs: [&dyn Fn(); N]) -> [f64; N] {
    let batch: Vec<u32> = runs
        .iter()
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
