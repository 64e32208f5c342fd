//! Every policy diagnostic, pinned: one fixture policy per diagnostic kind under
//! `tests/fixtures/policies/` (`invalid/` for errors, `lint/` for warnings), its full rendering
//! snapshotted under `tests/snapshots/`, plus hostile inputs that must be refused without a panic.
//!
//! A fixture's file name starts with the `code()` of the kind it must produce:
//! `invalid/unknown-key-did-you-mean.toml` must be refused with an `unknown-key` error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jwt_policy::policy::{DiagnosticKind, SourceFile};
use jwt_policy::{Diagnostic, Policy, PolicyError, Severity};

mod support;

/// Every kind a policy can report (`DiagnosticKind` is non-exhaustive; keep this list in step).
const ALL_KINDS: [DiagnosticKind; DiagnosticKind::ALL.len()] = DiagnosticKind::ALL;

/// The fixture without a single kind in its name: several different problems at once.
const MANY_ERRORS: &str = "many-errors";

const FIXTURES: &str = "tests/fixtures/policies";

/// `path` relative to the crate root, which is where cargo runs integration tests. Policies are
/// loaded by this relative path, so file names in renderings (the policy's own, and a JWKS file
/// resolved next to it) never depend on where the repository is checked out.
fn relative(path: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    assert!(
        rel.is_relative() && rel.exists(),
        "tests must run from the crate root: {}",
        rel.display()
    );
    rel
}

/// The kind whose code names the fixture: the longest code that is the file stem, or the stem's
/// prefix followed by `-`.
fn kind_named_by(path: &Path) -> Option<DiagnosticKind> {
    let stem = path.file_stem()?.to_str()?;
    ALL_KINDS
        .iter()
        .copied()
        .filter(|k| {
            let code = k.code();
            stem == code
                || stem
                    .strip_prefix(code)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|k| k.code().len())
}

/// The fixtures in `dir` (`invalid` or `lint`), sorted.
fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {dir}");
    out
}

/// The fixture's first comment line, shown as the snapshot's description.
fn description(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or("")
        .to_owned()
}

fn load_invalid(path: &Path) -> PolicyError {
    match Policy::from_file(path) {
        Ok(policy) => panic!(
            "{} must be refused, but loaded with warnings:\n{}",
            path.display(),
            render_warnings(&policy)
        ),
        Err(e) => e,
    }
}

fn load_valid(path: &Path) -> Policy {
    Policy::from_file(path).unwrap_or_else(|e| panic!("{} must load, but:\n{e}", path.display()))
}

fn render_warnings(policy: &Policy) -> String {
    policy
        .warnings()
        .iter()
        .map(|w| policy.source().render(w))
        .collect::<Vec<_>>()
        .join("\n")
}

fn codes<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> Vec<&'static str> {
    diagnostics.into_iter().map(|d| d.kind.code()).collect()
}

/// Whole-file diagnostics (no span) come first, then located ones by position.
fn in_file_order(diagnostics: &[Diagnostic]) -> bool {
    let at = |d: &Diagnostic| d.span.as_ref().map_or((0, 0), |s| (s.start, s.end));
    diagnostics.windows(2).all(|w| at(&w[0]) <= at(&w[1]))
}

/// Checks every rendering has a location, the source line, a caret line, and (if any) a help
/// line, in that order.
fn assert_located(source: &SourceFile, d: &Diagnostic) {
    let text = source.render(d);
    let lines: Vec<&str> = text.lines().collect();
    let Some(span) = &d.span else {
        // About the whole policy: a location, then straight to the help line.
        assert!(
            lines[1].ends_with(&format!("--> {}:1:1", source.name())),
            "{text}"
        );
        assert!(
            lines.len() == 2 || lines[2].starts_with(" = help: "),
            "{text}"
        );
        return;
    };
    let (line, col) = source.line_col(span.start);
    assert!(
        lines[0].starts_with(match d.severity {
            Severity::Error => "error[",
            Severity::Warning => "warning[",
        }),
        "{text}"
    );
    assert!(
        lines[1].ends_with(&format!("--> {}:{line}:{col}", source.name())),
        "{text}"
    );
    assert!(lines[3].starts_with(&format!("{line} | ")), "{text}");
    assert!(lines[4].trim_start().starts_with("| "), "{text}");
    assert!(lines[4].trim_end().ends_with('^'), "{text}");
    assert_eq!(lines.len(), 5 + usize::from(d.help.is_some()), "{text}");
    if d.help.is_some() {
        assert!(lines[5].trim_start().starts_with("= help: "), "{text}");
    }
}

#[test]
fn invalid_policies() {
    insta::glob!("fixtures/policies/invalid/*.toml", |path| {
        let rel = relative(path);
        let error = load_invalid(&rel);
        let stem = rel.file_stem().unwrap().to_str().unwrap();
        let errors: Vec<&Diagnostic> = error.errors().collect();
        assert!(
            !errors.is_empty(),
            "{}: an Err without errors",
            rel.display()
        );
        if stem == MANY_ERRORS {
            let kinds: BTreeSet<&str> = codes(errors.iter().copied()).into_iter().collect();
            assert!(
                errors.len() >= 5 && kinds.len() >= 5,
                "{stem}: expected at least 5 errors of 5 kinds, got {:?}",
                codes(errors.iter().copied())
            );
        } else {
            let kind = kind_named_by(&rel)
                .unwrap_or_else(|| panic!("{}: name starts with no kind code", rel.display()));
            assert!(
                errors.iter().any(|d| d.kind == kind),
                "{}: expected a `{}` error, got {:?}",
                rel.display(),
                kind.code(),
                codes(errors.iter().copied())
            );
        }
        assert!(in_file_order(error.diagnostics()), "{}", rel.display());
        for d in error.diagnostics() {
            assert_located(error.source(), d);
        }
        insta::with_settings!({
            description => description(&rel),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(error.to_string());
        });
    });
}

#[test]
fn lint_policies() {
    insta::glob!("fixtures/policies/lint/*.toml", |path| {
        let rel = relative(path);
        let policy = load_valid(&rel);
        let kind = kind_named_by(&rel)
            .unwrap_or_else(|| panic!("{}: name starts with no kind code", rel.display()));
        let warnings = policy.warnings();
        assert!(
            warnings.iter().all(|w| w.severity == Severity::Warning),
            "{}",
            rel.display()
        );
        assert!(
            warnings.iter().any(|w| w.kind == kind),
            "{}: expected a `{}` warning, got {:?}",
            rel.display(),
            kind.code(),
            codes(warnings)
        );
        assert!(in_file_order(warnings), "{}", rel.display());
        for w in warnings {
            assert_located(policy.source(), w);
        }
        insta::with_settings!({
            description => description(&rel),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(render_warnings(&policy));
        });
    });
}

/// Each kind has a fixture named after it (which `invalid_policies` / `lint_policies` check
/// produces it), and every kind a fixture produces is one this file knows.
#[test]
fn every_diagnostic_kind_has_a_fixture() {
    let mut named = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for path in fixtures("invalid") {
        named.extend(kind_named_by(&path).map(DiagnosticKind::code));
        for d in load_invalid(&path).diagnostics() {
            seen.insert(d.kind.code());
        }
    }
    for path in fixtures("lint") {
        named.extend(kind_named_by(&path).map(DiagnosticKind::code));
        for w in load_valid(&path).warnings() {
            seen.insert(w.kind.code());
        }
    }
    let known: BTreeSet<&str> = ALL_KINDS.iter().map(|k| k.code()).collect();
    assert!(
        seen.is_subset(&known),
        "unknown kinds: {:?}",
        seen.difference(&known)
    );
    let missing: Vec<&str> = ALL_KINDS
        .iter()
        .map(|k| k.code())
        .filter(|c| !named.contains(c))
        .collect();
    assert!(missing.is_empty(), "no fixture is named after {missing:?}");
}

#[test]
fn every_fixture_is_named_after_a_kind_of_its_severity() {
    for path in fixtures("invalid") {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if stem == MANY_ERRORS {
            continue;
        }
        let kind = kind_named_by(&path).unwrap_or_else(|| panic!("{}", path.display()));
        assert!(!is_lint(kind), "{}: lints belong in lint/", path.display());
    }
    for path in fixtures("lint") {
        let kind = kind_named_by(&path).unwrap_or_else(|| panic!("{}", path.display()));
        assert!(
            is_lint(kind),
            "{}: errors belong in invalid/",
            path.display()
        );
    }
}

fn is_lint(kind: DiagnosticKind) -> bool {
    kind.is_lint()
}

/// The style guide (STYLE.md, "Errors people can act on"): lowercase, one line, no final period;
/// help lines one line too.
#[test]
fn messages_are_one_lowercase_line_without_a_final_period() {
    let mut bad = Vec::new();
    let mut check = |path: &Path, d: &Diagnostic| {
        let m = &d.message;
        // An acronym (`JWKS`, `HMAC`) may open a message; a capitalised word may not.
        let first_word = m.split(' ').next().unwrap_or("");
        let starts_upper = first_word.chars().next().is_some_and(char::is_uppercase)
            && !first_word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if m.is_empty() || m.contains('\n') || m.ends_with('.') || starts_upper {
            bad.push(format!("{}: message {m:?}", path.display()));
        }
        if let Some(h) = &d.help
            && (h.contains('\n') || h.is_empty())
        {
            bad.push(format!("{}: help {h:?}", path.display()));
        }
    };
    for path in fixtures("invalid") {
        for d in load_invalid(&path).diagnostics() {
            check(&path, d);
        }
    }
    for path in fixtures("lint") {
        for w in load_valid(&path).warnings() {
            check(&path, w);
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Hand-checked: `algoritms` is on line 11, column 1 of its fixture.
#[test]
fn rendering_points_at_the_hand_checked_line_and_column() {
    let path = Path::new(FIXTURES).join("invalid/unknown-key-did-you-mean.toml");
    let err = load_invalid(&path);
    let unknown = err
        .diagnostics()
        .iter()
        .find(|d| d.kind == DiagnosticKind::UnknownKey)
        .unwrap();
    assert_eq!(
        err.source().line_col(unknown.span.clone().unwrap().start),
        (11, 1)
    );
    let expected = format!(
        "error[unknown-key]: unknown key `algoritms` in `issuers[0]`\n  \
         --> {}:11:1\n   |\n11 | algoritms = [\"ES256\"]\n   | ^^^^^^^^^\n   \
         = help: did you mean `algorithms`?\n",
        path.display()
    );
    assert_eq!(err.source().render(unknown), expected);
    let all = err.to_string();
    assert!(all.contains(&expected), "{all}");
    let count = err.errors().count();
    let last = all.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "error: policy `{}` is invalid: {count} error{}",
            path.display(),
            if count == 1 { "" } else { "s" }
        )
    );
}

#[test]
fn column_counts_characters_and_carets_cover_the_span() {
    // `é` is two bytes but one column: `resorce` starts at byte 42, column 42 of line 4.
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[audience]\naccept = [{ value = \"https://é.example\", resorce = \"x\" }]\n";
    let err = Policy::from_toml("p.toml", text, ".").unwrap_err();
    let unknown = err
        .diagnostics()
        .iter()
        .find(|d| d.kind == DiagnosticKind::UnknownKey)
        .unwrap();
    let rendered = err.source().render(unknown);
    assert!(rendered.contains("--> p.toml:4:42\n"), "{rendered}");
    assert!(
        rendered.contains(&format!("  | {}^^^^^^^\n", " ".repeat(41))),
        "{rendered}"
    );
    assert!(
        rendered.contains("= help: did you mean `resource`?"),
        "{rendered}"
    );

    let text = "[vars]\nname = \"é\"\n[resource]\nurl = \"https://mcp.example.com/mcp\"\n[time]\n  leway = 1\n";
    let err = Policy::from_toml("p.toml", text, ".").unwrap_err();
    let unknown = err
        .diagnostics()
        .iter()
        .find(|d| d.kind == DiagnosticKind::UnknownKey)
        .unwrap();
    let rendered = err.source().render(unknown);
    assert!(rendered.contains("--> p.toml:6:3\n"), "{rendered}");
    assert!(
        rendered.contains("6 |   leway = 1\n  |   ^^^^^\n"),
        "{rendered}"
    );
}

#[test]
fn crlf_line_endings_do_not_leak_into_renderings() {
    let text = "[resource]\r\nurl = \"https://mcp.example.com/mcp\"\r\n[time]\r\nleway = 1\r\n";
    let err = Policy::from_toml("crlf.toml", text, ".").unwrap_err();
    let out = err.to_string();
    assert!(!out.contains('\r'), "{out:?}");
    assert!(out.contains("--> crlf.toml:4:1\n"), "{out}");
    assert!(out.contains("4 | leway = 1\n"), "{out}");
}

#[test]
fn shipped_policies_load_without_errors() {
    let mut count = 0;
    for entry in std::fs::read_dir("policies").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        // The cases beside each policy (`jwt-policy test`) are not policies.
        if !name.ends_with(".toml") || name.ends_with(".tests.toml") {
            continue;
        }
        count += 1;
        let policy = load_valid(&path);
        assert!(
            policy
                .warnings()
                .iter()
                .all(|w| w.severity == Severity::Warning),
            "{}",
            path.display()
        );
    }
    assert!(count >= 1, "no shipped policy found");
}

#[test]
fn the_reference_policy_is_lint_clean() {
    let policy = load_valid(Path::new("policies/keycard-mcp.toml"));
    assert!(policy.warnings().is_empty(), "{}", render_warnings(&policy));
}

#[test]
fn an_empty_file_is_missing_its_resource_and_issuers() {
    let err = Policy::from_toml("empty.toml", "", ".").unwrap_err();
    assert_eq!(codes(err.errors()), ["missing-key", "missing-key"]);
    let out = err.to_string();
    assert!(out.contains("--> empty.toml:1:1\n"), "{out}");
    assert!(out.ends_with("is invalid: 2 errors"), "{out}");
}

#[test]
fn a_missing_policy_file_is_an_io_error() {
    let err = Policy::from_file("tests/fixtures/policies/no-such-policy.toml").unwrap_err();
    assert_eq!(codes(err.errors()), ["io"]);
    assert!(
        err.to_string()
            .contains("cannot read policy `tests/fixtures/policies/no-such-policy.toml`"),
        "{err}"
    );
}

#[test]
fn binary_garbage_is_refused_without_a_panic() {
    // Every byte value, twice, and a NUL-heavy prefix: read lossily, as a caller with bytes would.
    let mut bytes: Vec<u8> = vec![0; 64];
    bytes.extend((0..=255u8).chain((0..=255u8).rev()));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let err = Policy::from_toml("garbage.toml", text, ".").unwrap_err();
    assert!(err.errors().count() >= 1);
    assert!(err.errors().all(|d| d.kind == DiagnosticKind::Syntax));
    for d in err.diagnostics() {
        assert_located(err.source(), d);
    }
    // The same bytes from a file: not UTF-8, so the file cannot be read as a policy.
    let path = Path::new(FIXTURES).join("invalid/io-not-utf8.toml");
    let err = load_invalid(&path);
    assert_eq!(codes(err.errors()), ["io"]);
}

#[test]
fn a_megabyte_of_open_brackets_is_a_syntax_error() {
    let text = "[".repeat(1 << 20);
    let err = std::thread::spawn(move || {
        Policy::from_toml("brackets.toml", text, ".")
            .map(|_| ())
            .map_err(|e| (codes(e.errors()), e.to_string().len()))
    })
    .join()
    .expect("parsing must not panic or overflow the stack");
    let (kinds, rendered_len) = err.unwrap_err();
    assert!(!kinds.is_empty());
    assert!(kinds.iter().all(|k| *k == "syntax"), "{kinds:?}");
    // The source line is a megabyte long; the rendering may quote it, but only once per error.
    assert!(rendered_len <= kinds.len() * (2 << 20) + 4096);
}

#[test]
fn deeply_nested_inline_tables_and_arrays_are_refused_without_a_panic() {
    for depth in [100, 10_000, 100_000] {
        let tables = format!(
            "[resource]\nurl = \"https://mcp.example.com/mcp\"\nx = {}1{}\n",
            "{ a = ".repeat(depth),
            " }".repeat(depth)
        );
        let arrays = format!(
            "[resource]\nurl = \"https://mcp.example.com/mcp\"\nx = {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let conditions = format!(
            "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[[rules]]\nname = \"r\"\nrequire = {}{{ claim = \"sub\", present = true }}{}\n",
            "{ not = ".repeat(depth),
            " }".repeat(depth)
        );
        for (what, text) in [
            ("tables", tables),
            ("arrays", arrays),
            ("conditions", conditions),
        ] {
            let result = std::thread::spawn(move || {
                Policy::from_toml("deep.toml", text, ".")
                    .map(|_| ())
                    .map_err(|e| codes(e.errors()))
            })
            .join()
            .unwrap_or_else(|_| panic!("{what} nested {depth} deep: panicked"));
            let kinds = result.expect_err("a policy with no issuer is invalid");
            assert!(!kinds.is_empty(), "{what} nested {depth} deep");
        }
    }
}

#[test]
fn version_two_is_refused_at_its_value() {
    let text = "version = 2\n[resource]\nurl = \"https://mcp.example.com/mcp\"\n";
    let err = Policy::from_toml("v2.toml", text, ".").unwrap_err();
    let version = err
        .errors()
        .find(|d| d.kind == DiagnosticKind::InvalidValue)
        .expect("an invalid-value error for the version");
    assert_eq!(version.span, Some(10..11));
    let out = err.source().render(version);
    assert!(out.contains("--> v2.toml:1:11\n"), "{out}");
    assert!(out.contains("1 | version = 2\n  |           ^\n"), "{out}");
    assert!(
        out.contains("= help: this release reads `version = 1`"),
        "{out}"
    );
}

#[test]
fn version_one_and_no_version_are_accepted() {
    let body = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[[issuers]]\niss = \"https://i.example.com\"\nalgorithms = [\"ES256\"]\njwks_file = \"keys.jwks.json\"\n[audience]\naccept = [{ value = \"https://mcp.example.com/mcp\" }]\n";
    for text in [format!("version = 1\n{body}"), body.to_owned()] {
        let policy = Policy::from_toml("v1.toml", text, FIXTURES).unwrap();
        assert!(policy.warnings().is_empty());
    }
}

#[test]
fn all_errors_are_reported_together_in_file_order() {
    let path = Path::new(FIXTURES).join("invalid/many-errors.toml");
    let err = load_invalid(&path);
    let lines: Vec<usize> = err
        .diagnostics()
        .iter()
        .map(|d| {
            d.span
                .as_ref()
                .map_or(0, |s| err.source().line_col(s.start).0)
        })
        .collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
    let distinct: BTreeSet<usize> = lines.iter().copied().collect();
    assert!(distinct.len() >= 5, "{err}");
    let summary = err.to_string();
    let count = err.errors().count();
    assert!(
        summary.ends_with(&format!("is invalid: {count} errors")),
        "{summary}"
    );
}

// ---- Known problems in src/ (each test shows one; un-ignore it with the fix) ----

/// A policy text with the reference values and `issuer`/`extra` spliced in, keys from `FIXTURES`.
fn policy_with(issuer: &str, extra: &str) -> String {
    format!(
        "[vars]\nresource_url = \"https://mcp.example.com/mcp\"\nzone_url = \"https://abc123.keycard.cloud\"\n\n\
         [resource]\nurl = \"${{resource_url}}\"\n\n[[issuers]]\niss = \"${{zone_url}}\"\n{issuer}\n\n\
         [audience]\naccept = [{{ value = \"${{resource_url}}\" }}]\n\n{extra}"
    )
}

fn from_text(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_toml("p.toml", text, Path::new(FIXTURES).join("invalid"))
}

#[test]
fn a_misspelt_required_key_is_reported_once() {
    let err = load_invalid(&Path::new(FIXTURES).join("invalid/unknown-key-did-you-mean.toml"));
    assert_eq!(codes(err.errors()), ["unknown-key"], "{err}");
}

#[test]
fn two_key_sources_are_one_conflict() {
    let err = load_invalid(&Path::new(FIXTURES).join("invalid/conflict-two-key-sources.toml"));
    assert_eq!(codes(err.errors()), ["conflict"], "{err}");
}

#[test]
fn an_issuers_key_source_is_checked_even_when_its_algorithms_are_wrong() {
    let text = policy_with(
        "algorithms = [\"rs256\"]\njwks_file = \"no-such-file.jwks.json\"",
        "",
    );
    let err = from_text(&text).unwrap_err();
    assert_eq!(
        codes(err.errors()),
        ["unknown-algorithm", "key-source"],
        "{err}"
    );
}

#[test]
fn an_alternation_inside_outer_anchors_is_unanchored() {
    let text = policy_with(
        "algorithms = [\"ES256\"]\njwks_file = \"../keys.jwks.json\"",
        "[claims]\nconstraints = [{ claim = \"role\", regex = \"^admin|user$\" }]\n",
    );
    let policy = from_text(&text).unwrap();
    assert!(
        policy
            .warnings()
            .iter()
            .any(|w| w.kind == DiagnosticKind::UnanchoredRegex),
        "no unanchored-regex warning for `^admin|user$`"
    );
}

#[test]
fn anchoring_advice_keeps_what_the_pattern_matches() {
    let policy = load_valid(&Path::new(FIXTURES).join("lint/unanchored-regex.toml"));
    let helps: Vec<&str> = policy
        .warnings()
        .iter()
        .filter_map(|w| w.help.as_deref())
        .collect();
    // A suffix test stays a suffix test once anchored; a substring test stays a substring test.
    assert!(
        helps
            .iter()
            .any(|h| h.contains("`^.*(?:@example\\.(?:com|org))$`")),
        "{helps:#?}"
    );
    assert!(
        helps.iter().any(|h| h.contains("`^.*(?:mcp-).*$`")),
        "{helps:#?}"
    );
}

/// What the `unsatisfiable-rule` audience lint calls impossible happens: a zone token naming
/// both this resource and the other one passes the `resource` check and the guard.
#[test]
fn a_token_naming_both_resources_passes_a_guard_naming_the_other() {
    use support::*;
    const OTHER: &str = "https://other.example.com/mcp";
    let key = TestKey::es256("k1");
    let guarded = "{ value = \"${zone_url}\", resource = \"${resource_url}\" }";
    let text = keycard_policy(&[&key]);
    assert!(
        text.contains(guarded),
        "the shipped policy's zone guard changed"
    );
    let text = text.replace(
        guarded,
        &format!("{{ value = \"${{zone_url}}\", resource = \"{OTHER}\" }}"),
    );
    let policy = Policy::from_toml("guard.toml", text.as_str(), ".").unwrap();
    assert!(
        policy
            .warnings()
            .iter()
            .any(|w| w.kind == DiagnosticKind::UnsatisfiableRule),
        "the lint no longer fires; drop this test's companion bug"
    );
    let engine = engine(&text, &[("credential.key_id", "stable-1")]);
    let mut claims = good_claims();
    claims["aud"] = serde_json::json!(ZONE);
    claims["resource"] = serde_json::json!([RESOURCE, OTHER]);
    let decision = decide(&engine, &key.sign(&claims));
    assert_eq!(outcome(&decision), "allow", "{}", decision.explain());
}

#[test]
fn an_audience_guard_naming_another_resource_is_not_called_unsatisfiable() {
    // The engine accepts `aud = zone, resource = [this, other]` under this guard (the `resource`
    // check wants this resource among the values, the guard wants the other one among them).
    let policy = load_valid(&Path::new(FIXTURES).join("lint/unsatisfiable-rule-audience.toml"));
    for w in policy.warnings() {
        let help = w.help.as_deref().unwrap_or("");
        assert!(
            !help.contains("no token can match"),
            "{}",
            policy.source().render(w)
        );
    }
}

#[test]
fn every_error_has_a_help_line() {
    let mut missing = Vec::new();
    for path in fixtures("invalid") {
        let err = load_invalid(&path);
        for d in err.errors().filter(|d| d.help.is_none()) {
            missing.push(err.source().render(d));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn values_listed_in_help_lines_are_in_backticks() {
    for (file, prefix) in [
        ("invalid/unknown-key-no-match.toml", "known keys here: "),
        (
            "invalid/undefined-variable-no-match.toml",
            "defined variables: ",
        ),
        ("invalid/unknown-algorithm.toml", "supported: "),
    ] {
        let err = load_invalid(&Path::new(FIXTURES).join(file));
        let help = err
            .errors()
            .find_map(|d| d.help.as_deref().and_then(|h| h.strip_prefix(prefix)))
            .unwrap_or_else(|| panic!("{file}: no help starting with {prefix:?}\n{err}"));
        for item in help.split(", ") {
            assert!(
                item.starts_with('`') && item.ends_with('`'),
                "{file}: {item:?} in {help:?}"
            );
        }
    }
}

#[test]
fn a_client_id_source_with_two_keys_names_both() {
    let err = load_invalid(&Path::new(FIXTURES).join("invalid/conflict-id-sources.toml"));
    let conflict = err
        .errors()
        .find(|d| d.kind == DiagnosticKind::Conflict)
        .unwrap();
    assert!(
        conflict.message.contains("`claim`") && conflict.message.contains("`context`"),
        "{}",
        err.source().render(conflict)
    );
}

#[test]
fn help_for_not_mixed_with_constraint_keys_does_not_call_not_a_list() {
    let err = load_invalid(&Path::new(FIXTURES).join("invalid/conflict-conditions.toml"));
    for d in err.errors() {
        let help = d.help.as_deref().unwrap_or("");
        assert!(!help.contains("`not` list"), "{}", err.source().render(d));
    }
}

#[test]
fn an_unreadable_policy_shows_no_empty_source_line() {
    let err = load_invalid(&Path::new(FIXTURES).join("invalid/io-not-utf8.toml"));
    let out = err.to_string();
    assert!(!out.contains("1 | \n"), "{out}");
}

#[test]
fn a_duplicate_key_is_named() {
    let err = load_invalid(&Path::new(FIXTURES).join("invalid/syntax-duplicate-key.toml"));
    let d = err.errors().next().unwrap();
    assert!(d.message.contains("`url`"), "{}", err.source().render(d));
}

// ---- Diagnostics that point at the real problem ----

/// The rendering of the only error in `err`.
fn only_error(err: &PolicyError) -> (&Diagnostic, String) {
    let errors: Vec<&Diagnostic> = err.errors().collect();
    assert_eq!(errors.len(), 1, "{err}");
    (errors[0], err.source().render(errors[0]))
}

/// Line and column where a diagnostic's span starts.
fn at(err: &PolicyError, d: &Diagnostic) -> (usize, usize) {
    err.source().line_col(d.span.clone().unwrap().start)
}

const ISSUER_AND_AUDIENCE: &str = "[[issuers]]\niss = \"https://abc123.keycard.cloud\"\nalgorithms = [\"ES256\"]\njwks_file = \"../keys.jwks.json\"\n\n[audience]\naccept = [{ value = \"https://mcp.example.com/mcp\" }]\n";

#[test]
fn an_unclosed_array_is_one_error_at_its_opening_bracket() {
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n\n[[issuers]]\n\
                iss = \"https://abc123.keycard.cloud\"\nalgorithms = [\"RS256\", \"ES256\"\n\
                jwks_file = \"../keys.jwks.json\"\n\n[audience]\n\
                accept = [{ value = \"https://mcp.example.com/mcp\" }]\n\n[time]\nleeway = \"30s\"\nexp = \"required\"\n";
    let err = from_text(text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(d.kind, DiagnosticKind::Syntax, "{rendered}");
    assert_eq!(at(&err, d), (6, 14), "{rendered}");
    assert_eq!(d.message, "unclosed array: this `[` is never closed");
    assert_eq!(
        d.help.as_deref(),
        Some("add `]` at line 6, column 31, after the array's last value")
    );
    assert!(
        rendered.contains("6 | algorithms = [\"RS256\", \"ES256\"\n  |              ^\n"),
        "{rendered}"
    );
}

#[test]
fn an_unclosed_multi_line_array_is_closed_after_its_last_value_not_in_the_next_header() {
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\nscopes_supported = [\n  \"mcp:tools\",\n  \"mcp:prompts\",\n\n[time]\nleeway = \"30s\"\n";
    let err = from_text(text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(at(&err, d), (3, 20), "{rendered}");
    assert_eq!(
        d.help.as_deref(),
        Some("add `]` at line 5, column 17, after the array's last value")
    );
}

#[test]
fn an_unclosed_inline_table_is_one_error_at_its_opening_brace() {
    let text = format!(
        "[resource]\nurl = \"https://mcp.example.com/mcp\"\n{}\n[time]\nleeway = \"30s\"\n",
        ISSUER_AND_AUDIENCE.replace("/mcp\" }]", "/mcp\"")
    );
    let err = from_text(&text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(at(&err, d), (9, 11), "{rendered}");
    assert_eq!(d.message, "unclosed inline table: this `{` is never closed");
    assert_eq!(
        d.help.as_deref(),
        Some("add `}` at line 9, column 50, after the table's last value")
    );
}

#[test]
fn an_unclosed_array_inside_an_inline_table_is_the_one_reported() {
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[[rules]]\nname = \"r\"\n\
                require = { claim = \"amr\", contains_any = [\"mfa\", \"otp\" }\n\n[time]\nleeway = \"30s\"\n";
    let err = from_text(text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(at(&err, d), (5, 43), "{rendered}");
    assert_eq!(
        d.help.as_deref(),
        Some("add `]` at line 5, column 56, after the array's last value")
    );
}

#[test]
fn an_unclosed_multi_line_string_is_reported_at_its_opening_quotes() {
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[[rules]]\nname = \"r\"\n\
                description = \"\"\"Admins only.\n\n[time]\nleeway = \"30s\"\n";
    let err = from_text(text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(at(&err, d), (5, 15), "{rendered}");
    assert_eq!(
        d.message,
        "unclosed multi-line string: this `\"\"\"` is never closed"
    );
    assert_eq!(
        d.help.as_deref(),
        Some("add `\"\"\"` where the string ends")
    );
}

#[test]
fn syntax_errors_before_an_unclosed_array_are_still_reported() {
    let text = "[time]\nleeway = 30s\n\n[resource]\nurl = \"https://mcp.example.com/mcp\"\n\
                scopes_supported = [\"mcp:tools\"\n\n[audience]\naccept = []\n";
    let err = from_text(text).unwrap_err();
    let lines: Vec<(usize, usize)> = err.errors().map(|d| at(&err, d)).collect();
    assert_eq!(codes(err.errors()), ["syntax", "syntax"], "{err}");
    assert_eq!(lines, [(2, 10), (6, 20)], "{err}");
}

#[test]
fn cascading_syntax_errors_on_one_line_are_reported_once() {
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[time]\nx = { b = 1 c = 2 }\n";
    let err = from_text(text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(d.kind, DiagnosticKind::Syntax, "{rendered}");
    assert_eq!(at(&err, d).0, 4, "{rendered}");
}

#[test]
fn a_string_where_an_array_item_table_is_expected_names_the_item() {
    let text = format!(
        "[resource]\nurl = \"https://mcp.example.com/mcp\"\n{}",
        ISSUER_AND_AUDIENCE.replace(
            "[{ value = \"https://mcp.example.com/mcp\" }]",
            "[\"https://mcp.example.com/mcp\"]"
        )
    );
    let err = from_text(&text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(d.kind, DiagnosticKind::WrongType, "{rendered}");
    assert_eq!(
        d.message,
        "`audience.accept[0]` must be a table, found a string"
    );
    assert_eq!(
        d.help.as_deref(),
        Some(
            "write each item of `audience.accept` as an inline table: `{ value = \"https://mcp.example.com/mcp\" }`"
        )
    );
}

#[test]
fn a_string_where_an_issuer_table_is_expected_suggests_an_array_of_tables() {
    let text = "issuers = [\"https://abc123.keycard.cloud\"]\n[resource]\nurl = \"https://mcp.example.com/mcp\"\n[audience]\naccept = [{ value = \"https://mcp.example.com/mcp\" }]\n";
    let err = from_text(text).unwrap_err();
    let d = err
        .errors()
        .find(|d| d.kind == DiagnosticKind::WrongType)
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(d.message, "`issuers[0]` must be a table, found a string");
    assert_eq!(
        d.help.as_deref(),
        Some("write each item of `issuers` as a `[[issuers]]` table")
    );
}

#[test]
fn a_string_where_a_condition_table_is_expected_suggests_an_inline_table() {
    let text = format!(
        "[resource]\nurl = \"https://mcp.example.com/mcp\"\n{ISSUER_AND_AUDIENCE}\n[[rules]]\nname = \"r\"\nrequire = \"amr\"\n"
    );
    let err = from_text(&text).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(
        d.message,
        "`rules[0].require` must be a table, found a string"
    );
    assert_eq!(
        d.help.as_deref(),
        Some("write it as an inline table: `require = { ... }`"),
        "{rendered}"
    );
}

#[test]
fn tabs_before_a_span_do_not_misalign_the_caret() {
    let text = "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[time]\n\tleway = 1\n";
    let err = from_text(text).unwrap_err();
    let d = err
        .errors()
        .find(|d| d.kind == DiagnosticKind::UnknownKey)
        .unwrap_or_else(|| panic!("{err}"));
    let rendered = err.source().render(d);
    // The location is in characters; the shown line and its carets use the same display columns.
    assert!(rendered.contains("--> p.toml:4:2\n"), "{rendered}");
    assert!(
        rendered.contains("4 |     leway = 1\n  |     ^^^^^\n"),
        "{rendered}"
    );
}

#[test]
fn a_non_utf8_policy_names_the_line_and_column_of_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        b"[resource]\nurl = \"https://mcp.example.com/\xffmcp\"\n[time]\nleeway = \"30s\"\n",
    )
    .unwrap();
    let err = Policy::from_file(&path).unwrap_err();
    let (d, rendered) = only_error(&err);
    assert_eq!(d.kind, DiagnosticKind::Io, "{rendered}");
    assert_eq!(
        d.message,
        format!(
            "policy `{}` is not UTF-8: invalid byte 0xff at line 2, column 32",
            path.display()
        )
    );
    assert_eq!(d.help.as_deref(), Some("save the policy as UTF-8"));
    assert!(
        rendered.contains(&format!("--> {}:2:32\n", path.display())),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!(
            "2 | url = \"https://mcp.example.com/\u{fffd}mcp\"\n  | {}^\n",
            " ".repeat(31)
        )),
        "{rendered}"
    );
}

/// The display column of `needle` in `line`, counting `…` as one column.
fn column_of(line: &str, needle: &str) -> usize {
    let byte = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
    line[..byte].chars().count()
}

#[test]
fn a_very_long_line_is_shown_as_a_window_around_the_span() {
    let long = "A".repeat(5000);
    let text = format!(
        "[resource]\nurl = \"https://mcp.example.com/mcp\"\n[audience]\n\
         accept = [{{ value = \"https://mcp.example.com/mcp\", resource = \"{long}\", resorce = \"x\" }}]\n"
    );
    let err = from_text(&text).unwrap_err();
    let d = err
        .errors()
        .find(|d| d.kind == DiagnosticKind::UnknownKey)
        .unwrap_or_else(|| panic!("{err}"));
    let rendered = err.source().render(d);
    let (_, col) = at(&err, d);
    assert!(
        rendered.contains(&format!("--> p.toml:4:{col}\n")),
        "{rendered}"
    );
    let lines: Vec<&str> = rendered.lines().collect();
    let (source, carets) = (lines[3], lines[4]);
    assert!(source.starts_with("4 | …AAA"), "{source}");
    assert!(source.ends_with("resorce = \"x\" }]"), "{source}");
    assert!(source.chars().count() <= 110, "{source}");
    assert_eq!(
        column_of(carets, "^"),
        column_of(source, "resorce"),
        "{rendered}"
    );
    assert!(carets.ends_with(" ^^^^^^^"), "{rendered}");
}

#[test]
fn a_very_long_span_is_cut_at_the_window_edge() {
    let long = "A".repeat(5000);
    let text = format!(
        "[resource]\nurl = \"https://mcp.example.com/mcp\"\nscopes_supported = \"{long}\"\n"
    );
    let err = from_text(&text).unwrap_err();
    let d = err
        .errors()
        .find(|d| d.kind == DiagnosticKind::WrongType)
        .unwrap_or_else(|| panic!("{err}"));
    let rendered = err.source().render(d);
    let lines: Vec<&str> = rendered.lines().collect();
    let (source, carets) = (lines[3], lines[4]);
    assert!(
        source.starts_with("3 | scopes_supported = \"AAA"),
        "{source}"
    );
    assert!(source.ends_with("AAA…"), "{source}");
    assert!(source.chars().count() <= 110, "{source}");
    // Carets from the opening quote to the last shown column.
    assert_eq!(column_of(carets, "^"), column_of(source, "\"AAA"));
    assert_eq!(
        carets.chars().count(),
        source.chars().count() - 1,
        "{rendered}"
    );
}
