//! The shipped policies (`policies/*.toml`): every one loads without errors or warnings and passes
//! `jwt-policy check`; each vendor policy allows the token shapes its vendor really issues and
//! denies realistic wrong ones with the exact reason code. (The reference policy,
//! `keycard-mcp.toml`, has its own scenario tests.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use jwt_policy::{Decision, KeySet, Policy, PolicyEngine, StaticKeys};
use serde_json::{Value, json};
use support::{NOW, TestKey, decide, jwks, outcome};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Every `policies/*.toml` (not the `*.tests.toml` beside them), sorted, so a policy added later
/// is covered without editing this file.
fn shipped_policies() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".toml") && !name.ends_with(".tests.toml")
        })
        .collect();
    files.sort();
    files
}

/// The shipped policy `policies/{name}.toml`, with every issuer's keys replaced by `key`.
fn vendor_engine(name: &str, key: &TestKey) -> PolicyEngine {
    let policy = Policy::from_file(policies_dir().join(format!("{name}.toml")))
        .unwrap_or_else(|e| panic!("{e}"));
    let keys = KeySet::from_jwks(jwks(&[key]).as_bytes()).unwrap();
    PolicyEngine::builder(policy)
        .key_source_for_all(Arc::new(StaticKeys::new(keys)))
        .build()
        .unwrap()
}

/// `base` with `changes` applied; a member set to `null` in `changes` is removed.
fn with(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            out.as_object_mut().unwrap().remove(k);
        } else {
            out[k] = v.clone();
        }
    }
    out
}

/// The name of the first failed check (the one that decided a deny).
fn deciding_check(d: &Decision) -> Option<String> {
    d.failures().next().map(|c| c.rule().to_owned())
}

/// One token and what the policy must say about it.
struct Case {
    name: &'static str,
    header: Value,
    claims: Value,
    /// `"allow"` or the reason code.
    outcome: &'static str,
    /// For a deny: the check that decides it.
    check: Option<&'static str>,
}

fn allow(name: &'static str, header: &Value, claims: Value) -> Case {
    Case {
        name,
        header: header.clone(),
        claims,
        outcome: "allow",
        check: None,
    }
}

fn deny(
    name: &'static str,
    header: &Value,
    claims: Value,
    reason: &'static str,
    check: &'static str,
) -> Case {
    Case {
        name,
        header: header.clone(),
        claims,
        outcome: reason,
        check: Some(check),
    }
}

/// Runs every case; reports all mismatches at once, each with the decision's explanation.
fn run_cases(engine: &PolicyEngine, key: &TestKey, cases: &[Case]) {
    let mut problems = Vec::new();
    for case in cases {
        let d = decide(engine, &key.sign_with(&case.header, &case.claims));
        let got = outcome(&d);
        let got_check = deciding_check(&d);
        if got != case.outcome || got_check.as_deref() != case.check {
            problems.push(format!(
                "case `{}`: expected {} (check {:?}), got {got} (check {got_check:?})\n{}",
                case.name,
                case.outcome,
                case.check,
                d.explain()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(cases.len() >= 5, "at least five cases per vendor policy");
}

// ---------------------------------------------------------------------------------------------
// Every shipped policy
// ---------------------------------------------------------------------------------------------

#[test]
fn the_shipped_policies_are_all_found() {
    let names: Vec<String> = shipped_policies()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "auth0-api.toml",
        "entra-id-v2.toml",
        "keycard-mcp.toml",
        "okta.toml",
        "rfc9068.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn every_shipped_policy_loads_without_errors_or_warnings() {
    for path in shipped_policies() {
        let policy = Policy::from_file(&path)
            .unwrap_or_else(|e| panic!("{} is invalid:\n{e}", path.display()));
        let rendered: Vec<String> = policy
            .warnings()
            .iter()
            .map(|w| policy.source().render(w))
            .collect();
        assert!(
            rendered.is_empty(),
            "{} has warnings:\n{}",
            path.display(),
            rendered.join("\n")
        );
        assert!(
            !policy.issuers().is_empty(),
            "{} trusts no issuer",
            path.display()
        );
    }
}

#[test]
fn check_command_accepts_every_shipped_policy() {
    let relative: Vec<String> = shipped_policies()
        .iter()
        .map(|p| {
            format!(
                "policies/{}",
                p.file_name().unwrap().to_string_lossy().into_owned()
            )
        })
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
        .arg("check")
        .args(&relative)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let expected: Vec<String> = relative.iter().map(|p| format!("{p}: ok")).collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
    assert_eq!(stderr, "", "no diagnostics expected");
}

/// The demo key sets beside the policies hold public keys only, each with a `kid`.
#[test]
fn shipped_demo_key_sets_hold_only_public_keys_with_kids() {
    let files: Vec<PathBuf> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jwks.json"))
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let set = KeySet::from_jwks(text.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(set.skipped().is_empty(), "{}", path.display());
        let doc: Value = serde_json::from_str(&text).unwrap();
        for jwk in doc["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
                assert!(
                    jwk.get(private).is_none(),
                    "{} publishes private member `{private}`",
                    path.display()
                );
            }
            assert!(
                jwk["kid"].is_string(),
                "{}: key without kid",
                path.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rfc9068.toml
// ---------------------------------------------------------------------------------------------

const RFC_RESOURCE: &str = "https://api.example.com";
const RFC_ISSUER: &str = "https://as.example.com";

fn rfc9068_claims() -> Value {
    json!({
        "iss": RFC_ISSUER,
        "exp": NOW + 300,
        "aud": RFC_RESOURCE,
        "sub": "5ba552d67",
        "client_id": "s6BhdRkqt3",
        "iat": NOW - 10,
        "jti": "dbe39bf3a3ba4238a513f51d6e1691c4",
        "scope": "read write",
        "auth_time": NOW - 600,
        "acr": "urn:mace:incommon:iap:silver",
    })
}

#[test]
fn rfc9068_allows_profile_tokens_with_each_algorithm() {
    let keys = [
        TestKey::rsa("as-rs256", "RS256", 0),
        TestKey::es256("as-es256"),
        TestKey::ed25519("as-eddsa"),
    ];
    let policy = Policy::from_file(policies_dir().join("rfc9068.toml")).unwrap();
    let set = KeySet::from_jwks(jwks(&[&keys[0], &keys[1], &keys[2]]).as_bytes()).unwrap();
    let engine = PolicyEngine::builder(policy)
        .key_source_for_all(Arc::new(StaticKeys::new(set)))
        .build()
        .unwrap();
    for key in &keys {
        for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
            let header = json!({ "alg": key.alg, "typ": typ, "kid": key.kid });
            let d = decide(&engine, &key.sign_with(&header, &rfc9068_claims()));
            assert_eq!(outcome(&d), "allow", "{} {typ}:\n{}", key.alg, d.explain());
            let p = d.principal();
            assert_eq!(p.client_id.as_deref(), Some("s6BhdRkqt3"));
            assert_eq!(p.client_id_source.as_deref(), Some("client_id"));
            assert_eq!(p.audience.as_deref(), Some(RFC_RESOURCE));
            assert_eq!(p.subject.as_deref(), Some("5ba552d67"));
            assert_eq!(p.scopes, ["read", "write"]);
        }
    }
}

#[test]
fn rfc9068_denies_what_the_profile_forbids() {
    let key = TestKey::rsa("as-rs256", "RS256", 0);
    let engine = vendor_engine("rfc9068", &key);
    let h = key.header();
    let base = rfc9068_claims();
    run_cases(
        &engine,
        &key,
        &[
            allow("a profile token", &h, base.clone()),
            allow(
                "aud an array holding this resource, with authorization claims",
                &h,
                with(
                    &base,
                    json!({ "aud": [RFC_RESOURCE, "https://other.example.com"],
                            "groups": ["admins"], "roles": ["reader"] }),
                ),
            ),
            deny(
                "an ID token of the same server (typ JWT)",
                &json!({ "alg": "RS256", "typ": "JWT", "kid": key.kid }),
                with(
                    &base,
                    json!({ "aud": "s6BhdRkqt3", "nonce": "n-0S6_WzA2Mj" }),
                ),
                "invalid_type",
                "typ",
            ),
            deny(
                "no typ at all",
                &json!({ "alg": "RS256", "kid": key.kid }),
                base.clone(),
                "invalid_type",
                "typ",
            ),
            deny(
                "a token for another resource",
                &h,
                with(&base, json!({ "aud": "https://billing.example.com" })),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "the authorization server itself as audience",
                &h,
                with(&base, json!({ "aud": RFC_ISSUER })),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "another issuer",
                &h,
                with(&base, json!({ "iss": "https://as.example.org" })),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "no sub (required by §2.2)",
                &h,
                with(&base, json!({ "sub": null })),
                "missing_claim",
                "required:sub",
            ),
            deny(
                "no jti (required by §2.2)",
                &h,
                with(&base, json!({ "jti": null })),
                "missing_claim",
                "required:jti",
            ),
            deny(
                "no iat (required by §2.2)",
                &h,
                with(&base, json!({ "iat": null })),
                "missing_claim",
                "iat",
            ),
            deny(
                "the scope `read` missing",
                &h,
                with(&base, json!({ "scope": "write" })),
                "insufficient_scope",
                "scopes",
            ),
            deny(
                "scope as an array instead of a space-delimited string",
                &h,
                with(&base, json!({ "scope": ["read", "write"] })),
                "invalid_claim",
                "scopes",
            ),
            deny(
                "the client named in `azp` only",
                &h,
                with(&base, json!({ "client_id": null, "azp": "s6BhdRkqt3" })),
                "missing_client_id",
                "client_id",
            ),
            deny(
                "`roles` as a string",
                &h,
                with(&base, json!({ "roles": "reader" })),
                "invalid_claim",
                "constraint:roles",
            ),
            deny(
                "expired beyond the 30 s leeway",
                &h,
                with(&base, json!({ "exp": NOW - 31 })),
                "expired",
                "exp",
            ),
            allow(
                "expired within the 30 s leeway",
                &h,
                with(&base, json!({ "exp": NOW - 29 })),
            ),
        ],
    );
}

#[test]
fn rfc9068_refuses_hmac_tokens() {
    let key = TestKey::rsa("as-rs256", "RS256", 0);
    let engine = vendor_engine("rfc9068", &key);
    let hmac = TestKey::hmac("as-rs256", "HS256", &[7; 32]);
    let d = decide(&engine, &hmac.sign(&rfc9068_claims()));
    assert_eq!(outcome(&d), "algorithm_not_allowed", "{}", d.explain());
}

// ---------------------------------------------------------------------------------------------
// auth0-api.toml
// ---------------------------------------------------------------------------------------------

const AUTH0_API: &str = "https://api.example.com/orders";
const AUTH0_ISSUER: &str = "https://example-tenant.us.auth0.com/";
const AUTH0_CLIENT: &str = "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja";

/// A user's token in the Auth0 profile (the default): `azp`, no `jti`, `typ: JWT`.
fn auth0_claims() -> Value {
    json!({
        "iss": AUTH0_ISSUER,
        "sub": "auth0|6553da60a54af58e29493993",
        "aud": [AUTH0_API, "https://example-tenant.us.auth0.com/userinfo"],
        "iat": NOW - 10,
        "exp": NOW + 86_400,
        "azp": AUTH0_CLIENT,
        "scope": "openid profile read:orders",
    })
}

/// The same token in Auth0's RFC 9068 profile: `client_id`, `jti`, `typ: at+jwt`.
fn auth0_rfc9068_claims() -> Value {
    with(
        &auth0_claims(),
        json!({ "azp": null, "client_id": AUTH0_CLIENT, "jti": "73WakrfVbNJBaAmhQtEeDv" }),
    )
}

fn auth0_header(key: &TestKey) -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": key.kid })
}

#[test]
fn auth0_allows_both_token_profiles_and_reports_the_client() {
    let key = TestKey::rsa("auth0-key", "RS256", 0);
    let engine = vendor_engine("auth0-api", &key);

    let d = decide(
        &engine,
        &key.sign_with(&auth0_header(&key), &auth0_claims()),
    );
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(p.client_id.as_deref(), Some(AUTH0_CLIENT));
    assert_eq!(p.client_id_source.as_deref(), Some("azp"));
    assert_eq!(p.audience.as_deref(), Some(AUTH0_API));
    assert_eq!(p.scopes, ["openid", "profile", "read:orders"]);

    let d = decide(&engine, &key.sign(&auth0_rfc9068_claims()));
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(p.client_id.as_deref(), Some(AUTH0_CLIENT));
    assert_eq!(p.client_id_source.as_deref(), Some("client_id"));
    assert_eq!(p.audience.as_deref(), Some(AUTH0_API));

    // A machine-to-machine (client-credentials) token: no user, `gty`, `sub` = `{client}@clients`.
    let m2m = json!({
        "iss": AUTH0_ISSUER,
        "sub": format!("{AUTH0_CLIENT}@clients"),
        "aud": AUTH0_API,
        "iat": NOW - 10,
        "exp": NOW + 86_400,
        "azp": AUTH0_CLIENT,
        "gty": "client-credentials",
        "scope": "read:orders write:orders",
    });
    let d = decide(&engine, &key.sign_with(&auth0_header(&key), &m2m));
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(
        p.subject.as_deref(),
        Some("K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja@clients")
    );
    assert_eq!(p.client_id_source.as_deref(), Some("azp"));
    assert_eq!(p.scopes, ["read:orders", "write:orders"]);
}

#[test]
fn auth0_denies_realistic_wrong_tokens() {
    let key = TestKey::rsa("auth0-key", "RS256", 0);
    let engine = vendor_engine("auth0-api", &key);
    let h = auth0_header(&key);
    let base = auth0_claims();
    run_cases(
        &engine,
        &key,
        &[
            allow("a user's token, Auth0 profile", &h, base.clone()),
            allow(
                "aud the API identifier alone, RBAC permissions included",
                &h,
                with(
                    &base,
                    json!({ "aud": AUTH0_API, "permissions": ["read:orders"] }),
                ),
            ),
            deny(
                "the issuer without its trailing slash",
                &h,
                with(
                    &base,
                    json!({ "iss": "https://example-tenant.us.auth0.com" }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "another tenant",
                &h,
                with(
                    &base,
                    json!({ "iss": "https://other-tenant.eu.auth0.com/" }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "an ID token (aud = the application's client id)",
                &h,
                with(
                    &base,
                    json!({ "aud": AUTH0_CLIENT, "nonce": "abc", "scope": null,
                            "name": "Jane", "email": "jane@example.com" }),
                ),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "a token for the userinfo endpoint only",
                &h,
                with(
                    &base,
                    json!({ "aud": "https://example-tenant.us.auth0.com/userinfo" }),
                ),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "a token for another API of the tenant",
                &h,
                with(&base, json!({ "aud": "https://api.example.com/billing" })),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "scope `read:orders` missing",
                &h,
                with(&base, json!({ "scope": "openid profile" })),
                "insufficient_scope",
                "scopes",
            ),
            deny(
                "the permission in `permissions` but not granted in `scope`",
                &h,
                with(
                    &base,
                    json!({ "scope": "openid profile", "permissions": ["read:orders"] }),
                ),
                "insufficient_scope",
                "scopes",
            ),
            deny(
                "scope as an array",
                &h,
                with(&base, json!({ "scope": ["read:orders"] })),
                "invalid_claim",
                "scopes",
            ),
            deny(
                "`permissions` as a string",
                &h,
                with(&base, json!({ "permissions": "read:orders" })),
                "invalid_claim",
                "constraint:permissions",
            ),
            deny(
                "no client id claim",
                &h,
                with(&base, json!({ "azp": null })),
                "missing_client_id",
                "client_id",
            ),
            deny(
                "no subject",
                &h,
                with(&base, json!({ "sub": null })),
                "missing_claim",
                "required:sub",
            ),
        ],
    );
}

#[test]
fn auth0_refuses_hs256_even_when_the_api_was_switched_to_it() {
    let key = TestKey::rsa("auth0-key", "RS256", 0);
    let engine = vendor_engine("auth0-api", &key);
    let hmac = TestKey::hmac("auth0-key", "HS256", b"an API signing secret of 32 bytes");
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "auth0-key" });
    let d = decide(&engine, &hmac.sign_with(&header, &auth0_claims()));
    assert_eq!(outcome(&d), "algorithm_not_allowed", "{}", d.explain());
}

// ---------------------------------------------------------------------------------------------
// entra-id-v2.toml
// ---------------------------------------------------------------------------------------------

const TENANT: &str = "8f3c1a52-6b7e-4d09-a1c4-3e5f7b9d2c68";
const OTHER_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ENTRA_API: &str = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f";
const ENTRA_CLIENT: &str = "5e1f9a3c-7b2d-4e6a-9c8f-0d1b2a3c4e5f";
const GRAPH: &str = "00000003-0000-0000-c000-000000000000";

fn entra_issuer(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

/// A delegated (user) v2.0 access token for the API, shaped like Entra's.
fn entra_user_claims() -> Value {
    json!({
        "aud": ENTRA_API,
        "iss": entra_issuer(TENANT),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3_900,
        "aio": "AWQAm/8ZAAAA",
        "azp": ENTRA_CLIENT,
        "azpacr": "0",
        "name": "Adele Vance",
        "oid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "preferred_username": "adele@contoso.example",
        "rh": "0.AXcAUhqM...",
        "scp": "Orders.Read Orders.Write",
        "sub": "dZ6LCqQ0x1HR6Q1vHmK1bJwz6xQJxwR2A4yXkLm9tHk",
        "tid": TENANT,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
    })
}

/// An app-only (client credentials) v2.0 token: `roles`, no `scp`, no user claims.
fn entra_app_claims() -> Value {
    json!({
        "aud": ENTRA_API,
        "iss": entra_issuer(TENANT),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3_540,
        "aio": "E2ZgYJj",
        "azp": ENTRA_CLIENT,
        "azpacr": "1",
        "idtyp": "app",
        "oid": "9f8e7d6c-5b4a-4938-8271-605f4e3d2c1b",
        "rh": "0.AXcAUhqM...",
        "roles": ["Orders.Read.All"],
        "sub": "9f8e7d6c-5b4a-4938-8271-605f4e3d2c1b",
        "tid": TENANT,
        "uti": "b3Vh1Zq9hUuT4rN2xY0AAA",
        "ver": "2.0",
    })
}

fn entra_header(key: &TestKey) -> Value {
    json!({ "typ": "JWT", "alg": "RS256", "kid": key.kid })
}

#[test]
fn entra_allows_delegated_and_app_only_tokens() {
    let key = TestKey::rsa("entra-key", "RS256", 0);
    let engine = vendor_engine("entra-id-v2", &key);

    let d = decide(
        &engine,
        &key.sign_with(&entra_header(&key), &entra_user_claims()),
    );
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(p.client_id.as_deref(), Some(ENTRA_CLIENT));
    assert_eq!(p.client_id_source.as_deref(), Some("azp"));
    assert_eq!(p.audience.as_deref(), Some(ENTRA_API));
    assert_eq!(p.issuer.as_deref(), Some(entra_issuer(TENANT).as_str()));
    assert_eq!(p.scopes, ["Orders.Read", "Orders.Write"]);

    let d = decide(
        &engine,
        &key.sign_with(&entra_header(&key), &entra_app_claims()),
    );
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(p.client_id.as_deref(), Some(ENTRA_CLIENT));
    assert_eq!(p.client_id_source.as_deref(), Some("azp"));
    assert_eq!(p.audience.as_deref(), Some(ENTRA_API));
    assert!(p.scopes.is_empty(), "app-only tokens carry no scopes");
    // The role rule applied and held; the delegated rule did not apply.
    let detail = |name: &str| {
        d.checks()
            .iter()
            .find(|c| c.rule() == name)
            .map(|c| c.detail().to_owned())
            .unwrap()
    };
    assert!(
        detail("rule:app-only-token-needs-role").starts_with("holds"),
        "{}",
        d.explain()
    );
    assert!(
        detail("rule:delegated-token-needs-scope").starts_with("does not apply"),
        "{}",
        d.explain()
    );
}

#[test]
fn entra_denies_realistic_wrong_tokens() {
    let key = TestKey::rsa("entra-key", "RS256", 0);
    let engine = vendor_engine("entra-id-v2", &key);
    let h = entra_header(&key);
    let user = entra_user_claims();
    let app = entra_app_claims();
    run_cases(
        &engine,
        &key,
        &[
            allow("a delegated token", &h, user.clone()),
            allow("an app-only token", &h, app.clone()),
            allow(
                "a user token that also carries the user's app roles",
                &h,
                with(&user, json!({ "roles": ["Orders.Admin"] })),
            ),
            deny(
                "a token of another tenant",
                &h,
                with(
                    &user,
                    json!({ "iss": entra_issuer(OTHER_TENANT), "tid": OTHER_TENANT }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "this tenant's issuer but another tenant's `tid`",
                &h,
                with(&user, json!({ "tid": OTHER_TENANT })),
                "invalid_claim",
                "constraint:tid",
            ),
            deny(
                "a v1.0 token (sts.windows.net issuer, `appid`, ver 1.0)",
                &h,
                with(
                    &user,
                    json!({ "iss": format!("https://sts.windows.net/{TENANT}/"),
                            "aud": format!("api://{ENTRA_API}"), "ver": "1.0",
                            "azp": null, "azpacr": null, "appid": ENTRA_CLIENT,
                            "appidacr": "0" }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "`ver` 1.0 under the v2.0 issuer",
                &h,
                with(&user, json!({ "ver": "1.0" })),
                "invalid_claim",
                "constraint:ver",
            ),
            deny(
                "no `tid`",
                &h,
                with(&user, json!({ "tid": null })),
                "missing_claim",
                "constraint:tid",
            ),
            deny(
                "a token for Microsoft Graph",
                &h,
                with(&user, json!({ "aud": GRAPH, "scp": "User.Read Mail.Read" })),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "the App ID URI as audience (a v1.0 habit; v2.0 uses the client id)",
                &h,
                with(&user, json!({ "aud": format!("api://{ENTRA_API}") })),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "a delegated token without `Orders.Read`",
                &h,
                with(&user, json!({ "scp": "Orders.Write" })),
                "insufficient_permission",
                "rule:delegated-token-needs-scope",
            ),
            deny(
                "`scp` as an array",
                &h,
                with(&user, json!({ "scp": ["Orders.Read"] })),
                "invalid_claim",
                "constraint:scp",
            ),
            deny(
                "an app-only token without roles (no permission granted)",
                &h,
                with(&app, json!({ "roles": null })),
                "insufficient_permission",
                "rule:app-only-token-needs-role",
            ),
            deny(
                "an app-only token with another role",
                &h,
                with(&app, json!({ "roles": ["Invoices.Read.All"] })),
                "insufficient_permission",
                "rule:app-only-token-needs-role",
            ),
            deny(
                "`roles` as a string",
                &h,
                with(&app, json!({ "roles": "Orders.Read.All" })),
                "invalid_claim",
                "constraint:roles",
            ),
            deny(
                "the client only in `appid` (v1.0's claim)",
                &h,
                with(&user, json!({ "azp": null, "appid": ENTRA_CLIENT })),
                "missing_client_id",
                "client_id",
            ),
            deny(
                "`azp` not an application id",
                &h,
                with(&user, json!({ "azp": "my-client" })),
                "invalid_claim",
                "client_id",
            ),
            deny(
                "no `nbf` (Entra always sets it)",
                &h,
                with(&user, json!({ "nbf": null })),
                "missing_claim",
                "nbf",
            ),
            allow(
                "expired within the 60 s leeway",
                &h,
                with(&user, json!({ "exp": NOW - 59 })),
            ),
            deny(
                "expired beyond the 60 s leeway",
                &h,
                with(&user, json!({ "exp": NOW - 61 })),
                "expired",
                "exp",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// okta.toml
// ---------------------------------------------------------------------------------------------

const OKTA_API: &str = "https://api.example.com/orders";
const OKTA_ISSUER: &str = "https://example.okta.com/oauth2/aus8k3p2xZqW7rT4h5d7";
const OKTA_CLIENT: &str = "0oa2hl2inow5Uqc6c357";

/// A user's access token from the custom authorization server, shaped like Okta's.
fn okta_claims() -> Value {
    json!({
        "ver": 1,
        "jti": "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
        "iss": OKTA_ISSUER,
        "aud": OKTA_API,
        "sub": "jane.doe@example.com",
        "iat": NOW - 5,
        "exp": NOW + 3_600,
        "cid": OKTA_CLIENT,
        "uid": "00uid4BxXw6I6TV4m0g3",
        "scp": ["openid", "orders:read"],
        "auth_time": NOW - 300,
    })
}

/// Okta's access tokens carry no `typ`.
fn okta_header(key: &TestKey) -> Value {
    json!({ "kid": key.kid, "alg": "RS256" })
}

#[test]
fn okta_allows_user_and_client_credentials_tokens() {
    let key = TestKey::rsa("okta-key", "RS256", 0);
    let engine = vendor_engine("okta", &key);

    let d = decide(&engine, &key.sign_with(&okta_header(&key), &okta_claims()));
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(p.client_id.as_deref(), Some(OKTA_CLIENT));
    assert_eq!(p.client_id_source.as_deref(), Some("cid"));
    assert_eq!(p.audience.as_deref(), Some(OKTA_API));
    assert_eq!(p.subject.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(p.scopes, ["openid", "orders:read"]);

    // Client credentials: `sub` is the client id, no `uid`.
    let service = with(
        &okta_claims(),
        json!({ "sub": OKTA_CLIENT, "uid": null, "auth_time": null,
                "scp": ["orders:read", "orders:write"] }),
    );
    let d = decide(&engine, &key.sign_with(&okta_header(&key), &service));
    assert_eq!(outcome(&d), "allow", "{}", d.explain());
    let p = d.principal();
    assert_eq!(p.client_id.as_deref(), Some(OKTA_CLIENT));
    assert_eq!(p.client_id_source.as_deref(), Some("cid"));
    assert_eq!(p.scopes, ["orders:read", "orders:write"]);
}

#[test]
fn okta_denies_realistic_wrong_tokens() {
    let key = TestKey::rsa("okta-key", "RS256", 0);
    let engine = vendor_engine("okta", &key);
    let h = okta_header(&key);
    let base = okta_claims();
    run_cases(
        &engine,
        &key,
        &[
            allow("a user's token", &h, base.clone()),
            deny(
                "a token of the org's `default` authorization server",
                &h,
                with(
                    &base,
                    json!({ "iss": "https://example.okta.com/oauth2/default",
                            "aud": "api://default" }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "a token of another custom authorization server",
                &h,
                with(
                    &base,
                    json!({ "iss": "https://example.okta.com/oauth2/aus9zzzzzzzzzzzzzzz1" }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "a token of the org authorization server (for Okta's own APIs)",
                &h,
                with(
                    &base,
                    json!({ "iss": "https://example.okta.com", "aud": "https://example.okta.com",
                            "scp": ["okta.users.read"] }),
                ),
                "untrusted_issuer",
                "issuer",
            ),
            deny(
                "this server's issuer with the `default` audience",
                &h,
                with(&base, json!({ "aud": "api://default" })),
                "audience_mismatch",
                "audience",
            ),
            deny(
                "scope `orders:read` missing",
                &h,
                with(&base, json!({ "scp": ["openid", "profile"] })),
                "insufficient_scope",
                "scopes",
            ),
            deny(
                "`scp` as a space-delimited string",
                &h,
                with(&base, json!({ "scp": "openid orders:read" })),
                "invalid_claim",
                "scopes",
            ),
            deny(
                "scopes in `scope` instead of `scp`",
                &h,
                with(&base, json!({ "scp": null, "scope": "orders:read" })),
                "insufficient_scope",
                "scopes",
            ),
            deny(
                "the client in `client_id` instead of `cid`",
                &h,
                with(&base, json!({ "cid": null, "client_id": OKTA_CLIENT })),
                "missing_client_id",
                "client_id",
            ),
            deny(
                "`cid` that is not an Okta client id",
                &h,
                with(&base, json!({ "cid": "my-client" })),
                "invalid_claim",
                "client_id",
            ),
            deny(
                "`ver` as a string",
                &h,
                with(&base, json!({ "ver": "1" })),
                "invalid_claim",
                "constraint:ver",
            ),
            allow(
                "`ver` written as 1.0 (the same number)",
                &h,
                with(&base, json!({ "ver": 1.0 })),
            ),
        ],
    );
}

/// A claim in the wrong format should be described once: "`scp` must be a space-delimited string,
/// not an array". Today the rule says "must be a space-delimited string, not array where a
/// space-delimited string is expected", and the scopes check "`scp` is array where ...".
#[test]
fn a_claim_in_the_wrong_format_is_described_once() {
    let key = TestKey::rsa("entra-key", "RS256", 0);
    let engine = vendor_engine("entra-id-v2", &key);
    let claims = with(&entra_user_claims(), json!({ "scp": ["Orders.Read"] }));
    let d = decide(&engine, &key.sign_with(&entra_header(&key), &claims));
    for rule in ["rule:delegated-token-needs-scope", "scopes"] {
        let detail = d
            .checks()
            .iter()
            .find(|c| c.rule() == rule)
            .map(|c| c.detail().to_owned())
            .unwrap();
        assert!(
            detail.matches("space-delimited string").count() <= 1,
            "{rule}: {detail}"
        );
        assert!(!detail.contains(" array where"), "{rule}: {detail}");
        assert!(detail.contains("an array"), "{rule}: {detail}");
    }
}
