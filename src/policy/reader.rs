//! A walker over the spanned TOML tree that collects every problem instead of stopping at the
//! first one (serde's derive stops at the first error and loses spans in flattened maps).
//!
//! `toml::de::DeTable` is the spanned mirror of the file; [`Reader`] turns its values into typed
//! values, records what it could not, and [`Table::finish`] reports the keys nobody asked for.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Diagnostic, DiagnosticKind, Severity};
use super::pattern;

/// How `${variable}` values are inserted into a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insert {
    /// As they are.
    Text,
    /// Into the text of a regular expression, as a literal: escaped.
    RegexLiteral,
}

/// A spanned TOML value.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// A value with the byte range it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) span: Range<usize>,
}

/// A variable from `[vars]`.
#[derive(Debug)]
struct Var {
    value: String,
    span: Range<usize>,
    used: bool,
}

/// Collects diagnostics and substitutes `${variables}` while the policy is read.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub(crate) diagnostics: Vec<Diagnostic>,
    vars: BTreeMap<String, Var>,
    /// The files the policy names, in the order read, with the SHA-256 of those whose content
    /// is part of the policy's revision (key sets; never secrets).
    pub(crate) files: Vec<(std::path::PathBuf, Option<[u8; 32]>)>,
    /// Whether this build fetches keys over HTTP: where it does not, `jwks_url` and
    /// `discovery = true` are errors where they are written.
    pub(crate) fetches_keys: bool,
}

/// A TOML table being read; remembers which keys were asked for.
pub(crate) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    span: Range<usize>,
    /// How diagnostics name this table: `[time]`, `issuers[0]`, `audience.accept[1]`.
    pub(crate) name: String,
    known: Vec<&'static str>,
    /// Required keys found missing, reported by [`Table::finish`] (unless a misspelling of one
    /// is reported there instead).
    missing: Vec<(&'static str, String)>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The whole table's span.
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The value of `key`, if present; marks `key` as known either way.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        self.known.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    /// Marks `keys` as known without reading them (they are reported some other way, or are
    /// offered as "did you mean" candidates).
    pub(crate) fn allow(&mut self, keys: &[&'static str]) {
        self.known.extend_from_slice(keys);
    }

    /// The span of `key` itself (for diagnostics about the key rather than its value).
    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, _)| k.span())
    }

    /// Notes that required `key` is missing; `example` is its value in the help line.
    pub(crate) fn missing(&mut self, key: &'static str, example: &str) {
        self.missing.push((key, example.to_owned()));
    }

    /// The dotted name of `key` in this table, for messages: `issuers[0].iss`, `time.leeway`.
    pub(crate) fn path(&self, key: &str) -> String {
        match self
            .name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
        {
            Some(table) => format!("{table}.{key}"),
            None if self.name == ROOT => key.to_owned(),
            None => format!("{}.{key}", self.name),
        }
    }

    /// Whether the table has `key`, without marking it known.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.get_ref() == key)
    }

    /// Reports every key that was never asked for, with a "did you mean" when one is close, and
    /// the missing required keys (except one whose misspelling was just reported).
    pub(crate) fn finish(mut self, reader: &mut Reader) {
        #[cfg(test)]
        keys_read::record(&self.name, &self.known);
        for (key, value) in self.entries.iter() {
            let name = key.get_ref().as_ref();
            if self.known.contains(&name) {
                continue;
            }
            let closest = self
                .known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(name, k), *k))
                .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
                .min()
                .map(|(_, k)| k);
            let help = match closest {
                Some(k) => {
                    self.missing.retain(|(m, _)| *m != k);
                    format!("did you mean `{k}`?")
                }
                None => {
                    let mut keys = self.known.clone();
                    keys.sort_unstable();
                    keys.dedup();
                    format!("known keys here: {}", ticks(&keys))
                }
            };
            let message = match (self.name.as_str(), value.get_ref()) {
                (ROOT, DeValue::Table(_)) => format!("unknown table `[{name}]`"),
                (ROOT, _) => format!("unknown top-level key `{name}`"),
                (table, _) => format!("unknown key `{name}` in `{table}`"),
            };
            reader.error(DiagnosticKind::UnknownKey, key.span(), message, help);
        }
        for (key, example) in std::mem::take(&mut self.missing) {
            reader.error(
                DiagnosticKind::MissingKey,
                self.span(),
                format!("`{}` needs `{key}`", self.name),
                format!("add `{key} = {example}`"),
            );
        }
    }
}

/// How the root table is named.
const ROOT: &str = "policy";

/// Test-only: the keys each table was asked for (read or allowed), by table path with indexes
/// left out (`issuers[].hmac_secrets[]`; the root is `""`), so that a test can hold the policy
/// schema (`schema.json`) to exactly the keys the reader knows.
#[cfg(test)]
pub(crate) mod keys_read {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    /// Known keys by table path.
    pub(crate) type Keys = BTreeMap<String, BTreeSet<&'static str>>;

    thread_local! {
        static RECORDED: RefCell<Option<Keys>> = const { RefCell::new(None) };
    }

    /// Starts recording on this thread, forgetting what was recorded before.
    pub(crate) fn start() {
        RECORDED.with(|r| *r.borrow_mut() = Some(Keys::new()));
    }

    /// Stops recording on this thread and returns what was recorded.
    pub(crate) fn take() -> Keys {
        RECORDED.with(|r| r.borrow_mut().take()).unwrap_or_default()
    }

    pub(super) fn record(name: &str, known: &[&'static str]) {
        RECORDED.with(|r| {
            if let Some(keys) = r.borrow_mut().as_mut() {
                keys.entry(path(name))
                    .or_default()
                    .extend(known.iter().copied());
            }
        });
    }

    /// `[time]` → `time`, `issuers[0].hmac_secrets[1]` → `issuers[].hmac_secrets[]`.
    pub(crate) fn path(name: &str) -> String {
        if name == super::ROOT {
            return String::new();
        }
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let mut out = String::with_capacity(name.len());
        let mut in_index = false;
        for c in name.chars() {
            match c {
                '[' => in_index = true,
                ']' => {
                    in_index = false;
                    out.push_str("[]");
                }
                _ if in_index => {}
                c => out.push(c),
            }
        }
        out
    }
}

/// The policy schema held to the reader.
#[cfg(test)]
#[path = "schema_sync.rs"]
mod schema_sync;

/// `a, b, c` → "`a`, `b`, `c`".
pub(crate) fn ticks<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|i| format!("`{}`", i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key that identifies an item of these arrays of tables, for an example item.
const ITEM_KEYS: [(&str, &str); 7] = [
    ("accept", "value"),
    ("constraints", "claim"),
    ("all", "claim"),
    ("any", "claim"),
    ("claims", "claim"),
    ("sources", "claim"),
    ("hmac_secrets", "env"),
];

/// A string value found where an item table was expected, longer than this, is not repeated in
/// the example.
const MAX_EXAMPLE_CHARS: usize = 60;

/// For a table named `name` in diagnostics (`[resource]`, `audience.accept[0]`,
/// `rules[0].require`) but written as `found`: its plain name, and help that is valid TOML for
/// where it is.
fn how_to_write_table(name: &str, found: &DeValue<'_>) -> (String, String) {
    if let Some(table) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return (
            table.to_owned(),
            format!("write it as a `[{table}]` table or an inline table `{{ ... }}`"),
        );
    }
    let array = name
        .strip_suffix(']')
        .and_then(|n| n.rsplit_once('['))
        .filter(|(_, index)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .map(|(array, _)| array);
    let help = match array {
        // An item of a top-level array of tables: `[[issuers]]`.
        Some(array) if !array.contains(['.', '[']) => {
            format!("write each item of `{array}` as a `[[{array}]]` table")
        }
        Some(array) => {
            let last = array.rsplit('.').next().unwrap_or(array);
            let example = match ITEM_KEYS.iter().find(|(a, _)| *a == last) {
                Some((_, key)) => {
                    let value = match found {
                        DeValue::String(s) if s.chars().count() <= MAX_EXAMPLE_CHARS => {
                            toml::Value::String(s.to_string()).to_string()
                        }
                        _ => "\"...\"".to_owned(),
                    };
                    format!("{{ {key} = {value} }}")
                }
                None => "{ ... }".to_owned(),
            };
            format!("write each item of `{array}` as an inline table: `{example}`")
        }
        // A key whose value is a table: `require = { ... }`.
        None => {
            let key = name.rsplit('.').next().unwrap_or(name);
            format!("write it as an inline table: `{key} = {{ ... }}`")
        }
    };
    (name.to_owned(), help)
}

/// The TOML name of a value's type, for "expected X, found Y".
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl Reader {
    /// Records an error.
    /// Records an error. Every error says what to do about it.
    pub(crate) fn error(
        &mut self,
        kind: DiagnosticKind,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(kind, span, message).with_help(help));
    }

    /// Records an error about the policy as a whole (something missing, not something written).
    pub(crate) fn file_error(
        &mut self,
        kind: DiagnosticKind,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::whole_file(Severity::Error, kind, message).with_help(help));
    }

    /// Records a lint.
    pub(crate) fn warn(
        &mut self,
        kind: DiagnosticKind,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::warning(kind, span, message).with_help(help));
    }

    /// Reports a value of the wrong type; `example` shows the right one.
    pub(crate) fn wrong_type(
        &mut self,
        what: &str,
        expected: &str,
        example: &str,
        value: &Value<'_>,
    ) {
        // `issuers[0].algorithms` is written `algorithms = ...` inside its table.
        let key = what.rsplit('.').next().unwrap_or(what);
        let key = key.split('[').next().unwrap_or(key);
        self.error(
            DiagnosticKind::WrongType,
            value.span(),
            format!(
                "`{what}` must be {expected}, found {}",
                type_name(value.get_ref())
            ),
            format!("for example `{key} = {example}`"),
        );
    }

    /// Reads `value` as a table.
    pub(crate) fn table<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        name: impl Into<String>,
    ) -> Option<Table<'a, 'i>> {
        let name = name.into();
        match value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                entries,
                span: value.span(),
                name,
                known: Vec::new(),
                missing: Vec::new(),
            }),
            found => {
                let (bare, help) = how_to_write_table(&name, found);
                self.error(
                    DiagnosticKind::WrongType,
                    value.span(),
                    format!("`{bare}` must be a table, found {}", type_name(found)),
                    help,
                );
                None
            }
        }
    }

    /// Reads a root document.
    pub(crate) fn root<'a, 'i>(entries: &'a DeTable<'i>, span: Range<usize>) -> Table<'a, 'i> {
        Table {
            entries,
            span,
            name: ROOT.into(),
            known: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Reads `value` as an array.
    pub(crate) fn array<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        what: &str,
    ) -> Option<&'a [Value<'i>]> {
        match value.get_ref() {
            DeValue::Array(items) => Some(items),
            _ => {
                self.wrong_type(what, "an array", "[...]", value);
                None
            }
        }
    }

    /// Reads `value` as a boolean.
    pub(crate) fn bool(&mut self, value: &Value<'_>, what: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(what, "`true` or `false`", "true", value);
                None
            }
        }
    }

    /// Reads `value` as a non-negative integer no larger than `max`.
    pub(crate) fn count(
        &mut self,
        value: &Value<'_>,
        what: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        match value.get_ref() {
            DeValue::Integer(i) => {
                let parsed = u64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok();
                match parsed.filter(|n| (min..=max).contains(n)) {
                    Some(n) => Some(n),
                    None => {
                        self.error(
                            DiagnosticKind::InvalidValue,
                            value.span(),
                            format!(
                                "`{what}` must be between {min} and {max}, found `{}`",
                                i.as_str()
                            ),
                            format!("write a whole number from {min} to {max}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(what, "an integer", &min.max(1).to_string(), value);
                None
            }
        }
    }

    /// Reads `value` as a string, substituting `${variables}`.
    pub(crate) fn string(&mut self, value: &Value<'_>, what: &str) -> Option<Located<String>> {
        self.string_with(value, what, Insert::Text)
    }

    fn string_with(
        &mut self,
        value: &Value<'_>,
        what: &str,
        insert: Insert,
    ) -> Option<Located<String>> {
        match value.get_ref() {
            DeValue::String(s) => {
                let text = self.substitute(s, value.span(), insert)?;
                Some(Located {
                    value: text,
                    span: value.span(),
                })
            }
            _ => {
                self.wrong_type(what, "a string", "\"...\"", value);
                None
            }
        }
    }

    /// Reads `value` as a non-empty string, substituting `${variables}`.
    pub(crate) fn nonempty_string(
        &mut self,
        value: &Value<'_>,
        what: &str,
    ) -> Option<Located<String>> {
        self.nonempty_with(value, what, Insert::Text)
    }

    /// Reads `value` as the non-empty text of a regular expression, inserting each
    /// `${variable}` as a literal: its value is escaped, the rest stays regex text.
    pub(crate) fn nonempty_pattern(
        &mut self,
        value: &Value<'_>,
        what: &str,
    ) -> Option<Located<String>> {
        self.nonempty_with(value, what, Insert::RegexLiteral)
    }

    fn nonempty_with(
        &mut self,
        value: &Value<'_>,
        what: &str,
        insert: Insert,
    ) -> Option<Located<String>> {
        let s = self.string_with(value, what, insert)?;
        if s.value.is_empty() {
            self.error(
                DiagnosticKind::InvalidValue,
                s.span,
                format!("`{what}` must not be empty"),
                "write a value, or remove the key to get its default",
            );
            return None;
        }
        Some(s)
    }

    /// Reads `value` as an array of non-empty strings.
    pub(crate) fn strings(
        &mut self,
        value: &Value<'_>,
        what: &str,
    ) -> Option<Vec<Located<String>>> {
        let items = self.array(value, what)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            if !matches!(item.get_ref(), DeValue::String(_)) {
                self.error(
                    DiagnosticKind::WrongType,
                    item.span(),
                    format!(
                        "each entry of `{what}` must be a string, found {}",
                        type_name(item.get_ref())
                    ),
                    "quote it: `\"...\"`",
                );
                ok = false;
                continue;
            }
            match self.nonempty_string(item, what) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Whether any error has been recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Reads one of a fixed set of string values.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        value: &Value<'_>,
        what: &str,
        choices: &[(&'static str, T)],
    ) -> Option<T> {
        let s = self.string(value, what)?;
        if let Some((_, t)) = choices.iter().find(|(name, _)| *name == s.value) {
            return Some(*t);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        self.error(
            DiagnosticKind::InvalidValue,
            s.span,
            format!("`{what}` cannot be `{}`", s.value),
            format!("expected one of {}", ticks(&names)),
        );
        None
    }

    /// Reads a duration: whole seconds as an integer, or a string like `30s`, `5m`, `1h30m`, `1d`.
    pub(crate) fn duration(&mut self, value: &Value<'_>, what: &str) -> Option<Located<u64>> {
        const MAX: u64 = 10 * 365 * 86_400;
        match value.get_ref() {
            DeValue::Integer(_) => {
                let n = self.count(value, what, 0, MAX)?;
                Some(Located {
                    value: n,
                    span: value.span(),
                })
            }
            DeValue::String(_) => {
                let s = self.string(value, what)?;
                match parse_duration(&s.value).filter(|n| *n <= MAX) {
                    Some(n) => Some(Located {
                        value: n,
                        span: s.span,
                    }),
                    None => {
                        self.error(
                            DiagnosticKind::InvalidValue,
                            s.span,
                            format!("`{what}` is not a duration: `{}`", s.value),
                            "write whole seconds (`30`) or a duration such as `30s`, `5m`, `1h30m`, `1d` (at most ten years)",
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(what, "a duration", "\"30s\"", value);
                None
            }
        }
    }

    /// Defines the `[vars]` table's variables; they are not themselves substituted.
    pub(crate) fn define_vars(&mut self, value: &Value<'_>) {
        let Some(table) = self.table(value, "[vars]") else {
            return;
        };
        let mut referenced = Vec::new();
        for (key, v) in table.entries.iter() {
            match v.get_ref() {
                DeValue::String(s) if s.contains("${") => {
                    self.error(
                        DiagnosticKind::InvalidValue,
                        v.span(),
                        format!("variable `{}` refers to another variable", key.get_ref()),
                        "variables hold literal text; write the value out",
                    );
                    // What it refers to is not "unused": the error above is the whole story.
                    referenced.extend(
                        s.split("${")
                            .skip(1)
                            .filter_map(|rest| rest.split_once('}'))
                            .map(|(name, _)| name.to_owned()),
                    );
                }
                DeValue::String(s) => {
                    self.vars.insert(
                        key.get_ref().to_string(),
                        Var {
                            value: s.to_string(),
                            span: key.span(),
                            used: false,
                        },
                    );
                }
                _ => self.wrong_type(&format!("vars.{}", key.get_ref()), "a string", "\"...\"", v),
            }
        }
        for name in referenced {
            if let Some(var) = self.vars.get_mut(&name) {
                var.used = true;
            }
        }
    }

    /// Warns about variables nothing refers to.
    pub(crate) fn unused_vars(&mut self) {
        let unused: Vec<(String, Range<usize>)> = self
            .vars
            .iter()
            .filter(|(_, var)| !var.used)
            .map(|(name, var)| (name.clone(), var.span.clone()))
            .collect();
        for (name, span) in unused {
            self.warn(
                DiagnosticKind::UnusedVariable,
                span,
                format!("variable `{name}` is never used"),
                format!("refer to it as `${{{name}}}` or remove it"),
            );
        }
    }

    /// Replaces `${name}` with the variable's value (escaped in a pattern); `$$` is a literal `$`.
    fn substitute(&mut self, text: &str, span: Range<usize>, insert: Insert) -> Option<String> {
        if !text.contains('$') {
            return Some(text.to_owned());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(rest.get(..at).unwrap_or(""));
            let after = rest.get(at + 1..).unwrap_or("");
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(close) = body.find('}') else {
                    self.error(
                        DiagnosticKind::InvalidValue,
                        span,
                        "unclosed `${` in string",
                        "write `${name}` to use a variable, or `$$` for a literal `$`",
                    );
                    return None;
                };
                let name = body.get(..close).unwrap_or("");
                match self.vars.get_mut(name) {
                    Some(var) => {
                        var.used = true;
                        match insert {
                            Insert::Text => out.push_str(&var.value),
                            Insert::RegexLiteral => pattern::push_literal(&mut out, &var.value),
                        }
                    }
                    None => {
                        let help = match self.closest_var(name) {
                            Some(close) => format!("did you mean `${{{close}}}`?"),
                            None if self.vars.is_empty() => {
                                format!("define it in `[vars]`: `{name} = \"...\"`")
                            }
                            None => format!(
                                "defined variables: {}",
                                ticks(&self.vars.keys().collect::<Vec<_>>())
                            ),
                        };
                        self.error(
                            DiagnosticKind::UndefinedVariable,
                            span,
                            format!("undefined variable `{name}`"),
                            help,
                        );
                        return None;
                    }
                }
                rest = body.get(close + 1..).unwrap_or("");
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Some(out)
    }

    fn closest_var(&self, name: &str) -> Option<String> {
        self.vars
            .keys()
            .map(|k| (strsim::damerau_levenshtein(name, k), k))
            .filter(|(d, k)| *d <= (k.len() / 3).max(2))
            .min()
            .map(|(_, k)| k.clone())
    }
}

/// `30s`, `5m`, `1h30m`, `2d` → seconds (a unit is required).
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        any_unit = true;
    }
    (digits.is_empty() && any_unit).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("1h30m"), Some(5_400));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
    }

    #[test]
    fn substitution() {
        let mut reader = Reader::default();
        reader.vars.insert(
            "a".into(),
            Var {
                value: "X".into(),
                span: 0..1,
                used: false,
            },
        );
        assert_eq!(
            reader.substitute("${a}/y", 0..1, Insert::Text).as_deref(),
            Some("X/y")
        );
        assert_eq!(
            reader.substitute("$$a", 0..1, Insert::Text).as_deref(),
            Some("$a")
        );
        assert_eq!(
            reader.substitute("cost $5", 0..1, Insert::Text).as_deref(),
            Some("cost $5")
        );
        assert_eq!(reader.substitute("${b}", 0..1, Insert::Text), None);
        assert_eq!(reader.substitute("${a", 0..1, Insert::Text), None);
        assert_eq!(reader.diagnostics.len(), 2);
    }

    #[test]
    fn substitution_into_a_pattern_escapes_the_value() {
        let mut reader = Reader::default();
        reader.vars.insert(
            "url".into(),
            Var {
                value: "https://a.example/x+y z".into(),
                span: 0..1,
                used: false,
            },
        );
        assert_eq!(
            reader
                .substitute("^${url}/[a-z]+$$", 0..1, Insert::RegexLiteral)
                .as_deref(),
            Some(r"^https://a\.example/x\+y\x{20}z/[a-z]+$")
        );
        assert_eq!(
            reader.substitute("^${url}$", 0..1, Insert::Text).as_deref(),
            Some("^https://a.example/x+y z$")
        );
    }
}
