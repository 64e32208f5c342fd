//! Arbitrary UTF-8 as a policy: validating never panics, and a policy that validates compiles
//! into an engine without panicking.

#![no_main]

use jwt_policy::{Policy, PolicyEngine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Relative key files resolve against the shipped policies, so real JWKS files are reachable.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    if let Ok(policy) = Policy::from_toml("fuzz.toml", text, dir) {
        let _ = policy.warnings().len();
        let _ = PolicyEngine::builder(policy)
            .context("credential.key_id", "fuzz-key")
            .context("registration.client_id", "fuzz-client")
            .build();
    }
});
