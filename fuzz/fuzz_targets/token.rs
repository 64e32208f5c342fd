//! Arbitrary bytes as a token against the shipped reference policy, its demo keys and a fixed
//! clock: never a panic, never the `internal` reason, and a verdict that agrees with the checks.
//! (The seed corpus holds the demo tokens, validly signed, so allows are reachable.)

#![no_main]

use std::sync::OnceLock;

use jwt_policy::{Policy, PolicyEngine, Reason, UnixTime};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/keycard-mcp.toml");
        let policy = Policy::from_file(path).expect("the shipped policy is valid");
        PolicyEngine::builder(policy)
            .context("credential.key_id", "fuzz-key")
            .build()
            .expect("the shipped policy compiles")
    })
}

fuzz_target!(|bytes: &[u8]| {
    let decision = engine().evaluate_at(bytes, UnixTime::from_secs(1_767_225_600));
    assert_eq!(decision.is_allowed(), decision.failures().next().is_none(), "{}", decision.explain());
    assert_ne!(decision.reason(), Some(Reason::Internal), "{}", decision.explain());
    let _ = decision.to_json();
});
