//! Smoke test of the reference scenario.
#![allow(clippy::unwrap_used)]
mod support;
use serde_json::json;
use support::*;

#[test]
fn smoke() {
    let key = TestKey::rsa("k1", "RS256", 0);
    let engine = engine(
        &keycard_policy(&[&key]),
        &[("credential.key_id", "stable-1")],
    );
    let d = decide(&engine, &key.sign(&good_claims()));
    println!("{}", d.explain());
    println!("{}", d.to_json());
    assert_eq!(outcome(&d), "allow");
    let mut c = good_claims();
    c["aud"] = json!(ZONE);
    let d = decide(&engine, &key.sign(&c));
    println!("{}", d.explain());
    assert_eq!(outcome(&d), "resource_mismatch");
}
