//! Reads the spanned TOML tree into a validated [`Policy`], reporting every problem found.
//!
//! One file per section of the policy, named as `src/engine/` names the checks it feeds. Each
//! `read_*` function reads one table: it asks for every key it knows (so [`Table::finish`] can
//! report the others), records what is wrong, and returns `None` when its part cannot be used.
//! Reading goes on after an error, so one run reports everything.

mod audience;
mod cache;
mod claims;
mod client_id;
mod forward;
mod header;
mod issuers;
mod limits;
mod remote_keys;
mod resource;
mod routes;
mod rules;
mod scopes;
mod time;

use std::path::Path;
use std::sync::Arc;

use toml::de::DeTable;

use crate::policy::diagnostic::{Diagnostic, DiagnosticKind, PolicyError, Severity, SourceFile};
use crate::policy::lint;
use crate::policy::model::{
    Audience, AudienceAlternative, AudienceRule, HeaderRules, IdRule, IdSource, Match, Policy,
    Presence, ValueFormat,
};
use crate::policy::reader::{Located, Reader, Value};
use crate::policy::syntax;

use audience::read_audience;
use cache::read_cache;
use claims::read_claims;
use client_id::{IdPosition, read_id_rule};
use forward::read_forward;
use header::read_header;
use issuers::read_issuers;
use limits::{DEFAULT_MAX_TOKEN_BYTES, read_limits};
use remote_keys::read_remote_keys;
use resource::{ResourceTable, read_resource};
use routes::read_routes;
use rules::read_rules;
use scopes::{default_scopes, read_scopes};
use time::{default_time, read_time};

/// The spellings of a [`Presence`] (`[resource] claim`, the claims of `[time]`).
const PRESENCE: &[(&str, Presence)] = &[
    ("required", Presence::Required),
    ("optional", Presence::Optional),
    ("ignored", Presence::Ignored),
];

/// The spellings of a [`ValueFormat`] (claim constraints, `[scopes] claims`).
const FORMATS: &[(&str, ValueFormat)] = &[
    ("string", ValueFormat::String),
    ("space_delimited", ValueFormat::SpaceDelimited),
    ("array", ValueFormat::Array),
    ("string_or_array", ValueFormat::StringOrArray),
    (
        "space_delimited_or_array",
        ValueFormat::SpaceDelimitedOrArray,
    ),
];

impl Policy {
    /// Reads and validates the policy at `path`. Relative file names inside it (a `jwks_file`,
    /// say) are resolved against the policy's own directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let diagnostic = Diagnostic::whole_file(
                    Severity::Error,
                    DiagnosticKind::Io,
                    format!(
                        "cannot read policy `{name}`: {}",
                        crate::text::io_message(&e)
                    ),
                )
                .with_help("a policy is a UTF-8 TOML file; check the path");
                return Err(PolicyError::new(
                    Arc::new(SourceFile::new(name, "")),
                    vec![diagnostic],
                ));
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return Err(not_utf8(name, &e)),
        };
        let base_dir = path.parent().unwrap_or(Path::new("."));
        parse(Arc::new(SourceFile::new(name, text)), base_dir)
    }

    /// Validates policy `text`, naming it `name` in diagnostics. Relative file names inside it
    /// are resolved against `base_dir`.
    pub fn from_toml(
        name: impl Into<String>,
        text: impl Into<String>,
        base_dir: impl AsRef<Path>,
    ) -> Result<Policy, PolicyError> {
        parse(Arc::new(SourceFile::new(name, text)), base_dir.as_ref())
    }
}

/// A policy file that is not UTF-8, located at its first invalid byte. The line is shown with
/// the invalid bytes as `\u{fffd}`; up to that byte, the text is the file's own.
fn not_utf8(name: String, error: &std::string::FromUtf8Error) -> PolicyError {
    let at = error.utf8_error().valid_up_to();
    let bytes = error.as_bytes();
    let byte = bytes.get(at).copied().unwrap_or_default();
    let source = SourceFile::new(name, String::from_utf8_lossy(bytes));
    let (line, col) = source.line_col(at);
    let diagnostic = Diagnostic::error(
        DiagnosticKind::Io,
        // The invalid sequence became one U+FFFD.
        at..at + char::REPLACEMENT_CHARACTER.len_utf8(),
        format!(
            "policy `{}` is not UTF-8: invalid byte {byte:#04x} at line {line}, column {col}",
            source.name()
        ),
    )
    .with_help("save the policy as UTF-8");
    PolicyError::new(Arc::new(source), vec![diagnostic])
}

/// Whether this build fetches keys over HTTP (the cargo feature `remote`).
const FETCHES_KEYS: bool = cfg!(feature = "remote");

/// Parses and validates policy text. `base_dir` resolves relative file paths in the policy.
fn parse(source: Arc<SourceFile>, base_dir: &Path) -> Result<Policy, PolicyError> {
    parse_with(source, base_dir, FETCHES_KEYS)
}

/// [`parse`] in a build that fetches keys over HTTP, or not.
fn parse_with(
    source: Arc<SourceFile>,
    base_dir: &Path,
    fetches_keys: bool,
) -> Result<Policy, PolicyError> {
    let mut reader = Reader::default();
    reader.fetches_keys = fetches_keys;
    let (root, syntax_errors) = DeTable::parse_recoverable(source.text());
    // One error per place to fix, not every error the parser met after it.
    reader
        .diagnostics
        .extend(syntax::diagnostics(&source, &syntax_errors));
    let policy = if syntax_errors.is_empty() {
        read_policy(&mut reader, root.get_ref(), base_dir, &source)
    } else {
        // A file that is not TOML gives only syntax errors: what the parser recovered would
        // produce follow-on errors about text the user never wrote.
        None
    };
    let mut diagnostics = std::mem::take(&mut reader.diagnostics);
    // File order; at one place, errors before warnings.
    diagnostics.sort_by_key(|d| {
        let at = d.span.as_ref().map_or((0, 0), |s| (s.start, s.end));
        (at, std::cmp::Reverse(d.severity))
    });
    match policy {
        Some(mut policy) if !diagnostics.iter().any(|d| d.severity == Severity::Error) => {
            policy.warnings = diagnostics;
            policy.revision = revision(source.text(), &reader.files);
            policy.files = reader.files.into_iter().map(|(path, _)| path).collect();
            Ok(policy)
        }
        _ => Err(PolicyError::new(source, diagnostics)),
    }
}

/// SHA-256, with aws-lc (the signature backend, already in the build).
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The policy's revision: the first 16 hex digits of a SHA-256 over the policy text and the
/// content of every key set file it names (in the order named). Replicas with the same files
/// report the same revision; any change to them gives another. HMAC secrets are left out: a
/// revision is shown to clients, and must say nothing about a secret.
fn revision(text: &str, files: &[(std::path::PathBuf, Option<[u8; 32]>)]) -> String {
    let mut input = Vec::with_capacity(32 * (files.len() + 1) + 32);
    input.extend_from_slice(b"jwt-policy revision 1\n");
    input.extend_from_slice(&sha256(text.as_bytes()));
    for digest in files.iter().filter_map(|(_, digest)| digest.as_ref()) {
        input.extend_from_slice(digest);
    }
    sha256(&input)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_policy(
    r: &mut Reader,
    root: &DeTable<'_>,
    base_dir: &Path,
    source: &Arc<SourceFile>,
) -> Option<Policy> {
    let mut t = Reader::root(root, 0..0);
    if let Some(v) = t.get("vars") {
        r.define_vars(v);
    }
    if let Some(v) = t.get("version")
        && let Some(n) = r.count(v, "version", 0, u64::MAX)
        && n != 1
    {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("unsupported policy version `{n}`"),
            "this release reads `version = 1`",
        );
    }
    let resource = match t.get("resource") {
        Some(v) => read_resource(r, v),
        None => {
            r.file_error(
                DiagnosticKind::MissingKey,
                "the policy has no `[resource]` table",
                "add `[resource]` with `url = \"https://...\"`, this server's resource URL",
            );
            None
        }
    };
    let max_token_bytes = match t.get("limits") {
        Some(v) => read_limits(r, v),
        None => Some(DEFAULT_MAX_TOKEN_BYTES),
    };
    let header = match t.get("header") {
        Some(v) => read_header(r, v),
        None => Some(HeaderRules {
            typ: Vec::new(),
            kid: Presence::Required,
            crit: Vec::new(),
        }),
    };
    let time = match t.get("time") {
        Some(v) => read_time(r, v),
        None => Some(default_time()),
    };
    let issuers = match t.get("issuers") {
        Some(v) => read_issuers(r, v, base_dir),
        None => {
            r.file_error(
                DiagnosticKind::MissingKey,
                "the policy trusts no issuer",
                "add an `[[issuers]]` table with `iss`, `algorithms` and a key source",
            );
            None
        }
    };
    // Without `[audience]`, `aud` must name this resource: a token issued for another audience
    // is never accepted by accident (RFC 7519 §4.1.3, RFC 9068 §4).
    let audience = match t.get("audience") {
        Some(v) => read_audience(r, v),
        None => resource.as_ref().map(|ResourceTable { url, .. }| {
            Audience::Accept(AudienceRule {
                mode: Match::Any,
                accept: vec![AudienceAlternative {
                    value: url.value.clone(),
                    resource: None,
                    span: url.span.clone(),
                }],
            })
        }),
    };
    let (required_claims, constraints) = match t.get("claims") {
        Some(v) => read_claims(r, v),
        None => (Some(Vec::new()), Some(Vec::new())),
    };
    let rules = match t.get("rules") {
        Some(v) => read_rules(r, v),
        None => Some(Vec::new()),
    };
    let scopes = match t.get("scopes") {
        Some(v) => read_scopes(r, v),
        None => Some((default_scopes(), Vec::new())),
    };
    let client_id = match t.get("client_id") {
        Some(v) => read_id_rule(r, v, "client_id", IdPosition::Client),
        None => Some(IdRule {
            sources: vec![
                IdSource::Claim("client_id".into()),
                IdSource::Claim("azp".into()),
            ],
            required: true,
            allow: None,
            refuse: Vec::new(),
        }),
    };
    let forward = match t.get("forward") {
        Some(v) => read_forward(r, v),
        None => Some(Vec::new()),
    };
    let remote_keys = match t.get("remote_keys") {
        Some(v) => read_remote_keys(r, v),
        None => Some(crate::jwks::RemoteSettings::default()),
    };
    let cache = match t.get("cache") {
        Some(v) => read_cache(r, v),
        None => Some(None),
    };
    let routes = match t.get("routes") {
        Some(v) => read_routes(r, v, rules.as_deref()),
        None => Some(Vec::new()),
    };
    let resource_client_id = match t.get("resource_client_id") {
        Some(v) => read_id_rule(r, v, "resource_client_id", IdPosition::Resource).map(Some),
        None => Some(None),
    };
    t.finish(r);
    r.unused_vars();

    if let (
        Some(HeaderRules {
            kid: Presence::Required,
            ..
        }),
        Some(issuers),
    ) = (&header, &issuers)
    {
        for secret in issuers
            .iter()
            .flat_map(|i| &i.hmac_secrets)
            .filter(|s| s.kid.is_none())
        {
            r.error(
                DiagnosticKind::Conflict,
                secret.span.clone(),
                "this HMAC secret has no `kid`, and tokens must name their key (`[header] kid` is `required`)",
                "add the `kid` your issuer puts in its tokens, or set `kid = \"optional\"` in `[header]`",
            );
        }
    }
    let ResourceTable {
        url: resource_url,
        scopes_supported,
        claim: resource_claim,
        name: resource_name,
        documentation: resource_documentation,
    } = resource?;
    let resource_url = resource_url.value;
    let (scopes, required_scopes) = scopes?;
    lint::unadvertised_scopes(r, &required_scopes, &scopes_supported);
    let policy = Policy {
        name: source.name().to_owned(),
        resource_url,
        resource_name,
        resource_documentation,
        scopes_supported,
        resource_claim,
        max_token_bytes: usize::try_from(max_token_bytes?).ok()?,
        header: header?,
        time: time?,
        issuers: issuers?,
        audience: audience?,
        required_claims: required_claims?,
        constraints: constraints?,
        rules: rules?,
        scopes,
        client_id: client_id?,
        resource_client_id: resource_client_id?,
        routes: routes?,
        forward: forward?,
        remote_keys: remote_keys?,
        cache: cache?,
        warnings: Vec::new(),
        revision: String::new(),
        files: Vec::new(),
        source: source.clone(),
    };
    // The lints that weigh the whole policy are only meaningful for one that is otherwise valid.
    if !r.has_errors() {
        lint::lint(r, &policy);
    }
    Some(policy)
}

/// Reads an optional key with `read`, or gives `default` when it is absent.
fn or_default<T>(
    value: Option<&Value<'_>>,
    default: T,
    read: impl FnOnce(&Value<'_>) -> Option<T>,
) -> Option<T> {
    match value {
        Some(v) => read(v),
        None => Some(default),
    }
}

fn values(list: Vec<Located<String>>) -> Vec<String> {
    list.into_iter().map(|s| s.value).collect()
}
