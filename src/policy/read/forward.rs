//! `[forward]`: the verified claims `jwt-policy serve` passes on as request headers.

use super::claims::read_claim_or_path;
use super::or_default;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::ForwardHeader;
use crate::policy::reader::{Reader, Value};

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
pub(super) fn read_forward(r: &mut Reader, v: &Value<'_>) -> Option<Vec<ForwardHeader>> {
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
    let path = read_claim_or_path(r, &mut t, "\"tid\"");
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
