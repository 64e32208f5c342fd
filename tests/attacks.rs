//! Attack regressions: hostile or sloppy tokens against the reference policy. Each one is denied
//! with the right reason code, and none of them makes the engine panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use base64::Engine as _;
use jwt_policy::{Decision, Outcome, Policy, PolicyEngine, Principal, Reason};
use serde_json::{Value, json};
use support::*;

/// The reference policy's keys: an RSA, a P-256 and an Ed25519 key, and the engine trusting them.
struct Fixture {
    rsa: TestKey,
    es: TestKey,
    ed: TestKey,
    engine: PolicyEngine,
}

fn fixture() -> Fixture {
    let rsa = TestKey::rsa("k1", "RS256", 0);
    let es = TestKey::es256("e1");
    let ed = TestKey::ed25519("ed1");
    let engine = engine(&keycard_policy(&[&rsa, &es, &ed]), CTX);
    Fixture {
        rsa,
        es,
        ed,
        engine,
    }
}

/// The reference policy with this JWKS text inline.
fn policy_with_jwks(jwks: &str) -> String {
    let key = TestKey::ed25519("placeholder");
    let text = keycard_policy(&[&key]);
    let placeholder = support::jwks(&[&key]);
    assert!(text.contains(&placeholder));
    text.replace(&placeholder, jwks)
}

/// The checks that read claims: none of them may pass or fail on an unverified token.
const CLAIM_CHECKS: [&str; 8] = [
    "exp",
    "nbf",
    "iat",
    "max_age",
    "audience",
    "resource",
    "scopes",
    "client_id",
];

#[track_caller]
fn assert_claims_not_evaluated(d: &Decision) {
    for c in d.checks() {
        if CLAIM_CHECKS.contains(&c.rule())
            || c.rule().starts_with("rule:")
            || c.rule().starts_with("constraint:")
            || c.rule().starts_with("required:")
        {
            assert_eq!(c.outcome(), &Outcome::NotEvaluated, "{}", d.explain());
        }
    }
    let mut only_the_context = Principal::default();
    only_the_context.resource_client_id = Some("stable-1".into());
    assert_eq!(d.principal(), &only_the_context, "{}", d.explain());
}

/// `key`'s default header with `changes` applied (a `null` change removes the member).
fn header_with(key: &TestKey, changes: Value) -> Value {
    let mut header = key.header();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            header.as_object_mut().unwrap().remove(name);
        } else {
            header[name] = value.clone();
        }
    }
    header
}

/// Splits a compact JWS into its three segments.
fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    [parts[0].into(), parts[1].into(), parts[2].into()]
}

/// The same JSON text with its last `}` replaced by `extra}`.
fn append_member(json: &str, extra: &str) -> String {
    let body = json.strip_suffix('}').unwrap();
    format!("{body},{extra}}}")
}

mod alg_none {
    use super::*;

    #[test]
    fn unsigned_tokens_in_any_case() {
        let f = fixture();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = header_with(&f.rsa, json!({ "alg": alg }));
            let input = format!(
                "{}.{}",
                b64(header.to_string()),
                b64(good_claims().to_string())
            );
            // No signature at all: not even a compact JWS.
            let d = decide(&f.engine, &format!("{input}."));
            assert_deny(&d, "malformed_token", "format");
            assert!(
                check(&d, "format").detail().contains("signature"),
                "{}",
                d.explain()
            );
            // Any signature bytes at all, including a real RS256 signature over the input.
            for sig in ["AAAA".to_owned(), b64(f.rsa.signature(input.as_bytes()))] {
                let d = decide(&f.engine, &format!("{input}.{sig}"));
                assert_deny(&d, "algorithm_not_allowed", "algorithm");
                assert_eq!(check(&d, "key").outcome(), &Outcome::NotEvaluated);
                assert_eq!(check(&d, "signature").outcome(), &Outcome::NotEvaluated);
                assert_claims_not_evaluated(&d);
            }
        }
    }

    #[test]
    fn near_miss_algorithm_names() {
        let f = fixture();
        for alg in [
            "rs256",
            "RS256 ",
            " RS256",
            "RS-256",
            "RS256\u{0}",
            "Rs256",
            "es256",
            "EDDSA",
            "Ed25519",
            "",
            &"A".repeat(5_000),
        ] {
            let header = header_with(&f.rsa, json!({ "alg": alg }));
            let d = decide(&f.engine, &f.rsa.sign_with(&header, &good_claims()));
            assert_deny(&d, "algorithm_not_allowed", "algorithm");
        }
    }

    #[test]
    fn policies_cannot_allow_none() {
        for alg in ["none", "None", "NONE"] {
            let policy = replace(
                &keycard_policy(&[&TestKey::ed25519("ed")]),
                r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
                &format!(r#"algorithms = ["EdDSA", "{alg}"]"#),
            );
            let err =
                Policy::from_toml("test.toml", &policy, env!("CARGO_MANIFEST_DIR")).unwrap_err();
            assert!(err.to_string().contains("unsigned"), "{err}");
        }
    }
}

mod key_confusion {
    use super::*;

    /// DER length octets.
    fn der_len(len: usize) -> Vec<u8> {
        if len < 0x80 {
            vec![len as u8]
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | bytes.len() as u8];
            out.extend(bytes);
            out
        }
    }

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(der_len(content.len()));
        out.extend_from_slice(content);
        out
    }

    fn der_uint(bytes: &[u8]) -> Vec<u8> {
        let mut content = Vec::new();
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(bytes);
        der(0x02, &content)
    }

    /// The RSA public key as PKCS#1 DER, SubjectPublicKeyInfo DER, and PEM: what attackers feed an
    /// HMAC verifier that takes "the key" as bytes.
    fn public_key_encodings(key: &TestKey) -> Vec<Vec<u8>> {
        let decode = |member: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.jwk[member].as_str().unwrap())
                .unwrap()
        };
        let (n, e) = (decode("n"), decode("e"));
        let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
        let algorithm = der(
            0x30,
            &[
                der(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                ),
                vec![0x05, 0x00],
            ]
            .concat(),
        );
        let spki = der(
            0x30,
            &[algorithm, der(0x03, &[&[0u8][..], &pkcs1].concat())].concat(),
        );
        let body = base64::engine::general_purpose::STANDARD.encode(&spki);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        vec![
            n.clone(),
            key.jwk["n"].as_str().unwrap().as_bytes().to_vec(),
            key.jwk.to_string().into_bytes(),
            pkcs1,
            spki,
            pem.clone().into_bytes(),
            pem.trim_end().as_bytes().to_vec(),
        ]
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key() {
        let f = fixture();
        for secret in public_key_encodings(&f.rsa) {
            for alg in ["HS256", "HS384", "HS512"] {
                let forged = TestKey::hmac("k1", alg, &secret);
                let d = decide(&f.engine, &forged.sign(&good_claims()));
                assert_deny(&d, "algorithm_not_allowed", "algorithm");
                assert_claims_not_evaluated(&d);
            }
        }
    }

    #[test]
    fn hs256_with_public_key_bytes_even_where_hmac_is_allowed() {
        // The issuer allows HS256 with its own named secret: the public key is still never a secret.
        let f = fixture();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), [b'q'; 48]).unwrap();
        let policy = replace(
            &keycard_policy(&[&f.rsa, &f.es, &f.ed]),
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            &format!(
                "algorithms = [\"RS256\", \"ES256\", \"EdDSA\", \"HS256\"]\nhmac_secrets = [{{ kid = \"h1\", file = '{}' }}]",
                file.path().display()
            ),
        );
        let engine = engine(&policy, CTX);
        assert_allow(&decide(
            &engine,
            &TestKey::hmac("h1", "HS256", &[b'q'; 48]).sign(&good_claims()),
        ));
        for secret in public_key_encodings(&f.rsa) {
            // Naming the RSA key: HMAC keys come only from the named secrets.
            let forged = TestKey::hmac("k1", "HS256", &secret);
            let d = decide(&engine, &forged.sign(&good_claims()));
            assert_deny(&d, "key_not_found", "key");
            // Naming the secret's kid: the real secret checks it, and it does not verify.
            let forged = TestKey::hmac("h1", "HS256", &secret);
            let d = decide(&engine, &forged.sign(&good_claims()));
            assert_deny(&d, "invalid_signature", "signature");
            assert_claims_not_evaluated(&d);
        }
    }

    #[test]
    fn kid_naming_a_key_of_another_family() {
        let f = fixture();
        // ES256 with the RSA key's kid, RS256 with the EC key's kid, EdDSA with the EC key's.
        for (signer, kid) in [(&f.es, "k1"), (&f.rsa, "e1"), (&f.ed, "e1"), (&f.es, "ed1")] {
            let header = header_with(signer, json!({ "kid": kid }));
            let d = decide(&f.engine, &signer.sign_with(&header, &good_claims()));
            assert_deny(&d, "key_mismatch", "key");
            assert_eq!(check(&d, "signature").outcome(), &Outcome::NotEvaluated);
        }
    }

    #[test]
    fn jwk_alg_differs_from_the_token_alg() {
        let pinned = TestKey::rsa("k384", "RS384", 0);
        let jwks = json!({ "keys": [pinned.jwk_with_alg()] }).to_string();
        let policy = replace(
            &policy_with_jwks(&jwks),
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            r#"algorithms = ["RS256", "RS384"]"#,
        );
        let engine = engine(&policy, CTX);
        assert_allow(&decide(&engine, &pinned.sign(&good_claims())));
        // Same key pair, same kid, but RS256.
        let same_pair = TestKey::rsa("k384", "RS256", 0);
        let d = decide(&engine, &same_pair.sign(&good_claims()));
        assert_deny(&d, "key_mismatch", "key");
        assert!(
            check(&d, "key").detail().contains("RS384"),
            "{}",
            d.explain()
        );
    }

    #[test]
    fn p384_key_for_an_es256_token() {
        let p384 = TestKey::es384("ec");
        let p256 = TestKey::es256("ec-256");
        let policy = replace(
            &keycard_policy(&[&p384, &p256]),
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            r#"algorithms = ["ES256", "ES384"]"#,
        );
        let engine = engine(&policy, CTX);
        let header = header_with(&p256, json!({ "kid": "ec" }));
        let d = decide(&engine, &p256.sign_with(&header, &good_claims()));
        assert_deny(&d, "key_mismatch", "key");
    }
}

mod signatures {
    use super::*;

    #[test]
    fn es256_with_r_and_s_zero() {
        let f = fixture();
        let [h, p, _] = segments(&f.es.sign(&good_claims()));
        let d = decide(&f.engine, &format!("{h}.{p}.{}", b64([0u8; 64])));
        assert_deny(&d, "invalid_signature", "signature");
        assert_claims_not_evaluated(&d);
    }

    #[test]
    fn es256_with_a_der_signature() {
        let f = fixture();
        let [h, p, _] = segments(&f.es.sign(&good_claims()));
        let input = format!("{h}.{p}");
        let der = f.es.der_signature(input.as_bytes());
        assert_ne!(der.len(), 64);
        let d = decide(&f.engine, &format!("{input}.{}", b64(der)));
        assert_deny(&d, "invalid_signature", "signature");
    }

    #[test]
    fn truncated_or_extended_signatures() {
        let f = fixture();
        for key in [&f.rsa, &f.es, &f.ed] {
            let token = key.sign(&good_claims());
            let [h, p, _] = segments(&token);
            let input = format!("{h}.{p}");
            let sig = key.signature(input.as_bytes());
            for bad in [
                sig[..sig.len() - 1].to_vec(),
                [sig.as_slice(), &[0]].concat(),
                [&[0], sig.as_slice()].concat(),
                vec![0; 1],
            ] {
                let d = decide(&f.engine, &format!("{input}.{}", b64(bad)));
                assert_deny(&d, "invalid_signature", "signature");
            }
        }
    }

    #[test]
    fn claims_modified_after_signing() {
        let f = fixture();
        for key in [&f.rsa, &f.es, &f.ed] {
            let [h, _, s] = segments(&key.sign(&claims_with(json!({ "scope": "read" }))));
            // Granting more, and then breaking every claim rule: nothing is judged.
            for forged in [
                good_claims(),
                json!({
                    "iss": ZONE, "aud": "https://evil.example", "exp": NOW - 10_000,
                    "nbf": NOW + 10_000, "iat": NOW + 10_000, "scope": 7, "client_id": 1,
                }),
            ] {
                let d = decide(&f.engine, &format!("{h}.{}.{s}", b64(forged.to_string())));
                assert_deny(&d, "invalid_signature", "signature");
                assert_eq!(d.reasons(), [Reason::InvalidSignature], "{}", d.explain());
                assert_claims_not_evaluated(&d);
                let json: Value = serde_json::from_str(&d.to_json()).unwrap();
                assert_eq!(json["subject"], Value::Null);
                assert_eq!(json["scopes"], json!([]));
                assert_eq!(json["audience"], Value::Null);
            }
        }
    }

    #[test]
    fn header_modified_after_signing() {
        let f = fixture();
        let [_, p, s] = segments(&f.rsa.sign(&good_claims()));
        let header = header_with(&f.rsa, json!({ "typ": "application/at+jwt" }));
        let d = decide(&f.engine, &format!("{}.{p}.{s}", b64(header.to_string())));
        assert_deny(&d, "invalid_signature", "signature");
        assert_claims_not_evaluated(&d);
    }
}

mod key_selection {
    use super::*;

    #[test]
    fn unknown_kid() {
        let f = fixture();
        for kid in ["nope", "K1", "k1 ", "", "../k1"] {
            let header = header_with(&f.rsa, json!({ "kid": kid }));
            let d = decide(&f.engine, &f.rsa.sign_with(&header, &good_claims()));
            assert_deny(&d, "key_not_found", "key");
            assert_claims_not_evaluated(&d);
        }
    }

    #[test]
    fn missing_kid_when_required() {
        let f = fixture();
        for key in [&f.rsa, &f.es, &f.ed] {
            let header = header_with(key, json!({ "kid": null }));
            let d = decide(&f.engine, &key.sign_with(&header, &good_claims()));
            assert_deny(&d, "key_not_found", "key");
        }
    }

    #[test]
    fn missing_kid_when_optional_picks_only_an_unambiguous_key() {
        let f = fixture();
        let policy = replace(
            &keycard_policy(&[&f.rsa, &f.es, &f.ed]),
            "kid = \"required\"",
            "kid = \"optional\"",
        );
        let engine = engine(&policy, CTX);
        let header = header_with(&f.rsa, json!({ "kid": null }));
        assert_allow(&decide(&engine, &f.rsa.sign_with(&header, &good_claims())));
        // Two RSA keys: refusing to guess.
        let second = TestKey::rsa("k2", "RS256", 1);
        let policy = replace(
            &keycard_policy(&[&f.rsa, &second]),
            "kid = \"required\"",
            "kid = \"optional\"",
        );
        let engine = support::engine(&policy, CTX);
        let d = decide(&engine, &f.rsa.sign_with(&header, &good_claims()));
        assert_deny(&d, "key_not_found", "key");
    }

    #[test]
    fn key_pointing_headers_are_ignored() {
        let f = fixture();
        // The attacker's own key pair, offered in the header in every way JWS allows.
        let attacker = TestKey::rsa("k1", "RS256", 1);
        let attacker_renamed = TestKey::rsa("attacker", "RS256", 1);
        let offers = [
            json!({ "jwk": attacker.jwk }),
            json!({ "jku": "https://attacker.example/jwks.json" }),
            json!({ "x5u": "https://attacker.example/cert.pem" }),
            json!({ "x5c": ["MIIBszCCAVmgAwIBAgIUQ2F0dGFja2VyIGNlcnQ="] }),
            json!({
                "jwk": attacker.jwk,
                "jku": "https://attacker.example/jwks.json",
                "x5u": "https://attacker.example/cert.pem",
                "x5c": ["MIIBszCCAVmgAwIBAgIUQ2F0dGFja2VyIGNlcnQ="],
            }),
        ];
        for offer in offers {
            // Claiming the trusted key's kid: the trusted key checks it, and it fails.
            let header = header_with(&attacker, offer.clone());
            let d = decide(&f.engine, &attacker.sign_with(&header, &good_claims()));
            assert_deny(&d, "invalid_signature", "signature");
            assert_claims_not_evaluated(&d);
            // Naming its own kid: no such key.
            let header = header_with(&attacker_renamed, offer.clone());
            let d = decide(
                &f.engine,
                &attacker_renamed.sign_with(&header, &good_claims()),
            );
            assert_deny(&d, "key_not_found", "key");
            // No kid at all.
            let mut header = header_with(&attacker, offer.clone());
            header.as_object_mut().unwrap().remove("kid");
            let d = decide(&f.engine, &attacker.sign_with(&header, &good_claims()));
            assert_deny(&d, "key_not_found", "key");
        }
    }

    /// Two issuers in one policy, each with its own keys.
    fn two_issuers(a: &TestKey, b: &TestKey) -> PolicyEngine {
        let policy = format!(
            "{}\n[[issuers]]\niss = \"https://other-zone.example\"\nalgorithms = [\"RS256\", \"ES256\"]\njwks = '''{}'''\n",
            keycard_policy(&[a]),
            support::jwks(&[b])
        );
        engine(&policy, CTX)
    }

    #[test]
    fn keys_belong_to_their_issuer() {
        let a = TestKey::es256("a-key");
        let b = TestKey::es256("b-key");
        let engine = two_issuers(&a, &b);
        let other = json!({ "iss": "https://other-zone.example" });
        assert_allow(&decide(&engine, &a.sign(&good_claims())));
        assert_allow(&decide(&engine, &b.sign(&claims_with(other.clone()))));
        // A's key, A's kid, but claiming B.
        let d = decide(&engine, &a.sign(&claims_with(other)));
        assert_deny(&d, "key_not_found", "key");
        assert_claims_not_evaluated(&d);
        // B's key claiming A.
        let d = decide(&engine, &b.sign(&good_claims()));
        assert_deny(&d, "key_not_found", "key");
    }

    #[test]
    fn same_kid_at_two_issuers_stays_apart() {
        let a = TestKey::rsa("shared", "RS256", 0);
        let b = TestKey::rsa("shared", "RS256", 1);
        let engine = two_issuers(&a, &b);
        let other = json!({ "iss": "https://other-zone.example" });
        assert_allow(&decide(&engine, &a.sign(&good_claims())));
        assert_allow(&decide(&engine, &b.sign(&claims_with(other.clone()))));
        let d = decide(&engine, &a.sign(&claims_with(other)));
        assert_deny(&d, "invalid_signature", "signature");
        let d = decide(&engine, &b.sign(&good_claims()));
        assert_deny(&d, "invalid_signature", "signature");
    }
}

mod duplicates {
    use super::*;

    #[test]
    fn duplicate_claims() {
        let f = fixture();
        let header = f.es.header().to_string();
        let claims = good_claims().to_string();
        for extra in [
            r#""aud":"https://evil.example""#,
            r#""\u0061ud":"https://evil.example""#,
            r#""\u0061\u0075\u0064":"https://evil.example""#,
            r#""exp":99999999999"#,
            r#""\u0065xp":99999999999"#,
            r#""iss":"https://abc123.keycard.cloud""#,
            r#""scope":"mcp:tools admin""#,
            r#""org":{"id":1,"id":2}"#,
            r#""org":{"id":1,"\u0069d":2}"#,
            r#""list":[{"a":1,"a":1}]"#,
        ] {
            let d = decide(
                &f.engine,
                &f.es.sign_raw(&header, &append_member(&claims, extra)),
            );
            assert_deny(&d, "malformed_token", "format");
            assert_claims_not_evaluated(&d);
        }
    }

    #[test]
    fn duplicate_header_parameters() {
        let f = fixture();
        let header = f.es.header().to_string();
        let claims = good_claims().to_string();
        for extra in [
            r#""alg":"ES256""#,
            r#""alg":"none""#,
            r#""\u0061lg":"ES256""#,
            r#""kid":"k1""#,
            r#""\u006bid":"e1""#,
            r#""typ":"JWT""#,
            r#""\u0074yp":"at+jwt""#,
        ] {
            let d = decide(
                &f.engine,
                &f.es.sign_raw(&append_member(&header, extra), &claims),
            );
            assert_deny(&d, "malformed_token", "format");
        }
    }

    #[test]
    fn escaped_but_distinct_names_are_fine() {
        // `"\u0061ud"` alone is just `aud`.
        let f = fixture();
        let claims = good_claims()
            .to_string()
            .replace("\"aud\"", r#""\u0061ud""#);
        assert!(claims.contains(r"\u0061ud"));
        assert_allow(&decide(
            &f.engine,
            &f.es.sign_raw(&f.es.header().to_string(), &claims),
        ));
    }
}

mod numeric_dates {
    use super::*;

    fn with_exp(f: &Fixture, raw: &str) -> Decision {
        let mut claims = good_claims();
        claims["exp"] = json!("@EXP@");
        let text = claims.to_string().replace("\"@EXP@\"", raw);
        decide(&f.engine, &f.ed.sign_raw(&f.ed.header().to_string(), &text))
    }

    #[test]
    fn malformed_exp() {
        let f = fixture();
        for raw in [
            "\"1767229200\"",
            "null",
            "1e400",
            "-1e400",
            "1e19",
            "9223372036854775808",
            "true",
            "[1767229200]",
            "{}",
            &format!("1{}", "0".repeat(5_000)),
            "1e99999999999999999999999999999999999999999",
            "-1e99999999999999999999999999999999999999999",
            "-9223372036854775808.5",
        ] {
            let d = with_exp(&f, raw);
            assert_deny(&d, "invalid_claim", "exp");
            assert_eq!(d.principal().expires_at, None, "{raw}");
        }
    }

    #[test]
    fn huge_but_valid_exp() {
        let f = fixture();
        let d = with_exp(&f, "9223372036854775807");
        assert_allow(&d);
        assert_eq!(d.principal().expires_at, Some(i64::MAX));
        assert_allow(&with_exp(&f, "1e18"));
        assert_allow(&with_exp(
            &f,
            "1767229200.000000000000000000000000000000001",
        ));
    }

    #[test]
    fn tiny_or_negative_exp_is_expired() {
        let f = fixture();
        for raw in [
            "0",
            "-0",
            "1e-400",
            "1e-99999999999999999999999999999999999999999",
            &format!("0.{}1", "0".repeat(5_000)),
            "-1",
            "-9223372036854775807",
            "-9223372036854775807.999999999999",
            "0.0",
        ] {
            let d = with_exp(&f, raw);
            assert_deny(&d, "expired", "exp");
        }
    }

    #[test]
    fn missing_exp() {
        let f = fixture();
        let d = decide(&f.engine, &f.ed.sign(&claims_with(json!({ "exp": null }))));
        assert_deny(&d, "missing_claim", "exp");
    }

    #[test]
    fn malformed_nbf_and_iat() {
        let f = fixture();
        for (claim, value) in [
            ("nbf", json!("0")),
            ("nbf", Value::Null),
            ("iat", json!("0")),
            ("iat", json!([])),
        ] {
            let mut claims = good_claims();
            claims[claim] = value;
            let d = decide(&f.engine, &f.ed.sign(&claims));
            assert_deny(&d, "invalid_claim", claim);
        }
    }
}

mod nesting {
    use super::*;

    fn nested_arrays(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn claim_nested_5000_deep() {
        let f = fixture();
        let claims = append_member(
            &good_claims().to_string(),
            &format!("\"x\":{}", nested_arrays(5_000)),
        );
        let token = f.es.sign_raw(&f.es.header().to_string(), &claims);
        assert!(token.len() <= 16_384);
        let d = decide(&f.engine, &token);
        assert_deny(&d, "malformed_token", "format");
        assert!(
            check(&d, "format").detail().contains("payload"),
            "{}",
            d.explain()
        );
        // Objects too.
        let objects = format!("{}1{}", "{\"a\":".repeat(1_000), "}".repeat(1_000));
        let claims = append_member(&good_claims().to_string(), &format!("\"x\":{objects}"));
        let d = decide(
            &f.engine,
            &f.es.sign_raw(&f.es.header().to_string(), &claims),
        );
        assert_deny(&d, "malformed_token", "format");
    }

    #[test]
    fn header_nested_5000_deep() {
        let f = fixture();
        let header = append_member(
            &f.es.header().to_string(),
            &format!("\"x\":{}", nested_arrays(5_000)),
        );
        let d = decide(
            &f.engine,
            &f.es.sign_raw(&header, &good_claims().to_string()),
        );
        assert_deny(&d, "malformed_token", "format");
    }

    #[test]
    fn depth_limit_is_64_levels() {
        // The payload object is level 1: 63 nested arrays inside it fit, 64 do not.
        let f = fixture();
        let at_depth = |levels: usize| {
            let claims = append_member(
                &good_claims().to_string(),
                &format!("\"x\":{}", nested_arrays(levels)),
            );
            decide(
                &f.engine,
                &f.es.sign_raw(&f.es.header().to_string(), &claims),
            )
        };
        assert_allow(&at_depth(63));
        assert_deny(&at_depth(64), "malformed_token", "format");
    }

    #[test]
    fn a_megabyte_of_nesting_does_not_overflow_the_stack() {
        let key = TestKey::es256("e1");
        let policy = replace(
            &keycard_policy(&[&key]),
            "max_token_bytes = 16384",
            "max_token_bytes = 1048576",
        );
        let engine = engine(&policy, CTX);
        let claims = append_member(
            &good_claims().to_string(),
            &format!("\"x\":{}", nested_arrays(350_000)),
        );
        let token = key.sign_raw(&key.header().to_string(), &claims);
        assert!(token.len() < 1_048_576);
        let d = decide(&engine, &token);
        assert_deny(&d, "malformed_token", "format");
    }
}

mod encoding {
    use super::*;

    /// A token none of whose segment lengths is a multiple of 4 (so each has trailing bits and
    /// room for `=` padding): the header and the claims are padded until it is so.
    fn odd_token(key: &TestKey) -> String {
        for n in 0..4 {
            for m in 0..4 {
                let header = header_with(key, json!({ "x": "h".repeat(m) }));
                let token = key.sign_with(&header, &claims_with(json!({ "pad": "p".repeat(n) })));
                if segments(&token).iter().all(|s| s.len() % 4 != 0) {
                    return token;
                }
            }
        }
        panic!("no token with every segment length off a multiple of 4");
    }

    /// The same base64url text with non-zero trailing bits in its last symbol.
    fn non_canonical(segment: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        assert_ne!(segment.len() % 4, 0);
        let last = *segment.as_bytes().last().unwrap();
        let index = ALPHABET.iter().position(|c| *c == last).unwrap();
        // Canonical encodings leave the low bit(s) zero; set the lowest one.
        assert_eq!(index & 1, 0);
        let mut out = segment[..segment.len() - 1].to_owned();
        out.push(ALPHABET[index | 1] as char);
        out
    }

    #[test]
    fn trailing_bits_in_each_segment() {
        // An Ed25519 signature is 64 bytes: 86 symbols, 4 trailing bits.
        let f = fixture();
        let token = odd_token(&f.ed);
        assert_allow(&decide(&f.engine, &token));
        for i in 0..3 {
            let mut parts = segments(&token);
            parts[i] = non_canonical(&parts[i]);
            let d = decide(&f.engine, &parts.join("."));
            assert_deny(&d, "malformed_token", "format");
            assert!(
                check(&d, "format").detail().contains("trailing bits"),
                "{}",
                d.explain()
            );
        }
    }

    #[test]
    fn padding_on_each_segment() {
        let f = fixture();
        let token = odd_token(&f.ed);
        assert_allow(&decide(&f.engine, &token));
        for i in 0..3 {
            let mut parts = segments(&token);
            let pad = (4 - parts[i].len() % 4) % 4;
            parts[i].push_str(&"=".repeat(pad));
            let d = decide(&f.engine, &parts.join("."));
            assert_deny(&d, "malformed_token", "format");
            // A single stray `=` too.
            let mut parts = segments(&token);
            parts[i].push('=');
            let d = decide(&f.engine, &parts.join("."));
            assert_deny(&d, "malformed_token", "format");
        }
    }

    #[test]
    fn whitespace_inside_and_around() {
        let f = fixture();
        let token = f.rsa.sign(&good_claims());
        assert_allow(&decide(&f.engine, &token));
        let [h, p, s] = segments(&token);
        let (h1, h2) = h.split_at(h.len() / 2);
        let (p1, p2) = p.split_at(p.len() / 2);
        let (s1, s2) = s.split_at(s.len() / 2);
        for bad in [
            format!(" {token}"),
            format!("{token} "),
            format!("{token}\n"),
            format!("{token}\r\n"),
            format!("\t{token}"),
            format!("{h1} {h2}.{p}.{s}"),
            format!("{h}.{p1}\n{p2}.{s}"),
            format!("{h}.{p}.{s1}\t{s2}"),
            format!("{h}. {p}.{s}"),
            format!("{h}.{p}\r\n.{s}"),
            format!("{h}.{p}.{s}\u{0}"),
        ] {
            let d = decide(&f.engine, &bad);
            assert_deny(&d, "malformed_token", "format");
            assert_claims_not_evaluated(&d);
        }
    }

    #[test]
    fn bearer_prefix() {
        let f = fixture();
        let token = f.rsa.sign(&good_claims());
        for prefix in ["Bearer ", "bearer ", "Bearer\t", "BEARER "] {
            let d = decide(&f.engine, &format!("{prefix}{token}"));
            assert_deny(&d, "malformed_token", "format");
        }
    }

    #[test]
    fn standard_alphabet() {
        let f = fixture();
        // Find a token whose every segment uses `-` or `_` (random-looking signatures and a
        // payload claim chosen to encode to them).
        for n in 0..200 {
            let claims = claims_with(json!({ "pad": "?>".repeat(n % 5 + 1), "jti": n }));
            let header = header_with(&f.rsa, json!({ "x": "?>?" }));
            let token = f.rsa.sign_with(&header, &claims);
            let parts = segments(&token);
            if !parts.iter().all(|p| p.contains(['-', '_'])) {
                continue;
            }
            assert_allow(&decide(&f.engine, &token));
            for i in 0..3 {
                let mut parts = segments(&token);
                parts[i] = parts[i].replace('-', "+").replace('_', "/");
                let d = decide(&f.engine, &parts.join("."));
                assert_deny(&d, "malformed_token", "format");
            }
            return;
        }
        panic!("no token uses `-` or `_` in every segment");
    }

    #[test]
    fn non_utf8_json() {
        let f = fixture();
        let header = f.es.header().to_string();
        let claims = good_claims().to_string();
        let invalid: [&[u8]; 5] = [
            b"\xff\xfe",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\x80",
            b"\xf4\x90\x80\x80",
        ];
        for bytes in invalid {
            let mut payload = append_member(&claims, "\"x\":\"@\"").into_bytes();
            let at = payload.iter().position(|b| *b == b'@').unwrap();
            payload.splice(at..=at, bytes.iter().copied());
            let d = decide(&f.engine, &f.es.sign_bytes(header.as_bytes(), &payload));
            assert_deny(&d, "malformed_token", "format");
            // In a member name, and in the header.
            let mut payload = claims.clone().into_bytes();
            payload.splice(1..1, [b"\"".as_slice(), bytes, b"\":1,"].concat());
            let d = decide(&f.engine, &f.es.sign_bytes(header.as_bytes(), &payload));
            assert_deny(&d, "malformed_token", "format");
            let mut bad_header = append_member(&header, "\"x\":\"@\"").into_bytes();
            let at = bad_header.iter().position(|b| *b == b'@').unwrap();
            bad_header.splice(at..=at, bytes.iter().copied());
            let d = decide(&f.engine, &f.es.sign_bytes(&bad_header, claims.as_bytes()));
            assert_deny(&d, "malformed_token", "format");
        }
        // A whole payload of raw bytes.
        let d = decide(&f.engine, &f.es.sign_bytes(header.as_bytes(), &[0xff; 40]));
        assert_deny(&d, "malformed_token", "format");
        // A UTF-8 byte order mark before the object.
        let d = decide(
            &f.engine,
            &f.es.sign_bytes(
                header.as_bytes(),
                &[b"\xef\xbb\xbf", claims.as_bytes()].concat(),
            ),
        );
        assert_deny(&d, "malformed_token", "format");
    }

    #[test]
    fn lone_surrogate_escapes() {
        let f = fixture();
        for escape in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""a\ud83d""#,
            r#""\ud83d\u0041""#,
        ] {
            let claims = append_member(&good_claims().to_string(), &format!("\"x\":{escape}"));
            let d = decide(
                &f.engine,
                &f.es.sign_raw(&f.es.header().to_string(), &claims),
            );
            assert_deny(&d, "malformed_token", "format");
        }
        // A proper pair is fine.
        let claims = append_member(&good_claims().to_string(), r#""x":"\ud83d\ude00""#);
        assert_allow(&decide(
            &f.engine,
            &f.es.sign_raw(&f.es.header().to_string(), &claims),
        ));
    }

    #[test]
    fn non_ascii_in_the_token_text() {
        let f = fixture();
        let token = f.es.sign(&good_claims());
        let [h, p, s] = segments(&token);
        let (p1, p2) = p.split_at(10);
        for bad in [
            format!("{h}.{p1}é{p2}.{s}"),
            format!("{h}\u{ff0e}{p}.{s}"),
            format!("{h}.{p}.{s}\u{200b}"),
            format!("\u{feff}{token}"),
        ] {
            let d = decide(&f.engine, &bad);
            assert_deny(&d, "malformed_token", "format");
        }
        // Bytes that are not even UTF-8.
        let mut bytes = token.clone().into_bytes();
        bytes.insert(5, 0xff);
        let d = f
            .engine
            .evaluate_at(&bytes, jwt_policy::UnixTime::from_secs(NOW));
        assert_deny(&d, "malformed_token", "format");
    }

    #[test]
    fn segment_counts() {
        let f = fixture();
        let token = f.es.sign(&good_claims());
        let [h, p, s] = segments(&token);
        for bad in [
            format!("{token}."),
            format!("{token}.{s}"),
            format!("{token}.{s}.{s}"),
            format!("{h}.{p}.{s}.."),
            format!(".{token}"),
            h.clone(),
            format!("{h}."),
            format!("{h}.{p}"),
            format!("{h}.{p}."),
            format!(".{p}.{s}"),
            format!("{h}..{s}"),
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "....".into(),
            ".....".into(),
        ] {
            let d = decide(&f.engine, &bad);
            assert_deny(&d, "malformed_token", "format");
            assert_claims_not_evaluated(&d);
        }
        let detail = |token: &str| {
            check(&decide(&f.engine, token), "format")
                .detail()
                .to_owned()
        };
        assert_eq!(
            detail(&h),
            "token has 1 segment; a compact JWS has exactly 3"
        );
        assert_eq!(
            detail(&format!("{h}.{p}")),
            "token has 2 segments; a compact JWS has exactly 3"
        );
    }

    #[test]
    fn not_json_objects() {
        let f = fixture();
        let header = f.es.header().to_string();
        let claims = good_claims().to_string();
        for payload in [
            "[]".to_owned(),
            "null".into(),
            "\"claims\"".into(),
            // A nested JWT (`cty: JWT`) is not a claims object.
            f.es.sign(&good_claims()),
            "42".into(),
            format!("{claims} x"),
            format!("{claims}{{}}"),
            append_member(&claims, ""),
            claims.replace("\"sub\"", "'sub'"),
            append_member(&claims, "\"x\":NaN"),
            append_member(&claims, "\"x\":Infinity"),
            append_member(&claims, "\"x\":01"),
            append_member(&claims, "\"x\":1."),
            append_member(&claims, "\"x\":+1"),
            append_member(&claims, "/*c*/\"x\":1"),
            append_member(&claims, "\"x\":\"a\u{1}b\""),
            String::new(),
        ] {
            let d = decide(&f.engine, &f.es.sign_raw(&header, &payload));
            assert_deny(&d, "malformed_token", "format");
        }
        for bad_header in [
            "[]".to_owned(),
            "null".into(),
            header.replace("\"ES256\"", "256"),
            header.replace("\"e1\"", "1"),
            header.replace("\"e1\"", "[\"e1\"]"),
            header.replace("\"at+jwt\"", "null"),
            header.replace("\"alg\":\"ES256\",", ""),
        ] {
            assert_ne!(bad_header, header);
            let d = decide(&f.engine, &f.es.sign_raw(&bad_header, &claims));
            assert_deny(&d, "malformed_token", "format");
        }
        // An empty object is JSON: it has no issuer.
        let d = decide(&f.engine, &f.es.sign_raw(&header, "{}"));
        assert_deny(&d, "missing_claim", "issuer");
    }
}

mod headers {
    use super::*;

    #[test]
    fn unknown_critical_extension() {
        let f = fixture();
        let header = header_with(&f.es, json!({ "crit": ["ext"], "ext": true }));
        let d = decide(&f.engine, &f.es.sign_with(&header, &good_claims()));
        assert_deny(&d, "unsupported_critical_header", "crit");
        assert_eq!(check(&d, "signature").outcome(), &Outcome::NotEvaluated);
        assert_claims_not_evaluated(&d);
    }

    #[test]
    fn malformed_crit() {
        let f = fixture();
        for crit in [
            json!({ "crit": [] }),
            json!({ "crit": ["alg"] }),
            json!({ "crit": ["kid"] }),
            json!({ "crit": ["absent"] }),
            json!({ "crit": "ext", "ext": 1 }),
            json!({ "crit": [1] }),
            json!({ "crit": {} }),
            json!({ "crit": ["ext", "ext"], "ext": 1 }),
            // RFC 7797 unencoded payloads are not supported.
            json!({ "crit": ["b64"], "b64": false }),
        ] {
            let header = header_with(&f.es, crit.clone());
            let d = decide(&f.engine, &f.es.sign_with(&header, &good_claims()));
            assert_deny(&d, "unsupported_critical_header", "crit");
        }
        // `crit` present as `null` (`header_with` would remove it).
        let header = append_member(&f.es.header().to_string(), "\"crit\":null");
        let d = decide(
            &f.engine,
            &f.es.sign_raw(&header, &good_claims().to_string()),
        );
        assert_deny(&d, "unsupported_critical_header", "crit");
    }

    #[test]
    fn understood_critical_extension() {
        let key = TestKey::es256("e1");
        let policy = replace(&keycard_policy(&[&key]), "crit = []", "crit = [\"ext\"]");
        let engine = engine(&policy, CTX);
        let header = header_with(&key, json!({ "crit": ["ext"], "ext": { "v": 1 } }));
        assert_allow(&decide(&engine, &key.sign_with(&header, &good_claims())));
        for crit in [
            json!({ "crit": ["ext"] }),
            json!({ "crit": ["ext", "other"], "ext": 1, "other": 1 }),
            json!({ "crit": ["alg"] }),
        ] {
            let header = header_with(&key, crit);
            let d = decide(&engine, &key.sign_with(&header, &good_claims()));
            assert_deny(&d, "unsupported_critical_header", "crit");
        }
    }

    #[test]
    fn typ() {
        let f = fixture();
        for typ in [
            json!(null),
            json!("JWT"),
            json!("jwt"),
            json!("at+jwt "),
            json!("application/jwt"),
            json!("at+jwt;v=1"),
            json!(""),
        ] {
            let header = header_with(&f.ed, json!({ "typ": typ }));
            let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
            assert_deny(&d, "invalid_type", "typ");
        }
        for typ in [
            "at+jwt",
            "AT+JWT",
            "At+Jwt",
            "application/at+jwt",
            "APPLICATION/AT+JWT",
        ] {
            let header = header_with(&f.ed, json!({ "typ": typ }));
            assert_allow(&decide(&f.engine, &f.ed.sign_with(&header, &good_claims())));
        }
        // Not a string at all: the header is malformed.
        let header = header_with(&f.ed, json!({ "typ": 1 }));
        let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
        assert_deny(&d, "malformed_token", "format");
    }

    #[test]
    fn issuer() {
        let f = fixture();
        let d = decide(&f.engine, &f.ed.sign(&claims_with(json!({ "iss": null }))));
        assert_deny(&d, "missing_claim", "issuer");
        assert_claims_not_evaluated(&d);
        for iss in [
            json!(42),
            json!([ZONE]),
            json!({ "iss": ZONE }),
            json!(true),
        ] {
            let d = decide(&f.engine, &f.ed.sign(&claims_with(json!({ "iss": iss }))));
            assert_deny(&d, "invalid_claim", "issuer");
        }
        let mut claims = good_claims();
        claims["iss"] = Value::Null;
        let d = decide(&f.engine, &f.ed.sign(&claims));
        assert_deny(&d, "invalid_claim", "issuer");
        for iss in [
            "https://evil.example",
            "https://abc123.keycard.cloud/",
            "https://ABC123.keycard.cloud",
            "http://abc123.keycard.cloud",
            "https://abc123.keycard.cloud.evil.example",
            "",
        ] {
            let d = decide(&f.engine, &f.ed.sign(&claims_with(json!({ "iss": iss }))));
            assert_deny(&d, "untrusted_issuer", "issuer");
            assert_eq!(check(&d, "key").outcome(), &Outcome::NotEvaluated);
            assert_claims_not_evaluated(&d);
        }
    }
}

mod reporting {
    use super::*;

    #[test]
    fn every_safe_failure_is_reported() {
        let f = fixture();
        let header = header_with(&f.rsa, json!({ "typ": "JWT" }));
        let token = f
            .rsa
            .sign_with(&header, &claims_with(json!({ "exp": NOW - 3600 })));
        let d = decide(&f.engine, &token);
        assert_deny(&d, "invalid_type", "typ");
        assert_eq!(d.reasons(), [Reason::InvalidType, Reason::Expired]);
        // And more of them at once.
        let token = f.rsa.sign_with(
            &header,
            &claims_with(json!({
                "exp": NOW - 3600, "aud": "https://evil.example", "scope": "x", "client_id": null,
            })),
        );
        let d = decide(&f.engine, &token);
        assert_eq!(
            d.reasons(),
            [
                Reason::InvalidType,
                Reason::Expired,
                Reason::AudienceMismatch,
                Reason::InsufficientScope,
                Reason::MissingClientId,
            ],
            "{}",
            d.explain()
        );
        let json: Value = serde_json::from_str(&d.to_json()).unwrap();
        assert_eq!(json["reason"], "invalid_type");
        assert_eq!(json["reasons"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn each_reason_code_is_listed_once() {
        // Two malformed claims: two failed checks with the same code.
        let f = fixture();
        let token =
            f.ed.sign(&claims_with(json!({ "iat": "x", "resource": 7 })));
        let d = decide(&f.engine, &token);
        let failed: Vec<Reason> = d.failures().filter_map(|c| c.reason()).collect();
        assert_eq!(
            failed,
            [Reason::InvalidClaim, Reason::InvalidClaim],
            "{}",
            d.explain()
        );
        assert_eq!(d.reasons(), [Reason::InvalidClaim]);
        let json: Value = serde_json::from_str(&d.to_json()).unwrap();
        assert_eq!(json["reasons"], json!(["invalid_claim"]));
    }

    #[test]
    fn header_failures_before_the_signature_are_all_reported() {
        let f = fixture();
        let header = header_with(&f.rsa, json!({ "alg": "RS512", "typ": "JWT" }));
        let key = TestKey::rsa("k1", "RS512", 0);
        let d = decide(&f.engine, &key.sign_with(&header, &good_claims()));
        assert_deny(&d, "algorithm_not_allowed", "algorithm");
        assert_eq!(
            d.reasons(),
            [Reason::AlgorithmNotAllowed, Reason::InvalidType],
            "{}",
            d.explain()
        );
        assert_claims_not_evaluated(&d);
    }

    #[test]
    fn oversized_garbage_is_not_looked_at() {
        let f = fixture();
        for token in [
            "\u{ff}".repeat(9_000),
            ".".repeat(16_385),
            "a".repeat(1 << 20),
        ] {
            let d = decide(&f.engine, &token);
            assert_deny(&d, "token_too_large", "size");
            assert!(
                d.checks()
                    .iter()
                    .skip(1)
                    .all(|c| c.outcome() == &Outcome::NotEvaluated)
            );
        }
    }
}

mod log_injection {
    use super::*;

    /// Every line of the text explanation is the verdict or starts with two spaces: values from
    /// the token (claims, header parameters) cannot start a line of their own.
    fn assert_no_forged_lines(d: &Decision) {
        let text = d.explain();
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        assert!(first == "ALLOW" || first.starts_with("DENY: "), "{text}");
        for line in lines {
            assert!(line.starts_with("  "), "forged line {line:?} in:\n{text}");
        }
    }

    #[test]
    fn claims_and_headers_cannot_forge_lines_in_the_explanation() {
        let f = fixture();
        let forged = "x\nALLOW\n  audience: `aud` contains everything";
        // In the principal of an allowed token.
        let d = decide(
            &f.engine,
            &f.es
                .sign(&claims_with(json!({ "sub": forged, "client_id": forged }))),
        );
        assert_allow(&d);
        assert_no_forged_lines(&d);
        assert!(d.explain().contains("x\\nALLOW"), "{}", d.explain());
        // In expected/observed of failed checks.
        let claims = claims_with(
            json!({ "aud": forged, "resource": forged, "scope": forged, "iss": forged }),
        );
        let d = decide(&f.engine, &f.es.sign(&claims));
        assert!(!d.is_allowed());
        assert_no_forged_lines(&d);
        let header = header_with(&f.es, json!({ "typ": forged, "kid": forged }));
        let d = decide(&f.engine, &f.es.sign_with(&header, &good_claims()));
        assert_no_forged_lines(&d);
        let header = header_with(&f.es, json!({ "alg": forged }));
        let d = decide(&f.engine, &f.es.sign_with(&header, &good_claims()));
        assert_deny(&d, "algorithm_not_allowed", "algorithm");
        assert_no_forged_lines(&d);
    }

    #[test]
    fn bidi_overrides_and_unicode_line_separators_are_escaped() {
        // U+2028/U+2029 end lines for many log viewers; U+202E and friends reorder what a reader
        // sees. Both are shown escaped, like control characters.
        let f = fixture();
        let sneaky = "admin\u{202e}nimda\u{2028}ALLOW\u{2029}x\u{2066}y\u{200f}";
        let d = decide(
            &f.engine,
            &f.es
                .sign(&claims_with(json!({ "sub": sneaky, "aud": sneaky }))),
        );
        assert_deny(&d, "audience_mismatch", "audience");
        let text = d.explain();
        for c in ['\u{202e}', '\u{2028}', '\u{2029}', '\u{2066}', '\u{200f}'] {
            assert!(!text.contains(c), "{c:?} in {text:?}");
            assert!(!d.to_json().contains(c), "{c:?} in the JSON");
        }
        assert!(text.contains("admin\\u{202e}nimda\\u{2028}ALLOW"), "{text}");
        // In the JSON they are `\uXXXX` escapes: the same value once parsed.
        let json: Value = serde_json::from_str(&d.to_json()).unwrap();
        assert_eq!(json["subject"], sneaky);
        let observed = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["rule"] == "audience")
            .unwrap()["observed"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(observed.contains("admin\\u{202e}nimda"), "{observed}");
        let allowed = decide(
            &f.engine,
            &f.es.sign(&claims_with(json!({ "sub": sneaky }))),
        );
        assert_allow(&allowed);
        assert!(!allowed.to_json().contains('\u{202e}'));
        assert!(allowed.to_json().contains("\\u202e"));
        let json: Value = serde_json::from_str(&allowed.to_json()).unwrap();
        assert_eq!(json["subject"], sneaky);
    }
}

/// One named test per known attack on JWT verifiers (RFC 8725 and past CVEs of JWT libraries)
/// not covered above by a test of its own.
mod known_attacks {
    use super::*;

    #[test]
    fn issuer_look_alikes_are_other_issuers() {
        let f = fixture();
        for iss in [
            "https://abc123.keycard.cloud/",        // trailing slash
            "https://ABC123.KEYCARD.CLOUD",         // case
            "https://abc123.keycard.cloud:443",     // explicit default port
            "https://abc123.keycard.cloud.",        // trailing dot
            "https://аbc123.keycard.cloud",         // Cyrillic `а` (U+0430)
            "https://abc123.keycard.cloud\u{200b}", // zero-width space
            " https://abc123.keycard.cloud",        // leading space
        ] {
            let d = decide(&f.engine, &f.ed.sign(&claims_with(json!({ "iss": iss }))));
            assert_deny(&d, "untrusted_issuer", "issuer");
            assert_claims_not_evaluated(&d);
        }
    }

    #[test]
    fn kid_with_path_traversal_or_odd_bytes_names_no_key() {
        let f = fixture();
        for kid in [
            "../../../../etc/passwd",
            "/dev/null",
            "k1\u{0}",
            "k1 ",
            "' OR '1'='1",
            "ed1\n",
            "https://evil.example/keys.json",
            &"x".repeat(5_000),
        ] {
            let header = header_with(&f.ed, json!({ "kid": kid }));
            let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
            assert_deny(&d, "key_not_found", "key");
            // The kid is shown quoted, escaped and cut, never raw.
            let observed = match check(&d, "key").outcome() {
                Outcome::Failed { observed, .. } => observed.clone(),
                other => panic!("{other:?}"),
            };
            assert!(
                !observed.contains('\n') && !observed.contains('\u{0}'),
                "{observed:?}"
            );
            assert!(observed.chars().count() < 200, "{observed:?}");
        }
    }

    #[test]
    fn unencoded_payload_b64_false_is_not_understood() {
        // RFC 7797: `b64: false` changes what is signed; it must be in `crit`, which jwt-policy
        // never understands for `b64` (a policy cannot list it either).
        let f = fixture();
        let header = header_with(&f.ed, json!({ "b64": false, "crit": ["b64"] }));
        let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
        assert_deny(&d, "unsupported_critical_header", "crit");
        // Without `crit` the parameter means nothing: the token is read (and signed) as usual.
        let header = header_with(&f.ed, json!({ "b64": false }));
        assert_allow(&decide(&f.engine, &f.ed.sign_with(&header, &good_claims())));
    }

    #[test]
    fn nested_jwts_are_refused() {
        let f = fixture();
        let inner = f.ed.sign(&good_claims());
        // `cty: JWT` with the inner token as the payload, and with a JSON payload: both refused.
        let header = header_with(&f.ed, json!({ "cty": "JWT" })).to_string();
        let d = decide(&f.engine, &f.ed.sign_raw(&header, &inner));
        assert_deny(&d, "malformed_token", "format");
        let header = header_with(&f.ed, json!({ "cty": "jwt" }));
        let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
        assert_deny(&d, "malformed_token", "format");
        assert!(
            check(&d, "format")
                .detail()
                .contains("nested tokens are not accepted")
        );
    }

    #[test]
    fn nested_jwts_in_any_spelling_of_the_media_type_are_refused() {
        // RFC 7515 §4.1.10: `cty` is a media type; `application/` may be left out, and case
        // does not matter, so all of these say "the payload is a JWT".
        let f = fixture();
        for cty in [
            "application/jwt",
            "Application/JWT",
            "APPLICATION/jwt",
            "JwT",
        ] {
            let header = header_with(&f.ed, json!({ "cty": cty }));
            let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
            assert_deny(&d, "malformed_token", "format");
        }
        // Another content type is not a nested token.
        let header = header_with(&f.ed, json!({ "cty": "application/json" }));
        assert_allow(&decide(&f.engine, &f.ed.sign_with(&header, &good_claims())));
    }

    #[test]
    fn jwe_header_parameters_are_refused() {
        // A header meant for decryption (RFC 7516 §4.1, RFC 7518 §4.6-4.8) is not a signed
        // token's, whatever else it says.
        let f = fixture();
        for (name, value) in [
            ("enc", json!("A256GCM")),
            ("zip", json!("DEF")),
            (
                "epk",
                json!({ "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA" }),
            ),
            ("apu", json!("AA")),
            ("apv", json!("AA")),
            ("iv", json!("AA")),
            ("tag", json!("AA")),
            ("p2s", json!("AA")),
            ("p2c", json!(1000)),
        ] {
            let header = header_with(&f.ed, json!({ name: value }));
            let d = decide(&f.engine, &f.ed.sign_with(&header, &good_claims()));
            assert_deny(&d, "malformed_token", "format");
            assert!(
                check(&d, "format").detail().contains(name),
                "{}",
                d.explain()
            );
        }
    }

    #[test]
    fn replicated_claims_in_the_header_must_equal_the_payload() {
        // RFC 7519 §5.3: `iss`, `sub` and `aud` may be copied into the header, unencrypted here
        // but signed; a copy that says something else is a confusion waiting to happen.
        let f = fixture();
        let claims = good_claims();
        let same = header_with(
            &f.ed,
            json!({ "iss": claims["iss"], "sub": claims["sub"], "aud": claims["aud"] }),
        );
        assert_allow(&decide(&f.engine, &f.ed.sign_with(&same, &claims)));
        for (name, other) in [
            ("iss", json!("https://other.example.com")),
            ("sub", json!("someone-else")),
            ("aud", json!([RESOURCE])),
            ("sub", json!(123)),
        ] {
            let header = header_with(&f.ed, json!({ name: other }));
            let d = decide(&f.engine, &f.ed.sign_with(&header, &claims));
            assert_deny(&d, "invalid_claim", "replicated_claims");
            assert!(check(&d, "replicated_claims").detail().contains(name));
        }
        // A header copy of a claim the payload lacks is no copy.
        let header = header_with(&f.ed, json!({ "sub": "user-123" }));
        let d = decide(
            &f.engine,
            &f.ed
                .sign_with(&header, &claims_with(json!({ "sub": null }))),
        );
        assert_deny(&d, "invalid_claim", "replicated_claims");
    }

    #[test]
    fn numeric_dates_huge_negative_fractional_or_not_finite() {
        let f = fixture();
        let with_exp = |raw: &str| {
            let text = good_claims().to_string().replace(
                &format!("\"exp\":{}", NOW + 3600),
                &format!("\"exp\":{raw}"),
            );
            assert!(text.contains(raw));
            decide(&f.engine, &f.ed.sign_raw(&f.ed.header().to_string(), &text))
        };
        for raw in ["1e400", "-1e400", "9223372036854775808", "1e19"] {
            assert_deny(&with_exp(raw), "invalid_claim", "exp");
        }
        for raw in [
            "NaN",
            "Infinity",
            "-Infinity",
            "0x10",
            "+1767229200",
            ".5",
            "1767229200.",
        ] {
            assert_deny(&with_exp(raw), "malformed_token", "format");
        }
        for raw in ["-1", "-1767229200.5", "0", "1e-400"] {
            assert_deny(&with_exp(raw), "expired", "exp");
        }
        for raw in ["1767229200.5", "17672292005e-1", "1.7672292e9"] {
            assert_allow(&with_exp(raw));
        }
    }
}

/// Inputs the fuzz targets found, kept as regressions (fuzz/README.md).
mod fuzz_regressions {
    use jwt_policy::{KeyError, KeySet};

    #[test]
    fn an_empty_rsa_modulus_is_a_malformed_key() {
        // `jwks` target: an empty `n` underflowed the bit count.
        let jwks = br#"{"keys":[{"kty":"RSA","kid":"k","e":"AQAB","n":""}]}"#;
        match KeySet::from_jwks(jwks) {
            Err(KeyError::InvalidKey { problem, .. }) => {
                assert!(problem.contains("RSA modulus has 0 bits"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        let all_zero = br#"{"keys":[{"kty":"RSA","kid":"k","e":"AQAB","n":"AAAA"}]}"#;
        assert!(KeySet::from_jwks(all_zero).is_err());
        assert!(
            KeySet::from_jwks_lenient(jwks).is_err(),
            "no usable key is left"
        );
    }
}

/// Keys no honest issuer publishes are refused wherever keys come from (policy files, inline
/// sets, `verify --jwks`); remote sets skip them (tests/remote_keys.rs).
mod refused_keys {
    use super::*;
    use jwt_policy::policy::DiagnosticKind;
    use jwt_policy::{KeyError, KeySet};

    const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

    /// The Ed25519 identity point (y = 1), a point of order 1.
    fn identity() -> [u8; 32] {
        let mut x = [0; 32];
        x[0] = 1;
        x
    }

    /// The encodings of the points of order 1, 2 and 4: the identity, (0, -1), and (±√-1, 0).
    fn order_four_points() -> [[u8; 32]; 4] {
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let mut sqrt_minus_one_negated = [0; 32];
        sqrt_minus_one_negated[31] = 0x80;
        [identity(), minus_one, [0; 32], sqrt_minus_one_negated]
    }

    /// Tokens with good claims for `kid`, "signed" without any private key: R is one of the
    /// points of order 1, 2 or 4 and S = 0. A cofactorless check compares R with
    /// [S]B - [k]A = -[k]A, which for a public key A of order 1, 2 or 4 is one of those four
    /// points whatever k is: one of the four tokens verifies.
    pub(super) fn forgeries(kid: &str) -> Vec<String> {
        let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
        let input = format!(
            "{}.{}",
            b64(header.to_string()),
            b64(good_claims().to_string())
        );
        order_four_points()
            .iter()
            .map(|r| {
                let mut signature = r.to_vec();
                signature.extend([0u8; 32]);
                format!("{input}.{}", b64(signature))
            })
            .collect()
    }

    /// A JWKS with one Ed25519 key `x`, `kid` `forged`.
    pub(super) fn ed25519_jwks(x: &[u8]) -> String {
        json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "forged", "x": b64(x) }] })
            .to_string()
    }

    /// The one error of a refused policy text; panics with `accepted` when the policy is valid.
    #[track_caller]
    fn refusal(text: &str, accepted: impl FnOnce() -> String) -> jwt_policy::Diagnostic {
        match Policy::from_toml("test.toml", text, POLICIES) {
            Ok(_) => panic!("the policy was accepted: {}", accepted()),
            Err(e) => {
                let errors: Vec<_> = e.errors().cloned().collect();
                assert_eq!(errors.len(), 1, "{e}");
                let error = errors.into_iter().next().unwrap();
                assert_eq!(error.kind, DiagnosticKind::KeySource, "{e}");
                // Located at the key source.
                let span = error.span.clone().unwrap();
                assert!(text[..span.start].ends_with("jwks = "), "{e}");
                error
            }
        }
    }

    #[test]
    fn a_policy_trusting_a_small_order_ed25519_key_is_refused() {
        for x in [identity(), [0; 32]] {
            let text = policy_with_jwks(&ed25519_jwks(&x));
            let error = refusal(&text, || {
                let engine = engine(&text, CTX);
                let allowed = forgeries("forged")
                    .iter()
                    .filter(|t| decide(&engine, t).is_allowed())
                    .count();
                format!(
                    "`x` = `{}`: {allowed} of 4 tokens made without any private key are allowed",
                    b64(x)
                )
            });
            assert_eq!(
                error.message,
                "JWKS key 0 (`kid` `forged`): Ed25519 `x` is a point of small order: \
                 signatures could be forged for it without any private key",
                "{}",
                b64(x)
            );
        }
    }

    /// `jwt-policy verify --jwks FILE TOKEN` with the reference policy (keys replaced by FILE).
    fn verify_with_jwks(jwks: &str, token: &str) -> std::process::Output {
        verify_policy_with_jwks(&keycard_policy(&[&TestKey::es256("e1")]), jwks, token)
    }

    /// `jwt-policy verify --jwks FILE TOKEN` with this policy text.
    fn verify_policy_with_jwks(policy: &str, jwks: &str, token: &str) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let policy = policy_path;
        let keys = dir.path().join("keys.json");
        std::fs::write(&keys, jwks).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
            .args(["verify", "--policy"])
            .arg(&policy)
            .args(["--now", &NOW.to_string(), "--context"])
            .arg("credential.key_id=stable-1")
            .arg("--jwks")
            .arg(&keys)
            .arg(token)
            .output()
            .unwrap()
    }

    #[test]
    fn verify_jwks_refuses_a_small_order_key() {
        // R = identity, S = 0 verifies any message under the identity key.
        let forged = &forgeries("forged")[0];
        let out = verify_with_jwks(&ed25519_jwks(&identity()), forged);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains("point of small order"), "{stderr}");
    }

    /// The strict reader's complaint about the one key of `jwk`.
    #[track_caller]
    fn problem(jwk: Value) -> String {
        let jwks = json!({ "keys": [jwk] }).to_string();
        match KeySet::from_jwks(jwks.as_bytes()) {
            Err(KeyError::InvalidKey { problem, .. }) => problem,
            other => panic!("{jwk}: {other:?}"),
        }
    }

    #[test]
    fn degenerate_rsa_exponents_are_refused() {
        let key = TestKey::rsa("r1", "RS256", 0);
        let with_e = |e: &[u8]| {
            let mut jwk = key.jwk.clone();
            jwk["e"] = json!(b64(e));
            jwk
        };
        for (e, says) in [
            (&[1u8][..], "RSA exponent is 1"),
            (&[2], "RSA exponent 2 is even"),
            (&[1, 0, 0], "RSA exponent 65536 is even"),
            (
                &[3, 0, 0, 0, 1],
                "RSA exponent has 34 bits; at most 33 are supported",
            ),
        ] {
            let problem = problem(with_e(e));
            assert!(problem.starts_with(says), "{e:?}: {problem}");
        }
        // 3, 65537 and a 33-bit exponent are fine.
        for e in [&[3u8][..], &[1, 0, 1], &[1, 0, 0, 0, 1]] {
            let jwks = json!({ "keys": [with_e(e)] }).to_string();
            assert!(KeySet::from_jwks(jwks.as_bytes()).is_ok(), "{e:?}");
        }
        // And through a policy: a located `check` error rather than `invalid_signature` later.
        let text = replace(
            &policy_with_jwks(&json!({ "keys": [with_e(&[1])] }).to_string()),
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            r#"algorithms = ["RS256"]"#,
        );
        let error = refusal(&text, || {
            let d = decide(&engine(&text, CTX), &key.sign(&good_claims()));
            format!("a token then gets {}", outcome(&d))
        });
        assert!(error.message.contains("RSA exponent is 1"), "{error:?}");
    }

    #[test]
    fn ec_points_off_their_curve_are_refused() {
        for key in [TestKey::es256("e1"), TestKey::es384("e1")] {
            let crv = key.jwk["crv"].as_str().unwrap().to_owned();
            let len = if crv == "P-256" { 32 } else { 48 };
            let mut y = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.jwk["y"].as_str().unwrap())
                .unwrap();
            y[len - 1] ^= 1;
            let mut off_curve = key.jwk.clone();
            off_curve["y"] = json!(b64(&y));
            // The point at infinity has no affine coordinates; zeros are how it gets spelled.
            let mut zeros = key.jwk.clone();
            zeros["x"] = json!(b64(vec![0u8; len]));
            zeros["y"] = json!(b64(vec![0u8; len]));
            for jwk in [off_curve, zeros] {
                let problem = problem(jwk.clone());
                assert_eq!(problem, format!("EC point is not on {crv}"), "{jwk}");
            }
            let jwks = json!({ "keys": [key.jwk] }).to_string();
            assert!(KeySet::from_jwks(jwks.as_bytes()).is_ok());
        }
    }

    /// The reference policy with this JWKS inline and these algorithms.
    pub(super) fn allowing(algorithms: &str, jwks: &str) -> String {
        replace(
            &policy_with_jwks(jwks),
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            &format!("algorithms = {algorithms}"),
        )
    }

    #[test]
    fn an_rsa_key_without_alg_under_several_rsa_algorithms_is_refused_by_check() {
        let rs256 = TestKey::rsa("r1", "RS256", 0);
        let ps256 = TestKey::rsa("r1", "PS256", 0);
        let text = allowing(r#"["RS256", "PS256"]"#, &jwks(&[&rs256]));
        let error = refusal(&text, || {
            let engine = engine(&text, CTX);
            format!(
                "RS256 token: {}, PS256 token: {}",
                outcome(&decide(&engine, &rs256.sign(&good_claims()))),
                outcome(&decide(&engine, &ps256.sign(&good_claims())))
            )
        });
        assert_eq!(
            error.message,
            "JWKS key 0 (`kid` `r1`): RSA key has no `alg`, and the issuer allows `RS256` and \
             `PS256`: it would verify tokens of each (RFC 8725 §3.1)"
        );
        assert_eq!(
            error.help.as_deref(),
            Some(
                "add the `alg` its tokens use to the JWK (e.g. `\"alg\": \"RS256\"`), or allow only one RSA algorithm"
            )
        );
        // With its `alg`, the key is bound to it.
        let pinned = json!({ "keys": [rs256.jwk_with_alg()] }).to_string();
        let bound = engine(&allowing(r#"["RS256", "PS256"]"#, &pinned), CTX);
        assert_allow(&decide(&bound, &rs256.sign(&good_claims())));
        assert_deny(
            &decide(&bound, &ps256.sign(&good_claims())),
            "key_mismatch",
            "key",
        );
        // Under one allowed RSA algorithm, a key without `alg` is bound to that one.
        let one = engine(&allowing(r#"["RS256"]"#, &jwks(&[&rs256])), CTX);
        assert_allow(&decide(&one, &rs256.sign(&good_claims())));
    }

    /// An engine for the reference policy allowing `algorithms` (its own keys: one ES256 key
    /// `e1`), with every issuer's keys replaced by `keys` as a service would in code (and as
    /// `verify --jwks` does).
    fn replaced_keys(algorithms: &str, keys: &[&TestKey]) -> PolicyEngine {
        let text = allowing(algorithms, &jwks(&[&TestKey::es256("e1")]));
        let policy = Policy::from_toml("test.toml", &text, POLICIES).unwrap();
        let set = KeySet::from_jwks(jwks(keys).as_bytes()).unwrap();
        PolicyEngine::builder(policy)
            .context("credential.key_id", "stable-1")
            .key_source_for_all(std::sync::Arc::new(jwt_policy::StaticKeys::new(set)))
            .build()
            .unwrap()
    }

    #[test]
    fn replaced_keys_without_alg_never_verify_under_several_rsa_algorithms() {
        let rs256 = TestKey::rsa("r1", "RS256", 0);
        let ps256 = TestKey::rsa("r1", "PS256", 0);
        let engine = replaced_keys(r#"["RS256", "PS256", "ES256"]"#, &[&rs256]);
        for token in [ps256.sign(&good_claims()), rs256.sign(&good_claims())] {
            let d = decide(&engine, &token);
            assert_deny(&d, "key_mismatch", "key");
            assert_eq!(
                check(&d, "key").detail(),
                "key `r1`: RSA key has no `alg`, and the issuer allows `RS256` and `PS256`: \
                 it would verify tokens of each (RFC 8725 §3.1)",
                "{}",
                d.explain()
            );
        }
        // One RSA algorithm allowed: the key is bound to it.
        let engine = replaced_keys(r#"["RS256", "ES256"]"#, &[&rs256]);
        assert_allow(&decide(&engine, &rs256.sign(&good_claims())));
    }

    #[test]
    fn a_key_whose_type_fits_no_allowed_algorithm_denies_key_mismatch() {
        // An RSA key without `alg` under an issuer allowing only ES256, named by an ES256 token.
        let es = TestKey::es256("r1");
        let rsa = TestKey::rsa("r1", "RS256", 0);
        let engine = replaced_keys(r#"["ES256"]"#, &[&rsa]);
        let d = decide(&engine, &es.sign(&good_claims()));
        assert_deny(&d, "key_mismatch", "key");
        assert!(
            check(&d, "key")
                .detail()
                .contains("needs an EC P-256 key; key is RSA"),
            "{}",
            d.explain()
        );
        // An EC key named by an RS256 token under an issuer allowing RS256 and PS256.
        let ec = TestKey::es256("e2");
        let engine = replaced_keys(r#"["RS256", "PS256"]"#, &[&ec]);
        let header = header_with(&rsa, json!({ "kid": "e2" }));
        let d = decide(&engine, &rsa.sign_with(&header, &good_claims()));
        assert_deny(&d, "key_mismatch", "key");
    }

    #[test]
    fn verify_jwks_refuses_a_set_ambiguous_for_an_issuer_of_the_policy() {
        // The reference policy allows one RSA algorithm: a key without `alg` is fine...
        let rs256 = TestKey::rsa("r1", "RS256", 0);
        let out = verify_with_jwks(&jwks(&[&rs256]), &rs256.sign(&good_claims()));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // ...but not where the issuer allows several.
        let policy = allowing(
            r#"["RS256", "PS256", "ES256"]"#,
            &jwks(&[&TestKey::es256("e1")]),
        );
        let out = verify_policy_with_jwks(&policy, &jwks(&[&rs256]), &rs256.sign(&good_claims()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("issuer `https://abc123.keycard.cloud`: JWKS key 0 (`kid` `r1`): RSA key has no `alg`, and the issuer allows `RS256` and `PS256`"),
            "{stderr}"
        );
    }
}
