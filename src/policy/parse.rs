//! Reads the spanned TOML tree into a validated [`Policy`], reporting every problem found.

use std::path::Path;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::diagnostic::{DiagnosticKind, PolicyError, Severity, SourceFile};
use super::lint;
use super::model::*;
use super::reader::{Located, Reader, Table, Value};
use crate::Algorithm;

/// The default maximum token size (DESIGN §4).
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

/// Parses and validates policy text. `base_dir` resolves relative file paths in the policy.
pub(crate) fn parse(source: Arc<SourceFile>, base_dir: &Path) -> Result<Policy, PolicyError> {
    let mut reader = Reader::default();
    let (root, syntax_errors) = DeTable::parse_recoverable(source.text());
    for error in &syntax_errors {
        reader.error(
            DiagnosticKind::Syntax,
            error.span().unwrap_or(0..0),
            error.message().trim().to_owned(),
            None,
        );
    }
    let policy = if syntax_errors.is_empty() {
        read_policy(&mut reader, root.get_ref(), base_dir, &source)
    } else {
        // A file that is not TOML gives only syntax errors: what the parser recovered would
        // produce follow-on errors about text the user never wrote.
        None
    };
    let mut diagnostics = reader.diagnostics;
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    match policy {
        Some(mut policy) if !diagnostics.iter().any(|d| d.severity == Severity::Error) => {
            policy.warnings = diagnostics;
            Ok(policy)
        }
        _ => Err(PolicyError::new(source, diagnostics)),
    }
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
            format!("unsupported policy version {n}"),
            Some("this release reads `version = 1`".into()),
        );
    }
    let resource = t.get("resource").and_then(|v| read_resource(r, v));
    if resource.is_none() && !t.has("resource") {
        r.error(
            DiagnosticKind::MissingKey,
            0..0,
            "the policy has no `[resource]` table",
            Some(
                "add `[resource]` with `url = \"https://...\"`, this server's resource URL".into(),
            ),
        );
    }
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
            r.error(
                DiagnosticKind::MissingKey,
                0..0,
                "the policy trusts no issuer",
                Some("add an `[[issuers]]` table with `iss`, `algorithms` and a key source".into()),
            );
            None
        }
    };
    let audience = match t.get("audience") {
        Some(v) => read_audience(r, v).map(Some),
        None => Some(None),
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
        None => Some(default_scopes()),
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
    let resource_client_id = match t.get("resource_client_id") {
        Some(v) => read_id_rule(r, v, "resource_client_id", IdPosition::Resource).map(Some),
        None => Some(None),
    };
    t.finish(r);
    r.unused_vars();

    let (resource_url, scopes_supported, resource_claim) = resource?;
    let policy = Policy {
        name: source.name().to_owned(),
        resource_url,
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
        scopes: scopes?,
        client_id: client_id?,
        resource_client_id: resource_client_id?,
        warnings: Vec::new(),
        source: source.clone(),
    };
    lint::lint(r, &policy);
    Some(policy)
}

fn read_resource(r: &mut Reader, v: &Value<'_>) -> Option<(String, Vec<String>, Presence)> {
    let mut t = r.table(v, "[resource]")?;
    let url = match t.get("url") {
        Some(v) => r
            .nonempty_string(v, "resource.url")
            .and_then(|url| check_uri(r, url)),
        None => {
            r.missing(&t, "url", "\"https://mcp.example.com/mcp\"");
            None
        }
    };
    let scopes = match t.get("scopes_supported") {
        Some(v) => r.strings(v, "resource.scopes_supported").map(values),
        None => Some(Vec::new()),
    };
    let claim = match t.get("claim") {
        Some(v) => r.choice(v, "resource.claim", PRESENCE),
        None => Some(Presence::Optional),
    };
    t.finish(r);
    Some((url?, scopes?, claim?))
}

/// An absolute URI without a fragment (RFC 8707 §2).
fn check_uri(r: &mut Reader, url: Located<String>) -> Option<String> {
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
            Some("RFC 8707 resource indicators look like `https://mcp.example.com/mcp`".into()),
        );
        return None;
    }
    Some(url.value)
}

fn read_limits(r: &mut Reader, v: &Value<'_>) -> Option<u64> {
    let mut t = r.table(v, "[limits]")?;
    let max = match t.get("max_token_bytes") {
        Some(v) => r.count(v, "limits.max_token_bytes", 64, 1 << 20),
        None => Some(DEFAULT_MAX_TOKEN_BYTES),
    };
    t.finish(r);
    max
}

fn read_header(r: &mut Reader, v: &Value<'_>) -> Option<HeaderRules> {
    let mut t = r.table(v, "[header]")?;
    let typ = match t.get("typ") {
        Some(v) => r.strings(v, "header.typ").map(|list| {
            list.into_iter()
                .map(|s| s.value.to_ascii_lowercase())
                .collect()
        }),
        None => Some(Vec::new()),
    };
    let kid = match t.get("kid") {
        Some(v) => r.choice(v, "header.kid", KID_PRESENCE),
        None => Some(Presence::Required),
    };
    let crit = match t.get("crit") {
        Some(v) => r.strings(v, "header.crit").map(values),
        None => Some(Vec::new()),
    };
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
    if let (Some(Some(Presence::Ignored)), Some(Some(_))) = (&iat, &max_age)
        && let Some(span) = t.key_span("max_age")
    {
        r.error(
            DiagnosticKind::Conflict,
            span,
            "`time.max_age` is measured from `iat`, but `time.iat` is `ignored`",
            Some("set `iat = \"required\"` (or remove `iat`, `max_age` makes it required)".into()),
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
            Some("add at least one `[[issuers]]` table".into()),
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
                        Some(
                            "merge the two `[[issuers]]` tables: one issuer, one key source".into(),
                        ),
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
        Some(v) => r.nonempty_string(v, "iss"),
        None => {
            r.missing(&t, "iss", "\"https://issuer.example.com\"");
            None
        }
    };
    let algorithms = match t.get("algorithms") {
        Some(v) => read_algorithms(r, v),
        None => {
            r.missing(&t, "algorithms", "[\"RS256\"]");
            None
        }
    };
    let jwks_file = t
        .get("jwks_file")
        .and_then(|v| r.nonempty_string(v, "jwks_file"));
    let jwks_inline = t.get("jwks").and_then(|v| r.nonempty_string(v, "jwks"));
    let hmac = match t.get("hmac_secrets") {
        Some(v) => read_hmac_secrets(r, v, &name, base_dir),
        None => Some(Vec::new()),
    };
    let jwks = match (jwks_file, jwks_inline) {
        (Some(file), Some(inline)) => {
            r.error(
                DiagnosticKind::Conflict,
                inline.span,
                format!("`{name}` has both `jwks_file` and `jwks`"),
                Some(format!(
                    "keep one: the file at {} or the inline JWKS",
                    file.value
                )),
            );
            None
        }
        (Some(file), None) => Some(Located {
            value: JwksSource::File(base_dir.join(&file.value)),
            span: file.span,
        }),
        (None, Some(inline)) => Some(Located {
            value: JwksSource::Inline(inline.value),
            span: inline.span,
        }),
        (None, None) => None,
    };
    t.finish(r);
    let iss = iss?;
    let algorithms = algorithms?;
    let hmac = hmac?;
    // Each algorithm needs a key source of its kind; each key source needs an algorithm.
    let mut ok = true;
    let (hmac_algs, public_algs): (Vec<_>, Vec<_>) =
        algorithms.iter().partition(|a| a.value.is_hmac());
    if !public_algs.is_empty() && jwks.is_none() {
        r.error(
            DiagnosticKind::MissingKey,
            v.span(),
            format!(
                "`{name}` allows {} but has no public keys",
                join_algs(&public_algs)
            ),
            Some(
                "add `jwks_file = \"keys.json\"` (relative to the policy) or an inline `jwks`"
                    .into(),
            ),
        );
        ok = false;
    }
    for alg in &hmac_algs {
        if hmac.is_empty() {
            r.error(
                DiagnosticKind::ForbiddenAlgorithm,
                alg.span.clone(),
                format!("`{}` needs a secret, and `{name}` names none", alg.value),
                Some(
                    "HMAC secrets never come from a JWKS: add `hmac_secrets = [{ env = \"VAR\" }]`"
                        .into(),
                ),
            );
            ok = false;
        }
    }
    if hmac_algs.is_empty() && !hmac.is_empty() {
        r.error(
            DiagnosticKind::Conflict,
            v.span(),
            format!("`{name}` names HMAC secrets but allows no HMAC algorithm"),
            Some("remove `hmac_secrets`, or allow `HS256`".into()),
        );
        ok = false;
    }
    if let Some(jwks) = &jwks
        && public_algs.is_empty()
    {
        r.error(
            DiagnosticKind::Conflict,
            jwks.span.clone(),
            format!("`{name}` has public keys but allows no public-key algorithm"),
            Some("allow e.g. `RS256`, or remove the key source".into()),
        );
        ok = false;
    }
    // Load static keys now, so `check` reports a missing or broken JWKS at its location.
    let keys = match &jwks {
        Some(jwks) => match crate::jwks::KeySet::load(&jwks.value) {
            Ok(set) => Some(Arc::new(set)),
            Err(e) => {
                r.error(
                    DiagnosticKind::KeySource,
                    jwks.span.clone(),
                    e.to_string(),
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    if !ok {
        return None;
    }
    Some(Located {
        value: Issuer {
            iss: iss.value,
            algorithms: algorithms.into_iter().map(|a| a.value).collect(),
            keys,
            hmac_secrets: hmac,
        },
        span: iss.span,
    })
}

fn join_algs(algs: &[&Located<Algorithm>]) -> String {
    algs.iter()
        .map(|a| format!("`{}`", a.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_algorithms(r: &mut Reader, v: &Value<'_>) -> Option<Vec<Located<Algorithm>>> {
    let names = r.strings(v, "algorithms")?;
    if names.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            "`algorithms` is empty",
            Some("allow at least one, e.g. `[\"RS256\"]`".into()),
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
                Some("remove it: unsigned tokens are never accepted".into()),
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
                    None,
                );
                ok = false;
            }
            Some(alg) => {
                let alg = Located {
                    value: alg,
                    span: name.span,
                };
                lint::hmac(r, &alg);
                out.push(alg);
            }
            None => {
                let close = Algorithm::ALL
                    .iter()
                    .find(|a| a.as_str().eq_ignore_ascii_case(&name.value));
                let help = match close {
                    Some(a) => format!("algorithm names are case-sensitive: did you mean `{a}`?"),
                    None => format!(
                        "supported: {}",
                        Algorithm::ALL
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                r.error(
                    DiagnosticKind::UnknownAlgorithm,
                    name.span,
                    format!("unknown algorithm `{}`", name.value),
                    Some(help),
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
    let items = r.array(v, "hmac_secrets")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("{issuer}.hmac_secrets[{i}]")) else {
            ok = false;
            continue;
        };
        let kid = t
            .get("kid")
            .and_then(|v| r.nonempty_string(v, "kid"))
            .map(|k| k.value);
        let env = t.get("env").and_then(|v| r.nonempty_string(v, "env"));
        let file = t.get("file").and_then(|v| r.nonempty_string(v, "file"));
        let source = match (env, file) {
            (Some(env), None) => Some(SecretSource::Env(env.value)),
            (None, Some(file)) => Some(SecretSource::File(base_dir.join(file.value))),
            _ => {
                r.error(
                    DiagnosticKind::Conflict,
                    t.span(),
                    format!("`{}` needs exactly one of `env` and `file`", t.name),
                    Some("the policy names where the secret is, never the secret itself".into()),
                );
                None
            }
        };
        t.finish(r);
        match source {
            Some(source) => out.push(HmacSecret { kid, source }),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_audience(r: &mut Reader, v: &Value<'_>) -> Option<AudienceRule> {
    let mut t = r.table(v, "[audience]")?;
    let mode = match t.get("mode") {
        Some(v) => r.choice(
            v,
            "audience.mode",
            &[("any", Match::Any), ("all", Match::All)],
        ),
        None => Some(Match::Any),
    };
    let accept = match t.get("accept") {
        Some(v) => read_alternatives(r, v),
        None => {
            r.missing(&t, "accept", "[{ value = \"${resource_url}\" }]");
            None
        }
    };
    t.finish(r);
    Some(AudienceRule {
        mode: mode?,
        accept: accept?,
    })
}

fn read_alternatives(r: &mut Reader, v: &Value<'_>) -> Option<Vec<AudienceAlternative>> {
    let items = r.array(v, "audience.accept")?;
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            "`audience.accept` is empty, so no token could pass",
            Some("accept at least this resource: `{ value = \"${resource_url}\" }`".into()),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let alt = (|| {
            let mut t = r.table(item, format!("audience.accept[{i}]"))?;
            let value = match t.get("value") {
                Some(v) => r.nonempty_string(v, "value"),
                None => {
                    r.missing(&t, "value", "\"${resource_url}\"");
                    None
                }
            };
            let resource = match t.get("resource") {
                Some(v) => r.nonempty_string(v, "resource").map(|s| Some(s.value)),
                None => Some(None),
            };
            t.finish(r);
            Some(AudienceAlternative {
                value: value?.value,
                resource: resource?,
                span: item.span(),
            })
        })();
        match alt {
            Some(alt) => out.push(alt),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_claims(r: &mut Reader, v: &Value<'_>) -> (Option<Vec<ClaimPath>>, Option<Vec<Constraint>>) {
    let Some(mut t) = r.table(v, "[claims]") else {
        return (None, None);
    };
    let required = match t.get("required") {
        Some(v) => r.array(v, "claims.required").and_then(|items| {
            let paths: Vec<_> = items
                .iter()
                .map(|item| read_path(r, item, "claims.required"))
                .collect();
            paths.into_iter().collect::<Option<Vec<_>>>()
        }),
        None => Some(Vec::new()),
    };
    let constraints = match t.get("constraints") {
        Some(v) => r.array(v, "claims.constraints").and_then(|items| {
            let read: Vec<_> = items
                .iter()
                .enumerate()
                .map(|(i, item)| read_constraint(r, item, &format!("claims.constraints[{i}]")))
                .collect();
            read.into_iter().collect::<Option<Vec<_>>>()
        }),
        None => Some(Vec::new()),
    };
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
                    None,
                );
                return None;
            }
            Some(ClaimPath(values(segments)))
        }
        _ => {
            r.error(
                DiagnosticKind::WrongType,
                v.span(),
                format!("`{what}` must name a claim: a string, or an array of strings for a nested claim"),
                Some("e.g. `\"sub\"` or `[\"realm_access\", \"roles\"]`".into()),
            );
            None
        }
    }
}

fn read_constraint(r: &mut Reader, v: &Value<'_>, name: &str) -> Option<Constraint> {
    let mut t = r.table(v, name)?;
    let c = read_constraint_fields(r, &mut t);
    t.finish(r);
    c
}

/// The constraint keys of a table (shared by `claims.constraints` and rule conditions).
fn read_constraint_fields(r: &mut Reader, t: &mut Table<'_, '_>) -> Option<Constraint> {
    let name = t.name.clone();
    let claim = t.get("claim");
    let path = t.get("path");
    let path = match (claim, path) {
        (Some(c), None) => match c.get_ref() {
            DeValue::String(_) => r
                .nonempty_string(c, "claim")
                .map(|s| ClaimPath::top(&s.value)),
            _ => {
                r.error(
                    DiagnosticKind::WrongType,
                    c.span(),
                    "`claim` must be a string",
                    Some("for a nested claim write `path = [\"outer\", \"inner\"]`".into()),
                );
                None
            }
        },
        (None, Some(p)) => read_path(r, p, "path"),
        (Some(_), Some(p)) => {
            r.error(
                DiagnosticKind::Conflict,
                p.span(),
                format!("`{name}` has both `claim` and `path`"),
                Some("use `claim` for a top-level claim, `path` for a nested one".into()),
            );
            None
        }
        (None, None) => {
            r.missing(t, "claim", "\"sub\"");
            None
        }
    };
    let format = match t.get("format") {
        Some(v) => r.choice(v, "format", FORMATS),
        None => Some(ValueFormat::StringOrArray),
    };
    let if_present = match t.get("if_present") {
        Some(v) => r.bool(v, "if_present"),
        None => Some(false),
    };
    let mut tests = Vec::new();
    let mut ok = true;
    let mut push = |test: Option<ClaimTest>| match test {
        Some(test) => tests.push(test),
        None => ok = false,
    };
    if let Some(v) = t.get("present") {
        push(r.bool(v, "present").map(ClaimTest::Present));
    }
    if let Some(v) = t.get("equals") {
        push(read_literal(r, v, "equals").map(ClaimTest::Equals));
    }
    if let Some(v) = t.get("one_of") {
        push(
            r.array(v, "one_of")
                .and_then(|items| {
                    items
                        .iter()
                        .map(|i| read_literal(r, i, "one_of"))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                })
                .map(ClaimTest::OneOf),
        );
    }
    if let Some(v) = t.get("prefix") {
        push(
            r.nonempty_string(v, "prefix")
                .map(|s| ClaimTest::Prefix(s.value)),
        );
    }
    if let Some(v) = t.get("suffix") {
        push(
            r.nonempty_string(v, "suffix")
                .map(|s| ClaimTest::Suffix(s.value)),
        );
    }
    if let Some(v) = t.get("regex") {
        push(read_pattern(r, v, "regex").map(ClaimTest::Regex));
    }
    let fmt = format.unwrap_or(ValueFormat::StringOrArray);
    if let Some(v) = t.get("contains") {
        push(
            r.nonempty_string(v, "contains")
                .map(|s| ClaimTest::Contains(s.value, fmt)),
        );
    }
    if let Some(v) = t.get("contains_any") {
        push(
            r.strings(v, "contains_any")
                .map(|s| ClaimTest::ContainsAny(values(s), fmt)),
        );
    }
    if let Some(v) = t.get("contains_all") {
        push(
            r.strings(v, "contains_all")
                .map(|s| ClaimTest::ContainsAll(values(s), fmt)),
        );
    }
    if let Some(v) = t.get("type") {
        push(r.choice(v, "type", TYPES).map(ClaimTest::Type));
    }
    if ok && tests.is_empty() && path.is_some() {
        r.error(
            DiagnosticKind::MissingKey,
            t.span(),
            format!("`{name}` names a claim but tests nothing"),
            Some("add a test: `present`, `equals`, `one_of`, `prefix`, `suffix`, `regex`, `contains`, `contains_any`, `contains_all` or `type`".into()),
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
                        None,
                    );
                    None
                }
            }
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            let json_like = text
                .trim_start_matches(['+', '-'])
                .starts_with(|c: char| c.is_ascii_digit());
            if json_like && text.parse::<f64>().is_ok_and(f64::is_finite) {
                Some(Literal::Number(text.trim_start_matches('+').to_owned()))
            } else {
                r.error(
                    DiagnosticKind::InvalidValue,
                    v.span(),
                    format!("`{what}` must be a finite number"),
                    None,
                );
                None
            }
        }
        _ => {
            r.error(
                DiagnosticKind::WrongType,
                v.span(),
                format!(
                    "`{what}` must be a string, number or boolean, found {}",
                    value_kind(v)
                ),
                None,
            );
            None
        }
    }
}

fn value_kind(v: &Value<'_>) -> &'static str {
    match v.get_ref() {
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
        DeValue::Datetime(_) => "a datetime",
        _ => "another type",
    }
}

fn read_pattern(r: &mut Reader, v: &Value<'_>, what: &str) -> Option<Pattern> {
    let s = r.nonempty_string(v, what)?;
    // Bounded so a policy cannot make matching slow or memory-hungry; `regex` is linear-time.
    match regex::RegexBuilder::new(&s.value)
        .size_limit(1 << 20)
        .build()
    {
        Ok(regex) => Some(Pattern {
            source: s.value,
            regex,
            span: s.span,
        }),
        Err(e) => {
            let detail = e.to_string();
            let last = detail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            r.error(
                DiagnosticKind::InvalidRegex,
                s.span,
                format!("`{what}` is not a valid regular expression: `{}`", s.value),
                Some(last.trim_start_matches("error: ").to_owned()),
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
            Some(v) => r.nonempty_string(v, "name"),
            None => {
                r.missing(&t, "name", "\"admin-needs-mfa\"");
                None
            }
        };
        if let Some(n) = &name
            && out.iter().any(|rule| rule.name == n.value)
        {
            r.error(
                DiagnosticKind::Duplicate,
                n.span.clone(),
                format!("rule name `{}` is used twice", n.value),
                Some("decisions cite rules by name: make each unique".into()),
            );
            ok = false;
        }
        let description = t
            .get("description")
            .and_then(|v| r.string(v, "description"))
            .map(|s| s.value);
        let when = match t.get("when") {
            Some(v) => read_condition(r, v, &format!("rules[{i}].when"), 0).map(Some),
            None => Some(None),
        };
        let require = match t.get("require") {
            Some(v) => read_condition(r, v, &format!("rules[{i}].require"), 0),
            None => {
                r.missing(&t, "require", "{ claim = \"amr\", contains = \"mfa\" }");
                None
            }
        };
        t.finish(r);
        match (name, when, require) {
            (Some(name), Some(when), Some(require)) => {
                out.push(Rule {
                    name: name.value,
                    description,
                    when,
                    require,
                    span: name.span,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Conditions nest at most this deep, so evaluation recursion is bounded by the policy's author.
const MAX_CONDITION_DEPTH: usize = 16;

fn read_condition(r: &mut Reader, v: &Value<'_>, name: &str, depth: usize) -> Option<Condition> {
    if depth > MAX_CONDITION_DEPTH {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("conditions nest deeper than {MAX_CONDITION_DEPTH} levels"),
            None,
        );
        return None;
    }
    let mut t = r.table(v, name)?;
    let combinators = ["all", "any", "not"];
    let present: Vec<&str> = combinators.iter().copied().filter(|k| t.has(k)).collect();
    let condition = match present.as_slice() {
        [] => {
            t.allow(&["all", "any", "not"]);
            read_constraint_fields(r, &mut t).map(Condition::Claim)
        }
        [one] => {
            let others: Vec<String> = CONSTRAINT_KEYS
                .iter()
                .filter(|k| t.has(k))
                .map(|k| format!("`{k}`"))
                .collect();
            if !others.is_empty() {
                r.error(
                    DiagnosticKind::Conflict,
                    t.span(),
                    format!(
                        "`{name}` mixes `{one}` with constraint keys {}",
                        others.join(", ")
                    ),
                    Some(format!(
                        "move the constraint into the `{one}` list as its own table"
                    )),
                );
            }
            let value = t.get(one)?;
            let inner = match *one {
                "not" => read_condition(r, value, &format!("{name}.not"), depth + 1)
                    .map(|c| Condition::Not(Box::new(c))),
                list => {
                    let items = r.array(value, &format!("{name}.{list}"))?;
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
            };
            // The constraint keys were reported above as a conflict, not as unknown.
            t.allow(&CONSTRAINT_KEYS);
            if others.is_empty() { inner } else { None }
        }
        many => {
            r.error(
                DiagnosticKind::Conflict,
                t.span(),
                format!(
                    "`{name}` has {}; a condition is one of them",
                    many.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                Some("nest them: `{ all = [{ any = [...] }, { not = {...} }] }`".into()),
            );
            t.allow(&["all", "any", "not"]);
            t.allow(&CONSTRAINT_KEYS);
            None
        }
    };
    t.finish(r);
    condition
}

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

fn default_scopes() -> ScopeRules {
    ScopeRules {
        claims: vec![
            ("scope".into(), ValueFormat::SpaceDelimited),
            ("scp".into(), ValueFormat::SpaceDelimitedOrArray),
        ],
        required: Vec::new(),
    }
}

fn read_scopes(r: &mut Reader, v: &Value<'_>) -> Option<ScopeRules> {
    let mut t = r.table(v, "[scopes]")?;
    let claims = match t.get("claims") {
        Some(v) => r.array(v, "scopes.claims").and_then(|items| {
            if items.is_empty() {
                r.error(
                    DiagnosticKind::InvalidValue,
                    v.span(),
                    "`scopes.claims` is empty",
                    Some("e.g. `[{ claim = \"scope\", format = \"space_delimited\" }]`".into()),
                );
                return None;
            }
            let read: Vec<_> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut t = r.table(item, format!("scopes.claims[{i}]"))?;
                    let claim = match t.get("claim") {
                        Some(v) => r.nonempty_string(v, "claim").map(|s| s.value),
                        None => {
                            r.missing(&t, "claim", "\"scope\"");
                            None
                        }
                    };
                    let format = match t.get("format") {
                        Some(v) => r.choice(v, "format", FORMATS),
                        None => Some(ValueFormat::SpaceDelimitedOrArray),
                    };
                    t.finish(r);
                    Some((claim?, format?))
                })
                .collect();
            read.into_iter().collect::<Option<Vec<_>>>()
        }),
        None => Some(default_scopes().claims),
    };
    let required = match t.get("required") {
        Some(v) => r.strings(v, "scopes.required").and_then(|list| {
            let bad: Vec<_> = list
                .iter()
                .filter(|s| s.value.contains(' '))
                .cloned()
                .collect();
            for s in &bad {
                r.error(
                    DiagnosticKind::InvalidValue,
                    s.span.clone(),
                    format!("scope `{}` contains a space", s.value),
                    Some("list each scope as its own string".into()),
                );
            }
            bad.is_empty().then(|| values(list))
        }),
        None => Some(Vec::new()),
    };
    t.finish(r);
    Some(ScopeRules {
        claims: claims?,
        required: required?,
    })
}

/// Which identifier an `IdRule` resolves: the calling client's (from claims) or this server's own
/// (from the run-time context, resolved once when the engine is built).
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdPosition {
    Client,
    Resource,
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
            r.missing(&t, "sources", example);
            None
        }
    };
    let required = match t.get("required") {
        Some(v) => r.bool(v, &format!("{name}.required")),
        None => Some(true),
    };
    let allow = match t.get("allow") {
        Some(v) => read_pattern(r, v, &format!("{name}.allow")).map(Some),
        None => Some(None),
    };
    let refuse = match t.get("refuse") {
        Some(v) => r.array(v, &format!("{name}.refuse")).and_then(|items| {
            let read: Vec<_> = items
                .iter()
                .map(|i| read_pattern(r, i, &format!("{name}.refuse")))
                .collect();
            read.into_iter().collect::<Option<Vec<_>>>()
        }),
        None => Some(Vec::new()),
    };
    t.finish(r);
    Some(IdRule {
        sources: sources?,
        required: required?,
        allow: allow?,
        refuse: refuse?,
    })
}

fn read_sources(
    r: &mut Reader,
    v: &Value<'_>,
    name: &str,
    position: IdPosition,
) -> Option<Vec<IdSource>> {
    let items = r.array(v, &format!("{name}.sources"))?;
    if items.is_empty() {
        r.error(
            DiagnosticKind::InvalidValue,
            v.span(),
            format!("`{name}.sources` is empty"),
            None,
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = r.table(item, format!("{name}.sources[{i}]")) else {
            ok = false;
            continue;
        };
        let allowed: &[&'static str] = match position {
            IdPosition::Client => &["claim"],
            IdPosition::Resource => &["context", "value"],
        };
        let given: Vec<&'static str> = ["claim", "context", "value"]
            .into_iter()
            .filter(|k| t.has(k))
            .collect();
        let source = match given.as_slice() {
            [key] if allowed.contains(key) => {
                let value = t.get(key).and_then(|v| r.nonempty_string(v, key));
                value.map(|s| match *key {
                    "claim" => IdSource::Claim(s.value),
                    "context" => IdSource::Context(s.value),
                    _ => IdSource::Value(s.value),
                })
            }
            [key] => {
                let why = match position {
                    IdPosition::Client => "the calling client's id comes from the token's claims",
                    IdPosition::Resource => {
                        "this server's own id is resolved once, when the engine is built, from the service's context or a fixed value"
                    }
                };
                r.error(
                    DiagnosticKind::InvalidValue,
                    t.key_span(key).unwrap_or(t.span()),
                    format!("`{key}` is not a source for `{name}`"),
                    Some(format!(
                        "{why}: use {}",
                        allowed
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )),
                );
                t.get(key);
                None
            }
            _ => {
                r.error(
                    DiagnosticKind::Conflict,
                    t.span(),
                    format!(
                        "`{}` needs exactly one of {}",
                        t.name,
                        allowed
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None,
                );
                for key in given {
                    t.get(key);
                }
                None
            }
        };
        t.finish(r);
        match source {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn values(list: Vec<Located<String>>) -> Vec<String> {
    list.into_iter().map(|s| s.value).collect()
}
