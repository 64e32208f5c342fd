//! Located diagnostics: every problem in a policy file, rendered like rustc and toml render theirs.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A dangerous but valid policy: `check` still exits 0.
    Warning,
    /// An invalid policy: it cannot be compiled.
    Error,
}

/// What kind of problem a [`Diagnostic`] reports, so code can match on kinds without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// The file is not valid TOML.
    Syntax,
    /// The policy file could not be read.
    Io,
    /// A key this policy language does not define.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value has the wrong TOML type.
    WrongType,
    /// A value has the right type but is not acceptable (bad URL, duration, count, ...).
    InvalidValue,
    /// Keys that cannot be used together, or a choice that needs exactly one of several keys.
    Conflict,
    /// `${name}` refers to a variable that `[vars]` does not define.
    UndefinedVariable,
    /// A regular expression that does not compile.
    InvalidRegex,
    /// An algorithm name that is not a JWS algorithm this crate verifies.
    UnknownAlgorithm,
    /// An algorithm that can never be accepted, or not with the keys given (`none`, HMAC from a JWKS).
    ForbiddenAlgorithm,
    /// The same issuer or rule name declared twice.
    Duplicate,
    /// A key source (JWKS file, inline JWKS, HMAC secret) that cannot be loaded.
    KeySource,
    /// Lint: tokens are accepted for any audience.
    NoAudienceRule,
    /// Lint: an issuer's own URL is accepted as an audience without a `resource` guard.
    UnguardedIssuerAudience,
    /// Lint: the time leeway is over five minutes.
    LargeLeeway,
    /// Lint: `exp` is not required, so a token may never expire.
    ExpNotRequired,
    /// Lint: a regular expression that must match is not anchored at both ends.
    UnanchoredRegex,
    /// Lint: an HMAC algorithm is allowed.
    HmacAlgorithm,
    /// Lint: keys fetched over plain `http://` from a host that is not loopback.
    InsecureKeyUrl,
    /// Lint: a key that can never verify a token, or an allowed algorithm no key can verify.
    UnusableKey,
    /// Lint: a required scope that `resource.scopes_supported` does not advertise.
    UnadvertisedScope,
    /// Lint: a rule or guard that can never apply or never pass.
    UnsatisfiableRule,
    /// Lint: a variable defined in `[vars]` that nothing refers to.
    UnusedVariable,
    /// Lint: an audience alternative that repeats, or is shadowed by, an earlier one.
    RedundantAudience,
    /// Lint: a `prefix` that is a bare origin (no `/` after the host), so other hosts match too.
    OriginPrefix,
    /// Lint: a `suffix` that is a bare domain (no `.` or `@` before it), so other domains match.
    DomainSuffix,
    /// Lint: a key marked as a test key (`"x-jwt-policy-test": true`, from `jwt-policy keygen`).
    TrustsTestKey,
}

impl DiagnosticKind {
    /// Every kind, errors first, then lints.
    pub const ALL: [DiagnosticKind; 28] = [
        Self::Syntax,
        Self::Io,
        Self::UnknownKey,
        Self::MissingKey,
        Self::WrongType,
        Self::InvalidValue,
        Self::Conflict,
        Self::UndefinedVariable,
        Self::InvalidRegex,
        Self::UnknownAlgorithm,
        Self::ForbiddenAlgorithm,
        Self::Duplicate,
        Self::KeySource,
        Self::NoAudienceRule,
        Self::UnguardedIssuerAudience,
        Self::LargeLeeway,
        Self::ExpNotRequired,
        Self::UnanchoredRegex,
        Self::HmacAlgorithm,
        Self::InsecureKeyUrl,
        Self::UnusableKey,
        Self::UnadvertisedScope,
        Self::UnsatisfiableRule,
        Self::UnusedVariable,
        Self::RedundantAudience,
        Self::OriginPrefix,
        Self::DomainSuffix,
        Self::TrustsTestKey,
    ];

    /// Whether this kind is a lint (reported as a warning) rather than an error.
    pub fn is_lint(self) -> bool {
        matches!(
            self,
            Self::NoAudienceRule
                | Self::UnguardedIssuerAudience
                | Self::LargeLeeway
                | Self::ExpNotRequired
                | Self::UnanchoredRegex
                | Self::HmacAlgorithm
                | Self::InsecureKeyUrl
                | Self::UnusableKey
                | Self::UnadvertisedScope
                | Self::UnsatisfiableRule
                | Self::UnusedVariable
                | Self::RedundantAudience
                | Self::OriginPrefix
                | Self::DomainSuffix
                | Self::TrustsTestKey
        )
    }

    /// The stable kebab-case code shown in brackets after `error` or `warning`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Io => "io",
            Self::UnknownKey => "unknown-key",
            Self::MissingKey => "missing-key",
            Self::WrongType => "wrong-type",
            Self::InvalidValue => "invalid-value",
            Self::Conflict => "conflict",
            Self::UndefinedVariable => "undefined-variable",
            Self::InvalidRegex => "invalid-regex",
            Self::UnknownAlgorithm => "unknown-algorithm",
            Self::ForbiddenAlgorithm => "forbidden-algorithm",
            Self::Duplicate => "duplicate",
            Self::KeySource => "key-source",
            Self::NoAudienceRule => "no-audience-rule",
            Self::UnguardedIssuerAudience => "unguarded-issuer-audience",
            Self::LargeLeeway => "large-leeway",
            Self::ExpNotRequired => "exp-not-required",
            Self::UnanchoredRegex => "unanchored-regex",
            Self::HmacAlgorithm => "hmac-algorithm",
            Self::InsecureKeyUrl => "insecure-key-url",
            Self::UnusableKey => "unusable-key",
            Self::UnadvertisedScope => "unadvertised-scope",
            Self::UnsatisfiableRule => "unsatisfiable-rule",
            Self::UnusedVariable => "unused-variable",
            Self::RedundantAudience => "redundant-audience",
            Self::OriginPrefix => "origin-prefix",
            Self::DomainSuffix => "domain-suffix",
            Self::TrustsTestKey => "trusts-test-key",
        }
    }
}

/// One located problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What kind of problem this is.
    pub kind: DiagnosticKind,
    /// One lowercase line, user values in backticks.
    pub message: String,
    /// Byte range in the policy text the problem is about; `None` when it is about the policy as
    /// a whole (something missing rather than something written).
    pub span: Option<Range<usize>>,
    /// What to do about it, if there is something useful to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error of `kind` at `span`.
    pub(crate) fn error(
        kind: DiagnosticKind,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            kind,
            message: message.into(),
            span: Some(span),
            help: None,
        }
    }

    /// A warning (lint) of `kind` at `span`.
    pub(crate) fn warning(
        kind: DiagnosticKind,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            kind,
            message: message.into(),
            span: Some(span),
            help: None,
        }
    }

    /// A diagnostic about the policy as a whole (something missing rather than written).
    pub(crate) fn whole_file(
        severity: Severity,
        kind: DiagnosticKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            kind,
            message: message.into(),
            span: None,
            help: None,
        }
    }

    /// Adds a help line.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A policy's text with its name, able to turn byte offsets into lines and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps `text`, shown as `name` in diagnostics (usually the path it was read from).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The name shown in diagnostics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset; offsets past the end clamp to it.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, col)
    }

    /// The text of 1-based line `line`, without its line ending.
    fn line_text(&self, line: usize) -> &str {
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }

    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while offset > 0 && !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// Renders `diagnostic` against this file:
    ///
    /// ```text
    /// error[unknown-key]: unknown key `algoritms` in `issuers[0]`
    ///  --> policy.toml:7:1
    ///   |
    /// 7 | algoritms = ["RS256"]
    ///   | ^^^^^^^^^
    ///   = help: did you mean `algorithms`?
    /// ```
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let severity = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let header = format!(
            "{severity}[{}]: {}\n",
            diagnostic.kind.code(),
            diagnostic.message
        );
        let help = |pad: &str| match &diagnostic.help {
            Some(help) => format!("{pad} = help: {help}\n"),
            None => String::new(),
        };
        // About the whole policy: a location to jump to, but no source line to point into.
        let Some(span) = &diagnostic.span else {
            return format!("{header} --> {}:1:1\n{}", self.name, help(""));
        };
        let (line, col) = self.line_col(span.start);
        let text = self.line_text(line);
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        // The span within its first line: carets are clipped to it.
        let line_start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let start = self
            .floor_char_boundary(span.start)
            .saturating_sub(line_start);
        let end = span.end.clamp(span.start, line_start + text.len());
        let end = self.floor_char_boundary(end).saturating_sub(line_start);
        let shown = ShownLine::new(text, start.min(text.len())..end.min(text.len()));
        format!(
            "{header}{pad}--> {name}:{line}:{col}\n{pad} |\n{number} | {text}\n{pad} | {indent}{carets}\n{help}",
            name = self.name,
            text = shown.text,
            indent = " ".repeat(shown.indent),
            carets = "^".repeat(shown.carets),
            help = help(&pad),
        )
    }
}

/// Lines up to this many display columns wide are shown whole.
const WHOLE_LINE_COLUMNS: usize = 120;

/// Wider lines are shown as a window this wide around the span, with `…` where they were cut
/// (cutting a line only a little too wide would hide more than it saves).
const WINDOW_COLUMNS: usize = 100;

/// At least this many columns before a span too wide for the window stay in view, so the key it
/// belongs to is seen.
const CONTEXT_COLUMNS: usize = 20;

/// How many columns a tab is shown as.
const TAB_COLUMNS: usize = 4;

/// A source line as shown under a diagnostic: tabs expanded, control characters made visible,
/// long lines cut to a window, and where the carets go, all in the same display columns.
struct ShownLine {
    text: String,
    /// Columns before the first caret.
    indent: usize,
    /// At least one.
    carets: usize,
}

impl ShownLine {
    /// Shows `line` with carets under `span` (byte offsets in `line`, on character boundaries).
    fn new(line: &str, span: Range<usize>) -> Self {
        // Each character with the column it starts at.
        let mut cells = Vec::with_capacity(line.len());
        let mut width = 0;
        let (mut start, mut end) = (None, None);
        for (at, c) in line.char_indices() {
            if at == span.start {
                start = Some(width);
            }
            if at == span.end {
                end = Some(width);
            }
            let shown = shown_char(c);
            cells.push((width, shown));
            width += shown.width;
        }
        let start = start.unwrap_or(width);
        let end = end.unwrap_or(width).max(start);
        // The window [from, to) of columns shown.
        let (from, to) = if width <= WHOLE_LINE_COLUMNS {
            (0, width)
        } else {
            // Centred on a span that fits with context on both sides, else some context first.
            let span_width = end - start;
            let before = if span_width + 2 * CONTEXT_COLUMNS <= WINDOW_COLUMNS {
                (WINDOW_COLUMNS - span_width) / 2
            } else {
                CONTEXT_COLUMNS
            };
            let from = start.saturating_sub(before).min(width - WINDOW_COLUMNS);
            (from, from + WINDOW_COLUMNS)
        };
        let mut text = String::new();
        let (mut first, mut last) = (None, from);
        for (at, shown) in &cells {
            if *at >= from && at + shown.width <= to {
                first.get_or_insert(*at);
                last = at + shown.width;
                shown.push_to(&mut text);
            }
        }
        let first = first.unwrap_or(from);
        let cut_before = first > 0;
        if cut_before {
            text.insert(0, '…');
        }
        if last < width {
            text.push('…');
        }
        let start = start.max(first);
        Self {
            text,
            indent: start - first + usize::from(cut_before),
            carets: end.min(last).saturating_sub(start).max(1),
        }
    }
}

/// How one source character is shown.
#[derive(Clone, Copy)]
struct ShownChar {
    c: char,
    /// Display columns; a tab is `TAB_COLUMNS` spaces.
    width: usize,
}

impl ShownChar {
    fn push_to(self, text: &mut String) {
        if self.c == '\t' {
            text.extend(std::iter::repeat_n(' ', self.width));
        } else {
            text.push(self.c);
        }
    }
}

/// Tabs become spaces and other control characters their Unicode control pictures (`␀`, `␛`),
/// so the terminal neither moves the cursor nor obeys escapes from the policy.
fn shown_char(c: char) -> ShownChar {
    let c = match c {
        '\t' => {
            return ShownChar {
                c,
                width: TAB_COLUMNS,
            };
        }
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        c if c.is_control() => '\u{fffd}',
        c => c,
    };
    ShownChar {
        c,
        width: unicode_width::UnicodeWidthChar::width(c).unwrap_or(1),
    }
}

/// A policy that cannot be used: every error found in it, plus the warnings, in file order.
#[derive(Debug, Clone)]
pub struct PolicyError {
    source: Arc<SourceFile>,
    diagnostics: Vec<Diagnostic>,
}

impl PolicyError {
    pub(crate) fn new(source: Arc<SourceFile>, diagnostics: Vec<Diagnostic>) -> Self {
        Self {
            source,
            diagnostics,
        }
    }

    /// All diagnostics, errors and warnings, in the order they occur in the file.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The policy text the diagnostics point into.
    pub fn source(&self) -> &SourceFile {
        &self.source
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.diagnostics {
            writeln!(f, "{}", self.source.render(diagnostic))?;
        }
        let errors = self.errors().count();
        write!(
            f,
            "error: policy `{}` is invalid: {errors} error{}",
            self.source.name(),
            if errors == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let file = SourceFile::new("p.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(6), (2, 1));
        // `=` after the two-byte `é` is the fourth character of line 2.
        assert_eq!(file.line_col(10), (2, 4));
        assert_eq!(file.line_col(999), (3, 1));
    }

    #[test]
    fn renders_location_source_line_carets_and_help() {
        let file = SourceFile::new("p.toml", "[time]\nleway = 30\n");
        let d = Diagnostic::error(
            DiagnosticKind::UnknownKey,
            7..12,
            "unknown key `leway` in `[time]`",
        )
        .with_help("did you mean `leeway`?");
        assert_eq!(
            file.render(&d),
            "error[unknown-key]: unknown key `leway` in `[time]`\n --> p.toml:2:1\n  |\n2 | leway = 30\n  | ^^^^^\n  = help: did you mean `leeway`?\n"
        );
    }

    /// The source line and caret line of `file`'s rendering of an error at `span`.
    fn shown(file: &SourceFile, span: Range<usize>) -> (String, String) {
        let d = Diagnostic::error(DiagnosticKind::Syntax, span, "m");
        let out = file.render(&d);
        let lines: Vec<&str> = out.lines().collect();
        (lines[3].to_owned(), lines[4].to_owned())
    }

    #[test]
    fn tabs_are_shown_as_four_spaces_and_carets_count_them() {
        let file = SourceFile::new("p.toml", "[time]\n\t\tleway = 1\n");
        let d = Diagnostic::error(DiagnosticKind::UnknownKey, 9..14, "m");
        let out = file.render(&d);
        // The location counts a tab as one character; the shown line as four columns.
        assert!(out.contains("--> p.toml:2:3\n"), "{out}");
        assert!(
            out.contains("2 |         leway = 1\n  |         ^^^^^\n"),
            "{out}"
        );
        // A span over a tab is four carets wide.
        let (_, carets) = shown(&file, 8..9);
        assert_eq!(carets, "  |     ^^^^");
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let text = "k = \"名前\" # x\n";
        let file = SourceFile::new("p.toml", text);
        let hash = text.find('#').unwrap();
        assert_eq!(file.line_col(hash), (1, 10));
        assert_eq!(
            shown(&file, hash..hash + 1),
            (
                "1 | k = \"名前\" # x".into(),
                format!("  | {}^", " ".repeat(11))
            )
        );
        let name = text.find('名').unwrap();
        assert_eq!(shown(&file, name..name + "名前".len()).1, "  |      ^^^^");
    }

    #[test]
    fn control_characters_are_shown_as_pictures() {
        let file = SourceFile::new("p.toml", "a = \"\u{1b}[31m\u{0}\" x\n");
        let (line, carets) = shown(&file, 13..14);
        assert_eq!(line, "1 | a = \"\u{241b}[31m\u{2400}\" x");
        assert_eq!(carets, format!("  | {}^", " ".repeat(13)));
    }

    #[test]
    fn a_long_line_is_cut_on_both_sides_of_the_span() {
        let text = format!("{} key {}\n", "x".repeat(300), "y".repeat(300));
        let file = SourceFile::new("p.toml", text.as_str());
        let (line, carets) = shown(&file, 301..304);
        assert_eq!(file.line_col(301), (1, 302));
        assert!(line.starts_with("1 | …xxx"), "{line}");
        assert!(line.ends_with("yyy…"), "{line}");
        let content = line.strip_prefix("1 | ").unwrap();
        assert!(content.chars().count() <= WINDOW_COLUMNS + 2, "{line}");
        let key = content.find(" key ").unwrap() + 1;
        let indent = content[..key].chars().count();
        assert_eq!(carets, format!("  | {}^^^", " ".repeat(indent)));
    }

    #[test]
    fn a_long_line_is_cut_only_where_it_goes_on() {
        let text = format!("key {}\n", "y".repeat(300));
        let file = SourceFile::new("p.toml", text.as_str());
        let (line, carets) = shown(&file, 0..3);
        assert!(line.starts_with("1 | key yyy"), "{line}");
        assert!(line.ends_with("yyy…"), "{line}");
        assert_eq!(carets, "  | ^^^");

        let text = format!("{} key\n", "x".repeat(300));
        let file = SourceFile::new("p.toml", text.as_str());
        let (line, carets) = shown(&file, 301..304);
        assert!(line.starts_with("1 | …xxx"), "{line}");
        assert!(line.ends_with("xxx key"), "{line}");
        assert!(carets.ends_with(" ^^^"), "{carets}");
        assert_eq!(
            carets.chars().count(),
            line.chars().count(),
            "{line}\n{carets}"
        );
    }

    #[test]
    fn a_long_span_is_cut_at_the_window_edge_with_some_context_before_it() {
        let text = format!("{}regex = \"{}\"\n", " ".repeat(150), "a".repeat(500));
        let file = SourceFile::new("p.toml", text.as_str());
        let start = text.find('"').unwrap();
        let (line, carets) = shown(&file, start..text.len() - 1);
        assert!(line.contains("regex = \"aaa"), "{line}");
        assert!(line.ends_with("aaa…"), "{line}");
        let column = |s: &str, c: char| s.chars().position(|x| x == c);
        assert_eq!(column(&carets, '^'), column(&line, '"'));
        assert_eq!(carets.chars().count(), line.chars().count() - 1);
    }

    #[test]
    fn a_short_line_is_shown_whole() {
        let text = format!("{}\n", "z".repeat(WHOLE_LINE_COLUMNS));
        let file = SourceFile::new("p.toml", text.as_str());
        let (line, _) = shown(&file, 50..51);
        assert_eq!(line, format!("1 | {}", "z".repeat(WHOLE_LINE_COLUMNS)));
    }

    #[test]
    fn empty_span_gets_one_caret() {
        let file = SourceFile::new("p.toml", "x = 1");
        let d = Diagnostic::warning(DiagnosticKind::NoAudienceRule, 0..0, "m");
        assert!(file.render(&d).contains("1 | x = 1\n  | ^\n"));
    }
}
