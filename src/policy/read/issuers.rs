//! `[[issuers]]`: each issuer's `iss`, algorithms, source of public keys (a JWK set read now, or
//! keys fetched over HTTP) and HMAC secrets.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::{or_default, sha256};
use crate::algorithm::Algorithm;
use crate::jwks::{JwksSource, RemoteSource};
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::lint;
use crate::policy::model::{HmacSecret, Issuer, IssuerKeys, SecretSource};
use crate::policy::reader::{Located, Reader, Table, Value, ticks};

pub(super) fn read_issuers(r: &mut Reader, v: &Value<'_>, base_dir: &Path) -> Option<Vec<Issuer>> {
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
    if let (Some((key @ ("jwks_url" | "discovery"), span)), false) = (given.first(), r.fetches_keys)
    {
        r.error(
            DiagnosticKind::KeySource,
            span.clone(),
            format!("`{key}` fetches keys over HTTP, and this build of jwt-policy cannot"),
            "build jwt-policy with its cargo feature `remote` (on by default), or name the keys with `jwks_file` or `jwks`",
        );
        return (None, Some(span.clone()), false);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use crate::policy::diagnostic::{DiagnosticKind, Severity, SourceFile};
    use crate::policy::read::parse_with;

    /// A policy whose issuer's keys are fetched over HTTP, as `line` names them.
    fn remote_policy(line: &str) -> String {
        format!(
            "[resource]\nurl = \"https://api.example.com\"\n\n[[issuers]]\niss = \"https://idp.example.com\"\nalgorithms = [\"RS256\"]\n{line}\n\n[audience]\naccept = [{{ value = \"https://api.example.com\" }}]\n"
        )
    }

    #[test]
    fn a_build_that_cannot_fetch_keys_refuses_remote_key_sources_where_they_are_written() {
        for (line, value, key) in [
            (
                "jwks_url = \"https://idp.example.com/jwks.json\"",
                "\"https://idp.example.com/jwks.json\"",
                "jwks_url",
            ),
            ("discovery = true", "true", "discovery"),
        ] {
            let text = remote_policy(line);
            let source = || Arc::new(SourceFile::new("p.toml", text.clone()));
            let error = parse_with(source(), Path::new("."), false).unwrap_err();
            let [diagnostic] = error.diagnostics() else {
                panic!("{error}");
            };
            assert_eq!(diagnostic.severity, Severity::Error);
            assert_eq!(diagnostic.kind, DiagnosticKind::KeySource);
            assert_eq!(
                diagnostic.message,
                format!("`{key}` fetches keys over HTTP, and this build of jwt-policy cannot")
            );
            assert_eq!(
                diagnostic.help.as_deref(),
                Some(
                    "build jwt-policy with its cargo feature `remote` (on by default), or name the keys with `jwks_file` or `jwks`"
                )
            );
            let span = diagnostic.span.clone().unwrap();
            assert_eq!(&text[span], value);
            // The same policy, read by a build that fetches keys: valid.
            assert!(parse_with(source(), Path::new("."), true).is_ok());
        }
    }

    #[test]
    fn this_build_reads_remote_key_sources_as_its_features_say() {
        for line in [
            "jwks_url = \"https://idp.example.com/jwks.json\"",
            "discovery = true",
        ] {
            let read = crate::policy::Policy::from_toml("p.toml", remote_policy(line), ".");
            assert_eq!(read.is_ok(), cfg!(feature = "remote"), "{line}");
        }
    }
}
