//! What a `ReloadingEngine` logs: for a reloaded policy that is invalid, one `error` event with
//! every located diagnostic, rendered; for one that draws lints, one `warn` event with them. A test binary of its own: its subscriber is installed before
//! anything logs, so no other test can race it for `tracing`'s per-callsite interest cache.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwt_policy::{PolicyEngine, ReloadingEngine};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Records each `error` and `warn` event as its level, its message and its other fields, on the
/// threads it is the default subscriber of.
#[derive(Debug, Clone, Default)]
struct Logged(Arc<Mutex<Vec<String>>>);

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

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.others.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

impl Subscriber for Logged {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(format!(
            "{} {}{}",
            event.metadata().level(),
            fields.message,
            fields.others
        ));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

const POLICY: &str = r#"version = 1

[resource]
url = "https://api.example.com"

[[issuers]]
iss = "https://issuer.example.com"
algorithms = ["ES256"]
jwks_file = "keys.jwks.json"

[audience]
accept = [{ value = "https://api.example.com" }]

[client_id]
sources = [{ claim = "client_id" }]
"#;

/// The reload runs on the test's own thread (a current-thread runtime), where the subscriber is
/// the default.
#[tokio::test(flavor = "current_thread")]
async fn reload_failures_and_lints_are_logged_with_every_located_diagnostic() {
    let logged = Logged::default();
    let _guard = tracing::subscriber::set_default(logged.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/policies/keys.jwks.json"
        ),
        dir.path().join("keys.jwks.json"),
    )
    .unwrap();
    let first = POLICY;
    std::fs::write(&path, first).unwrap();
    let engine = ReloadingEngine::start(&path, PolicyEngine::builder)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let revision = engine.status().revision;

    // Two errors at two places.
    let invalid = first
        .replace("[\"ES256\"]", "[\"none\"]")
        .replace("[client_id]", "[client_idd]");
    std::fs::write(&path, &invalid).unwrap();
    let mut status = engine.subscribe();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| s.failures == 1))
        .await
        .unwrap()
        .unwrap();

    let lines = logged.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    let name = path.display();
    assert!(
        line.starts_with(&format!(
            "ERROR policy reload failed: keeping revision `{revision}` policy={name} diagnostics="
        )),
        "{line}"
    );
    assert!(
        line.contains("error[forbidden-algorithm]: ") && line.contains(&format!("--> {name}:8:15")),
        "{line}"
    );
    assert!(
        line.contains("error[unknown-key]") && line.contains(&format!("--> {name}:14:")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("error: policy `{name}` is invalid: 2 errors")),
        "{line}"
    );

    // A valid policy that draws a lint: in effect, and its warning logged.
    let linted = first.replace("version = 1\n", "version = 1\n\n[vars]\nunused = \"x\"\n");
    std::fs::write(&path, &linted).unwrap();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| s.reloads == 1))
        .await
        .unwrap()
        .unwrap();
    let lines = logged.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let revision = engine.status().revision;
    assert!(
        lines[1].starts_with(&format!(
            "WARN the reloaded policy draws 1 warning policy={name} revision={revision} warnings=warning[unused-variable]: "
        )),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains(&format!("--> {name}:4:1")),
        "{}",
        lines[1]
    );
}
