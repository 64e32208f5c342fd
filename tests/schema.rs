//! The editor schema (`jwt-policy schema`, `src/policy/schema.json`): a draft-07 JSON Schema that
//! every valid policy satisfies and that refuses what editors can catch (unknown keys, wrong
//! types, values outside a fixed set). That it lists exactly the reader's keys is held by the
//! unit tests in `src/policy/schema_sync.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SCHEMA: &str = include_str!("../src/policy/schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&schema()).unwrap()
}

/// A policy as the JSON a schema validates: what taplo and Even Better TOML validate too.
fn json(toml_text: &str) -> Value {
    let value: toml::Value = toml::from_str(toml_text).unwrap();
    serde_json::to_value(value).unwrap()
}

/// The schema's complaints about `text`, one line each (`/path: message`).
fn errors(text: &str) -> Vec<String> {
    let instance = json(text);
    validator()
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".toml") && !name.ends_with(".tests.toml")
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no policies in {dir}");
    out
}

/// A small valid policy, to which each case adds or changes one thing.
const BASE: &str = r#"
[resource]
url = "https://mcp.example.com/mcp"

[[issuers]]
iss = "https://abc123.keycard.cloud"
algorithms = ["ES256"]
jwks_file = "keys.jwks.json"

[audience]
accept = [{ value = "https://mcp.example.com/mcp" }]
"#;

#[test]
fn the_schema_is_a_draft_07_schema_with_an_id_title_and_description() {
    let schema = schema();
    jsonschema::draft7::meta::validate(&schema).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(schema["$id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(schema["title"], "jwt-policy policy");
    assert!(schema["description"].is_string());
}

#[test]
fn every_shipped_policy_is_valid_under_the_schema() {
    for path in toml_files("policies") {
        let errors = errors(&std::fs::read_to_string(&path).unwrap());
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

/// The lint fixtures are valid policies written many ways; the kitchen sink has every table.
#[test]
fn every_valid_fixture_is_valid_under_the_schema() {
    let mut paths = toml_files("tests/fixtures/policies/lint");
    paths.push(repo("tests/fixtures/schema/kitchen-sink.toml"));
    for path in paths {
        let errors = errors(&std::fs::read_to_string(&path).unwrap());
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn a_small_policy_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn an_unknown_key_is_refused_where_the_reader_refuses_it() {
    assert_eq!(
        errors(&format!("{BASE}\n[time]\nleway = \"30s\"\n")),
        ["/time: Additional properties are not allowed ('leway' was unexpected)"]
    );
    assert_eq!(
        errors(&format!("audiance = 1\n{BASE}")),
        [": Additional properties are not allowed ('audiance' was unexpected)"]
    );
    let errors = errors(&BASE.replace(
        "jwks_file = \"keys.jwks.json\"",
        "jwks_file = \"keys.jwks.json\"\nhmac_secrets = [{ env = \"S\", kid = \"1\", kind = \"x\" }]",
    ));
    assert!(
        errors.contains(
            &"/issuers/0/hmac_secrets/0: Additional properties are not allowed ('kind' was unexpected)"
                .to_owned()
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_value_outside_its_set_is_refused() {
    for (added, at) in [
        ("[time]\nexp = \"mandatory\"", "/time/exp"),
        ("[header]\nkid = \"ignored\"", "/header/kid"),
        ("[remote_keys]\nstartup = \"soon\"", "/remote_keys/startup"),
        (
            "[[routes]]\npath = \"/admin\"\nmethods = [\"get\"]",
            "/routes/0/methods/0",
        ),
        (
            "[scopes]\nclaims = [{ claim = \"scp\", format = \"list\" }]",
            "/scopes/claims/0/format",
        ),
    ] {
        let errors = errors(&format!("{BASE}\n{added}\n"));
        assert_eq!(errors.len(), 1, "{added}: {errors:#?}");
        assert!(
            errors[0].starts_with(&format!("{at}: ")),
            "{added}: {errors:#?}"
        );
    }
    let errors = errors(&BASE.replace("[\"ES256\"]", "[\"none\"]"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("/issuers/0/algorithms/0: "),
        "{errors:#?}"
    );
}

#[test]
fn wrong_types_and_missing_required_keys_are_refused() {
    assert_eq!(
        errors(&format!("{BASE}\n[cache]\nenabled = \"yes\"\n")),
        ["/cache/enabled: \"yes\" is not of type \"boolean\""]
    );
    assert_eq!(
        errors(&format!("{BASE}\n[cache]\nmax_entries = 100\n")),
        ["/cache: \"enabled\" is a required property"]
    );
    assert_eq!(
        errors(&BASE.replace("url = ", "name = ")),
        ["/resource: \"url\" is a required property"]
    );
}

/// What the reader refuses as a conflict between keys of one table, the schema refuses too.
#[test]
fn keys_that_exclude_each_other_are_refused() {
    for added in [
        "[audience]\naccept = \"any\"\nmode = \"all\"",
        "[time]\niat = \"ignored\"\nmax_age = \"1h\"",
        "[claims]\nconstraints = [{ claim = \"sub\", path = [\"sub\"], present = true }]",
        "[claims]\nconstraints = [{ claim = \"sub\" }]",
        "[claims]\nconstraints = [{ claim = \"amr\", equals = \"mfa\", format = \"array\" }]",
        "[claims]\nconstraints = [{ claim = \"act\", present = false, equals = \"x\" }]",
        "[[rules]]\nname = \"r\"\nrequire = { all = [{ claim = \"a\", present = true }], claim = \"b\" }",
        "[client_id]\nsources = [{ context = \"credential.key_id\" }]",
        "[resource_client_id]\nsources = [{ claim = \"azp\" }]",
        "[resource_client_id]\nsources = [{ context = \"a\", value = \"b\" }]",
    ] {
        let text = format!(
            "{}\n{added}\n",
            BASE.replace(
                "[audience]\naccept = [{ value = \"https://mcp.example.com/mcp\" }]",
                ""
            )
        );
        assert!(!errors(&text).is_empty(), "accepted: {added}");
    }
    for (from, to) in [
        (
            "jwks_file = \"keys.jwks.json\"",
            "jwks_file = \"keys.jwks.json\"\njwks_url = \"https://a.example/jwks\"",
        ),
        (
            "jwks_file = \"keys.jwks.json\"",
            "jwks_file = \"keys.jwks.json\"\ndiscovery = true",
        ),
        (
            "jwks_file = \"keys.jwks.json\"",
            "jwks_file = \"keys.jwks.json\"\nallow_http = true",
        ),
        (
            "jwks_file = \"keys.jwks.json\"",
            "jwks_url = \"https://a.example/jwks\"\njwks_origins = [\"https://b.example\"]",
        ),
        (
            "jwks_file = \"keys.jwks.json\"",
            "jwks_file = \"keys.jwks.json\"\nhmac_secrets = [{ env = \"A\", file = \"b\", kid = \"1\" }]",
        ),
    ] {
        assert!(
            !errors(&BASE.replace(from, to)).is_empty(),
            "accepted: {to}"
        );
    }
    // `discovery = false` is no key source: it excludes nothing.
    assert_eq!(
        errors(&BASE.replace(
            "jwks_file = \"keys.jwks.json\"",
            "jwks_file = \"keys.jwks.json\"\ndiscovery = false"
        )),
        Vec::<String>::new()
    );
}

/// The reader substitutes `${variables}` before it checks a value, so the schema lets a value
/// holding one through wherever it checks the text (a set of values, a duration, a size).
#[test]
fn a_variable_is_accepted_where_the_reader_substitutes_it() {
    let text = format!(
        "[vars]\npresence = \"required\"\nleeway = \"30s\"\nsize = \"1MiB\"\nmethod = \"GET\"\nalg = \"ES384\"\n{}\n[time]\nexp = \"${{presence}}\"\nleeway = \"${{leeway}}\"\n[cache]\nenabled = true\nmax_bytes = \"${{size}}\"\n[[routes]]\npath = \"/admin\"\nmethods = [\"${{method}}\"]\n",
        BASE.replace("[\"ES256\"]", "[\"ES256\", \"${alg}\"]")
    );
    assert_eq!(errors(&text), Vec::<String>::new());
    // And the reader reads it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("tests/fixtures/policies/keys.jwks.json"),
        dir.path().join("keys.jwks.json"),
    )
    .unwrap();
    jwt_policy::Policy::from_toml("variables.toml", text, dir.path()).unwrap();
    // A variable's own value is literal text: one that refers to another is refused by both.
    let nested = "[vars]\na = \"x\"\nb = \"${a}\"\n";
    assert!(!errors(&format!("{nested}{BASE}")).is_empty());
}

#[test]
fn the_schema_command_prints_the_schema() {
    let output = Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        printed["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
    // Verbatim: the file in the repository and the printed schema are one.
    assert_eq!(stdout, SCHEMA);
}
