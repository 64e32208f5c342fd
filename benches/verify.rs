//! What a decision costs: full evaluation of the reference policy per algorithm, against the
//! signature check alone (jsonwebtoken's `crypto::verify`, the floor), plus early denies.
//!
//! ```text
//! cargo bench --bench verify
//! ```

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

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, jwk::Jwk};
use jwt_policy::UnixTime;
use serde_json::json;
use support::*;

fn bench(c: &mut Criterion) {
    let keys = [
        TestKey::rsa("rsa", "RS256", 0),
        TestKey::es256("ec"),
        TestKey::ed25519("ed"),
    ];
    let engine = engine(
        &keycard_policy(&keys.iter().collect::<Vec<_>>()),
        &[("credential.key_id", "k")],
    );
    let now = UnixTime::from_secs(NOW);
    let mut claims = good_claims();
    claims["aud"] = json!(ZONE);
    claims["resource"] = json!(RESOURCE);
    for key in &keys {
        let token = key.sign(&claims);
        assert!(engine.evaluate_at(&token, now).is_allowed());
        c.bench_function(&format!("evaluate/{}", key.alg), |b| {
            b.iter(|| engine.evaluate_at(black_box(&token), now))
        });
        let jwk: Jwk = serde_json::from_value(key.jwk_with_alg()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let (message, signature) = token.rsplit_once('.').unwrap();
        let alg: jsonwebtoken::Algorithm = key.alg.parse().unwrap();
        c.bench_function(&format!("signature_only/{}", key.alg), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    message.as_bytes(),
                    &decoding,
                    alg,
                )
            })
        });
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

criterion_group!(benches, bench);
criterion_main!(benches);
