//! How TOML syntax errors become diagnostics: each one at the place the user has to fix, and no
//! errors that only follow from an earlier one.
//!
//! `toml` recovers from syntax errors and reports every one it meets, which after an unclosed
//! `[` or `{` means dozens: the parser reads the rest of the file as values of that array or
//! table, and complains about each table header and key it meets there, never at the line that
//! is wrong. The rules, applied to the errors in file order:
//!
//! * an error inside an array, inline table or multi-line string that is never closed is
//!   reported once, at its opening `[`, `{` or `"""`, with where to put the `]` or `}`; every
//!   later error up to the end of that region is dropped (the parser never leaves it, so they are
//!   all consequences);
//! * on any other line, only the first error is kept: the parser starts afresh on each line
//!   outside arrays and inline tables, so a second error on the same line almost always comes
//!   from the first, while errors on separate lines are independent and all reported.
//!
//! `toml::de::Error` does not say where the array or table an error is in was opened, so the
//! text is parsed a second time (only when it has errors) with `toml_parser`, the parser `toml`
//! itself uses, whose errors carry that context.

use std::ops::Range;

use toml_parser::lexer::{Token, TokenKind};
use toml_parser::parser::{EventReceiver, RecursionGuard, parse_document};
use toml_parser::{ParseError, Source};

use super::diagnostic::{Diagnostic, DiagnosticKind, SourceFile};

/// How deep arrays and inline tables may nest; the same limit `toml` parses with, so both parses
/// give up at the same depth.
const MAX_NESTING: u32 = 80;

/// An array, inline table or multi-line string that is never closed.
struct Unclosed {
    /// `[`, `{`, `"""` or `'''`.
    open: Range<usize>,
    /// Where the parser gave up looking for the close: the end of the file's last value (or of
    /// the file, for a string).
    end: usize,
    what: Region,
}

#[derive(Clone, Copy)]
enum Region {
    Array,
    InlineTable,
    /// With its delimiter.
    MultiLineString(&'static str),
}

/// Receives the parser's events and ignores them: only its errors are wanted.
struct IgnoreEvents;

impl EventReceiver for IgnoreEvents {}

/// The diagnostics for `errors`, the syntax errors `toml` found in `source`, in file order.
pub(super) fn diagnostics(source: &SourceFile, errors: &[toml::de::Error]) -> Vec<Diagnostic> {
    if errors.is_empty() {
        return Vec::new();
    }
    let text = source.text();
    let tokens = Source::new(text).lex().into_vec();
    let unclosed = unclosed(text, &tokens);
    let mut errors: Vec<(Range<usize>, &toml::de::Error)> = errors
        .iter()
        .map(|e| (e.span().unwrap_or(0..0), e))
        .collect();
    errors.sort_by_key(|(span, _)| span.start);

    let mut out = Vec::new();
    // Errors up to here are consequences of one already reported.
    let mut covered_until: Option<usize> = None;
    let mut last_line = None;
    for (span, error) in errors {
        let at = span.start;
        if covered_until.is_some_and(|end| at <= end) {
            continue;
        }
        // The innermost never-closed array, table or string this error is in: the one whose
        // missing close made the parser misread what follows.
        let regions = || {
            unclosed
                .iter()
                .filter(move |u| u.open.start <= at && at <= u.end)
        };
        if let Some(u) = regions().max_by_key(|u| u.open.start) {
            covered_until = regions().map(|u| u.end).max();
            last_line = Some(source.line_col(u.open.start).0);
            out.push(unclosed_diagnostic(source, &tokens, u, at));
            continue;
        }
        let line = source.line_col(at).0;
        if last_line == Some(line) {
            continue;
        }
        last_line = Some(line);
        let (message, help) = syntax_message(error.message().trim(), text.get(span.clone()));
        out.push(Diagnostic::error(DiagnosticKind::Syntax, span, message).with_help(help));
    }
    out
}

/// Every array, inline table and multi-line string in `tokens` that is never closed.
fn unclosed(text: &str, tokens: &[Token]) -> Vec<Unclosed> {
    let mut errors: Vec<ParseError> = Vec::new();
    let mut events = IgnoreEvents;
    let mut guarded = RecursionGuard::new(&mut events, MAX_NESTING);
    parse_document(tokens, &mut guarded, &mut errors);
    let brackets = errors.iter().filter_map(|e| {
        let what = match e.description() {
            "unclosed array" => Region::Array,
            "unclosed inline table" => Region::InlineTable,
            _ => return None,
        };
        let open = e.context()?;
        Some(Unclosed {
            open: open.start()..open.end(),
            end: e.unexpected().map_or(open.end(), |s| s.end()),
            what,
        })
    });
    // The lexer runs a multi-line string without its closing delimiter to the end of the file.
    let strings = tokens.iter().filter_map(|t| {
        let delimiter = match t.kind() {
            TokenKind::MlBasicString => "\"\"\"",
            TokenKind::MlLiteralString => "'''",
            _ => return None,
        };
        let span = t.span().start()..t.span().end();
        let raw = text.get(span.clone())?;
        let closed = raw.len() >= 2 * delimiter.len() && raw.ends_with(delimiter);
        (!closed).then(|| Unclosed {
            open: span.start..span.start + delimiter.len(),
            end: span.end,
            what: Region::MultiLineString(delimiter),
        })
    });
    brackets.chain(strings).collect()
}

/// The one error for a region that is never closed, whose first error is at `first_error`.
fn unclosed_diagnostic(
    source: &SourceFile,
    tokens: &[Token],
    u: &Unclosed,
    first_error: usize,
) -> Diagnostic {
    let (what, open, close, owner) = match u.what {
        Region::Array => ("array", "[", "]", "array"),
        Region::InlineTable => ("inline table", "{", "}", "table"),
        Region::MultiLineString(delimiter) => {
            // Where a string was meant to end cannot be told from what follows it.
            return Diagnostic::error(
                DiagnosticKind::Syntax,
                u.open.clone(),
                format!("unclosed multi-line string: this `{delimiter}` is never closed"),
            )
            .with_help(format!("add `{delimiter}` where the string ends"));
        }
    };
    // The close belongs after the last value before the first error. When that error is on a
    // later line than the opening, the whole of its line is what the parser misread (a `[table]`
    // header, a `key = value`), so the close goes before that line, not before the error on it.
    // When the first error is the "unclosed" one itself, the values run to the end of the file.
    let limit = if first_error < u.end
        && source.line_col(first_error).0 > source.line_col(u.open.start).0
    {
        line_start_of(source.text(), first_error)
    } else {
        first_error
    };
    let after = tokens
        .iter()
        .filter(|t| {
            !matches!(
                t.kind(),
                TokenKind::Whitespace | TokenKind::Newline | TokenKind::Comment | TokenKind::Eof
            )
        })
        .map(|t| t.span().end())
        .filter(|&end| end >= u.open.end && end <= limit)
        .max()
        .unwrap_or(u.open.end);
    let (line, col) = source.line_col(after);
    Diagnostic::error(
        DiagnosticKind::Syntax,
        u.open.clone(),
        format!("unclosed {what}: this `{open}` is never closed"),
    )
    .with_help(format!(
        "add `{close}` at line {line}, column {col}, after the {owner}'s last value"
    ))
}

/// The byte offset where the line holding `offset` starts.
fn line_start_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |newline| newline + 1)
}

/// The toml crate's message, made specific where it can be, with advice.
fn syntax_message(message: &str, text: Option<&str>) -> (String, String) {
    let text = text.unwrap_or("").trim();
    if message == "duplicate key" && !text.is_empty() {
        return (
            format!("duplicate key `{text}`"),
            "each key may appear once in a table: remove or rename one of them".into(),
        );
    }
    if message.contains("string values must be quoted") {
        return (message.to_owned(), "quote it: `\"...\"`".into());
    }
    (
        message.to_owned(),
        "the policy must be valid TOML (https://toml.io)".into(),
    )
}
