//! `jwt-policy test`: the cases beside each policy, run with test keys; and the shipped policies'
//! own cases, which make every check of every shipped policy fail at least once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;

use support::command::*;

/// A copy of the reference policy (and its key set) in `dir`, with `cases` as its tests file.
fn with_cases(dir: &Path, extra_policy: &str, cases: &str) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::copy(
        shipped.join("keycard-mcp.jwks.json"),
        dir.join("keycard-mcp.jwks.json"),
    )
    .unwrap();
    let policy = std::fs::read_to_string(shipped.join("keycard-mcp.toml")).unwrap() + extra_policy;
    let path = dir.join("p.toml");
    std::fs::write(&path, policy).unwrap();
    std::fs::write(dir.join("p.tests.toml"), cases).unwrap();
    path.to_str().unwrap().to_owned()
}

const BASE: &str = r#"
[base]
now = 1767225600
context = { "credential.key_id" = "k1" }
claims = { aud = "https://mcp.example.com/mcp", scope = "mcp:tools", client_id = "c1", sub = "u1" }
"#;

#[test]
fn every_shipped_policy_has_cases_that_pass_and_make_every_check_fail() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut policies = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".toml") && !name.ends_with(".tests.toml") {
            policies += 1;
            assert!(
                path.with_extension("tests.toml").is_file(),
                "{name} has no tests file"
            );
        }
    }
    let out = run(&["test", dir.to_str().unwrap()]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert_eq!(
        report.matches(" passed, 0 failed\n").count(),
        policies,
        "{report}"
    );
    assert!(!report.contains("coverage:"), "{report}");
}

#[test]
fn a_failing_case_shows_expected_observed_and_the_explanation_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases = format!(
        "{BASE}
[[cases]]
name = \"allowed\"
expect = {{ verdict = \"allow\", client_id = \"c1\", scopes = [\"mcp:tools\"] }}

[[cases]]
name = \"wrongly expected to expire\"
expect = {{ reason = \"expired\", status = 401, client_id = \"c2\" }}
"
    );
    let policy = with_cases(dir.path(), "", &cases);
    let out = run(&["test", &policy]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}{}", stderr(&out));
    for line in [
        "p.toml: 2 cases\n",
        "  ok    allowed\n",
        "  FAIL  wrongly expected to expire\n",
        "        reason: expected `expired`, observed `none`\n",
        "        client_id: expected `c2`, observed `c1`\n",
        "        status: expected 401, observed 200\n",
        "        | ALLOW\n",
        ": 1 passed, 1 failed\n",
    ] {
        assert!(report.contains(line), "{line:?} in\n{report}");
    }
}

#[test]
fn checks_guarded_audiences_and_routes_no_case_covers_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let routes = "\n[[routes]]\npath = \"/admin\"\nscopes = [\"mcp:admin\"]\n";
    let cases =
        format!("{BASE}\n[[cases]]\nname = \"allowed\"\nexpect = {{ verdict = \"allow\" }}\n");
    let policy = with_cases(dir.path(), routes, &cases);
    let out = run(&["test", &policy]);
    let report = stdout(&out);
    // Coverage is reported, not failed.
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert!(
        report.contains("  coverage: no case makes these checks fail: `size`, "),
        "{report}"
    );
    assert!(
        report.contains("  coverage: no allowed case matches audience `https://abc123.keycard.cloud` (with `resource` `https://mcp.example.com/mcp`)"),
        "{report}"
    );
    assert!(
        report.contains("  coverage: no case presents audience `https://abc123.keycard.cloud` (with `resource` `https://mcp.example.com/mcp`) and fails the audience check"),
        "{report}"
    );
    assert!(
        report.contains("  coverage: no case's request falls under route `/admin`"),
        "{report}"
    );
}

#[test]
fn a_route_case_gets_the_route_requirements() {
    let dir = tempfile::tempdir().unwrap();
    let routes = "\n[[routes]]\npath = \"/admin\"\nscopes = [\"mcp:admin\"]\n";
    let cases = format!(
        "{BASE}
[[cases]]
name = \"admin needs mcp:admin: 403\"
request = {{ method = \"POST\", path = \"/admin/users?x=1\" }}
expect = {{ reason = \"insufficient_scope\", status = 403 }}

[[cases]]
name = \"with it, allowed\"
request = {{ method = \"POST\", path = \"/admin/users\" }}
claims = {{ scope = \"mcp:tools mcp:admin\" }}
expect = {{ verdict = \"allow\" }}
"
    );
    let policy = with_cases(dir.path(), routes, &cases);
    let out = run(&["test", &policy]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert!(!report.contains("falls under route"), "{report}");
}

#[test]
fn a_tests_file_with_a_mistake_is_an_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let cases = format!("{BASE}\n[[cases]]\nname = \"x\"\nexpekt = {{ verdict = \"allow\" }}\n");
    let policy = with_cases(dir.path(), "", &cases);
    let out = run(&["test", &policy]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let tests_file = dir.path().join("p.tests.toml");
    assert!(
        err.contains(&format!(
            "error: {}:9:1: unknown field `expekt`",
            tests_file.display()
        )),
        "{err}"
    );
    // A verdict that is neither `allow` nor `deny`.
    let cases = format!("{BASE}\n[[cases]]\nname = \"x\"\nexpect = {{ verdict = \"alow\" }}\n");
    std::fs::write(&tests_file, cases).unwrap();
    let out = run(&["test", &policy]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(":9:") && stderr(&out).contains("unknown variant `alow`"),
        "{}",
        stderr(&out)
    );
    // A directory with no policy that has cases: an error, not a silent pass.
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["test", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has cases"), "{}", stderr(&out));
    // A policy without its tests file, named on the command line: an error too.
    std::fs::remove_file(&tests_file).unwrap();
    let out = run(&["test", &policy]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the tests of"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_relative_time_that_is_not_a_duration_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = format!(
        "{BASE}\n[[cases]]\nname = \"x\"\nclaims = {{ exp = {{ from_now = \"soon\" }} }}\nexpect = {{ verdict = \"allow\" }}\n"
    );
    let policy = with_cases(dir.path(), "", &cases);
    let out = run(&["test", &policy]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("case `x`")
            && stderr(&out).contains("claim `exp`: `soon` is not a duration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_writes_each_preset_with_its_cases_which_check_and_pass() {
    let dir = tempfile::tempdir().unwrap();
    for preset in ["keycard", "auth0", "entra", "okta", "rfc9068"] {
        let policy = dir.path().join(format!("{preset}.toml"));
        let policy = policy.to_str().unwrap();
        let out = run(&["init", "--preset", preset, "--out", policy]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains(&format!("jwt-policy test {policy}")));
        let text = std::fs::read_to_string(policy).unwrap();
        // The keys come from the server, not from a demo set beside the shipped policy.
        assert!(!text.contains("jwks_file"), "{preset}:\n{text}");
        assert!(
            text.contains("jwks_url = ") || text.contains("discovery = true"),
            "{preset}"
        );
        let out = run(&["check", policy]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{policy}: ok\n"));
        let out = run(&["test", policy]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(
            stdout(&out).contains(" passed, 0 failed\n"),
            "{}",
            stdout(&out)
        );
    }
    // Never over an existing file: with only the tests file there, the policy is not written
    // either.
    std::fs::write(dir.path().join("new.tests.toml"), "mine").unwrap();
    let new = dir.path().join("new.toml");
    let out = run(&["init", "--preset", "auth0", "--out", new.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("new.tests.toml` already exists: nothing written"),
        "{}",
        stderr(&out)
    );
    assert!(!new.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.tests.toml")).unwrap(),
        "mine"
    );
}
