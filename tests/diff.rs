//! `jwt-policy diff OLD NEW`: what NEW accepts that OLD refused, by concern, with example tokens
//! that are checked here by signing them and deciding with both policies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use jwt_policy::{KeySet, Policy, PolicyEngine, StaticKeys, UnixTime};
use serde_json::Value;
use support::command::*;
use support::*;

/// Routes added to the reference policy.
const ROUTES: &str = r#"
[[routes]]
path = "/admin"
scopes = ["mcp:admin"]

[[routes]]
path = "/admin"
methods = ["DELETE"]
scopes = ["mcp:admin", "mcp:delete"]
"#;

fn key() -> TestKey {
    TestKey::rsa("key-1", "RS256", 0)
}

/// Writes `text` as `name` in `dir`; its path.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn diff(old: &str, new: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
        .args(["diff", old, new])
        .output()
        .unwrap()
}

/// An example of the report: the request, header, claims and time.
type Example = (Option<(String, String)>, Value, Value, i64);

/// Each example of the report.
fn witnesses(report: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut request = None;
    let mut header = None;
    let mut claims = None;
    for line in report.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix("request: ") {
            let (m, p) = r.split_once(' ').unwrap();
            request = Some((m.to_owned(), p.to_owned()));
        } else if let Some(h) = line.strip_prefix("header: ") {
            header = Some(serde_json::from_str(h.trim()).unwrap());
        } else if let Some(c) = line.strip_prefix("claims: ") {
            claims = Some(serde_json::from_str(c.trim()).unwrap());
        } else if let Some(at) = line.strip_prefix("at: ") {
            found.push((
                request.take(),
                header.take().unwrap(),
                claims.take().unwrap(),
                at.trim().parse().unwrap(),
            ));
        }
    }
    found
}

/// The engine of the policy at `path`, every issuer's keys being [`key`].
fn engine(path: &str) -> PolicyEngine {
    let keys = KeySet::from_jwks(jwks(&[&key()]).as_bytes()).unwrap();
    PolicyEngine::builder(Policy::from_file(path).unwrap_or_else(|e| panic!("{e}")))
        .context("credential.key_id", "stable-1")
        .key_source_for_all(Arc::new(StaticKeys::new(keys)))
        .build()
        .unwrap()
}

/// Every example of the report is a token NEW allows and OLD refuses.
fn assert_witnesses_hold(report: &str, old: &str, new: &str) -> usize {
    let (old, new) = (engine(old), engine(new));
    let found = witnesses(report);
    for (request, header, claims, at) in &found {
        let token = key().sign_with(header, claims);
        let decide = |engine: &PolicyEngine| {
            let requirement = match request {
                Some((m, p)) => engine.policy().requirement_for(m, p).unwrap(),
                None => jwt_policy::Requirement::new(),
            };
            engine.evaluate_at_with(&token, UnixTime::from_secs(*at), &requirement)
        };
        let (before, after) = (decide(&old), decide(&new));
        assert!(
            after.is_allowed(),
            "NEW refuses {claims}:\n{}",
            after.explain()
        );
        assert!(!before.is_allowed(), "OLD allows {claims}");
    }
    found.len()
}

#[test]
fn a_looser_policy_is_reported_by_concern_with_examples_that_hold_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let base = keycard_policy(&[&key()]) + ROUTES;
    let old = write(dir.path(), "old.toml", &base);
    let loose = replace(
        &base,
        "{ value = \"${zone_url}\", resource = \"${resource_url}\" }",
        "{ value = \"${zone_url}\" }",
    );
    let loose = replace(&loose, "leeway = \"30s\"", "leeway = \"2m\"");
    let loose = replace(&loose, "required = [\"mcp:tools\"]", "required = []");
    let loose = replace(
        &loose,
        "methods = [\"DELETE\"]\nscopes = [\"mcp:admin\", \"mcp:delete\"]",
        "methods = [\"DELETE\"]\nscopes = [\"mcp:admin\"]",
    );
    let new = write(dir.path(), "new.toml", &loose);
    let out = diff(&old, &new);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for line in [
        "audience\n  + accepts: audience `https://abc123.keycard.cloud` is accepted without `resource` naming `https://mcp.example.com/mcp`",
        "time\n  + accepts: leeway is 120 s (was 30 s)",
        "scopes\n  + accepts: scope `mcp:tools` is no longer required",
        "  + accepts: DELETE /admin no longer needs scope `mcp:delete`",
        "NEW accepts tokens OLD refused: 4 changes accept more, 0 may; 0 refuse more",
    ] {
        assert!(report.contains(line), "{line:?} in\n{report}");
    }
    assert_eq!(assert_witnesses_hold(&report, &old, &new), 4, "{report}");

    // The reverse: only tighter.
    let out = diff(&new, &old);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    for line in [
        "  - refuses: audience `https://abc123.keycard.cloud` is refused unless `resource` names `https://mcp.example.com/mcp`",
        "  - refuses: leeway is 30 s (was 120 s)",
        "  - refuses: scope `mcp:tools` is required",
        "  - refuses: DELETE /admin needs scope `mcp:delete`",
        "NEW accepts nothing OLD refused (4 changes refuse more)",
    ] {
        assert!(report.contains(line), "{line:?} in\n{report}");
    }
    assert!(
        !report.contains("+ accepts") && !report.contains("? may"),
        "{report}"
    );
}

#[test]
fn the_same_policy_accepts_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let text = keycard_policy(&[&key()]) + ROUTES;
    let old = write(dir.path(), "old.toml", &text);
    let new = write(dir.path(), "new.toml", &format!("{text}\n# reworded\n"));
    let out = diff(&old, &new);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).ends_with("\nNEW accepts nothing OLD refused (0 changes refuse more)\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn issuers_algorithms_and_header_rules_that_loosen_have_examples_that_hold() {
    let dir = tempfile::tempdir().unwrap();
    let base = keycard_policy(&[&key()]);
    let old = write(dir.path(), "old.toml", &base);
    let other = format!(
        "{}\n[[issuers]]\niss = \"https://other.example\"\nalgorithms = [\"RS256\"]\njwks = '''{}'''\n",
        base,
        jwks(&[&key()])
    );
    let loose = replace(&other, "kid = \"required\"", "kid = \"optional\"");
    let new = write(dir.path(), "new.toml", &loose);
    let out = diff(&old, &new);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(
            "  + accepts: tokens from `https://other.example` are accepted (OLD does not trust it)"
        ),
        "{report}"
    );
    assert!(
        report.contains("  + accepts: `kid` is optional (was required)"),
        "{report}"
    );
    assert_eq!(assert_witnesses_hold(&report, &old, &new), 2, "{report}");
}

#[test]
fn a_changed_pattern_or_rule_may_loosen_and_is_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let base = keycard_policy(&[&key()])
        + "\n[claims]\nconstraints = [{ claim = \"tid\", regex = \"^t-[0-9]+$\", if_present = true }]\n";
    let old = write(dir.path(), "old.toml", &base);
    let new = write(
        dir.path(),
        "new.toml",
        &replace(&base, "^t-[0-9]+$", "^t-[0-9a-z]+$"),
    );
    let out = diff(&old, &new);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("claims\n  ? may accept: the constraint on `tid`"),
        "{report}"
    );
    assert!(
        report.contains(
            "NEW accepts tokens OLD refused: 0 changes accept more, 1 may; 0 refuse more"
        ),
        "{report}"
    );
}

#[test]
fn an_invalid_policy_exits_2_with_its_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &keycard_policy(&[&key()]));
    let new = write(dir.path(), "new.toml", "[time]\nleway = 30\n");
    let out = diff(&old, &new);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown key `leway`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).is_empty());
}
