//! `[resource]`: this server's resource URL, its name, documentation and advertised scopes.

use super::scopes::scope_list;
use super::{PRESENCE, or_default, values};
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::Presence;
use crate::policy::reader::{Located, Reader, Value};

/// What `[resource]` says.
pub(super) struct ResourceTable {
    pub(super) url: Located<String>,
    pub(super) scopes_supported: Vec<String>,
    pub(super) claim: Presence,
    pub(super) name: Option<String>,
    pub(super) documentation: Option<String>,
}

pub(super) fn read_resource(r: &mut Reader, v: &Value<'_>) -> Option<ResourceTable> {
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
