//! `jwt-policy test [POLICY|DIR]...`: each policy's cases (`POLICY.tests.toml` beside it), decided
//! with test keys standing in for the issuers' keys, like a test runner; then what no case
//! covers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use base64::Engine as _;

use crate::cli::{EXIT_DENY, EXIT_ERROR, EXIT_OK, say};
use crate::engine::{Decision, Outcome};
use crate::json::{BASE64URL, UnixTime};
use crate::policy::{Audience, Policy, parse_duration};
use crate::testing::TestIssuers;

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Policies (each tested with the `.tests.toml` file beside it) or directories (every
    /// policy in it that has one).
    #[arg(value_name = "POLICY|DIR", default_value = ".")]
    paths: Vec<PathBuf>,
}

/// A tests file: the base token and request, and the cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsFile {
    #[serde(default)]
    base: Base,
    #[serde(default, rename = "cases")]
    cases: Vec<Case>,
}

/// What every case starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Base {
    /// The clock, Unix seconds.
    now: Option<i64>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default)]
    header: Map<String, Value>,
    #[serde(default)]
    claims: Map<String, Value>,
    request: Option<Request>,
}

/// One case: changes to the base, and what the decision must say.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    now: Option<i64>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    /// Header members set (or replaced).
    #[serde(default)]
    header: Map<String, Value>,
    /// Claims set (or replaced).
    #[serde(default)]
    claims: Map<String, Value>,
    /// Names taken out of the token: a claim or header member of the base, or a default
    /// (`iat`, `nbf`, `exp`, `iss`, `typ`, `kid`); a name goes from the header and the claims.
    #[serde(default)]
    remove: Vec<String>,
    request: Option<Request>,
    /// This text as the token instead of a minted one (e.g. to test malformed tokens).
    token: Option<String>,
    /// The minted token's signature altered (one bit of its first byte).
    #[serde(default)]
    tamper_signature: bool,
    /// A claim `padding` added so that the token is at least this many bytes.
    pad_to_bytes: Option<usize>,
    expect: Expect,
}

/// The request a case's token is presented with (routes apply).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    method: String,
    path: String,
}

/// What the decision must say; what is left out is not compared.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    verdict: Option<ExpectedVerdict>,
    reason: Option<String>,
    status: Option<u16>,
    issuer: Option<String>,
    subject: Option<String>,
    client_id: Option<String>,
    audience: Option<String>,
    resource: Option<String>,
    resource_client_id: Option<String>,
    scopes: Option<Vec<String>>,
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ExpectedVerdict {
    Allow,
    Deny,
}

/// Runs every policy's tests; exit 0 when all pass, 1 when one fails, 2 on an error.
pub(crate) fn run(args: &Args) -> u8 {
    let mut code = EXIT_OK;
    let mut policies = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            match policies_in(path) {
                Ok(found) if found.is_empty() => {
                    eprintln!(
                        "error: no policy in `{}` has cases (`NAME.tests.toml` beside `NAME.toml`)",
                        path.display()
                    );
                    code = EXIT_ERROR;
                }
                Ok(found) => policies.extend(found),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = EXIT_ERROR;
                }
            }
        } else {
            policies.push(path.clone());
        }
    }
    for policy in &policies {
        match run_policy(policy) {
            Ok(true) => {}
            Ok(false) => code = code.max(EXIT_DENY),
            Err(e) => {
                eprintln!("{e}");
                say(format_args!("{}: error", policy.display()));
                code = EXIT_ERROR;
            }
        }
    }
    code
}

/// The tests file of the policy at `policy`: `NAME.tests.toml` for `NAME.toml`.
pub(crate) fn tests_file(policy: &Path) -> PathBuf {
    policy.with_extension("tests.toml")
}

/// The policies in `dir` that have a tests file, sorted.
fn policies_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read `{}`: {}",
            dir.display(),
            crate::text::io_message(&e)
        )
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".toml") && !name.ends_with(".tests.toml") && tests_file(p).is_file()
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Runs one policy's cases; whether they all passed.
fn run_policy(path: &Path) -> Result<bool, String> {
    let policy = Policy::from_file(path).map_err(|e| e.to_string())?;
    let file = tests_file(path);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "error: cannot read the tests of `{}`: `{}`: {}",
            path.display(),
            file.display(),
            crate::text::io_message(&e)
        )
    })?;
    let tests: TestsFile = toml::from_str(&text).map_err(|e| located(&file, &text, &e))?;
    if tests.cases.is_empty() {
        return Err(format!("error: `{}` has no `[[cases]]`", file.display()));
    }
    let keys =
        TestIssuers::new(&policy).map_err(|e| format!("error: `{}`: {e}", path.display()))?;
    say(format_args!(
        "{}: {} case{}",
        path.display(),
        tests.cases.len(),
        plural(tests.cases.len())
    ));
    let mut coverage = Coverage::default();
    let mut failed = 0;
    for case in &tests.cases {
        let decision = decide(&policy, &tests.base, case, &keys)
            .map_err(|e| format!("error: case `{}` of `{}`: {e}", case.name, file.display()))?;
        coverage.add(&policy, case, &tests.base, &decision);
        let problems = compare(&case.expect, &decision);
        if problems.is_empty() {
            say(format_args!("  ok    {}", case.name));
        } else {
            failed += 1;
            say(format_args!("  FAIL  {}", case.name));
            for problem in &problems {
                say(format_args!("        {problem}"));
            }
            for line in decision.explain().lines() {
                say(format_args!("        | {line}"));
            }
        }
    }
    for line in coverage.report(&policy) {
        say(format_args!("  {line}"));
    }
    let passed = tests.cases.len() - failed;
    say(format_args!(
        "{}: {passed} passed, {failed} failed",
        path.display()
    ));
    Ok(failed == 0)
}

/// A TOML error with the file, line and column it is at.
fn located(file: &Path, text: &str, e: &toml::de::Error) -> String {
    let source = crate::policy::SourceFile::new(file.display().to_string(), text);
    let (line, column) = e.span().map_or((1, 1), |span| source.line_col(span.start));
    format!(
        "error: {}:{line}:{column}: {}",
        file.display(),
        e.message().trim_end()
    )
}

/// The case's token, minted with the test key of the issuer its `iss` names (the policy's first
/// issuer's when it names none the policy trusts), and decided.
fn decide(
    policy: &Policy,
    base: &Base,
    case: &Case,
    keys: &TestIssuers,
) -> Result<Decision, String> {
    let now = case.now.or(base.now).unwrap_or(1_767_225_600);
    let token = match &case.token {
        Some(token) => token.clone(),
        None => mint(policy, base, case, keys, now)?,
    };
    let mut builder = keys.engine_builder(policy.clone());
    let mut context = base.context.clone();
    context.extend(case.context.clone());
    for (k, v) in &context {
        builder = builder.context(k, v);
    }
    let engine = builder.build().map_err(|e| e.to_string())?;
    let requirement = match case.request.as_ref().or(base.request.as_ref()) {
        Some(r) => policy
            .requirement_for(&r.method, &r.path)
            .map_err(|e| format!("request `{} {}`: {e}", r.method, r.path))?,
        None => crate::policy::Requirement::new(),
    };
    Ok(engine.evaluate_at_with(token, UnixTime::from_secs(now), &requirement))
}

/// The base token with the case's changes, signed.
fn mint(
    policy: &Policy,
    base: &Base,
    case: &Case,
    keys: &TestIssuers,
    now: i64,
) -> Result<String, String> {
    let mut header = base.header.clone();
    header.extend(case.header.clone());
    let mut claims = base.claims.clone();
    claims.extend(case.claims.clone());
    let mut claims = claims
        .into_iter()
        .map(|(k, v)| {
            let v = relative_time(v, now).map_err(|e| format!("claim `{k}`: {e}"))?;
            Ok((k, v))
        })
        .collect::<Result<Map<String, Value>, String>>()?;
    let named = claims.get("iss").and_then(Value::as_str);
    let issuer = policy
        .issuers()
        .iter()
        .find(|i| Some(i.iss()) == named)
        .or_else(|| policy.issuers().first())
        .ok_or("the policy trusts no issuer")?;
    let sign = |claims: &Map<String, Value>| {
        let mut token = keys
            .token(issuer.iss())
            .map_err(|e| e.to_string())?
            .header(Value::Object(header.clone()))
            .claims(Value::Object(claims.clone()));
        // What the case takes out, defaults included.
        for name in &case.remove {
            token = token.without(name);
        }
        token
            .sign(UnixTime::from_secs(now))
            .map_err(|e| e.to_string())
    };
    let mut token = sign(&claims)?;
    if let Some(size) = case.pad_to_bytes {
        let missing = size.saturating_sub(token.len());
        // Each byte of the claim is 4/3 bytes of base64url.
        claims.insert(
            "padding".into(),
            Value::from("x".repeat(missing * 3 / 4 + 4)),
        );
        token = sign(&claims)?;
    }
    if case.tamper_signature {
        token = tampered(&token).ok_or("the minted token has no signature to alter")?;
    }
    Ok(token)
}

/// `token` with one bit of its signature's first byte flipped.
fn tampered(token: &str) -> Option<String> {
    let (signed, signature) = token.rsplit_once('.')?;
    let mut bytes = BASE64URL.decode(signature).ok()?;
    *bytes.first_mut()? ^= 0x01;
    Some(format!("{signed}.{}", BASE64URL.encode(bytes)))
}

/// A claim written `{ from_now = "10m" }` (or `"-1h"`) is that many seconds after the clock.
fn relative_time(value: Value, now: i64) -> Result<Value, String> {
    let Value::Object(object) = &value else {
        return Ok(value);
    };
    let Some(offset) = object.get("from_now") else {
        return Ok(value);
    };
    let Some(text) = offset.as_str().filter(|_| object.len() == 1) else {
        return Err(
            "`from_now` is a duration such as \"10m\" or \"-1h\", alone in its table".into(),
        );
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let secs = parse_duration(digits)
        .and_then(|s| i64::try_from(s).ok())
        .ok_or_else(|| format!("`{text}` is not a duration such as \"10m\" or \"-1h\""))?;
    Ok(Value::from(now.saturating_add(sign * secs)))
}

/// What the decision says that the case did not expect.
fn compare(expect: &Expect, d: &Decision) -> Vec<String> {
    let mut problems = Vec::new();
    let verdict = if d.is_allowed() { "allow" } else { "deny" };
    let expected_verdict = expect.verdict.map(|v| match v {
        ExpectedVerdict::Allow => "allow".to_owned(),
        ExpectedVerdict::Deny => "deny".to_owned(),
    });
    let reason = d.reason().map(|r| r.as_str());
    let status = d.reason().map_or(200, |r| r.http_status());
    let p = d.principal();
    let fields = [
        ("verdict", &expected_verdict, Some(verdict)),
        ("reason", &expect.reason, Some(reason.unwrap_or("none"))),
        ("issuer", &expect.issuer, p.issuer.as_deref()),
        ("subject", &expect.subject, p.subject.as_deref()),
        ("client_id", &expect.client_id, p.client_id.as_deref()),
        ("audience", &expect.audience, p.audience.as_deref()),
        ("resource", &expect.resource, p.resource.as_deref()),
        (
            "resource_client_id",
            &expect.resource_client_id,
            p.resource_client_id.as_deref(),
        ),
    ];
    for (what, expected, observed) in fields {
        if let Some(expected) = expected
            && Some(expected.as_str()) != observed
        {
            problems.push(format!(
                "{what}: expected `{expected}`, observed {}",
                observed.map_or("none".to_owned(), |o| format!("`{o}`"))
            ));
        }
    }
    if let Some(expected) = expect.status
        && expected != status
    {
        problems.push(format!("status: expected {expected}, observed {status}"));
    }
    if let Some(expected) = &expect.scopes
        && expected != &p.scopes
    {
        problems.push(format!(
            "scopes: expected `{}`, observed `{}`",
            expected.join(" "),
            p.scopes.join(" ")
        ));
    }
    problems
}

/// What the cases exercised.
#[derive(Default)]
struct Coverage {
    /// Every check name seen, in check order, and those some case made fail.
    checks: Vec<String>,
    failed: BTreeSet<String>,
    /// Audience alternatives (by value and guard) some allowed case matched, and guarded ones
    /// some denied case presented without meeting the guard.
    passed_alternatives: BTreeSet<String>,
    failed_alternatives: BTreeSet<String>,
    /// Routes (`METHODS path`) some case's request fell under.
    routes: BTreeSet<String>,
}

impl Coverage {
    fn add(&mut self, policy: &Policy, case: &Case, base: &Base, d: &Decision) {
        for check in d.checks() {
            if !self.checks.iter().any(|c| c == check.rule()) {
                self.checks.push(check.rule().to_owned());
            }
            if matches!(check.outcome(), Outcome::Failed { .. }) {
                self.failed.insert(check.rule().to_owned());
            }
        }
        if let Audience::Accept(rule) = &policy.audience {
            let audience_failed = d
                .checks()
                .iter()
                .any(|c| c.rule() == "audience" && matches!(c.outcome(), Outcome::Failed { .. }));
            let mut claims = base.claims.clone();
            claims.extend(case.claims.clone());
            let presented: Vec<String> = match claims.get("aud") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            for alt in &rule.accept {
                let name = alternative(&alt.value, alt.resource.as_deref());
                if d.is_allowed() && d.principal().audience.as_deref() == Some(&alt.value) {
                    self.passed_alternatives.insert(name);
                } else if audience_failed && presented.contains(&alt.value) {
                    self.failed_alternatives.insert(name);
                }
            }
        }
        if let Some(r) = case.request.as_ref().or(base.request.as_ref())
            && let Ok(path) = crate::policy::request_path(&r.path)
            && let Some(route) = policy.route_for(&r.method, path)
        {
            self.routes.insert(route);
        }
    }

    /// The lines saying what no case covers (none when everything is).
    fn report(&self, policy: &Policy) -> Vec<String> {
        let mut lines = Vec::new();
        // With no scope required by the policy or any route, the scopes check only reports.
        let scopes_can_fail = !policy.required_scopes().is_empty()
            || policy
                .routes
                .iter()
                .any(|r| !r.requirement.scopes().is_empty());
        let never_failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !self.failed.contains(*c))
            .filter(|c| scopes_can_fail || c.as_str() != "scopes")
            .map(String::as_str)
            .collect();
        if !never_failed.is_empty() {
            lines.push(format!(
                "coverage: no case makes these checks fail: `{}`",
                never_failed.join("`, `")
            ));
        }
        if let Audience::Accept(rule) = &policy.audience {
            for alt in &rule.accept {
                let name = alternative(&alt.value, alt.resource.as_deref());
                if !self.passed_alternatives.contains(&name) {
                    lines.push(format!("coverage: no allowed case matches audience {name}"));
                }
                // Only a guard can make a presented alternative fail.
                if alt.resource.is_some() && !self.failed_alternatives.contains(&name) {
                    lines.push(format!(
                        "coverage: no case presents audience {name} and fails the audience check"
                    ));
                }
            }
        }
        for route in policy.route_names() {
            if !self.routes.contains(&route) {
                lines.push(format!(
                    "coverage: no case's request falls under route {route}"
                ));
            }
        }
        lines
    }
}

fn alternative(value: &str, resource: Option<&str>) -> String {
    match resource {
        Some(r) => format!("`{value}` (with `resource` `{r}`)"),
        None => format!("`{value}`"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
