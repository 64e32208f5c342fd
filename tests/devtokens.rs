//! Development tokens through the command line: `keygen` writes a private key and a marked public
//! JWKS, `mint` signs tokens with it, `check` warns about a policy trusting it, and `verify` and
//! `serve` refuse to start with it unless told `--allow-test-keys`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use serde_json::{Value, json};
use support::command::*;
use support::{NOW, RESOURCE, ZONE};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `keygen --alg ALG --kid KID --out DIR`, which must succeed.
fn keygen(dir: &Path, alg: &str, kid: &str) {
    let out = run(&["keygen", "--alg", alg, "--kid", kid, "--out", s(dir)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// The reference policy in `dir`, its issuer trusting `KID.jwks.json`.
fn policy_trusting(dir: &Path, kid: &str) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/keycard-mcp.toml"
    ))
    .unwrap();
    let changed = text.replace(
        "jwks_file = \"keycard-mcp.jwks.json\"",
        &format!("jwks_file = \"{kid}.jwks.json\""),
    );
    assert_ne!(changed, text);
    let path = dir.join("policy.toml");
    std::fs::write(&path, changed).unwrap();
    path
}

/// The claims an allowed token carries under the reference policy.
fn good_claims() -> String {
    json!({ "iss": ZONE, "aud": RESOURCE, "client_id": "c1", "scope": "mcp:tools" }).to_string()
}

fn mint(key: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["mint", "--key", s(key)];
    args.extend_from_slice(extra);
    run(&args)
}

/// The token `mint` printed, without its newline.
fn minted(key: &Path, extra: &[&str]) -> String {
    let out = mint(key, extra);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "{text:?}"
    );
    text.trim_end().to_owned()
}

/// The header and claims of a compact JWS.
fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let part = |p: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    (part(parts[0]), part(parts[1]))
}

fn verify(policy: &Path, token: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        "--policy",
        s(policy),
        "--now",
        "1767225600",
        "--context",
        "credential.key_id=server-1",
    ];
    args.extend_from_slice(extra);
    args.push(token);
    run(&args)
}

#[test]
fn keygen_writes_a_private_key_with_mode_0600_and_a_marked_public_jwks() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, kty) in [("ES256", "EC"), ("RS256", "RSA"), ("EdDSA", "OKP")] {
        let kid = format!("dev-{alg}");
        let out = run(&[
            "keygen",
            "--alg",
            alg,
            "--kid",
            &kid,
            "--out",
            s(dir.path()),
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let key = dir.path().join(format!("{kid}.key.pem"));
        let jwks = dir.path().join(format!("{kid}.jwks.json"));
        assert_eq!(
            stdout(&out),
            format!(
                "wrote {} (private key, mode 0600)\nwrote {} (public JWKS, marked `\"x-jwt-policy-test\": true`)\n",
                key.display(),
                jwks.display()
            )
        );
        let pem = std::fs::read_to_string(&key).unwrap();
        assert!(
            pem.contains(&format!(
                "kid: {kid}\nalg: {alg}\n-----BEGIN PRIVATE KEY-----\n"
            )),
            "{pem}"
        );
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{pem}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{alg}: mode {mode:o}");
        }
        let set: Value = serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let jwk = &keys[0];
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["kid"], kid.as_str());
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["x-jwt-policy-test"], true);
        assert!(
            jwk.get("d").is_none(),
            "no private member in the public JWKS"
        );
        if alg == "RS256" {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap();
            assert_eq!(n.len() * 8, 2048);
        }
    }
}

#[test]
fn keygen_never_writes_over_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "ES256", "k1");
    let key = dir.path().join("k1.key.pem");
    let before = std::fs::read(&key).unwrap();
    let out = run(&[
        "keygen",
        "--alg",
        "EdDSA",
        "--kid",
        "k1",
        "--out",
        s(dir.path()),
    ]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        format!(
            "error: `{}` already exists; keygen never writes over a file (choose another `--kid` or `--out`)\n",
            key.display()
        )
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);

    // A JWKS alone in the way is refused too, and no private key is left behind.
    std::fs::write(dir.path().join("k2.jwks.json"), "{}").unwrap();
    let out = run(&[
        "keygen",
        "--alg",
        "ES256",
        "--kid",
        "k2",
        "--out",
        s(dir.path()),
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("k2.jwks.json` already exists"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("k2.key.pem").exists());

    // A kid that would leave the directory is refused.
    let out = run(&[
        "keygen",
        "--alg",
        "ES256",
        "--kid",
        "../x",
        "--out",
        s(dir.path()),
    ]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "error: `--kid ../x` must be letters, digits, `.`, `_` and `-`, not starting with `.`\n"
    );
}

#[test]
fn minted_tokens_verify_for_each_algorithm_only_with_allow_test_keys() {
    for alg in ["ES256", "RS256", "EdDSA"] {
        let dir = tempfile::tempdir().unwrap();
        let kid = format!("dev-{alg}");
        keygen(dir.path(), alg, &kid);
        let policy = policy_trusting(dir.path(), &kid);
        let key = dir.path().join(format!("{kid}.key.pem"));
        let token = minted(&key, &["--claims", &good_claims(), "--now", "1767225600"]);

        let refused = verify(&policy, &token, &[]);
        assert_eq!(code(&refused), 2, "{alg}: {}", stderr(&refused));
        assert_eq!(
            stderr(&refused),
            format!(
                "error: issuer `{ZONE}` trusts test key `{kid}` (made by `jwt-policy keygen`); refusing to start\n  help: pass `--allow-test-keys` to use it anyway (tests only), or give the issuer its own keys\n"
            ),
            "{alg}"
        );
        assert!(stdout(&refused).is_empty());

        let allowed = verify(&policy, &token, &["--allow-test-keys"]);
        assert_eq!(code(&allowed), 0, "{alg}: {}", stdout(&allowed));
        let d: Value = serde_json::from_str(&stdout(&allowed)).unwrap();
        assert_eq!(d["verdict"], "allow", "{alg}");
    }
}

#[test]
fn verify_refuses_a_jwks_file_holding_a_test_key() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "ES256", "k1");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/keycard-mcp.toml");
    let token = minted(
        &dir.path().join("k1.key.pem"),
        &["--claims", &good_claims(), "--now", "1767225600"],
    );
    let jwks = dir.path().join("k1.jwks.json");
    let out = verify(Path::new(policy), &token, &["--jwks", s(&jwks)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: issuer `{ZONE}` trusts test key `k1` (made by `jwt-policy keygen`)"
        )),
        "{}",
        stderr(&out)
    );
    let out = verify(
        Path::new(policy),
        &token,
        &["--jwks", s(&jwks), "--allow-test-keys"],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

/// A loopback HTTP server answering every request with `body` as JSON; its URL.
fn serve_json(body: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn verify_refuses_test_keys_fetched_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "RS256", "k1");
    let url = serve_json(std::fs::read_to_string(dir.path().join("k1.jwks.json")).unwrap());
    let token = minted(
        &dir.path().join("k1.key.pem"),
        &["--claims", &good_claims(), "--now", "1767225600"],
    );
    let policy = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/keycard-mcp.toml"
    ));
    let out = verify(policy, &token, &["--jwks-url", &url]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: issuer `{ZONE}` trusts test key `k1` (made by `jwt-policy keygen`); refusing to start"
        )),
        "{}",
        stderr(&out)
    );
    let out = verify(policy, &token, &["--jwks-url", &url, "--allow-test-keys"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn serve_refuses_to_start_with_a_test_key() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "EdDSA", "k1");
    let policy = policy_trusting(dir.path(), "k1");
    let out = run(&[
        "serve",
        "--policy",
        s(&policy),
        "--listen",
        "127.0.0.1:0",
        "--context",
        "credential.key_id=server-1",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "error: issuer `{ZONE}` trusts test key `k1` (made by `jwt-policy keygen`); refusing to start\n  help: pass `--allow-test-keys`"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_warns_about_a_policy_trusting_a_test_key() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "ES256", "k1");
    let policy = policy_trusting(dir.path(), "k1");
    // Only the algorithm of the key: no `unusable-key` warning beside this one.
    let text = std::fs::read_to_string(&policy).unwrap();
    let text = text.replace(
        r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
        r#"algorithms = ["ES256"]"#,
    );
    std::fs::write(&policy, text).unwrap();
    let out = run(&["check", s(&policy)]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        format!("{}: ok, 1 warning\n", policy.display())
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning[trusts-test-key]: issuer `{ZONE}` trusts test key `k1`"
        )),
        "{err}"
    );
    assert!(
        err.contains("help: generated by `jwt-policy keygen`: for tests only"),
        "{err}"
    );
}

#[test]
fn mint_defaults_to_at_jwt_the_key_kid_and_ten_minutes() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "ES256", "k1");
    let key = dir.path().join("k1.key.pem");
    let token = minted(
        &key,
        &["--claims", r#"{"sub":"alice"}"#, "--now", "1767225600"],
    );
    let (header, claims) = decode(&token);
    assert_eq!(
        header,
        json!({ "typ": "at+jwt", "alg": "ES256", "kid": "k1" })
    );
    assert_eq!(
        claims,
        json!({ "sub": "alice", "iat": NOW, "exp": NOW + 600 })
    );

    // `--exp`, and claims from a file.
    std::fs::write(dir.path().join("claims.json"), r#"{"sub":"bob"}"#).unwrap();
    let at_file = format!("@{}", dir.path().join("claims.json").display());
    for (exp, secs) in [("30s", 30), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)] {
        let token = minted(
            &key,
            &["--claims", &at_file, "--exp", exp, "--now", "1767225600"],
        );
        assert_eq!(
            decode(&token).1,
            json!({ "sub": "bob", "iat": NOW, "exp": NOW + secs })
        );
    }

    // Given header members and claims win over the defaults.
    let token = minted(
        &key,
        &[
            "--claims",
            r#"{"exp":5,"iat":4}"#,
            "--header",
            r#"{"typ":"JWT","kid":"other","x5u":"https://x"}"#,
            "--now",
            "1767225600",
        ],
    );
    let (header, claims) = decode(&token);
    assert_eq!(
        header,
        json!({ "typ": "JWT", "alg": "ES256", "kid": "other", "x5u": "https://x" })
    );
    assert_eq!(claims, json!({ "exp": 5, "iat": 4 }));

    // Without `--now`, the system clock.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (_, claims) = decode(&minted(&key, &["--claims", "{}"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= before + 60, "{iat}");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 600);
}

#[test]
fn mint_reads_keys_without_explanatory_lines_by_their_type() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "RS256", "k1");
    let pem = std::fs::read_to_string(dir.path().join("k1.key.pem")).unwrap();
    let bare = &pem[pem.find("-----BEGIN").unwrap()..];
    std::fs::write(dir.path().join("bare.pem"), bare).unwrap();
    let token = minted(&dir.path().join("bare.pem"), &["--claims", "{}"]);
    assert_eq!(decode(&token).0, json!({ "typ": "at+jwt", "alg": "RS256" }));
    // PS256 with the same RSA key, by `--header`.
    let token = minted(
        &dir.path().join("k1.key.pem"),
        &["--claims", "{}", "--header", r#"{"alg":"PS256"}"#],
    );
    assert_eq!(decode(&token).0["alg"], "PS256");
}

#[test]
fn mint_refuses_bad_input_with_exit_2_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "EdDSA", "k1");
    let key = dir.path().join("k1.key.pem");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let sec1 = dir.path().join("sec1.pem");
    std::fs::write(
        &sec1,
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let jwks = dir.path().join("k1.jwks.json");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--key", s(&missing), "--claims", "{}"],
            format!("cannot read key `{}`: ", missing.display()),
        ),
        (
            vec!["--key", s(&not_pem), "--claims", "{}"],
            format!(
                "key `{}`: no `-----BEGIN PRIVATE KEY-----` line (a PKCS#8 PEM private key)",
                not_pem.display()
            ),
        ),
        (
            vec!["--key", s(&jwks), "--claims", "{}"],
            format!(
                "key `{}`: no `-----BEGIN PRIVATE KEY-----` line",
                jwks.display()
            ),
        ),
        (
            vec!["--key", s(&sec1), "--claims", "{}"],
            format!(
                "key `{}`: `-----BEGIN EC PRIVATE KEY-----`: only an unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`) is read",
                sec1.display()
            ),
        ),
        (
            vec!["--key", s(&key), "--claims", "[1]"],
            "`--claims` must be a JSON object; found an array".into(),
        ),
        (
            vec!["--key", s(&key), "--claims", "{"],
            "`--claims` is not JSON: ".into(),
        ),
        (
            vec!["--key", s(&key), "--claims", "@/nonexistent/claims.json"],
            "cannot read `/nonexistent/claims.json`: ".into(),
        ),
        (
            vec!["--key", s(&key), "--claims", "{}", "--header", "\"x\""],
            "`--header` must be a JSON object; found a string".into(),
        ),
        (
            vec!["--key", s(&key), "--claims", "{}", "--exp", "10"],
            "`--exp 10` is not a duration (digits and a unit `s`, `m`, `h` or `d`, e.g. `10m`)"
                .into(),
        ),
        (
            vec!["--key", s(&key), "--claims", "{}", "--exp", "1w"],
            "`--exp 1w` is not a duration".into(),
        ),
        (
            vec!["--key", s(&key), "--claims", "{}", "--now", "soon"],
            "`--now soon` is not a time in whole Unix seconds (e.g. `1767225600`)".into(),
        ),
        (
            vec![
                "--key",
                s(&key),
                "--claims",
                "{}",
                "--header",
                r#"{"alg":"ES256"}"#,
            ],
            format!(
                "key `{}`: `alg` `ES256` does not fit this private key",
                key.display()
            ),
        ),
        (
            vec![
                "--key",
                s(&key),
                "--claims",
                "{}",
                "--header",
                r#"{"alg":"HS256"}"#,
            ],
            "`alg` `HS256` is not a signature algorithm mint can sign with".into(),
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["mint"];
        all.extend_from_slice(&args);
        let out = run(&all);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
        assert!(
            err.starts_with(&format!("error: {expected}")),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
