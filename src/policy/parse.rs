//! Reads the spanned TOML tree into a validated [`Policy`], reporting every problem found.
//!
//! Each `read_*` function reads one table: it asks for every key it knows (so [`Table::finish`]
//! can report the others), records what is wrong, and returns `None` when its part cannot be
//! used. Reading goes on after an error, so one run reports everything.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::diagnostic::{DiagnosticKind, PolicyError, Severity, SourceFile};
use super::lint;
use super::model::*;
use super::reader::{Located, Reader, Table, Value, ticks, type_name};
use super::routes::Route;
use super::syntax;
use crate::algorithm::Algorithm;
use crate::jwks::{JwksSource, RemoteSource};

/// The default maximum token size.
pub(crate) const DEFAULT_MAX_TOKEN_BYTES: u64 = 16_384;

const PRESENCE: &[(&str, Presence)] = &[
    ("required", Presence::Required),
    ("optional", Presence::Optional),
    ("ignored", Presence::Ignored),
];

const KID_PRESENCE: &[(&str, Presence)] = &[
    ("required", Presence::Required),
    ("optional", Presence::Optional),
];

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

const TYPES: &[(&str, JsonType)] = &[
    ("string", JsonType::String),
    ("number", JsonType::Number),
    ("integer", JsonType::Integer),
    ("boolean", JsonType::Boolean),
    ("array", JsonType::Array),
    ("object", JsonType::Object),
    ("null", JsonType::Null),
];

/// The keys of a claim constraint (shared by `claims.constraints` and rule conditions).
const CONSTRAINT_KEYS: [&str; 14] = [
    "claim",
    "path",
    "format",
    "if_present",
    "present",
    "equals",
    "one_of",
    "prefix",
    "suffix",
    "regex",
    "contains",
    "contains_any",
    "contains_all",
    "type",
];

/// The keys that combine conditions.
const COMBINATORS: [&str; 3] = ["all", "any", "not"];

/// Conditions nest at most this deep, so evaluation recursion is bounded by the policy's author.
const MAX_CONDITION_DEPTH: usize = 16;

/// Parses and validates policy text. `base_dir` resolves relative file paths in the policy.
pub(crate) fn parse(source: Arc<SourceFile>, base_dir: &Path) -> Result<Policy, PolicyError> {
    let mut reader = Reader::default();
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

/// What `[resource]` says.
struct ResourceTable {
    url: Located<String>,
    scopes_supported: Vec<String>,
    claim: Presence,
    name: Option<String>,
    documentation: Option<String>,
}

fn read_resource(r: &mut Reader, v: &Value<'_>) -> Option<ResourceTable> {
    let mut t = r.table(v, "[resource]")?;
    let url = match t.get("url") {
        Some(v) => r
            .nonempty_string(v, "resource.url")
            .and_then(|url| check_uri(r, url)),
        None => {
            t.missing("url", "\"https://mcp.example.com/mcp\"");
            None
        }
    };
    let scopes = or_default(t.get("scopes_supported"), Vec::new(), |v| {
        scope_list(r, v, "resource.scopes_supported").map(values)
    });
    let claim = or_default(t.get("claim"), Presence::Optional, |v| {
        r.choice(v, "resource.claim", PRESENCE)
    });
    let name = or_default(t.get("name"), None, |v| {
        r.nonempty_string(v, "resource.name").map(|s| Some(s.value))
    });
    let documentation = or_default(t.get("documentation"), None, |v| {
        let doc = r.nonempty_string(v, "resource.documentation")?;
        match url::Url::parse(&doc.value) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                Some(Some(doc.value))
            }
            _ => {
                r.error(
                    DiagnosticKind::InvalidValue,
                    doc.span,
                    format!(
                        "`resource.documentation` must be an http(s) URL, found `{}`",
                        doc.value
                    ),
                    "the page a developer reads to use this resource: `https://docs.example.com/mcp`",
                );
                None
            }
        }
    });
    t.finish(r);
    Some(ResourceTable {
        url: url?,
        scopes_supported: scopes?,
        claim: claim?,
        name: name?,
        documentation: documentation?,
    })
}

/// An absolute URI without a fragment (RFC 8707 §2).
fn check_uri(r: &mut Reader, url: Located<String>) -> Option<Located<String>> {
    let scheme_ok = url.value.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok || url.value.contains('#') || url.value.contains(char::is_whitespace) {
        r.error(
            DiagnosticKind::InvalidValue,
            url.span,
            format!(
                "`resource.url` must be an absolute URI without a fragment, found `{}`",
                url.value
            ),
            "RFC 8707 resource indicators look like `https://mcp.example.com/mcp`",
        );
        return None;
    }
    Some(url)
}

fn read_limits(r: &mut Reader, v: &Value<'_>) -> Option<u64> {
    let mut t = r.table(v, "[limits]")?;
    let max = or_default(t.get("max_token_bytes"), DEFAULT_MAX_TOKEN_BYTES, |v| {
        r.count(v, "limits.max_token_bytes", 64, 1 << 20)
    });
    t.finish(r);
    max
}

fn read_header(r: &mut Reader, v: &Value<'_>) -> Option<HeaderRules> {
    let mut t = r.table(v, "[header]")?;
    let typ = or_default(t.get("typ"), Vec::new(), |v| {
        r.strings(v, "header.typ").map(|list| {
            let mut types: Vec<String> = Vec::new();
            for t in list.iter().map(|s| crate::token::media_type(&s.value)) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            types
        })
    });
    let kid = or_default(t.get("kid"), Presence::Required, |v| {
        r.choice(v, "header.kid", KID_PRESENCE)
    });
    let crit = or_default(t.get("crit"), Vec::new(), |v| {
        let names = r.strings(v, "header.crit")?;
        let mut ok = true;
        for name in &names {
            let problem = if crate::token::REGISTERED_HEADER_PARAMETERS
                .contains(&name.value.as_str())
            {
                "is a registered header parameter, which `crit` never lists (RFC 7515 §4.1.11)"
            } else if name.value == "b64" {
                "changes how the signature is computed (RFC 7797), which jwt-policy does not implement"
            } else {
                continue;
            };
            r.error(
                DiagnosticKind::InvalidValue,
                name.span.clone(),
                format!("`{}` {problem}", name.value),
                "list only extensions your service processes itself",
            );
            ok = false;
        }
        ok.then(|| values(names))
    });
    t.finish(r);
    Some(HeaderRules {
        typ: typ?,
        kid: kid?,
        crit: crit?,
    })
}

fn default_time() -> TimeRules {
    TimeRules {
        leeway: 0,
        exp: Presence::Required,
        nbf: Presence::Optional,
        iat: Presence::Optional,
        max_age: None,
    }
}

fn read_time(r: &mut Reader, v: &Value<'_>) -> Option<TimeRules> {
    let mut t = r.table(v, "[time]")?;
    let d = default_time();
    let leeway = t.get("leeway").map(|v| r.duration(v, "time.leeway"));
    let exp = t.get("exp").map(|v| r.choice(v, "time.exp", PRESENCE));
    let nbf = t.get("nbf").map(|v| r.choice(v, "time.nbf", PRESENCE));
    let iat = t.get("iat").map(|v| r.choice(v, "time.iat", PRESENCE));
    let max_age = t.get("max_age").map(|v| r.duration(v, "time.max_age"));
    if let Some(Some(l)) = &leeway {
        lint::leeway(r, l);
    }
    if let (Some(Some(presence)), Some(span)) = (&exp, t.key_span("exp")) {
        lint::exp(r, *presence, span);
    }
    if let (Some(Some(Presence::Ignored)), Some(Some(_)), Some(span)) =
        (&iat, &max_age, t.key_span("max_age"))
    {
        r.error(
            DiagnosticKind::Conflict,
            span,
            "`time.max_age` is measured from `iat`, but `time.iat` is `ignored`",
            "set `iat = \"required\"` (or remove `iat`: `max_age` makes it required)",
        );
    }
    t.finish(r);
    let max_age = max_age.map_or(Some(None), |m| m.map(|m| Some(m.value)))?;
    Some(TimeRules {
        leeway: leeway.map_or(Some(d.leeway), |l| l.map(|l| l.value))?,
        exp: exp.unwrap_or(Some(d.exp))?,
        nbf: nbf.unwrap_or(Some(d.nbf))?,
        // A maximum age needs an issue time to measure it from.
        iat: match (iat.unwrap_or(Some(d.iat))?, max_age) {
            (Presence::Ignored, Some(_)) => return None,
            (_, Some(_)) => Presence::Required,
            (iat, None) => iat,
        },
        max_age,
    })
}

fn read_issuers(r: &mut Reader, v: &Value<'_>, base_dir: &Path) -> Option<Vec<Issuer>> {
    let items = r.array(v, "issuers")?;
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            "`issuers` is empty",
            "add at least one `[[issuers]]` table",
        );
        return None;
    }
    let mut out: Vec<Located<Issuer>> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match read_issuer(r, item, i, base_dir) {
            Some(issuer) => {
                if out.iter().any(|o| o.value.iss == issuer.value.iss) {
                    r.error(
                        DiagnosticKind::Duplicate,
                        issuer.span.clone(),
                        format!("issuer `{}` is declared twice", issuer.value.iss),
                        "merge the two `[[issuers]]` tables: one issuer, one key source",
                    );
                    ok = false;
                }
                out.push(issuer);
            }
            None => ok = false,
        }
    }
    ok.then(|| out.into_iter().map(|i| i.value).collect())
}

fn read_issuer(
    r: &mut Reader,
    v: &Value<'_>,
    index: usize,
    base_dir: &Path,
) -> Option<Located<Issuer>> {
    let name = format!("issuers[{index}]");
    let mut t = r.table(v, name.clone())?;
    let iss = match t.get("iss") {
        Some(v) => r.nonempty_string(v, &t.path("iss")),
        None => {
            t.missing("iss", "\"https://issuer.example.com\"");
            None
        }
    };
    let algorithms = match t.get("algorithms") {
        Some(v) => read_algorithms(r, v, &t.path("algorithms")),
        None => {
            t.missing("algorithms", "[\"RS256\"]");
            None
        }
    };
    let hmac = or_default(t.get("hmac_secrets"), Vec::new(), |v| {
        read_hmac_secrets(r, v, &name, base_dir)
    });
    let (keys, keys_span, mut ok) = read_key_source(r, &mut t, iss.as_ref(), base_dir);
    let hmac_span = t.key_span("hmac_secrets");
    t.finish(r);
    let (iss, algorithms, hmac) = (iss?, algorithms?, hmac?);

    // Each algorithm needs a key source of its kind; each key source needs an algorithm.
    let (hmac_algs, public_algs): (Vec<_>, Vec<_>) =
        algorithms.iter().partition(|a| a.value.is_hmac());
    if !public_algs.is_empty() && keys_span.is_none() {
        r.error(
            DiagnosticKind::MissingKey,
            v.span(),
            format!(
                "`{name}` allows {} but has no public keys",
                and_list(&public_algs)
            ),
            "add `jwks_url = \"https://...\"`, `discovery = true`, `jwks_file = \"keys.json\"` or an inline `jwks`",
        );
        ok = false;
    }
    for alg in &hmac_algs {
        if hmac.is_empty() {
            r.error(
                DiagnosticKind::ForbiddenAlgorithm,
                alg.span.clone(),
                format!("`{}` needs a secret, and `{name}` names none", alg.value),
                "HMAC secrets never come from a JWKS: add `hmac_secrets = [{ env = \"VAR\" }]`",
            );
            ok = false;
        } else {
            lint::hmac(r, alg);
        }
    }
    if hmac_algs.is_empty() && !hmac.is_empty() {
        r.error(
            DiagnosticKind::Conflict,
            hmac_span.unwrap_or(v.span()),
            format!("`{name}` names HMAC secrets but allows no HMAC algorithm"),
            "remove `hmac_secrets`, or allow `HS256`",
        );
        ok = false;
    }
    if let (Some(span), true) = (&keys_span, public_algs.is_empty()) {
        r.error(
            DiagnosticKind::Conflict,
            span.clone(),
            format!("`{name}` has public keys but allows no public-key algorithm"),
            "allow e.g. `RS256`, or remove the key source",
        );
        ok = false;
    }
    // A key verifies one algorithm (RFC 8725 §3.1): an RSA key without `alg` would verify each
    // RSA algorithm the issuer allows.
    if let (Some(IssuerKeys::Static(set)), Some(span)) = (&keys, &keys_span) {
        let allowed: Vec<Algorithm> = algorithms.iter().map(|a| a.value).collect();
        for error in set.ambiguous(&allowed) {
            let example = allowed
                .iter()
                .find(|a| a.family() == crate::algorithm::KeyFamily::Rsa)
                .copied()
                .unwrap_or(Algorithm::RS256);
            r.error(
                DiagnosticKind::KeySource,
                span.clone(),
                error.to_string(),
                format!(
                    "add the `alg` its tokens use to the JWK (e.g. `\"alg\": \"{example}\"`), or allow only one RSA algorithm"
                ),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(Located {
        value: Issuer {
            iss: iss.value,
            algorithms: algorithms.into_iter().map(|a| a.value).collect(),
            keys,
            hmac_secrets: hmac,
            keys_span,
        },
        span: iss.span,
    })
}

fn read_remote_keys(r: &mut Reader, v: &Value<'_>) -> Option<crate::jwks::RemoteSettings> {
    use crate::jwks::{RemoteSettings, Startup};
    use std::time::Duration;
    let mut t = r.table(v, "[remote_keys]")?;
    let d = RemoteSettings::default();
    let mut ok = true;
    let mut duration =
        |t: &mut Table<'_, '_>, key: &'static str, default: Duration, min: u64, max: u64| {
            let Some(v) = t.get(key) else { return default };
            let what = t.path(key);
            match r.duration(v, &what) {
                Some(d) if (min..=max).contains(&d.value) => Duration::from_secs(d.value),
                Some(d) => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        d.span,
                        format!(
                            "`{what}` must be between {min} s and {max} s, found {} s",
                            d.value
                        ),
                        "pick a value in that range",
                    );
                    ok = false;
                    default
                }
                None => {
                    ok = false;
                    default
                }
            }
        };
    const DAY: u64 = 86_400;
    let timeout = duration(&mut t, "timeout", d.timeout, 1, 60);
    let cache_min = duration(&mut t, "cache_min", d.cache_min, 1, 7 * DAY);
    let cache_max = duration(&mut t, "cache_max", d.cache_max, 1, 30 * DAY);
    let cache_default = duration(&mut t, "cache_default", d.cache_default, 1, 30 * DAY);
    let max_stale = duration(&mut t, "max_stale", d.max_stale, 0, 30 * DAY);
    let cooldown = duration(&mut t, "cooldown", d.cooldown, 1, DAY);
    let negative_cache = duration(&mut t, "negative_cache", d.negative_cache, 0, DAY);
    let max_response_bytes = or_default(
        t.get("max_response_bytes"),
        d.max_response_bytes as u64,
        |v| r.count(v, "remote_keys.max_response_bytes", 1024, 16 << 20),
    );
    let startup = or_default(t.get("startup"), d.startup, |v| {
        r.choice(
            v,
            "remote_keys.startup",
            &[("eager", Startup::Eager), ("lazy", Startup::Lazy)],
        )
    });
    if ok && !(cache_min <= cache_default && cache_default <= cache_max) {
        r.error(
            DiagnosticKind::Conflict,
            t.span(),
            "`[remote_keys]` needs `cache_min` <= `cache_default` <= `cache_max`",
            format!(
                "here they are {} s, {} s and {} s",
                cache_min.as_secs(),
                cache_default.as_secs(),
                cache_max.as_secs()
            ),
        );
        ok = false;
    }
    t.finish(r);
    let max_response_bytes = usize::try_from(max_response_bytes?).ok()?;
    let startup = startup?;
    ok.then_some(RemoteSettings {
        timeout,
        max_response_bytes,
        cache_min,
        cache_max,
        cache_default,
        max_stale,
        cooldown,
        negative_cache,
        startup,
    })
}

/// The issuer's public key source: exactly one of `jwks_file`, `jwks`, `jwks_url` and
/// `discovery = true`. Static keys are loaded now, so `check` reports a missing or broken JWKS at
/// its location. Returns the keys, where they are named, and whether all was well.
fn read_key_source(
    r: &mut Reader,
    t: &mut Table<'_, '_>,
    iss: Option<&Located<String>>,
    base_dir: &Path,
) -> (Option<IssuerKeys>, Option<Range<usize>>, bool) {
    let file = t
        .get("jwks_file")
        .and_then(|v| r.nonempty_string(v, &t.path("jwks_file")));
    let inline = t
        .get("jwks")
        .and_then(|v| r.nonempty_string(v, &t.path("jwks")));
    let url = t
        .get("jwks_url")
        .and_then(|v| r.nonempty_string(v, &t.path("jwks_url")));
    let discovery = t.get("discovery").and_then(|v| {
        r.bool(v, &t.path("discovery"))
            .filter(|on| *on)
            .map(|_| Located {
                value: (),
                span: v.span(),
            })
    });
    let origins = t.get("jwks_origins");
    let allow_http = or_default(t.get("allow_http"), false, |v| {
        r.bool(v, &t.path("allow_http"))
    })
    .unwrap_or(false);
    let given: Vec<(&str, Range<usize>)> = [
        ("jwks_file", file.as_ref().map(|f| f.span.clone())),
        ("jwks", inline.as_ref().map(|f| f.span.clone())),
        ("jwks_url", url.as_ref().map(|f| f.span.clone())),
        ("discovery", discovery.as_ref().map(|f| f.span.clone())),
    ]
    .into_iter()
    .filter_map(|(k, span)| span.map(|s| (k, s)))
    .collect();
    let mut ok = true;
    if let [(first, _), (second, span), ..] = given.as_slice() {
        r.error(
            DiagnosticKind::Conflict,
            span.clone(),
            format!("`{}` has both `{first}` and `{second}`", t.name),
            "an issuer has one source of public keys: keep one",
        );
        return (None, Some(span.clone()), false);
    }
    let remote = url.is_some() || discovery.is_some();
    if let (Some(v), false) = (origins, discovery.is_some()) {
        r.error(
            DiagnosticKind::Conflict,
            v.span(),
            "`jwks_origins` only applies to `discovery = true`",
            "it lists where a discovered `jwks_uri` may be: set `discovery = true`, or remove it",
        );
        ok = false;
    }
    if let (Some(span), false) = (t.key_span("allow_http"), remote) {
        r.error(
            DiagnosticKind::Conflict,
            span,
            "`allow_http` only applies to `jwks_url` and `discovery`",
            "remove `allow_http`",
        );
        ok = false;
    }
    let keys = if let Some(file) = file {
        load_static(r, JwksSource::File(base_dir.join(&file.value)), &file)
    } else if let Some(inline) = inline {
        load_static(r, JwksSource::Inline(inline.value.clone()), &inline)
    } else if let Some(url) = url {
        remote_url(r, &url, "`jwks_url`", allow_http)
            .map(|u| IssuerKeys::Remote(RemoteSource::JwksUrl(u)))
    } else if discovery.is_some() {
        let issuer =
            iss.and_then(|iss| remote_url(r, iss, "`iss` (read for discovery)", allow_http));
        let origins = match origins {
            Some(v) => r.strings(v, &t.path("jwks_origins")).and_then(|list| {
                let read: Vec<_> = list.iter().map(|o| origin(r, o, allow_http)).collect();
                read.into_iter().collect::<Option<Vec<_>>>()
            }),
            None => Some(Vec::new()),
        };
        match (issuer, origins) {
            (Some(_), Some(origins)) => Some(IssuerKeys::Remote(RemoteSource::Discovery {
                issuer: iss.map(|i| i.value.clone()).unwrap_or_default(),
                origins,
            })),
            _ => {
                ok = false;
                None
            }
        }
    } else {
        None
    };
    let span = given.first().map(|(_, s)| s.clone());
    if span.is_some() && keys.is_none() {
        ok = false;
    }
    (keys, span, ok)
}

fn load_static(r: &mut Reader, source: JwksSource, at: &Located<String>) -> Option<IssuerKeys> {
    let loaded = match &source {
        // Read here (not by `KeySet::load`) so the revision covers exactly the bytes read.
        JwksSource::File(path) => std::fs::read(path)
            .map_err(|e| crate::jwks::KeyError::Io {
                path: path.clone(),
                message: crate::text::io_message(&e),
            })
            .and_then(|bytes| {
                r.files.push((path.clone(), Some(sha256(&bytes))));
                crate::jwks::KeySet::from_jwks(&bytes)
            }),
        JwksSource::Inline(text) => crate::jwks::KeySet::from_jwks(text.as_bytes()),
    };
    match loaded {
        Ok(set) => Some(IssuerKeys::Static(Arc::new(set))),
        Err(e) => {
            let help = match (&e, source) {
                (crate::jwks::KeyError::InvalidKey { .. }, _) => {
                    "every key of the set must be one that can verify the issuer's tokens: fix or remove this one"
                }
                (_, JwksSource::File(_)) => {
                    "`jwks_file` is read relative to the policy file; it holds a JWK set (RFC 7517 §5)"
                }
                (_, JwksSource::Inline(_)) => {
                    "`jwks` holds the text of a JWK set (RFC 7517 §5): `{ \"keys\": [...] }`"
                }
            };
            r.error(
                DiagnosticKind::KeySource,
                at.span.clone(),
                e.to_string(),
                help,
            );
            None
        }
    }
}

/// A URL keys are fetched from: `https://`, or `http://` to a loopback host, or plain `http://`
/// elsewhere only with `allow_http = true` (and a warning).
fn remote_url(
    r: &mut Reader,
    at: &Located<String>,
    what: &str,
    allow_http: bool,
) -> Option<url::Url> {
    let example = if what.starts_with("`iss`") {
        "discovery reads the metadata at the issuer's URL: `iss` must look like `https://issuer.example.com`"
    } else {
        "write it like `https://issuer.example.com/.well-known/jwks.json`"
    };
    let url = match url::Url::parse(&at.value) {
        Ok(url) if url.host().is_some() => url,
        Ok(_) | Err(_) => {
            r.error(
                DiagnosticKind::InvalidValue,
                at.span.clone(),
                format!("{what} `{}` is not an absolute URL with a host", at.value),
                example,
            );
            return None;
        }
    };
    match url.scheme() {
        "https" => Some(url),
        "http" if crate::jwks::is_loopback(&url) => Some(url),
        "http" if allow_http => {
            lint::insecure_url(r, what, at);
            Some(url)
        }
        "http" => {
            r.error(
                DiagnosticKind::InvalidValue,
                at.span.clone(),
                format!(
                    "{what} `{}` is plain `http://` to a host that is not loopback",
                    at.value
                ),
                "use `https://`, or set `allow_http = true` on a test network (`check` will warn)",
            );
            None
        }
        other => {
            r.error(
                DiagnosticKind::InvalidValue,
                at.span.clone(),
                format!(
                    "{what} `{}` has scheme `{other}`; keys are fetched over `https://`",
                    at.value
                ),
                example,
            );
            None
        }
    }
}

/// An origin a discovered `jwks_uri` may be on: scheme, host and port, nothing more.
fn origin(r: &mut Reader, at: &Located<String>, allow_http: bool) -> Option<url::Url> {
    match url::Url::parse(&at.value) {
        Ok(url)
            if url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && !at.value.ends_with('/') =>
        {
            // The same scheme rule as any key URL: https, plain http only to loopback (or with
            // `allow_http`).
            remote_url(r, at, "origin", allow_http)
        }
        _ => {
            r.error(
                DiagnosticKind::InvalidValue,
                at.span.clone(),
                format!("`{}` is not an origin", at.value),
                "an origin is a scheme, a host and maybe a port: `https://keys.example.com`",
            );
            None
        }
    }
}

/// "`A`", "`A` and `B`", "`A`, `B` and `C`".
fn and_list(algs: &[&Located<Algorithm>]) -> String {
    let names: Vec<String> = algs.iter().map(|a| format!("`{}`", a.value)).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

fn read_algorithms(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Vec<Located<Algorithm>>> {
    let names = r.strings(v, what)?;
    if names.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("`{what}` is empty"),
            "allow at least one, e.g. `[\"RS256\"]`",
        );
        return None;
    }
    let mut out: Vec<Located<Algorithm>> = Vec::new();
    let mut ok = true;
    for name in names {
        if name.value.eq_ignore_ascii_case("none") {
            r.error(
                DiagnosticKind::ForbiddenAlgorithm,
                name.span,
                format!("algorithm `{}` would accept unsigned tokens", name.value),
                "remove it: unsigned tokens are never accepted",
            );
            ok = false;
            continue;
        }
        match Algorithm::from_name(&name.value) {
            Some(alg) if out.iter().any(|o| o.value == alg) => {
                r.error(
                    DiagnosticKind::Duplicate,
                    name.span,
                    format!("algorithm `{alg}` is listed twice"),
                    "remove the repeat",
                );
                ok = false;
            }
            Some(alg) => out.push(Located {
                value: alg,
                span: name.span,
            }),
            None => {
                let close = Algorithm::ALL
                    .iter()
                    .find(|a| a.as_str().eq_ignore_ascii_case(&name.value));
                let help = match close {
                    Some(a) => format!("algorithm names are case-sensitive: did you mean `{a}`?"),
                    None => format!(
                        "supported: {}",
                        ticks(
                            &Algorithm::ALL
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                        )
                    ),
                };
                r.error(
                    DiagnosticKind::UnknownAlgorithm,
                    name.span,
                    format!("unknown algorithm `{}`", name.value),
                    help,
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn read_hmac_secrets(
    r: &mut Reader,
    v: &Value<'_>,
    issuer: &str,
    base_dir: &Path,
) -> Option<Vec<HmacSecret>> {
    let items = r.array(v, &format!("{issuer}.hmac_secrets"))?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("{issuer}.hmac_secrets[{i}]")) else {
            ok = false;
            continue;
        };
        let kid = t
            .get("kid")
            .and_then(|v| r.nonempty_string(v, &t.path("kid")))
            .map(|k| k.value);
        let env = t
            .get("env")
            .and_then(|v| r.nonempty_string(v, &t.path("env")));
        let file = t
            .get("file")
            .and_then(|v| r.nonempty_string(v, &t.path("file")));
        let source = match (env, file) {
            (Some(env), None) => Some(SecretSource::Env(env.value)),
            (None, Some(file)) => {
                let path = base_dir.join(file.value);
                // Watched for changes, but a secret never goes into the published revision.
                r.files.push((path.clone(), None));
                Some(SecretSource::File(path))
            }
            (env, file) => {
                let message = if env.is_some() && file.is_some() {
                    format!("`{}` has both `env` and `file`", t.name)
                } else {
                    format!("`{}` needs `env` or `file`", t.name)
                };
                r.error(
                    DiagnosticKind::Conflict,
                    t.span(),
                    message,
                    "name exactly one place the secret is kept; the policy never holds the secret itself",
                );
                None
            }
        };
        t.finish(r);
        match source {
            Some(source) => out.push(HmacSecret {
                kid,
                source,
                span: item.span(),
            }),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_audience(r: &mut Reader, v: &Value<'_>) -> Option<Audience> {
    let mut t = r.table(v, "[audience]")?;
    let mode_value = t.get("mode");
    let mode = or_default(mode_value, Match::Any, |v| {
        r.choice(
            v,
            "audience.mode",
            &[("any", Match::Any), ("all", Match::All)],
        )
    });
    let audience = match t.get("accept") {
        // The explicit opt-out: written out, so it is never the result of forgetting a table.
        Some(v) if matches!(v.get_ref(), DeValue::String(_)) => {
            let any = r.string(v, "audience.accept")?;
            if any.value != "any" {
                r.error(
                    DiagnosticKind::InvalidValue,
                    any.span,
                    format!("`audience.accept` cannot be `{}`", any.value),
                    "list the accepted audiences: `accept = [{ value = \"${resource_url}\" }]` (only `\"any\"` may be written as a string)",
                );
                return None;
            }
            lint::any_audience(r, any.span);
            if let Some(mode) = mode_value {
                r.error(
                    DiagnosticKind::Conflict,
                    mode.span(),
                    "`audience.mode` has nothing to combine when `accept = \"any\"`",
                    "remove `mode`",
                );
                return None;
            }
            Some(Audience::Any)
        }
        Some(v) => read_alternatives(r, v).and_then(|accept| {
            Some(Audience::Accept(AudienceRule {
                mode: mode?,
                accept,
            }))
        }),
        None => {
            t.missing("accept", "[{ value = \"${resource_url}\" }]");
            None
        }
    };
    t.finish(r);
    audience
}

fn read_alternatives(r: &mut Reader, v: &Value<'_>) -> Option<Vec<AudienceAlternative>> {
    let items = r.array(v, "audience.accept")?;
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            "`audience.accept` is empty, so no token could pass",
            "accept at least this resource: `{ value = \"${resource_url}\" }`",
        );
        return None;
    }
    let read: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut t = r.table(item, format!("audience.accept[{i}]"))?;
            let value = match t.get("value") {
                Some(v) => r.nonempty_string(v, &t.path("value")),
                None => {
                    t.missing("value", "\"${resource_url}\"");
                    None
                }
            };
            let resource = or_default(t.get("resource"), None, |v| {
                r.nonempty_string(v, &t.path("resource"))
                    .map(|s| Some(s.value))
            });
            t.finish(r);
            Some(AudienceAlternative {
                value: value?.value,
                resource: resource?,
                span: item.span(),
            })
        })
        .collect();
    read.into_iter().collect()
}

fn read_claims(r: &mut Reader, v: &Value<'_>) -> (Option<Vec<ClaimPath>>, Option<Vec<Constraint>>) {
    let Some(mut t) = r.table(v, "[claims]") else {
        return (None, None);
    };
    let required = or_default(t.get("required"), Vec::new(), |v| {
        let items = r.array(v, "claims.required")?;
        let mut paths: Vec<ClaimPath> = Vec::new();
        let mut ok = true;
        for item in items {
            match read_path(r, item, "claims.required") {
                Some(path) if paths.contains(&path) => {
                    r.error(
                        DiagnosticKind::Duplicate,
                        item.span(),
                        format!("claim `{path}` is listed twice in `claims.required`"),
                        "remove the repeat",
                    );
                    ok = false;
                }
                Some(path) => paths.push(path),
                None => ok = false,
            }
        }
        ok.then_some(paths)
    });
    let constraints = or_default(t.get("constraints"), Vec::new(), |v| {
        let items = r.array(v, "claims.constraints")?;
        let read: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut t = r.table(item, format!("claims.constraints[{i}]"))?;
                let c = read_constraint_fields(r, &mut t);
                t.finish(r);
                c
            })
            .collect();
        read.into_iter().collect()
    });
    t.finish(r);
    (required, constraints)
}

/// A claim path: `"sub"` (one top-level name) or `["realm_access", "roles"]`.
fn read_path(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<ClaimPath> {
    match v.get_ref() {
        DeValue::String(_) => r.nonempty_string(v, what).map(|s| ClaimPath::top(&s.value)),
        DeValue::Array(_) => {
            let segments = r.strings(v, what)?;
            if segments.is_empty() {
                r.error(
                    DiagnosticKind::InvalidValue,
                    v.span(),
                    format!("`{what}` has an empty claim path"),
                    "name the claim, e.g. `[\"realm_access\", \"roles\"]`",
                );
                return None;
            }
            Some(ClaimPath(values(segments)))
        }
        _ => {
            r.error(
                DiagnosticKind::WrongType,
                v.span(),
                format!(
                    "`{what}` names claims as strings, found {}",
                    type_name(v.get_ref())
                ),
                "write `\"sub\"`, or `[\"realm_access\", \"roles\"]` for a nested claim",
            );
            None
        }
    }
}

/// The constraint keys of a table (shared by `claims.constraints` and rule conditions).
fn read_constraint_fields(r: &mut Reader, t: &mut Table<'_, '_>) -> Option<Constraint> {
    let claim = t.get("claim");
    let path = t.get("path");
    let path = match (claim, path) {
        (Some(c), None) => match c.get_ref() {
            DeValue::String(_) => r
                .nonempty_string(c, &t.path("claim"))
                .map(|s| ClaimPath::top(&s.value)),
            _ => {
                r.error(
                    DiagnosticKind::WrongType,
                    c.span(),
                    format!("`{}` must be a string", t.path("claim")),
                    "for a nested claim write `path = [\"outer\", \"inner\"]`",
                );
                None
            }
        },
        (None, Some(p)) => read_path(r, p, &t.path("path")),
        (Some(_), Some(p)) => {
            r.error(
                DiagnosticKind::Conflict,
                p.span(),
                format!("`{}` has both `claim` and `path`", t.name),
                "use `claim` for a top-level claim, `path` for a nested one",
            );
            None
        }
        (None, None) => {
            t.missing("claim", "\"sub\"");
            None
        }
    };
    let format = or_default(t.get("format"), ValueFormat::StringOrArray, |v| {
        r.choice(v, &t.path("format"), FORMATS)
    });
    let if_present = or_default(t.get("if_present"), false, |v| {
        r.bool(v, &t.path("if_present"))
    });
    let fmt = format.unwrap_or(ValueFormat::StringOrArray);
    let mut tests = Vec::new();
    let mut ok = true;
    let test_keys: Vec<&'static str> = CONSTRAINT_KEYS.iter().copied().skip(4).collect();
    for &key in &test_keys {
        let Some(v) = t.get(key) else { continue };
        let what = t.path(key);
        if matches!(key, "one_of" | "contains_any" | "contains_all")
            && matches!(v.get_ref(), DeValue::Array(items) if items.is_empty())
        {
            let effect = if key == "contains_all" {
                "always passes"
            } else {
                "never passes"
            };
            r.error(
                DiagnosticKind::InvalidValue,
                v.span(),
                format!("`{what}` is empty, so the test {effect}"),
                "list at least one value, or remove the test",
            );
            ok = false;
            continue;
        }
        let test = match key {
            "present" => r.bool(v, &what).map(ClaimTest::Present),
            "equals" => read_literal(r, v, &what).map(ClaimTest::Equals),
            "one_of" => r
                .array(v, &what)
                .and_then(|items| {
                    let read: Vec<_> = items.iter().map(|i| read_literal(r, i, &what)).collect();
                    read.into_iter().collect()
                })
                .map(ClaimTest::OneOf),
            "prefix" => r
                .nonempty_string(v, &what)
                .map(|s| ClaimTest::Prefix(s.value)),
            "suffix" => r
                .nonempty_string(v, &what)
                .map(|s| ClaimTest::Suffix(s.value)),
            "regex" => read_pattern(r, v, &what).map(ClaimTest::Regex),
            "contains" => r
                .nonempty_string(v, &what)
                .map(|s| ClaimTest::Contains(s.value, fmt)),
            "contains_any" => r
                .strings(v, &what)
                .map(|s| ClaimTest::ContainsAny(values(s), fmt)),
            "contains_all" => r
                .strings(v, &what)
                .map(|s| ClaimTest::ContainsAll(values(s), fmt)),
            _ => r.choice(v, &what, TYPES).map(ClaimTest::Type),
        };
        match test {
            Some(test) => tests.push(test),
            None => ok = false,
        }
    }
    if ok && tests.is_empty() && path.is_some() {
        r.error(
            DiagnosticKind::MissingKey,
            t.span(),
            format!("`{}` names a claim but tests nothing", t.name),
            format!("add a test: {}", ticks(&test_keys)),
        );
        ok = false;
    }
    let must_be_absent = tests
        .iter()
        .any(|test| matches!(test, ClaimTest::Present(false)));
    if must_be_absent && tests.len() > 1 {
        r.error(
            DiagnosticKind::Conflict,
            t.span(),
            format!(
                "`{}` says the claim must be absent, and also tests its value",
                t.name
            ),
            "with `present = false` there is no value to test: remove the other tests",
        );
        ok = false;
    }
    let contains_test = tests.iter().any(|test| {
        matches!(
            test,
            ClaimTest::Contains(..) | ClaimTest::ContainsAny(..) | ClaimTest::ContainsAll(..)
        )
    });
    if let (Some(span), false) = (t.key_span("format"), contains_test) {
        r.error(
            DiagnosticKind::Conflict,
            span,
            format!(
                "`{}` only applies to `contains`, `contains_any` and `contains_all`",
                t.path("format")
            ),
            "remove `format`, or add a `contains` test",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Constraint {
        path: path?,
        if_present: if_present?,
        tests,
        span: t.span(),
    })
}

fn read_literal(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Literal> {
    match v.get_ref() {
        DeValue::String(_) => r.string(v, what).map(|s| Literal::String(s.value)),
        DeValue::Boolean(b) => Some(Literal::Bool(*b)),
        DeValue::Integer(i) => {
            match i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                Ok(n) => Some(Literal::Number(n.to_string())),
                Err(_) => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        v.span(),
                        format!("`{what}` is not a valid integer"),
                        "write an integer that fits in 128 bits",
                    );
                    None
                }
            }
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            let digits = text
                .trim_start_matches(['+', '-'])
                .starts_with(|c: char| c.is_ascii_digit());
            if digits && text.parse::<f64>().is_ok_and(f64::is_finite) {
                Some(Literal::Number(text.trim_start_matches('+').to_owned()))
            } else {
                r.error(
                    DiagnosticKind::InvalidValue,
                    v.span(),
                    format!("`{what}` must be a finite number"),
                    "`inf` and `nan` are never claim values",
                );
                None
            }
        }
        _ => {
            r.wrong_type(what, "a string, number or boolean", "\"value\"", v);
            None
        }
    }
}

fn read_pattern(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Pattern> {
    let s = r.nonempty_pattern(v, what)?;
    match Pattern::new(s.value.clone(), s.span.clone()) {
        Ok(pattern) => Some(pattern),
        Err(why) => {
            r.error(
                DiagnosticKind::InvalidRegex,
                s.span,
                format!("`{what}` is not a valid regular expression: `{}`", s.value),
                why,
            );
            None
        }
    }
}

fn read_rules(r: &mut Reader, v: &Value<'_>) -> Option<Vec<Rule>> {
    let items = r.array(v, "rules")?;
    let mut out: Vec<Rule> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("rules[{i}]")) else {
            ok = false;
            continue;
        };
        let name = match t.get("name") {
            Some(v) => r.nonempty_string(v, &t.path("name")),
            None => {
                t.missing("name", "\"admin-needs-mfa\"");
                None
            }
        };
        if let Some(n) = name
            .as_ref()
            .filter(|n| out.iter().any(|rule| rule.name == n.value))
        {
            r.error(
                DiagnosticKind::Duplicate,
                n.span.clone(),
                format!("rule name `{}` is used twice", n.value),
                "decisions cite rules by name: make each unique",
            );
            ok = false;
        }
        let description = t
            .get("description")
            .and_then(|v| r.string(v, &t.path("description")))
            .map(|s| s.value);
        let permission = or_default(t.get("permission"), false, |v| {
            r.bool(v, &t.path("permission"))
        });
        let route_only = or_default(t.get("route_only"), false, |v| {
            r.bool(v, &t.path("route_only"))
        });
        let when_value = t.get("when");
        let when = or_default(when_value, None, |v| {
            read_condition(r, v, &t.path("when"), 0).map(Some)
        });
        let require_value = t.get("require");
        let require = match require_value {
            Some(v) => read_condition(r, v, &t.path("require"), 0),
            None => {
                t.missing("require", "{ claim = \"amr\", contains = \"mfa\" }");
                None
            }
        };
        t.finish(r);
        match (name, when, require, require_value, permission, route_only) {
            (
                Some(name),
                Some(when),
                Some(require),
                Some(require_value),
                Some(permission),
                Some(route_only),
            ) => out.push(Rule {
                name: name.value,
                description,
                permission,
                route_only,
                when,
                require,
                when_span: when_value.map(|v| v.span()),
                require_span: require_value.span(),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_condition(r: &mut Reader, v: &Value<'_>, name: &str, depth: usize) -> Option<Condition> {
    if depth > MAX_CONDITION_DEPTH {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("conditions nest deeper than {MAX_CONDITION_DEPTH} levels"),
            "flatten the condition: `all` and `any` take lists, so nesting is rarely needed",
        );
        return None;
    }
    let mut t = r.table(v, name)?;
    let present: Vec<&'static str> = COMBINATORS.iter().copied().filter(|k| t.has(k)).collect();
    let condition = match present.as_slice() {
        [] => {
            t.allow(&COMBINATORS);
            read_constraint_fields(r, &mut t).map(Condition::Claim)
        }
        [one] => {
            let others: Vec<&str> = CONSTRAINT_KEYS
                .iter()
                .copied()
                .filter(|k| t.has(k))
                .collect();
            // The constraint keys are reported here as a conflict, not as unknown keys.
            t.allow(&CONSTRAINT_KEYS);
            let value = t.get(one);
            if !others.is_empty() {
                let keys = if others.len() == 1 { "key" } else { "keys" };
                let fix = if *one == "not" {
                    "put the constraint inside `not`: `not = { claim = \"...\", ... }`".to_owned()
                } else {
                    format!("move the constraint into the `{one}` list as its own table")
                };
                r.error(
                    DiagnosticKind::Conflict,
                    t.span(),
                    format!(
                        "`{name}` mixes `{one}` with constraint {keys} {}",
                        ticks(&others)
                    ),
                    fix,
                );
            }
            let inner = value.and_then(|value| match *one {
                "not" => read_condition(r, value, &format!("{name}.not"), depth + 1)
                    .map(|c| Condition::Not(Box::new(c))),
                list => {
                    let what = format!("{name}.{list}");
                    let items = r.array(value, &what)?;
                    if items.is_empty() {
                        // Like an empty `one_of` or `contains_all`: a condition that says nothing.
                        let effect = if list == "all" {
                            "always holds"
                        } else {
                            "never holds"
                        };
                        r.error(
                            DiagnosticKind::InvalidValue,
                            value.span(),
                            format!("`{what}` is empty, so the condition {effect}"),
                            "list at least one condition, or remove it",
                        );
                        return None;
                    }
                    let read: Vec<_> = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            read_condition(r, item, &format!("{name}.{list}[{i}]"), depth + 1)
                        })
                        .collect();
                    let conditions = read.into_iter().collect::<Option<Vec<_>>>()?;
                    Some(if list == "all" {
                        Condition::All(conditions)
                    } else {
                        Condition::Any(conditions)
                    })
                }
            });
            if others.is_empty() { inner } else { None }
        }
        many => {
            r.error(
                DiagnosticKind::Conflict,
                t.span(),
                format!(
                    "`{name}` has {}; a condition is one of them",
                    ticks(many).replace(", ", " and ")
                ),
                "nest them: `{ all = [{ any = [...] }, { not = {...} }] }`",
            );
            t.allow(&COMBINATORS);
            t.allow(&CONSTRAINT_KEYS);
            None
        }
    };
    t.finish(r);
    condition
}

fn default_scopes() -> ScopeRules {
    ScopeRules {
        claims: vec![
            ("scope".into(), ValueFormat::SpaceDelimited),
            ("scp".into(), ValueFormat::SpaceDelimitedOrArray),
        ],
        required: Vec::new(),
    }
}

/// The scope rules, and the required scopes where they are written.
fn read_scopes(r: &mut Reader, v: &Value<'_>) -> Option<(ScopeRules, Vec<Located<String>>)> {
    let mut t = r.table(v, "[scopes]")?;
    let claims = or_default(t.get("claims"), default_scopes().claims, |v| {
        let items = r.array(v, "scopes.claims")?;
        if items.is_empty() {
            r.error(
                DiagnosticKind::InvalidValue,
                v.span(),
                "`scopes.claims` is empty",
                "e.g. `[{ claim = \"scope\", format = \"space_delimited\" }]`",
            );
            return None;
        }
        let read: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut t = r.table(item, format!("scopes.claims[{i}]"))?;
                let claim = match t.get("claim") {
                    Some(v) => r.nonempty_string(v, &t.path("claim")).map(|s| s.value),
                    None => {
                        t.missing("claim", "\"scope\"");
                        None
                    }
                };
                let format = or_default(t.get("format"), ValueFormat::SpaceDelimitedOrArray, |v| {
                    r.choice(v, &t.path("format"), FORMATS)
                });
                t.finish(r);
                Some((claim?, format?))
            })
            .collect();
        read.into_iter().collect()
    });
    let required = or_default(t.get("required"), Vec::new(), |v| {
        scope_list(r, v, "scopes.required")
    });
    t.finish(r);
    let required = required?;
    Some((
        ScopeRules {
            claims: claims?,
            required: values(required.clone()),
        },
        required,
    ))
}

/// A list of scope names: non-empty strings without spaces (a space separates scopes).
fn scope_list(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Vec<Located<String>>> {
    let list = r.strings(v, what);
    let mut ok = true;
    let items = match v.get_ref() {
        DeValue::Array(items) => items.as_ref(),
        _ => &[],
    };
    for item in items {
        if let DeValue::String(scope) = item.get_ref()
            && scope.contains(' ')
        {
            r.error(
                DiagnosticKind::InvalidValue,
                item.span(),
                format!("scope `{scope}` contains a space"),
                "list each scope as its own string",
            );
            ok = false;
        }
    }
    list.filter(|_| ok)
}

/// Which identifier an `IdRule` resolves: the calling client's (from claims) or this server's own
/// (from the run-time context, resolved once when the engine is built).
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdPosition {
    Client,
    Resource,
}

impl IdPosition {
    /// The source keys allowed here, and why.
    fn sources(self) -> (&'static [&'static str], &'static str) {
        match self {
            Self::Client => (
                &["claim"],
                "the calling client's id comes from a claim of the token",
            ),
            Self::Resource => (
                &["context", "value"],
                "this server's own id is resolved once, when the engine is built, from the service's context or a fixed value",
            ),
        }
    }
}

fn read_id_rule(r: &mut Reader, v: &Value<'_>, name: &str, position: IdPosition) -> Option<IdRule> {
    let mut t = r.table(v, format!("[{name}]"))?;
    let sources = match t.get("sources") {
        Some(v) => read_sources(r, v, name, position),
        None => {
            let example = match position {
                IdPosition::Client => "[{ claim = \"client_id\" }, { claim = \"azp\" }]",
                IdPosition::Resource => "[{ context = \"credential.key_id\" }]",
            };
            t.missing("sources", example);
            None
        }
    };
    let required = or_default(t.get("required"), true, |v| r.bool(v, &t.path("required")));
    let allow = or_default(t.get("allow"), None, |v| {
        read_pattern(r, v, &t.path("allow")).map(Some)
    });
    let refuse = or_default(t.get("refuse"), Vec::new(), |v| {
        let what = t.path("refuse");
        let items = r.array(v, &what)?;
        let read: Vec<_> = items.iter().map(|i| read_pattern(r, i, &what)).collect();
        read.into_iter().collect()
    });
    t.finish(r);
    let sources = sources?;
    let rule = IdRule {
        sources: sources.iter().map(|s| s.value.clone()).collect(),
        required: required?,
        allow: allow?,
        refuse: refuse?,
    };
    // A fixed value is known now: refusing it would only fail later, when the engine is built.
    let mut ok = true;
    for source in &sources {
        if let IdSource::Value(value) = &source.value
            && let Some(why) = rule.refusal(value)
        {
            r.error(
                DiagnosticKind::InvalidValue,
                source.span.clone(),
                format!("`{name}` value `{value}` is refused by the rule's own patterns: it {why}"),
                "use a value the patterns accept, or change the patterns",
            );
            ok = false;
        }
    }
    ok.then_some(rule)
}

fn read_sources(
    r: &mut Reader,
    v: &Value<'_>,
    name: &str,
    position: IdPosition,
) -> Option<Vec<Located<IdSource>>> {
    let items = r.array(v, &format!("{name}.sources"))?;
    let (allowed, why) = position.sources();
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("`{name}.sources` is empty"),
            format!("{why}: list at least one source with {}", ticks(allowed)),
        );
        return None;
    }
    let read: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut t = r.table(item, format!("{name}.sources[{i}]"))?;
            let given: Vec<&'static str> = ["claim", "context", "value"]
                .into_iter()
                .filter(|k| t.has(k))
                .collect();
            t.allow(&["claim", "context", "value"]);
            let source = match given.as_slice() {
                [key] if allowed.contains(key) => t
                    .get(key)
                    .and_then(|v| r.nonempty_string(v, &t.path(key)))
                    .map(|s| Located {
                        value: match *key {
                            "claim" => IdSource::Claim(s.value),
                            "context" => IdSource::Context(s.value),
                            _ => IdSource::Value(s.value),
                        },
                        span: s.span,
                    }),
                [key] => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        t.key_span(key).unwrap_or(t.span()),
                        format!("`{key}` is not a source for `{name}`"),
                        format!("{why}: use {}", ticks(allowed).replace(", ", " or ")),
                    );
                    None
                }
                [] => {
                    r.error(
                        DiagnosticKind::MissingKey,
                        t.span(),
                        format!("`{}` names no source", t.name),
                        format!("{why}: use {}", ticks(allowed).replace(", ", " or ")),
                    );
                    None
                }
                many => {
                    r.error(
                        DiagnosticKind::Conflict,
                        t.span(),
                        format!(
                            "`{}` has both {}",
                            t.name,
                            ticks(many).replace(", ", " and ")
                        ),
                        format!("{why}: keep one, as its own table in `sources`"),
                    );
                    None
                }
            };
            t.finish(r);
            source
        })
        .collect();
    read.into_iter().collect()
}

fn values(list: Vec<Located<String>>) -> Vec<String> {
    list.into_iter().map(|s| s.value).collect()
}

/// The request methods a route may list (RFC 9110 §9, and PATCH).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `[[routes]]`: per-route requirements. `rules` is the policy's rules, when they could be read,
/// so that a route naming a rule can be checked.
fn read_routes(r: &mut Reader, v: &Value<'_>, rules: Option<&[Rule]>) -> Option<Vec<Route>> {
    let items = r.array(v, "routes")?;
    let mut out: Vec<Route> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("routes[{i}]")) else {
            ok = false;
            continue;
        };
        let path = match t.get("path") {
            Some(v) => r
                .nonempty_string(v, &t.path("path"))
                .and_then(|p| route_path(r, p, &t.path("path"))),
            None => {
                t.missing("path", "\"/admin\"");
                None
            }
        };
        let methods = or_default(t.get("methods"), Vec::new(), |v| {
            let list = r.strings(v, &t.path("methods"))?;
            let mut methods: Vec<String> = Vec::new();
            let mut fine = true;
            for m in list {
                if !METHODS.contains(&m.value.as_str()) {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        m.span,
                        format!("`{}` is not a request method", m.value),
                        format!("methods are upper case: one of {}", ticks(&METHODS)),
                    );
                    fine = false;
                } else if !methods.contains(&m.value) {
                    methods.push(m.value);
                }
            }
            fine.then_some(methods)
        });
        let scopes = or_default(t.get("scopes"), Vec::new(), |v| {
            scope_list(r, v, &t.path("scopes")).map(values)
        });
        let named = or_default(t.get("rules"), Vec::new(), |v| {
            let list = r.strings(v, &t.path("rules"))?;
            // Every name is checked (and every problem reported) before the answer.
            let checked: Vec<bool> = list.iter().map(|name| route_rule(r, name, rules)).collect();
            let fine = checked.iter().all(|ok| *ok);
            fine.then(|| values(list))
        });
        let span = t.span();
        t.finish(r);
        let (Some(path), Some(methods), Some(scopes), Some(named)) = (path, methods, scopes, named)
        else {
            ok = false;
            continue;
        };
        if out.iter().any(|o| o.path == path && o.methods == methods) {
            r.error(
                DiagnosticKind::Duplicate,
                span,
                format!("a second route for `{path}` with the same methods"),
                "merge the two `[[routes]]` entries",
            );
            ok = false;
            continue;
        }
        let requirement = named.into_iter().fold(
            super::routes::Requirement::new().scopes_from(scopes),
            super::routes::Requirement::rule,
        );
        out.push(Route {
            path,
            methods,
            requirement,
        });
    }
    ok.then_some(out)
}

/// A route's path prefix, as requests carry it: from `/`, no trailing `/` kept.
fn route_path(r: &mut Reader, p: Located<String>, what: &str) -> Option<String> {
    let trimmed = match p.value.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    match crate::policy::request_path(trimmed) {
        Ok(path) if path == trimmed => Some(trimmed.to_owned()),
        Ok(_) | Err(_) => {
            r.error(
                DiagnosticKind::InvalidValue,
                p.span,
                format!("`{what}` `{}` is not a plain path prefix", p.value),
                "write the path as requests carry it, from `/`, without `.` or `..` segments, `//`, a query or percent-encoded unreserved characters: `\"/admin\"`",
            );
            None
        }
    }
}

/// Whether a route may name rule `name`: a rule of the policy marked `route_only`.
fn route_rule(r: &mut Reader, name: &Located<String>, rules: Option<&[Rule]>) -> bool {
    // When the rules could not be read, their own errors are the story.
    let Some(rules) = rules else { return true };
    match rules.iter().find(|rule| rule.name == name.value) {
        Some(rule) if rule.route_only => true,
        Some(_) => {
            r.error(
                DiagnosticKind::Conflict,
                name.span.clone(),
                format!("rule `{}` already applies to every request", name.value),
                "mark the rule `route_only = true` so that only the routes naming it apply it, or remove it here",
            );
            false
        }
        None => {
            let close = rules
                .iter()
                .filter(|rule| rule.route_only)
                .map(|rule| {
                    (
                        strsim::damerau_levenshtein(&name.value, &rule.name),
                        &rule.name,
                    )
                })
                .filter(|(distance, rule)| *distance <= (rule.len() / 3).max(2))
                .min();
            let help = match close {
                Some((_, rule)) => format!("did you mean `{rule}`?"),
                None => "name a `[[rules]]` entry that has `route_only = true`".to_owned(),
            };
            r.error(
                DiagnosticKind::InvalidValue,
                name.span.clone(),
                format!("there is no rule `{}`", name.value),
                help,
            );
            false
        }
    }
}

/// The headers `jwt-policy serve` sets itself on allow: a forwarded claim may not take one.
pub(crate) const STANDARD_HEADERS: [&str; 6] = [
    "X-Auth-Subject",
    "X-Auth-Client-Id",
    "X-Auth-Scopes",
    "X-Auth-Issuer",
    "X-Auth-Audience",
    "X-Auth-Policy-Revision",
];

/// Headers a forwarded claim must never set: they carry credentials, or change how a message is
/// framed or routed.
const FORBIDDEN_HEADERS: [&str; 9] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// `[forward]`: verified claims `serve` passes on as request headers on allow.
fn read_forward(r: &mut Reader, v: &Value<'_>) -> Option<Vec<ForwardHeader>> {
    let mut t = r.table(v, "[forward]")?;
    let headers = match t.get("headers") {
        Some(v) => {
            let items = r.array(v, "forward.headers")?;
            let read: Vec<Option<ForwardHeader>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| read_forward_header(r, item, i))
                .collect();
            read.into_iter().collect::<Option<Vec<_>>>()
        }
        None => {
            t.missing(
                "headers",
                "[{ claim = \"tid\", header = \"X-Auth-Tenant\" }]",
            );
            None
        }
    };
    t.finish(r);
    let headers = headers?;
    let mut ok = true;
    for (i, h) in headers.iter().enumerate() {
        if headers
            .iter()
            .take(i)
            .any(|o| o.header.eq_ignore_ascii_case(&h.header))
        {
            r.error(
                DiagnosticKind::Duplicate,
                h.span.clone(),
                format!("header `{}` is set twice", h.header),
                "forward each claim under its own header",
            );
            ok = false;
        }
    }
    ok.then_some(headers)
}

fn read_forward_header(r: &mut Reader, v: &Value<'_>, i: usize) -> Option<ForwardHeader> {
    let mut t = r.table(v, format!("forward.headers[{i}]"))?;
    let path = match (t.get("claim"), t.get("path")) {
        (Some(c), None) => r
            .nonempty_string(c, &t.path("claim"))
            .map(|s| ClaimPath::top(&s.value)),
        (None, Some(p)) => read_path(r, p, &t.path("path")),
        (Some(_), Some(p)) => {
            r.error(
                DiagnosticKind::Conflict,
                p.span(),
                format!("`{}` has both `claim` and `path`", t.name),
                "use `claim` for a top-level claim, `path` for a nested one",
            );
            None
        }
        (None, None) => {
            t.missing("claim", "\"tid\"");
            None
        }
    };
    let header = match t.get("header") {
        Some(v) => r.nonempty_string(v, &t.path("header")).and_then(|h| {
            let token = h
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let problem = if !token {
                Some("is not a header name (letters, digits and `-`, RFC 9110 §5.1)")
            } else if STANDARD_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&h.value))
            {
                Some("is set by `jwt-policy serve` itself")
            } else if FORBIDDEN_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&h.value))
            {
                Some("carries credentials or framing, and is never set from a claim")
            } else {
                None
            };
            match problem {
                None => Some(h),
                Some(problem) => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        h.span,
                        format!("header `{}` {problem}", h.value),
                        "name a header of your own, e.g. `X-Auth-Tenant`",
                    );
                    None
                }
            }
        }),
        None => {
            t.missing("header", "\"X-Auth-Tenant\"");
            None
        }
    };
    let separator = or_default(t.get("separator"), ",".to_owned(), |v| {
        let sep = r.nonempty_string(v, &t.path("separator"))?;
        if sep.value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            Some(sep.value)
        } else {
            r.error(
                DiagnosticKind::InvalidValue,
                sep.span,
                format!("`{}` must be printable ASCII", t.path("separator")),
                "a header value holds printable ASCII: use `,` or ` `",
            );
            None
        }
    });
    t.finish(r);
    let header = header?;
    Some(ForwardHeader {
        path: path?,
        header: header.value,
        separator: separator?,
        span: header.span,
    })
}
