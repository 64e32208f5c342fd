//! Properties that hold for every token, checked with proptest on generated claims (signed with a
//! real key, so they reach the claim rules): no panic and no `internal`; an allow means every
//! check passed and the audience is accepted; `aud: "x"` is `aud: ["x"]`; accepting one more
//! audience never turns an allow into a deny; member order never matters; the verdict flips
//! exactly at `exp + leeway` (and likewise for `nbf`, `iat`); a scope string is its array.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::OnceLock;

use jwt_policy::{Decision, Outcome, PolicyEngine, Reason, UnixTime};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::*;

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::ed25519("prop-ed"))
}

/// The reference engine, with `scope` accepted as a string or an array when `both_formats`.
fn reference(both_formats: bool) -> &'static PolicyEngine {
    static PLAIN: OnceLock<PolicyEngine> = OnceLock::new();
    static BOTH: OnceLock<PolicyEngine> = OnceLock::new();
    let cell = if both_formats { &BOTH } else { &PLAIN };
    cell.get_or_init(|| {
        let text = keycard_policy(&[key()]);
        let text = if both_formats {
            replace(
                &text,
                "{ claim = \"scope\", format = \"space_delimited\" }",
                "{ claim = \"scope\", format = \"space_delimited_or_array\" }",
            )
        } else {
            text
        };
        engine(&text, CTX)
    })
}

/// The reference policy accepting one more audience value.
fn with_audience(extra: &str) -> PolicyEngine {
    let text = replace(
        &keycard_policy(&[key()]),
        "  { value = \"${resource_url}\" },\n",
        &format!(
            "  {{ value = \"${{resource_url}}\" }},\n  {{ value = {} }},\n",
            json!(extra)
        ),
    );
    engine(&text, CTX)
}

fn at(engine: &PolicyEngine, claims: &Value, now: i64) -> Decision {
    engine.evaluate_at(key().sign(claims), UnixTime::from_secs(now))
}

/// Any JSON value, a few levels deep, with strings the policy cares about mixed in.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-10_000i64..10_000).prop_map(|d| json!(NOW + d)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just(RESOURCE.to_owned()),
            Just(ZONE.to_owned()),
            Just("mcp:tools".to_owned()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Good claims with some claims the policy reads replaced by arbitrary values or removed.
fn claims() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("iss"),
        Just("aud"),
        Just("resource"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("scope"),
        Just("scp"),
        Just("client_id"),
        Just("azp"),
        Just("sub"),
        Just("extra"),
    ];
    prop::collection::vec((names, prop::option::of(json_value())), 0..5).prop_map(|changes| {
        let mut claims = good_claims();
        for (name, value) in changes {
            match value {
                Some(v) => claims[name] = v,
                None => {
                    claims.as_object_mut().unwrap().remove(name);
                }
            }
        }
        claims
    })
}

fn accepted(audience: &str) -> bool {
    audience == RESOURCE || audience == ZONE
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decisions_are_values_and_allows_are_earned(claims in claims(), offset in -4_000i64..4_000) {
        let d = at(reference(false), &claims, NOW + offset);
        prop_assert_ne!(d.reason(), Some(Reason::Internal), "{}", d.explain());
        prop_assert_eq!(d.is_allowed(), d.reason().is_none());
        if d.is_allowed() {
            for c in d.checks() {
                prop_assert_eq!(c.outcome(), &Outcome::Passed, "{}", d.explain());
            }
            let audience = d.principal().audience.clone().unwrap();
            prop_assert!(accepted(&audience), "{}", audience);
            prop_assert!(d.principal().client_id.is_some());
            prop_assert!(d.principal().scopes.iter().any(|s| s == "mcp:tools"));
        }
    }

    #[test]
    fn an_audience_string_is_a_one_element_array(
        aud in prop_oneof![Just(RESOURCE.to_owned()), Just(ZONE.to_owned()), ".{0,20}"],
        claims in claims(),
    ) {
        let mut as_string = claims.clone();
        as_string["aud"] = json!(aud);
        let mut as_array = claims;
        as_array["aud"] = json!([aud]);
        let (a, b) = (at(reference(false), &as_string, NOW), at(reference(false), &as_array, NOW));
        prop_assert_eq!(a.reasons(), b.reasons(), "{}\n{}", a.explain(), b.explain());
        prop_assert_eq!(&a.principal().audience, &b.principal().audience);
    }

    #[test]
    fn accepting_another_audience_never_turns_an_allow_into_a_deny(
        extra in "[a-z:/.]{1,30}",
        claims in claims(),
        aud in prop_oneof![Just(json!(RESOURCE)), Just(json!(ZONE)), "[a-z:/.]{1,30}".prop_map(|s| json!(s))],
    ) {
        let mut claims = claims;
        claims["aud"] = aud;
        let wider = with_audience(&extra);
        let (narrow_d, wide_d) = (at(reference(false), &claims, NOW), at(&wider, &claims, NOW));
        if narrow_d.is_allowed() {
            prop_assert!(wide_d.is_allowed(), "{}", wide_d.explain());
        }
    }

    #[test]
    fn member_order_never_changes_the_decision(claims in claims(), seed in any::<u64>()) {
        // The same members in another order, written out by hand.
        let members: Vec<(String, Value)> = claims.as_object().unwrap().clone().into_iter().collect();
        let mut shuffled = members.clone();
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let text = |m: &[(String, Value)]| {
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
            format!("{{{}}}", inner.join(","))
        };
        let header = key().header().to_string();
        let engine = reference(false);
        let now = UnixTime::from_secs(NOW);
        let a = engine.evaluate_at(key().sign_raw(&header, &text(&members)), now);
        let b = engine.evaluate_at(key().sign_raw(&header, &text(&shuffled)), now);
        prop_assert_eq!(a.to_json(), b.to_json());
    }

    #[test]
    fn the_verdict_flips_exactly_at_the_time_bounds(t in (NOW - 100_000)..(NOW + 100_000), now in (NOW - 100_000)..(NOW + 100_000)) {
        const LEEWAY: i64 = 30;
        let engine = reference(false);
        let reasons = |claims: &Value| at(engine, claims, now).reasons();
        // exp: denied exactly when now >= exp + leeway.
        let mut claims = claims_with(json!({ "exp": t, "iat": null }));
        prop_assert_eq!(reasons(&claims).contains(&Reason::Expired), now >= t + LEEWAY);
        // nbf: denied exactly when now + leeway < nbf.
        claims["exp"] = json!(i64::MAX / 4);
        claims["nbf"] = json!(t);
        prop_assert_eq!(reasons(&claims).contains(&Reason::NotYetValid), now + LEEWAY < t);
        // iat: denied exactly when iat > now + leeway.
        claims.as_object_mut().unwrap().remove("nbf");
        claims["iat"] = json!(t);
        prop_assert_eq!(reasons(&claims).contains(&Reason::IssuedInFuture), t > now + LEEWAY);
    }

    #[test]
    fn a_space_delimited_scope_decides_like_its_array(scopes in prop::collection::vec(prop_oneof![Just("mcp:tools".to_owned()), "[a-z:]{1,10}"], 0..5)) {
        let engine = reference(true);
        let as_string = claims_with(json!({ "scope": scopes.join(" ") }));
        let as_array = claims_with(json!({ "scope": scopes }));
        let (a, b) = (at(engine, &as_string, NOW), at(engine, &as_array, NOW));
        prop_assert_eq!(a.reasons(), b.reasons(), "{}\n{}", a.explain(), b.explain());
        prop_assert_eq!(&a.principal().scopes, &b.principal().scopes);
    }
}

#[test]
fn scope_formats_are_not_interchangeable_unless_the_policy_says_so() {
    // The control for the last property: the reference policy reads `scope` as a string only.
    let d = at(
        reference(false),
        &claims_with(json!({ "scope": ["mcp:tools"] })),
        NOW,
    );
    assert_eq!(d.reason(), Some(Reason::InvalidClaim), "{}", d.explain());
}
