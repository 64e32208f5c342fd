//! The `warn` events a remote key source logs for each key it skips. A test binary of its own:
//! every test here installs its subscriber before anything logs, so no other test can race it
//! for `tracing`'s per-callsite interest cache.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::{Arc, Mutex};

use jwt_policy::{Algorithm, KeySource, RemoteKeys, RemoteSettings, RemoteSource};
use serde_json::json;
use support::TestKey;
use support::http::{KeyServer, Reply};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Records each `warn` event as its message followed by its other fields, on the threads it is
/// the default subscriber of.
#[derive(Debug, Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// An event's message, then `name=value` for its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    others: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.others
                .push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Warnings {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() == Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push(format!("{}{}", fields.message, fields.others));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Fetches the set `keys` from a key server for an issuer allowing `algorithms`, and returns the
/// `warn` events logged meanwhile and the kids of the keys kept.
async fn fetch(keys: serde_json::Value, algorithms: &[Algorithm]) -> (Vec<String>, Vec<String>) {
    let warnings = Warnings::default();
    let _guard = tracing::subscriber::set_default(warnings.clone());
    let server = KeyServer::start().await;
    server.set("/jwks", Reply::json(keys.to_string()));
    let url = url::Url::parse(&server.url("/jwks")).unwrap();
    let source = RemoteKeys::for_issuer(
        RemoteSource::JwksUrl(url),
        RemoteSettings::default(),
        algorithms,
    )
    .unwrap();
    source.fetch_now().await.unwrap();
    let kept = source
        .keys()
        .unwrap()
        .keys()
        .iter()
        .filter_map(|k| k.kid().map(str::to_owned))
        .collect();
    (warnings.all(), kept)
}

#[tokio::test(start_paused = true)]
async fn a_small_order_ed25519_key_is_skipped_with_a_warning() {
    let good = TestKey::es256("good");
    // The identity point: any message "verifies" with R = identity, S = 0.
    let identity = json!({ "kty": "OKP", "crv": "Ed25519", "kid": "forged", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" });
    let (warnings, kept) = fetch(
        json!({ "keys": [identity, good.jwk] }),
        &[Algorithm::EdDSA, Algorithm::ES256],
    )
    .await;
    assert_eq!(kept, ["good"]);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "JWKS key 0 (`kid` `forged`): Ed25519 `x` is a point of small order: signatures could be forged for it without any private key source=JWKS `http://127.0.0.1:"
        )),
        "{warnings:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_rsa_key_is_skipped_with_a_warning() {
    let rsa = TestKey::rsa("r1", "RS256", 0);
    let good = TestKey::es256("good");
    let (warnings, kept) = fetch(
        json!({ "keys": [rsa.jwk, good.jwk] }),
        &[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
    )
    .await;
    assert_eq!(kept, ["good"]);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "JWKS key 0 (`kid` `r1`): RSA key has no `alg`, and the issuer allows `RS256` and `PS256`: it would verify tokens of each (RFC 8725 §3.1) source="
        )),
        "{warnings:#?}"
    );
}
