//! What the tower layer adds to a decision: an in-process axum router (no network) driven with
//! tower's `ServiceExt::oneshot`, with and without `PolicyLayer`, against the decision alone.
//!
//! ```text
//! cargo bench --bench layer
//! ```
//!
//! The layer's own cost is `layer/allow_EdDSA` − `router_only` − `evaluate_async/EdDSA`, seen
//! best without the signature check: `layer/deny_malformed` − `router_only` −
//! `evaluate_async/deny_malformed`.

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

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::http::header::AUTHORIZATION;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use jwt_policy::Requirement;
use jwt_policy::http::axum::PolicyLayer;
use serde_json::json;
use support::*;
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let key = TestKey::ed25519("ed");
    let engine = engine(&keycard_policy(&[&key]), CTX);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let valid = key.sign(&claims_with(json!({ "exp": now + 3600, "iat": now - 60 })));
    let expired = key.sign(&claims_with(
        json!({ "exp": now - 3600, "iat": now - 7200 }),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let plain: Router = Router::new().route("/mcp", get(|| async { "ok" }));
    let layered = plain.clone().route_layer(PolicyLayer::new(engine.clone()));
    let request = |token: Option<&str>| {
        let mut r = Request::get("/mcp");
        if let Some(token) = token {
            r = r.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        r.body(Body::empty()).unwrap()
    };
    let status = |router: &Router, token: Option<&str>| {
        rt.block_on(router.clone().oneshot(request(token)))
            .unwrap()
            .status()
    };
    assert_eq!(status(&layered, Some(&valid)), 200);
    assert_eq!(status(&layered, Some(&expired)), 401);
    assert_eq!(status(&layered, None), 401);

    let nothing = Requirement::new();
    c.bench_function("evaluate/EdDSA", |b| {
        b.iter(|| engine.evaluate(black_box(&valid)))
    });
    c.bench_function("evaluate_async/EdDSA", |b| {
        b.iter(|| rt.block_on(engine.evaluate_async_with(black_box(&valid), &nothing)))
    });
    c.bench_function("router_only", |b| {
        b.iter(|| status(&plain, Some(black_box(&valid))))
    });
    c.bench_function("layer/allow_EdDSA", |b| {
        b.iter(|| status(&layered, Some(black_box(&valid))))
    });
    c.bench_function("layer/deny_expired_EdDSA", |b| {
        b.iter(|| status(&layered, Some(black_box(&expired))))
    });
    // No signature to check: what the layer adds stands out from the noise of the crypto.
    let malformed = "not.a.token";
    c.bench_function("evaluate_async/deny_malformed", |b| {
        b.iter(|| rt.block_on(engine.evaluate_async_with(black_box(malformed), &nothing)))
    });
    c.bench_function("layer/deny_malformed", |b| {
        b.iter(|| status(&layered, Some(black_box(malformed))))
    });
    c.bench_function("layer/deny_no_credentials", |b| {
        b.iter(|| status(&layered, None))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
