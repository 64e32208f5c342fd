//! Evaluation is linear in the token's size: a token with 8 times the scopes (payload members,
//! `aud` entries, array entries, `crit` names) takes about 8 times as long to decide, never 64.
//!
//! The timing tests compare a ratio of times, never an absolute time, and run only in release
//! builds, where `.ci/run` runs them (`cargo test --release --test scaling`): debug builds are
//! slow and noisy. The behaviour tests below them run everywhere and cover the same code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use jwt_policy::{Decision, PolicyEngine};
use serde_json::{Value, json};
use support::*;

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://api.example.com";
/// The largest token a policy may accept; the 8x tokens stay under it.
const LIMIT: usize = 1_048_576;
/// The audience section most tests use.
const ONE_AUDIENCE: &str = "[audience]\naccept = [{ value = \"https://api.example.com\" }]";
/// Each size is timed this many times; the median counts.
const RUNS: usize = 5;
/// A run of the small case lasts at least this long.
const MIN_RUN: Duration = Duration::from_millis(20);
/// Linear growth gives a ratio near 8, quadratic growth near 64.
const MAX_RATIO: f64 = 20.0;

/// A policy trusting `key` for [`ISS`], accepting tokens up to [`LIMIT`] bytes, with `audience`
/// and then `extra` (TOML sections) appended.
fn policy(key: &TestKey, audience: &str, extra: &str) -> String {
    format!(
        r#"version = 1

[resource]
url = "{AUD}"

[[issuers]]
iss = "{ISS}"
algorithms = ["ES256"]
jwks = '''{jwks}'''

[limits]
max_token_bytes = {LIMIT}

{audience}

{extra}
"#,
        jwks = jwks(&[key])
    )
}

/// Claims the policies above allow at [`NOW`]; `extra` members come after them.
fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "exp": NOW + 3600,
        "client_id": "client-1",
    });
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims
}

/// The median of `times`.
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Decides about `token` and renders the decision as JSON and as text, as the command line does.
fn decide_and_render(engine: &PolicyEngine, token: &str) -> Decision {
    let decision = decide(engine, token);
    black_box(decision.to_json());
    black_box(decision.explain());
    decision
}

/// Times the case `setup(n)` against `setup(8 * n)` (median of [`RUNS`] each, interleaved so a
/// burst of load on the machine hits both), after `check` accepted both decisions, and fails
/// when the larger case takes more than [`MAX_RATIO`] times as long.
///
/// Each run decides [`repetitions`] times, the same number for both sizes: runs of a few
/// milliseconds are at the mercy of the scheduler when other processes share the cores.
fn assert_linear(
    what: &str,
    n: usize,
    setup: impl Fn(usize) -> (PolicyEngine, String),
    check: impl Fn(&Decision, usize),
) {
    let small = setup(n);
    let large = setup(8 * n);
    assert!(
        large.1.len() <= LIMIT,
        "{what}: the 8x token is {} bytes, over the limit",
        large.1.len()
    );
    // Also a warm-up: allocator, caches, lazily parsed keys.
    check(&decide_and_render(&small.0, &small.1), n);
    check(&decide_and_render(&large.0, &large.1), 8 * n);
    let reps = repetitions(&small);
    let (mut t1, mut t8) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for ((engine, token), times) in [(&small, &mut t1), (&large, &mut t8)] {
            let start = Instant::now();
            for _ in 0..reps {
                black_box(decide_and_render(engine, token));
            }
            times.push(start.elapsed());
        }
    }
    let (t1, t8) = (median(&mut t1), median(&mut t8));
    let ratio = t8.as_secs_f64() / t1.as_secs_f64().max(1e-9);
    println!(
        "{what}: n = {n}: {t1:?}, 8n = {}: {t8:?} ({reps} decisions each), ratio {ratio:.1}",
        8 * n
    );
    assert!(
        ratio <= MAX_RATIO,
        "{what}: 8x the input took {ratio:.1}x as long ({t1:?} vs {t8:?}); linear is about 8"
    );
}

/// How many decisions about the small case take at least [`MIN_RUN`] (at most 100).
fn repetitions((engine, token): &(PolicyEngine, String)) -> u32 {
    let start = Instant::now();
    for _ in 0..3 {
        black_box(decide_and_render(engine, token));
    }
    let one = start.elapsed() / 3;
    let needed = MIN_RUN.as_secs_f64() / one.as_secs_f64().max(1e-9);
    needed.ceil().clamp(1.0, 100.0) as u32
}

/// `n` distinct words `{prefix}0`, `{prefix}1`, ...
fn words(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A TOML array of strings.
fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
#[cfg_attr(debug_assertions, ignore = "timing: run in release (.ci/run does)")]
fn time_is_linear_in_the_number_of_scopes() {
    let key = TestKey::es256("k1");
    let setup = |n: usize| {
        let engine = engine(
            &policy(&key, ONE_AUDIENCE, "[scopes]\nrequired = [\"s7\"]"),
            &[],
        );
        let token = key.sign(&claims(json!({ "scope": words("s", n).join(" ") })));
        (engine, token)
    };
    assert_linear("scopes", 10_000, setup, |d, n| {
        assert_allow(d);
        assert_eq!(d.principal().scopes.len(), n);
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "timing: run in release (.ci/run does)")]
fn time_is_linear_in_the_number_of_payload_members() {
    let key = TestKey::es256("k1");
    let setup = |n: usize| {
        // Every claim the policy reads is looked up among all the members.
        let engine = engine(
            &policy(
                &key,
                ONE_AUDIENCE,
                &format!(
                    "[claims]\nrequired = [\"m{}\"]\nconstraints = [{{ claim = \"sub\", prefix = \"user-\" }}]",
                    n - 1
                ),
            ),
            &[],
        );
        let members: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("m{i}"), json!(i))).collect();
        let token = key.sign(&claims(Value::Object(members)));
        (engine, token)
    };
    assert_linear("payload members", 5_000, setup, |d, _| assert_allow(d));
}

#[test]
#[cfg_attr(debug_assertions, ignore = "timing: run in release (.ci/run does)")]
fn time_is_linear_in_the_number_of_audiences() {
    let key = TestKey::es256("k1");
    // The token names n audiences and the policy accepts n / 8 values, of which only the last is
    // among the token's: every accepted value is looked up in the token's.
    let setup = |n: usize| {
        let mut accept: Vec<String> = words("https://other.example/", n / 8)
            .iter()
            .map(|v| format!("{{ value = \"{v}\" }}"))
            .collect();
        accept.push(format!("{{ value = \"{AUD}\" }}"));
        let audience = format!("[audience]\naccept = [{}]", accept.join(", "));
        let engine = engine(&policy(&key, &audience, ""), &[]);
        let mut aud = words("a", n);
        aud.push(AUD.to_owned());
        (engine, key.sign(&claims(json!({ "aud": aud }))))
    };
    assert_linear("aud entries", 8_000, setup, |d, _| {
        assert_allow(d);
        assert_eq!(d.principal().audience.as_deref(), Some(AUD));
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "timing: run in release (.ci/run does)")]
fn time_is_linear_in_the_number_of_array_entries_tested_with_contains() {
    let key = TestKey::es256("k1");
    // `roles` holds n entries; the policy lists n / 8 of them in `contains_all`, and n / 8 others
    // (only the last of them in the token) in `contains_any`.
    let setup = |n: usize| {
        let roles = words("r", n);
        let all = roles.iter().step_by(8).cloned().collect::<Vec<_>>();
        let mut any = words("absent", n / 8);
        any.push(format!("r{}", n - 1));
        let constraints = format!(
            "[claims]\nconstraints = [\n  {{ claim = \"roles\", format = \"array\", contains_all = {} }},\n  {{ claim = \"roles\", format = \"array\", contains_any = {} }},\n]",
            toml_list(&all),
            toml_list(&any)
        );
        let engine = engine(&policy(&key, ONE_AUDIENCE, &constraints), &[]);
        (engine, key.sign(&claims(json!({ "roles": roles }))))
    };
    assert_linear("array entries", 8_000, setup, |d, _| {
        assert_allow(d);
        assert_eq!(
            check(d, "constraint:roles#2").outcome(),
            &jwt_policy::Outcome::Passed
        );
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "timing: run in release (.ci/run does)")]
fn time_is_linear_in_the_number_of_crit_names() {
    let key = TestKey::es256("k1");
    // Before the signature is checked: `crit` names one understood extension n times, and the
    // header has n other parameters (serialized before `zext`: serde_json sorts names).
    let setup = |n: usize| {
        let engine = engine(
            &policy(&key, ONE_AUDIENCE, "[header]\ncrit = [\"zext\"]"),
            &[],
        );
        let mut header = key.header();
        for i in 0..n {
            header[format!("x{i}")] = json!(0);
        }
        header["crit"] = json!(vec!["zext"; n]);
        header["zext"] = json!(true);
        (engine, key.sign_with(&header, &claims(json!({}))))
    };
    assert_linear("crit names", 4_000, setup, |d, _| assert_allow(d));
}

// -------------------------------------------------------------------------------------------
// Behaviour of the same code, in every build
// -------------------------------------------------------------------------------------------

/// An engine for `policy(key, audience, extra)`.
fn engine_with(key: &TestKey, audience: &str, extra: &str) -> PolicyEngine {
    engine(&policy(key, audience, extra), &[])
}

#[test]
fn granted_scopes_keep_the_token_order_without_repeats() {
    let key = TestKey::es256("k1");
    let engine = engine_with(&key, ONE_AUDIENCE, "");
    let d = decide(
        &engine,
        &key.sign(&claims(json!({
            "scope": "b a  b c a",
            "scp": ["c", "d", "a", "e", "d"],
        }))),
    );
    assert_allow(&d);
    assert_eq!(d.principal().scopes, ["b", "a", "c", "d", "e"]);

    // Many scopes, each granted twice (in `scope` and again in `scp`): listed once, in order.
    let many = words("s", 3_000);
    let d = decide(
        &engine,
        &key.sign(&claims(json!({ "scope": many.join(" "), "scp": many }))),
    );
    assert_allow(&d);
    assert_eq!(d.principal().scopes, many);
}

#[test]
fn missing_required_scopes_are_named_in_policy_order() {
    let key = TestKey::es256("k1");
    let engine = engine_with(
        &key,
        ONE_AUDIENCE,
        "[scopes]\nrequired = [\"z\", \"b\", \"y\", \"a\"]",
    );
    let d = decide(&engine, &key.sign(&claims(json!({ "scope": "a b a c" }))));
    assert_deny(&d, "insufficient_scope", "scopes");
    let scopes = check(&d, "scopes");
    assert_eq!(scopes.detail(), "missing `z`, `y`");
    assert_eq!(
        scopes.outcome(),
        &jwt_policy::Outcome::Failed {
            reason: jwt_policy::Reason::InsufficientScope,
            expected: "scopes `z`, `b`, `y`, `a`".into(),
            observed: "granted `a`, `b`, `c`".into(),
        }
    );
    let d = decide(&engine, &key.sign(&claims(json!({ "scope": "y a z b" }))));
    assert_allow(&d);
    assert_eq!(
        check(&d, "scopes").detail(),
        "required `z`, `b`, `y`, `a` granted"
    );
}

#[test]
fn contains_tests_over_many_entries() {
    let key = TestKey::es256("k1");
    let engine = engine_with(
        &key,
        ONE_AUDIENCE,
        r#"[claims]
constraints = [
  { claim = "roles", format = "space_delimited_or_array", contains_all = ["w", "b", "x", "a"] },
  { claim = "groups", contains_any = ["p", "q", "g2999"] },
]"#,
    );
    let mut roles = words("r", 3_000);
    roles.extend(["a", "b", "a"].map(String::from));
    let groups = words("g", 3_000);
    let d = decide(
        &engine,
        &key.sign(&claims(json!({ "roles": roles, "groups": groups }))),
    );
    assert_deny(&d, "invalid_claim", "constraint:roles");
    assert_eq!(
        check(&d, "constraint:roles").detail(),
        "`roles` must contain all of `w`, `b`, `x`, `a` (missing `w`, `x`)"
    );
    assert_eq!(
        check(&d, "constraint:groups").outcome(),
        &jwt_policy::Outcome::Passed
    );

    // Read as a space-delimited string, and `contains_any` with none of its values present.
    let d = decide(
        &engine,
        &key.sign(&claims(
            json!({ "roles": "x a  w b", "groups": ["g1", "pq"] }),
        )),
    );
    assert_eq!(
        check(&d, "constraint:roles").outcome(),
        &jwt_policy::Outcome::Passed
    );
    assert_deny(&d, "invalid_claim", "constraint:groups");
    assert_eq!(
        check(&d, "constraint:groups").detail(),
        "`groups` must contain one of `p`, `q`, `g2999`"
    );
}

#[test]
fn audiences_over_many_entries() {
    let key = TestKey::es256("k1");
    let all = "[audience]\nmode = \"all\"\naccept = [{ value = \"https://api.example.com\" }, { value = \"a2999\" }, { value = \"b\" }]";
    let engine = engine_with(&key, all, "");
    let mut aud = words("a", 3_000);
    aud.push(AUD.to_owned());
    let d = decide(&engine, &key.sign(&claims(json!({ "aud": aud }))));
    assert_deny(&d, "audience_mismatch", "audience");
    aud.push("b".to_owned());
    let d = decide(&engine, &key.sign(&claims(json!({ "aud": aud }))));
    assert_allow(&d);
    assert_eq!(d.principal().audience.as_deref(), Some(AUD));

    // A guarded alternative looks its guard up among many `resource` values.
    let guarded =
        "[audience]\naccept = [{ value = \"zone\", resource = \"https://api.example.com\" }]";
    let engine = engine_with(&key, guarded, "");
    let mut resource = words("https://r.example/", 3_000);
    let token =
        |resource: &[String]| key.sign(&claims(json!({ "aud": ["zone"], "resource": resource })));
    let d = decide(&engine, &token(&resource));
    assert_deny(&d, "resource_mismatch", "audience");
    resource.push(AUD.to_owned());
    let d = decide(&engine, &token(&resource));
    assert_allow(&d);
    assert_eq!(
        check(&d, "audience").detail(),
        "`aud` contains `zone` and `resource` names `https://api.example.com`"
    );
}

#[test]
fn a_crit_name_listed_twice_is_checked_once_and_reported_as_written() {
    let key = TestKey::es256("k1");
    let engine = engine_with(&key, ONE_AUDIENCE, "[header]\ncrit = [\"ext\"]");
    let mut header = key.header();
    header["crit"] = json!(["ext", "ext"]);
    header["ext"] = json!(true);
    let d = decide(&engine, &key.sign_with(&header, &claims(json!({}))));
    assert_allow(&d);
    assert_eq!(
        check(&d, "crit").detail(),
        "`crit` extensions understood: ext, ext"
    );
    // A repeated name the header lacks still fails, naming it once.
    header["crit"] = json!(["ext", "other", "other"]);
    let d = decide(&engine, &key.sign_with(&header, &claims(json!({}))));
    assert_deny(&d, "unsupported_critical_header", "crit");
    assert_eq!(
        check(&d, "crit").detail(),
        "`crit` names `other`, which the header lacks"
    );
}
