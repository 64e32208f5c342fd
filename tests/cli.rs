//! The command-line contract (README.md): subcommands, flags, exit codes, JSON field names,
//! batch mode and reason codes, run against the built `jwt-policy` binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::{Value, json};
use support::command::*;
use support::*;

/// A directory holding the reference policy with these keys inline, plus extras for reasons that
/// need them: `max_age` (for `token_too_old`), a rule (for `rule_failed`) and a permission rule
/// (for `insufficient_permission`).
struct Setup {
    dir: tempfile::TempDir,
    key: TestKey,
}

impl Setup {
    fn new() -> Self {
        let key = TestKey::rsa("k1", "RS256", 0);
        let dir = tempfile::tempdir().unwrap();
        let policy = keycard_policy(&[&key])
            .replace("iat = \"optional\"", "iat = \"optional\"\nmax_age = \"1h\"")
            + "\n[[rules]]\nname = \"no-delegation\"\ndescription = \"delegated (act) tokens are not accepted\"\nrequire = { claim = \"act\", present = false }\n"
            + "\n[[rules]]\nname = \"no-trial\"\npermission = true\nrequire = { claim = \"plan\", if_present = true, equals = \"paid\" }\n";
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        std::fs::write(dir.path().join("keys.json"), jwks(&[&key])).unwrap();
        Self { dir, key }
    }

    fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `verify` with the setup's policy, `--now NOW`, a context, and `args`.
    fn verify(&self, args: &[&str]) -> Output {
        let policy = self.policy();
        let mut all = vec![
            "verify",
            "--policy",
            policy.to_str().unwrap(),
            "--now",
            "1767225600",
            "--context",
            "credential.key_id=server-key-1",
        ];
        all.extend_from_slice(args);
        run(&all)
    }

    fn token(&self, changes: Value) -> String {
        let mut claims = good_claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        self.key.sign(&claims)
    }
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn check_valid_policy_exits_0_and_says_ok() {
    let out = run(&["check", "policies/keycard-mcp.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "policies/keycard-mcp.toml: ok\n");
}

#[test]
fn check_invalid_policy_exits_2_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[resource]\nurl = \"https://x.example\"\n\n[time]\nleway = 30\n",
    )
    .unwrap();
    let out = run(&["check", path.to_str().unwrap(), "policies/keycard-mcp.toml"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    // Every problem: the typo and the missing issuer, each located, with help.
    assert!(
        err.contains("error[unknown-key]: unknown key `leway` in `[time]`"),
        "{err}"
    );
    assert!(err.contains(&format!("{}:5:1", path.display())), "{err}");
    assert!(err.contains("5 | leway = 30\n  | ^^^^^"), "{err}");
    assert!(err.contains("= help: did you mean `leeway`?"), "{err}");
    assert!(
        err.contains("error[missing-key]: the policy trusts no issuer"),
        "{err}"
    );
    // The valid policy after it is still checked.
    assert_eq!(
        stdout(&out),
        format!(
            "{}: invalid\npolicies/keycard-mcp.toml: ok\n",
            path.display()
        )
    );
}

#[test]
fn check_warnings_exit_0_and_are_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "policies/keycard-mcp.jwks.json",
        dir.path().join("keycard-mcp.jwks.json"),
    )
    .unwrap();
    let text = std::fs::read_to_string("policies/keycard-mcp.toml")
        .unwrap()
        .replace(
            "{ value = \"${zone_url}\", resource = \"${resource_url}\" }",
            "{ value = \"${zone_url}\" }",
        )
        .replace("claim = \"optional\"", "claim = \"ignored\"");
    let path = dir.path().join("deputy.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}: ok, 1 warning\n", path.display()));
    assert!(
        stderr(&out).contains("warning[unguarded-issuer-audience]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_format_json_prints_one_located_diagnostic_per_line_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[resource]\nurl = \"https://x.example\"\n\n[time]\nleway = 30\n",
    )
    .unwrap();
    let name = path.to_str().unwrap();
    let out = run(&[
        "check",
        "--format",
        "json",
        name,
        "policies/keycard-mcp.toml",
    ]);
    assert_eq!(code(&out), 2);
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines.iter().find(|d| d["code"] == "unknown-key").unwrap(),
        &serde_json::json!({
            "file": name,
            "line": 5,
            "column": 1,
            "end_line": 5,
            "end_column": 6,
            "severity": "error",
            "code": "unknown-key",
            "message": "unknown key `leway` in `[time]`",
            "help": "did you mean `leeway`?",
        })
    );
    assert!(
        lines
            .iter()
            .any(|d| d["code"] == "missing-key" && d["message"] == "the policy trusts no issuer"),
        "{lines:?}"
    );
    for d in &lines {
        assert_eq!(d["file"], name, "{d}");
        assert!(d["line"].as_u64().unwrap() >= 1 && d["column"].as_u64().unwrap() >= 1);
    }
    // The summary goes to stderr, so stdout is only diagnostics.
    assert_eq!(
        stderr(&out),
        format!("{name}: invalid\npolicies/keycard-mcp.toml: ok\n")
    );
}

#[test]
fn check_format_json_reports_warnings_of_a_valid_policy_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "policies/keycard-mcp.jwks.json",
        dir.path().join("keycard-mcp.jwks.json"),
    )
    .unwrap();
    let text = std::fs::read_to_string("policies/keycard-mcp.toml")
        .unwrap()
        .replace(
            "{ value = \"${zone_url}\", resource = \"${resource_url}\" }",
            "{ value = \"${zone_url}\" }",
        );
    let path = dir.path().join("deputy.toml");
    std::fs::write(&path, &text).unwrap();
    let out = run(&["check", "--format=json", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let d: Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["code"], "unguarded-issuer-audience");
    let line = text
        .lines()
        .position(|l| l.contains("{ value = \"${zone_url}\" }"))
        .unwrap()
        + 1;
    assert_eq!(d["line"], line, "{d}");
    assert!(d["help"].is_string(), "{d}");
}

#[test]
fn check_unreadable_policy_exits_2() {
    let out = run(&["check", "no/such/policy.toml"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read policy `no/such/policy.toml`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_allow_exits_0_with_stable_json_fields() {
    let s = Setup::new();
    let out = s.verify(&[&s.token(json!({}))]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let d = json_line(text.trim_end());
    let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    for field in [
        "verdict",
        "reason",
        "reasons",
        "issuer",
        "subject",
        "client_id",
        "client_id_source",
        "resource_client_id",
        "audience",
        "resource",
        "scopes",
        "expires_at",
        "checks",
    ] {
        assert!(keys.contains(&field), "missing `{field}` in {text}");
    }
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["reason"], Value::Null);
    assert_eq!(d["reasons"], json!([]));
    assert_eq!(d["issuer"], ZONE);
    assert_eq!(d["subject"], "user-123");
    assert_eq!(d["client_id"], "client-abc");
    assert_eq!(d["client_id_source"], "client_id");
    assert_eq!(d["resource_client_id"], "server-key-1");
    assert_eq!(d["audience"], RESOURCE);
    assert_eq!(d["scopes"], json!(["mcp:tools", "mcp:resources"]));
    assert_eq!(d["expires_at"], json!(NOW + 3600));
    for check in d["checks"].as_array().unwrap() {
        assert_eq!(check["outcome"], "passed", "{check}");
        assert!(
            check["rule"].is_string() && check["detail"].is_string(),
            "{check}"
        );
    }
}

#[test]
fn verify_deny_exits_1_and_names_expected_and_observed() {
    let s = Setup::new();
    let out =
        s.verify(&[&s.token(json!({ "aud": ZONE, "resource": "https://other.example.com/mcp" }))]);
    assert_eq!(code(&out), 1);
    let d = json_line(stdout(&out).trim_end());
    assert_eq!(d["verdict"], "deny");
    assert_eq!(d["reason"], "resource_mismatch");
    // Two checks failed with the same code; `reasons` names it once.
    assert_eq!(d["reasons"], json!(["resource_mismatch"]));
    let failed: Vec<&Value> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "failed")
        .collect();
    assert_eq!(failed[0]["rule"], "audience");
    assert_eq!(failed[0]["reason"], "resource_mismatch");
    assert!(
        failed[0]["expected"].as_str().unwrap().contains(RESOURCE),
        "{}",
        failed[0]
    );
    assert!(
        failed[0]["observed"]
            .as_str()
            .unwrap()
            .contains("https://other.example.com/mcp"),
        "{}",
        failed[0]
    );
}

#[test]
fn verify_text_format_explains_in_a_few_lines() {
    let s = Setup::new();
    let out = s.verify(&[
        "--format",
        "text",
        &s.token(json!({ "aud": ZONE, "resource": RESOURCE })),
    ]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.starts_with("ALLOW\n"), "{text}");
    assert!(
        text.contains(&format!(
            "audience: `aud` contains `{ZONE}` and `resource` names `{RESOURCE}`"
        )),
        "{text}"
    );
    assert!(text.lines().count() <= 5, "{text}");

    let out = s.verify(&["--format", "text", &s.token(json!({ "exp": NOW - 100 }))]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.starts_with("DENY: expired (invalid_token HTTP 401)\n"),
        "{text}"
    );
    assert!(text.contains("exp failed [expired]"), "{text}");
    assert!(text.contains("expected: now < exp + leeway"), "{text}");
    assert!(text.contains("observed: now = 1767225600"), "{text}");
}

#[test]
fn verify_token_file_strips_one_line_ending() {
    let s = Setup::new();
    let path = s.path("token.jwt");
    std::fs::write(&path, format!("{}\r\n", s.token(json!({})))).unwrap();
    let out = s.verify(&["--token-file", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // Anything more than one line ending is part of the token, and the token is malformed.
    std::fs::write(&path, format!("{}\n\n", s.token(json!({})))).unwrap();
    let out = s.verify(&["--token-file", path.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        json_line(stdout(&out).trim_end())["reason"],
        "malformed_token"
    );
}

/// One token per reason code with the reference policy. `keys_unavailable` needs remote keys (see
/// `unreachable_keys_fail_the_start_or_deny_with_keys_unavailable`) and `internal` a bug (covered
/// through the library, tests/scenarios.rs).
fn reason_cases(s: &Setup) -> Vec<(&'static str, String)> {
    let k = &s.key;
    let claims = good_claims;
    let with = |changes: Value| s.token(changes);
    let mut header = k.header();
    header["typ"] = json!("JWT");
    let bad_typ = k.sign_with(&header, &claims());
    let mut header = k.header();
    header["crit"] = json!(["exp-ext"]);
    header["exp-ext"] = json!(1);
    let crit = k.sign_with(&header, &claims());
    let mut header = k.header();
    header["kid"] = json!("nope");
    let unknown_kid = k.sign_with(&header, &claims());
    let ps256 = TestKey::rsa("k1", "PS256", 0).sign(&claims());
    let es_with_rsa_kid = TestKey::es256("k1").sign(&claims());
    let good = with(json!({}));
    let (input, _) = good.rsplit_once('.').unwrap();
    let (head, _) = input.split_once('.').unwrap();
    let forged_payload = b64(json!({ "iss": ZONE, "aud": RESOURCE, "sub": "admin" }).to_string());
    let tampered = format!(
        "{head}.{forged_payload}.{}",
        good.rsplit_once('.').unwrap().1
    );
    vec![
        (
            "token_too_large",
            format!("{}.{}.{}", "a".repeat(9000), "b".repeat(9000), "c"),
        ),
        ("malformed_token", "not.a.token".into()),
        (
            "untrusted_issuer",
            with(json!({ "iss": "https://evil.example" })),
        ),
        ("algorithm_not_allowed", ps256),
        ("key_not_found", unknown_kid),
        ("key_mismatch", es_with_rsa_kid),
        ("invalid_signature", tampered),
        ("invalid_type", bad_typ),
        ("unsupported_critical_header", crit),
        ("missing_claim", with(json!({ "exp": null }))),
        ("invalid_claim", with(json!({ "exp": "tomorrow" }))),
        ("expired", with(json!({ "exp": NOW - 31 }))),
        ("not_yet_valid", with(json!({ "nbf": NOW + 31 }))),
        ("issued_in_future", with(json!({ "iat": NOW + 31 }))),
        ("token_too_old", with(json!({ "iat": NOW - 3600 - 30 }))),
        (
            "audience_mismatch",
            with(json!({ "aud": "https://other.example.com/mcp" })),
        ),
        ("resource_mismatch", with(json!({ "aud": ZONE }))),
        (
            "insufficient_scope",
            with(json!({ "scope": "mcp:resources" })),
        ),
        ("missing_client_id", with(json!({ "client_id": null }))),
        ("rule_failed", with(json!({ "act": { "sub": "agent" } }))),
        ("insufficient_permission", with(json!({ "plan": "trial" }))),
    ]
}

#[test]
fn every_reason_code_through_the_cli_one_token_at_a_time() {
    let s = Setup::new();
    for (reason, token) in reason_cases(&s) {
        let out = s.verify(&[&token]);
        assert_eq!(code(&out), 1, "{reason}: {}", stderr(&out));
        let d = json_line(stdout(&out).trim_end());
        assert_eq!(d["verdict"], "deny", "{reason}");
        assert_eq!(d["reason"], reason, "{d}");
    }
}

#[test]
fn tokens_file_gives_one_decision_per_line_in_order_and_exits_0() {
    let s = Setup::new();
    let cases = reason_cases(&s);
    let good = s.token(json!({}));
    let mut text = String::new();
    text.push_str(&good);
    text.push_str("\r\n");
    for (_, token) in &cases {
        text.push_str(token);
        text.push('\n');
    }
    text.push('\n'); // an empty line is decided too
    text.push_str(&good); // the last line has no line ending
    let path = s.path("tokens.txt");
    std::fs::write(&path, &text).unwrap();
    let out = s.verify(&["--tokens-file", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out).lines().map(json_line).collect();
    assert_eq!(lines.len(), cases.len() + 3);
    assert_eq!(lines[0]["verdict"], "allow");
    for (line, (reason, _)) in lines[1..].iter().zip(&cases) {
        assert_eq!(line["reason"], *reason);
    }
    assert_eq!(lines[cases.len() + 1]["reason"], "malformed_token");
    assert_eq!(lines[cases.len() + 2]["verdict"], "allow");
}

#[test]
fn a_reader_that_stops_reading_ends_a_batch_quietly() {
    // `jwt-policy verify --tokens-file big.txt | head -1`: once the reader is gone, the batch
    // stops without a panic or an error message, as other filters do.
    let s = Setup::new();
    let line = format!("{}\n", s.token(json!({})));
    let path = s.path("tokens.txt");
    std::fs::write(&path, line.repeat(20_000)).unwrap();
    let mut child = bin()
        .args(["verify", "--policy", s.policy().to_str().unwrap()])
        .args([
            "--now",
            "1767225600",
            "--context",
            "credential.key_id=server-key-1",
        ])
        .args(["--tokens-file", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(json_line(&first)["verdict"], "allow");
    // The reader (and with it the pipe) is dropped here, long before 20,000 lines.
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn tokens_from_stdin() {
    let s = Setup::new();
    let policy = s.policy();
    let mut child = bin()
        .args([
            "verify",
            "--policy",
            policy.to_str().unwrap(),
            "--now",
            "1767225600",
        ])
        .args([
            "--context",
            "credential.key_id=server-key-1",
            "--tokens-file",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "{}\n{}\n",
        s.token(json!({})),
        s.token(json!({ "exp": NOW - 100 }))
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0);
    let reasons: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| json_line(l)["reason"].clone())
        .collect();
    assert_eq!(reasons, vec![Value::Null, json!("expired")]);
}

#[test]
fn jwks_flag_replaces_every_issuers_keys() {
    let s = Setup::new();
    let other = TestKey::ed25519("k1");
    let token = other.sign(&good_claims());
    // With the policy's own keys the token's key id names an RSA key: mismatch.
    assert_eq!(code(&s.verify(&[&token])), 1);
    let keys = s.path("other.json");
    std::fs::write(&keys, jwks(&[&other])).unwrap();
    let out = s.verify(&["--jwks", keys.to_str().unwrap(), &token]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn usage_policy_and_io_errors_exit_2() {
    let s = Setup::new();
    let token = s.token(json!({}));
    let policy = s.policy();
    let p = policy.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["verify", "--policy", p, "--now", "soon", &token],
            "--now soon",
        ),
        (
            vec![
                "verify",
                "--policy",
                p,
                "--context",
                "no-equals-sign",
                &token,
            ],
            "KEY=VALUE",
        ),
        (
            vec!["verify", "--policy", "missing.toml", &token],
            "cannot read policy",
        ),
        (
            vec!["verify", "--policy", p, "--jwks", "missing.json", &token],
            "cannot read JWKS",
        ),
        (
            vec!["verify", "--policy", p, "--token-file", "missing.jwt"],
            "cannot read",
        ),
        (
            vec!["verify", "--policy", p, "--tokens-file", "missing.txt"],
            "cannot read",
        ),
        (vec!["verify", "--policy", p], "required"),
        (
            vec!["verify", "--policy", p, "--token-file", "x", &token],
            "cannot be used with",
        ),
        (
            vec!["verify", "--policy", p, "--format", "yaml", &token],
            "invalid value",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            vec!["verify", "--policy", p, &token],
            "no resource client id",
        ),
    ];
    for (mut args, needle) in cases {
        if needle != "no resource client id" && args.first() == Some(&"verify") {
            args.extend(["--context", "credential.key_id=server-key-1"]);
        }
        let out = run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: expected `{needle}` in {}",
            stderr(&out)
        );
    }
}

#[test]
fn unstable_resource_client_id_is_refused_before_any_token_is_read() {
    let s = Setup::new();
    let policy = s.policy();
    let out = run(&[
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        "--context",
        "registration.client_id=ua:7f3a9c",
        &s.token(json!({})),
    ]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "resource client id `ua:7f3a9c` (from context `registration.client_id`) is refused"
        ),
        "{err}"
    );
    // A stable credential key id wins over the registered id.
    let out = run(&[
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        "--now",
        "1767225600",
        "--context",
        "registration.client_id=ua:7f3a9c",
        "--context",
        "credential.key_id=server-key-1",
        &s.token(json!({})),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        json_line(stdout(&out).trim_end())["resource_client_id"],
        "server-key-1"
    );
}

#[test]
fn a_missing_resource_client_id_says_which_flag_to_pass() {
    let s = Setup::new();
    let policy = s.policy();
    let out = run(&[
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        &s.token(json!({})),
    ]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.starts_with("error: no resource client id: none of context `credential.key_id`, context `registration.client_id` is set\n"),
        "{err}"
    );
    assert!(
        err.contains("help: pass `--context credential.key_id=VALUE`"),
        "{err}"
    );
}

#[test]
fn errors_are_printed_once_in_their_own_words() {
    let s = Setup::new();
    // A policy that cannot be read: its located rendering, without a second `error:` in front.
    let out = s_verify_with_policy("/no/such/policy.toml", &s.token(json!({})));
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.starts_with("error[io]: cannot read policy"), "{err}");
    assert!(!err.contains("error: error"), "{err}");
    // A JWKS file that cannot be used: named, with what is wrong in it.
    let bad = s.path("bad.jwks.json");
    std::fs::write(&bad, r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#).unwrap();
    let out = s.verify(&["--jwks", bad.to_str().unwrap(), &s.token(json!({}))]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.starts_with("error: `--jwks "), "{err}");
    assert!(
        err.contains("bad.jwks.json`: JWKS key 0: RSA modulus has 17 bits"),
        "{err}"
    );
}

fn s_verify_with_policy(policy: &str, token: &str) -> Output {
    run(&[
        "verify",
        "--policy",
        policy,
        "--context",
        "credential.key_id=server-key-1",
        token,
    ])
}

#[test]
fn readme_command_runs_on_the_shipped_demo() {
    let out = run(&[
        "verify",
        "--policy",
        "policies/keycard-mcp.toml",
        "--now",
        "1767225600",
        "--format",
        "text",
        "--context",
        "credential.key_id=mcp-server-key-1",
        "--token-file",
        "policies/demo/zone-audience.jwt",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with("ALLOW\n"));
    // The README quotes this command; keep the two in step.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains(
        "cargo run -- verify --policy policies/keycard-mcp.toml --now 1767225600 --format text --context credential.key_id=mcp-server-key-1 --token-file policies/demo/zone-audience.jwt"
    ));
}

/// A key server on its own thread and runtime (the CLI runs in another process, on real time).
fn background_server() -> std::sync::Arc<support::http::KeyServer> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = std::sync::Arc::new(support::http::KeyServer::start().await);
            tx.send(server.clone()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// The reference policy with its keys at `jwks_url` and `[remote_keys]` settings, in `dir`.
fn remote_policy(dir: &Path, jwks_url: &str, remote_keys: &str) -> PathBuf {
    let text = std::fs::read_to_string("policies/keycard-mcp.toml").unwrap();
    let text = text.replace(
        "jwks_file = \"keycard-mcp.jwks.json\"",
        &format!("jwks_url = \"{jwks_url}\""),
    );
    let path = dir.join("remote.toml");
    std::fs::write(&path, format!("{text}\n[remote_keys]\n{remote_keys}\n")).unwrap();
    path
}

#[test]
fn jwks_url_serves_a_whole_batch_from_one_fetch() {
    let server = background_server();
    let key = TestKey::es256("remote-1");
    server.set("/jwks", support::http::Reply::json(jwks(&[&key])));
    let dir = tempfile::tempdir().unwrap();
    let tokens: String = (0..5)
        .map(|i| key.sign(&claims_with(json!({ "jti": i }))) + "\n")
        .collect();
    let tokens_path = dir.path().join("tokens.txt");
    std::fs::write(&tokens_path, tokens).unwrap();
    let s = Setup::new();
    let out = s.verify(&[
        "--jwks-url",
        &server.url("/jwks"),
        "--tokens-file",
        tokens_path.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let verdicts: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| json_line(l)["verdict"].clone())
        .collect();
    assert_eq!(verdicts, vec![json!("allow"); 5]);
    assert_eq!(server.hits("/jwks"), 1, "one key store for the whole batch");
}

#[test]
fn unreachable_keys_fail_the_start_or_deny_with_keys_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/jwks");
    let dir = tempfile::tempdir().unwrap();
    let token = TestKey::es256("k").sign(&good_claims());
    let context = "credential.key_id=server-key-1";

    // Eager start-up (the default): the keys cannot be fetched, so nothing is decided.
    let eager = remote_policy(dir.path(), &url, "timeout = \"2s\"");
    let out = run(&[
        "verify",
        "--policy",
        eager.to_str().unwrap(),
        "--context",
        context,
        &token,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));

    // Lazy start-up: the token is decided, and denied because its issuer's keys are unavailable.
    let lazy = remote_policy(dir.path(), &url, "timeout = \"2s\"\nstartup = \"lazy\"");
    let out = run(&[
        "verify",
        "--policy",
        lazy.to_str().unwrap(),
        "--now",
        "1767225600",
        "--context",
        context,
        &token,
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let d = json_line(stdout(&out).trim_end());
    assert_eq!(d["reason"], "keys_unavailable", "{d}");
}

#[test]
fn jwks_url_must_be_https_unless_loopback() {
    let s = Setup::new();
    let out = s.verify(&[
        "--jwks-url",
        "http://keys.example.com/jwks",
        &s.token(json!({})),
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("keys are fetched over https"),
        "{}",
        stderr(&out)
    );
}

/// `bench` with the setup's policy and keys, `--now NOW`, a context and `args`.
fn bench(s: &Setup, args: &[&str]) -> Output {
    let policy = s.policy();
    let keys = s.path("keys.json");
    let mut all = vec![
        "bench",
        "--policy",
        policy.to_str().unwrap(),
        "--jwks",
        keys.to_str().unwrap(),
        "--now",
        "1767225600",
        "--context",
        "credential.key_id=server-key-1",
    ];
    all.extend_from_slice(args);
    run(&all)
}

/// The rows of the output's table: its cells, trimmed, after the header and separator rows.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        ["threads", "measure", "tokens/s", "CPU per token", "× floor"],
        "{text}"
    );
    assert!(
        rows[1]
            .iter()
            .all(|c| c.starts_with("--") || c.starts_with(":-") || c.ends_with("-:")),
        "{text}"
    );
    rows[2..].to_vec()
}

/// A number as the table prints it (`52,310`, `19.1 µs`, `1.31`).
fn number(cell: &str) -> f64 {
    cell.trim_end_matches(" µs")
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("`{cell}` is not a number: {e}"))
}

#[test]
fn bench_measures_decision_json_and_floor_per_thread_count() {
    let s = Setup::new();
    let tokens: Vec<String> = (0..3)
        .map(|i| s.token(json!({ "sub": format!("user-{i}") })))
        .collect();
    let path = s.path("tokens.txt");
    std::fs::write(&path, tokens.join("\n") + "\n").unwrap();
    let out = bench(
        &s,
        &[
            "--tokens-file",
            path.to_str().unwrap(),
            "--seconds",
            "1",
            "--threads",
            "2",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("3 tokens, all allowed\n"), "{text}");
    assert!(!text.contains("denied"), "{text}");
    let rows = table_rows(&text);
    let measures: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        measures,
        [
            ("1", "decision"),
            ("1", "decision, cache on"),
            ("1", "decision + to_json"),
            ("1", "signature only (floor)"),
            ("2", "decision"),
            ("2", "decision, cache on"),
            ("2", "decision + to_json"),
            ("2", "signature only (floor)"),
        ],
        "{text}"
    );
    for row in &rows {
        assert!(number(&row[2]) > 0.0, "{text}");
        assert!(row[3].ends_with(" µs") && number(&row[3]) > 0.0, "{text}");
        // A decision verifies the same signature and does more; a cache hit verifies nothing.
        if row[1] != "decision, cache on" {
            assert!(number(&row[4]) >= 1.0, "{text}");
        }
    }
    assert_eq!(rows[3][4], "1.00", "{text}");
    for threads in [&rows[0..4], &rows[4..8]] {
        assert!(number(&threads[1][3]) < number(&threads[0][3]), "{text}");
    }
    // Every token decided once to fill the cache, then only hits.
    let stats = text
        .lines()
        .find(|l| l.starts_with("decision cache: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        stats.contains(", 3 misses, 3 inserts, 0 evictions"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("2 threads vs 1, CPU per token: decision ")),
        "{text}"
    );
}

#[test]
fn bench_says_when_tokens_are_denied_and_by_what() {
    let s = Setup::new();
    let text = [
        s.token(json!({})),
        s.token(json!({ "exp": NOW - 100 })),
        s.token(json!({ "sub": "other" })),
        "not-a-token".to_owned(),
    ]
    .join("\n");
    let path = s.path("tokens.txt");
    std::fs::write(&path, text).unwrap();
    let out = bench(
        &s,
        &["--tokens-file", path.to_str().unwrap(), "--seconds", "1"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("4 tokens: 2 allowed, 2 denied (expired 1, malformed_token 1)\n"),
        "{text}"
    );
    assert!(
        text.contains("note: denied tokens are measured too"),
        "{text}"
    );
    // The floor has no signature to check for line 4.
    assert!(
        text.contains("note: the floor covers 3 of 4 tokens (line 4: "),
        "{text}"
    );
    let measures: Vec<String> = table_rows(&text).iter().map(|r| r[1].clone()).collect();
    assert_eq!(
        measures,
        [
            "decision",
            "decision, cache on",
            "decision + to_json",
            "signature only (floor)"
        ]
    );
}

#[test]
fn bench_refuses_bad_arguments_with_exit_2() {
    let s = Setup::new();
    let path = s.path("tokens.txt");
    std::fs::write(&path, s.token(json!({}))).unwrap();
    let empty = s.path("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let file = path.to_str().unwrap();
    for (args, message) in [
        (vec!["--tokens-file", file, "--threads", "0"], "--threads"),
        (
            vec!["--tokens-file", file, "--seconds", "0"],
            "`--seconds 0` is not a positive number of seconds",
        ),
        (
            vec!["--tokens-file", file, "--seconds", "soon"],
            "`--seconds soon` is not a positive number of seconds",
        ),
        (
            vec!["--tokens-file", empty.to_str().unwrap()],
            "has no tokens",
        ),
        (
            vec!["--tokens-file", "/nonexistent/tokens.txt"],
            "cannot read `/nonexistent/tokens.txt`: file not found",
        ),
    ] {
        let out = bench(&s, &args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn bench_without_keys_for_the_floor_measures_the_decision_and_says_why() {
    // The setup's policy has its keys inline: the floor reads keys apart from the engine, from
    // `--jwks` or the JWK set files the policy names.
    let s = Setup::new();
    let path = s.path("tokens.txt");
    std::fs::write(&path, s.token(json!({})) + "\n").unwrap();
    let policy = s.policy();
    let out = run(&[
        "bench",
        "--policy",
        policy.to_str().unwrap(),
        "--now",
        "1767225600",
        "--context",
        "credential.key_id=server-key-1",
        "--tokens-file",
        path.to_str().unwrap(),
        "--seconds",
        "0.5",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "note: no signature-only floor: line 1: no key with `kid` `k1` in `--jwks` or a JWK set file the policy names\n  help: "
        ),
        "{text}"
    );
    let rows = table_rows(&text);
    let cells: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[1].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(
        cells,
        [
            ("decision", "n/a"),
            ("decision, cache on", "n/a"),
            ("decision + to_json", "n/a")
        ],
        "{text}"
    );
}
