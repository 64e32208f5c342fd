//! Strict JSON (RFC 8259) for JWT headers and payloads.
//!
//! Hand-written rather than built on `serde_json`, because:
//! - `serde_json` resolves duplicate object members last-wins, and we must reject
//!   duplicates, including names that differ only by escaping (`"aud"` vs
//!   `"\u0061ud"`), in every object at every depth;
//! - we need the exact text of every number (no `f64` rounding): `1e400` must
//!   parse as a number and be judged later, not be rejected as a syntax error;
//! - we need a small, hard nesting bound.
//!
//! The parser keeps its own stack of open containers on the heap instead of
//! recursing, so no input can overflow the call stack while parsing.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// Objects with more members than this are checked for duplicates with a hash
/// set instead of a linear scan.
const LINEAR_SCAN_LIMIT: usize = 16;

/// A JSON value.
///
/// Equality is structural; numbers compare by their source text (`1` != `1.0`).
///
/// Strings and numbers borrow from the parsed text (a string with an escape is unescaped into
/// its own copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, kept as its exact source text.
    Number(Number<'a>),
    /// A string, unescaped.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object.
    Object(Object<'a>),
}

/// A JSON object: its members in source order. No two members have the same
/// name (compared after unescaping); the parser guarantees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Object<'a> {
    /// Name and value of each member, in source order.
    members: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a> Object<'a> {
    /// The value of the member called `name`, if there is one.
    pub(crate) fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.members
            .iter()
            .find(|(member, _)| same_name(member, name))
            .map(|(_, value)| value)
    }

    #[cfg(test)]
    /// The members, as `(name, value)` pairs in source order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.members.iter().map(|(name, value)| (&**name, value))
    }

    /// The number of members.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The same object holding its own copy of every string, when its members are all strings
    /// (`None` otherwise: numbers borrow their text).
    pub(crate) fn strings_into_owned(&self) -> Option<Object<'static>> {
        let members = self
            .members
            .iter()
            .map(|(name, value)| match value {
                Json::String(s) => Some((
                    Cow::Owned(name.clone().into_owned()),
                    Json::String(Cow::Owned(s.clone().into_owned())),
                )),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Object { members })
    }

    #[cfg(test)]
    /// Whether the object has no members.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Whether two member names are equal. Most names differ in their length or first byte (JWT
/// claim names are short, and many are three letters), which settles it without a call to
/// compare the bytes.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// A JSON number, holding its exact source text (validated against the RFC 8259 grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Number<'a>(&'a str);

impl<'a> Number<'a> {
    /// The number's exact source text, e.g. `1e400` or `-0.50`.
    pub(crate) fn as_str(&self) -> &'a str {
        self.0
    }
}

impl<'a> Json<'a> {
    /// The string, if this value is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this value is an object.
    pub(crate) fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    #[cfg(test)]
    /// The elements, if this value is an array.
    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The name of this value's JSON type, for messages: `null`, `boolean`,
    /// `number`, `string`, `array` or `object`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// Why some bytes are not a strict JSON object, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// What is wrong.
    pub(crate) kind: JsonErrorKind,
    /// Byte offset into the input where the problem was found.
    pub(crate) offset: usize,
}

/// The kinds of [`JsonError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonErrorKind {
    /// The input is not valid UTF-8; the offset is that of the first bad byte.
    InvalidUtf8,
    /// The top-level value is not an object; the offset is where it starts.
    NotAnObject,
    /// The input ends in the middle of a value; the offset is the input's length.
    UnexpectedEnd,
    /// A byte that cannot appear here (this includes a UTF-8 byte order mark).
    UnexpectedByte(u8),
    /// A number (or a bare word such as `NaN`) that does not follow the RFC 8259
    /// grammar; the offset is where it starts.
    InvalidNumber,
    /// A backslash escape that is not one of `\" \\ \/ \b \f \n \r \t \uXXXX`;
    /// the offset is that of the backslash.
    InvalidEscape,
    /// A `\uXXXX` escape of a UTF-16 surrogate that is not part of a high-low
    /// pair; the offset is that of its backslash.
    LoneSurrogate,
    /// An unescaped control character (below U+0020) inside a string.
    ControlCharacter,
    /// A second member with this (unescaped) name in the same object; the offset
    /// is that of the second name's opening quote.
    DuplicateMember(Box<str>),
    /// Arrays and objects nested deeper than `limit` (the top-level object is
    /// depth 1); the offset is that of the bracket that goes too deep.
    TooDeep {
        /// The maximum depth that was allowed.
        limit: usize,
    },
    /// Something other than whitespace after the top-level object.
    TrailingData,
}

/// Longest member name quoted in full by [`JsonError`]'s `Display`.
const MAX_NAME_IN_MESSAGE: usize = 64;

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl JsonError {
    /// The same message with the position as a line and column of `input` (for JWKS files,
    /// which people open in an editor), e.g. "duplicate member `kid` at line 3, column 5".
    pub(crate) fn at_line(&self, input: &[u8]) -> String {
        let before = input.get(..self.offset).unwrap_or(input);
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(before.get(line_start..).unwrap_or(&[]))
            .chars()
            .count()
            + 1;
        format!("{} at line {line}, column {column}", self.kind)
    }
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8")?,
            JsonErrorKind::NotAnObject => f.write_str("top-level value is not an object")?,
            JsonErrorKind::UnexpectedEnd => f.write_str("unexpected end of input")?,
            JsonErrorKind::UnexpectedByte(b) => {
                if b.is_ascii_graphic() {
                    write!(f, "unexpected character `{}`", char::from(*b))?;
                } else {
                    write!(f, "unexpected byte `0x{b:02X}`")?;
                }
            }
            JsonErrorKind::InvalidNumber => f.write_str("invalid number")?,
            JsonErrorKind::InvalidEscape => f.write_str("invalid escape sequence")?,
            JsonErrorKind::LoneSurrogate => f.write_str("unpaired UTF-16 surrogate escape")?,
            JsonErrorKind::ControlCharacter => {
                f.write_str("unescaped control character in string")?;
            }
            JsonErrorKind::DuplicateMember(name) => {
                f.write_str("duplicate member `")?;
                let mut chars = name.chars();
                for c in chars.by_ref().take(MAX_NAME_IN_MESSAGE) {
                    write!(f, "{}", c.escape_debug())?;
                }
                if chars.next().is_some() {
                    f.write_str("…")?;
                }
                f.write_str("`")?;
            }
            JsonErrorKind::TooDeep { limit } => write!(f, "nesting deeper than {limit} levels")?,
            JsonErrorKind::TrailingData => {
                f.write_str("trailing data after the top-level object")?
            }
        }
        Ok(())
    }
}

impl std::error::Error for JsonError {}

/// Parse `bytes` as exactly one JSON object (RFC 8259), strictly.
///
/// The input must be UTF-8 without a byte order mark; duplicate member names
/// (after unescaping) are rejected in every object; arrays and objects may nest
/// at most `max_depth` levels, the top-level object being level 1.
pub(crate) fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Object<'_>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError {
        kind: JsonErrorKind::InvalidUtf8,
        offset: e.valid_up_to(),
    })?;
    let mut parser = Parser {
        text,
        bytes,
        pos: 0,
        max_depth,
    };
    parser.skip_whitespace();
    match parser.peek() {
        Some(b'{') => {}
        Some(b) if b == b'"' || b == b'[' || is_token_byte(b) => {
            return Err(parser.error(JsonErrorKind::NotAnObject, parser.pos));
        }
        _ => return Err(parser.unexpected()),
    }
    let object = parser.parse_top_object()?;
    parser.skip_whitespace();
    if parser.pos < bytes.len() {
        return Err(parser.error(JsonErrorKind::TrailingData, parser.pos));
    }
    Ok(object)
}

/// Bytes that may make up a bare token: a number, a literal, or a word we
/// report as an invalid number (`NaN`, `Infinity`, `+1`, `.5`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

/// Whether `t` matches `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`.
fn is_number(t: &[u8]) -> bool {
    let mut p = 0;
    let digits_from = |mut p: usize| {
        while t.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
        p
    };
    if t.first() == Some(&b'-') {
        p += 1;
    }
    match t.get(p) {
        Some(b'0') => p += 1,
        Some(b'1'..=b'9') => p = digits_from(p + 1),
        _ => return false,
    }
    if t.get(p) == Some(&b'.') {
        let end = digits_from(p + 1);
        if end == p + 1 {
            return false;
        }
        p = end;
    }
    if matches!(t.get(p), Some(b'e' | b'E')) {
        p += 1;
        if matches!(t.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let end = digits_from(p);
        if end == p {
            return false;
        }
        p = end;
    }
    p == t.len()
}

/// How many bytes at the start of `bytes` can be copied into a string as they are: up to the
/// first `"`, `\\` or control character. Eight bytes at a time, the last few too (padded with a
/// plain byte), and the first stopping byte of a word found from its bits, not by a byte loop.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of each byte of `x` below `n` (n <= 0x80). A byte after such a byte may be
    // marked too (the subtraction borrows), a byte before it never: the lowest mark is exact.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let stops = |word: [u8; 8]| {
        let x = u64::from_le_bytes(word);
        below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
    };
    // Bytes 0..8 of a word, in memory order (little-endian), from its lowest mark.
    let first = |marks: u64| (marks.trailing_zeros() / 8) as usize;
    let mut chunks = bytes.chunks_exact(8);
    let mut done = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let marks = stops(word);
        if marks != 0 {
            return done + first(marks);
        }
        done += 8;
    }
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    if let Some(start) = word.get_mut(..rest.len()) {
        start.copy_from_slice(rest);
    }
    let marks = stops(word);
    done + if marks == 0 {
        rest.len()
    } else {
        first(marks).min(rest.len())
    }
}

/// The members of an object being parsed, with a duplicate check that is a
/// linear scan for small objects and a hash lookup for large ones.
struct Members<'a> {
    /// Members so far, in source order.
    members: Vec<(Cow<'a, str>, Json<'a>)>,
    /// The names in `members`, once there are more than [`LINEAR_SCAN_LIMIT`].
    names: Option<HashSet<Cow<'a, str>>>,
    /// One bit for each name in `members`, chosen by its length and first and last bytes: a name
    /// whose bit is clear is not among them, which settles most lookups without a scan.
    seen: u64,
}

/// The bit of [`Members::seen`] for `name`.
fn name_bit(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let (first, last) = match bytes {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let mix = (bytes.len() as u64)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(u64::from(first).wrapping_mul(31))
        .wrapping_add(u64::from(last));
    1_u64.wrapping_shl((mix % 64) as u32)
}

impl<'a> Members<'a> {
    /// No members yet.
    fn new() -> Self {
        Members {
            members: Vec::with_capacity(16),
            names: None,
            seen: 0,
        }
    }

    /// Whether a member called `name`, whose [`name_bit`] is `bit`, is already present.
    #[inline]
    fn contains(&self, name: &str, bit: u64) -> bool {
        if self.seen & bit == 0 {
            return false;
        }
        match &self.names {
            Some(names) => names.contains(name),
            None => self
                .members
                .iter()
                .any(|(member, _)| same_name(member, name)),
        }
    }

    /// Adds a member whose name (with [`name_bit`] `bit`) is known not to be present.
    // Inlined where the value was just made, so it is not read back through memory (a value
    // stored in pieces and loaded whole stalls the processor: the profile showed it).
    #[inline(always)]
    fn push(&mut self, (name, bit): (Cow<'a, str>, u64), value: Json<'a>) {
        self.seen |= bit;
        if let Some(names) = &mut self.names {
            names.insert(name.clone());
        } else if self.members.len() >= LINEAR_SCAN_LIMIT {
            let mut names: HashSet<Cow<'a, str>> = self
                .members
                .iter()
                .map(|(member, _)| member.clone())
                .collect();
            names.insert(name.clone());
            self.names = Some(names);
        }
        self.members.push((name, value));
    }

    /// The finished object.
    fn finish(self) -> Object<'a> {
        Object {
            members: self.members,
        }
    }
}

/// An array or object that has been opened and not yet closed.
enum Frame<'a> {
    /// An array and its elements so far.
    Array(Vec<Json<'a>>),
    /// An object, its members so far, and the name of the member whose value
    /// is being parsed.
    Object {
        /// Members so far.
        members: Members<'a>,
        /// Name of the member whose value comes next, and its [`name_bit`].
        name: (Cow<'a, str>, u64),
    },
}

/// Parsing state: the input and the current position in it.
struct Parser<'a> {
    /// The input, known to be UTF-8.
    text: &'a str,
    /// The same input as bytes.
    bytes: &'a [u8],
    /// Offset of the next byte to read.
    pos: usize,
    /// Deepest nesting allowed.
    max_depth: usize,
}

impl<'a> Parser<'a> {
    /// An error of `kind` at `offset`.
    fn error(&self, kind: JsonErrorKind, offset: usize) -> JsonError {
        JsonError { kind, offset }
    }

    /// The error for finding the current byte (or the end) where it cannot be.
    fn unexpected(&self) -> JsonError {
        match self.peek() {
            Some(b) => self.error(JsonErrorKind::UnexpectedByte(b), self.pos),
            None => self.error(JsonErrorKind::UnexpectedEnd, self.pos),
        }
    }

    /// The byte at the current position, if any.
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips the whitespace RFC 8259 allows between tokens.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes the opening bracket at the current position of a container
    /// nested inside `open` others, if the depth limit allows it.
    fn open_container(&mut self, open: usize) -> Result<(), JsonError> {
        if open >= self.max_depth {
            return Err(self.error(
                JsonErrorKind::TooDeep {
                    limit: self.max_depth,
                },
                self.pos,
            ));
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok(())
    }

    /// Parses the top-level object whose `{` is at the current position. Its members are read
    /// here, one after the other (a token's claims are mostly strings and numbers); a member
    /// whose value is an array or object is read by [`Parser::parse_value_at`].
    fn parse_top_object(&mut self) -> Result<Object<'a>, JsonError> {
        self.open_container(0)?;
        let mut members = Members::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members.finish());
        }
        loop {
            let name = self.parse_member_name(&members)?;
            self.skip_whitespace();
            // Each value is added where it is made (not moved through a variable first).
            match self.peek() {
                Some(b'"') => {
                    let text = self.parse_string()?;
                    members.push(name, Json::String(text));
                }
                Some(b'{' | b'[') => members.push(name, self.parse_value_at(1)?),
                Some(b) if is_token_byte(b) => members.push(name, self.parse_token()?),
                _ => return Err(self.unexpected()),
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(members.finish());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    /// Parses one value starting at the current position (after whitespace), inside `outer`
    /// open containers, iteratively: containers it opens live in `stack`, not on the call stack.
    fn parse_value_at(&mut self, outer: usize) -> Result<Json<'a>, JsonError> {
        let mut stack: Vec<Frame<'a>> = Vec::with_capacity(4);
        'value: loop {
            self.skip_whitespace();
            let mut value = match self.peek() {
                Some(b'{') => {
                    self.open_container(outer + stack.len())?;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Json::Object(Object::default())
                    } else {
                        let members = Members::new();
                        let name = self.parse_member_name(&members)?;
                        stack.push(Frame::Object { members, name });
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.open_container(outer + stack.len())?;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Json::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'"') => Json::String(self.parse_string()?),
                Some(b) if is_token_byte(b) => self.parse_token()?,
                _ => return Err(self.unexpected()),
            };
            // `value` is complete: add it to the innermost open container, and
            // keep closing containers for as long as their closing bracket follows.
            loop {
                self.skip_whitespace();
                let next = self.peek();
                match stack.last_mut() {
                    None => return Ok(value),
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        match next {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                value = match stack.pop() {
                                    Some(Frame::Array(items)) => Json::Array(items),
                                    _ => return Err(self.unexpected()),
                                };
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                    Some(Frame::Object { members, name }) => {
                        let name = std::mem::take(name);
                        members.push(name, value);
                        match next {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_whitespace();
                                let next_name = self.parse_member_name(members)?;
                                if let Some(Frame::Object { name, .. }) = stack.last_mut() {
                                    *name = next_name;
                                }
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                value = match stack.pop() {
                                    Some(Frame::Object { members, .. }) => {
                                        Json::Object(members.finish())
                                    }
                                    _ => return Err(self.unexpected()),
                                };
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
            }
        }
    }

    /// Parses a member name and the `:` after it, rejecting a name already in
    /// `members`.
    #[inline]
    fn parse_member_name(
        &mut self,
        members: &Members<'a>,
    ) -> Result<(Cow<'a, str>, u64), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        let start = self.pos;
        let name = self.parse_string()?;
        let bit = name_bit(&name);
        if members.contains(&name, bit) {
            return Err(self.error(JsonErrorKind::DuplicateMember(name.into()), start));
        }
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.unexpected());
        }
        self.pos += 1;
        Ok((name, bit))
    }

    /// Parses a bare token at the current position: `true`, `false`, `null` or
    /// a number.
    fn parse_token(&mut self) -> Result<Json<'a>, JsonError> {
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or_default();
        // Most tokens of a JWT are whole numbers (NumericDates): digits, not starting with 0
        // unless alone, up to a byte that cannot continue a token.
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0
            && (digits == 1 || rest.first() != Some(&b'0'))
            && !rest.get(digits).is_some_and(|b| is_token_byte(*b))
            && let Some(text) = self.text.get(start..start + digits)
        {
            self.pos = start + digits;
            return Ok(Json::Number(Number(text)));
        }
        let len = rest.iter().take_while(|b| is_token_byte(**b)).count();
        let token = rest.get(..len).unwrap_or_default();
        let (literal, value): (&[u8], Json<'a>) = match token.first() {
            Some(b't') => (b"true", Json::Bool(true)),
            Some(b'f') => (b"false", Json::Bool(false)),
            Some(b'n') => (b"null", Json::Null),
            _ => {
                if !is_number(token) {
                    return Err(self.error(JsonErrorKind::InvalidNumber, start));
                }
                let text = self
                    .text
                    .get(start..start + len)
                    .ok_or_else(|| self.error(JsonErrorKind::InvalidNumber, start))?;
                self.pos = start + len;
                return Ok(Json::Number(Number(text)));
            }
        };
        if token == literal {
            self.pos = start + len;
            return Ok(value);
        }
        let matching = token
            .iter()
            .zip(literal)
            .take_while(|(a, b)| a == b)
            .count();
        self.pos = start + matching;
        Err(self.unexpected())
    }

    /// Parses a string starting at the opening quote at the current position,
    /// returning it unescaped.
    #[inline(always)]
    fn parse_string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.pos + 1;
        let end = start + plain_run(self.bytes.get(start..).unwrap_or_default());
        // Most strings have no escape: borrowed as they are. The run ends just before an ASCII
        // byte or at the end of the input, so it is on character boundaries.
        if self.bytes.get(end) == Some(&b'"')
            && let Some(text) = self.text.get(start..end)
        {
            self.pos = end + 1;
            return Ok(Cow::Borrowed(text));
        }
        self.parse_string_slowly()
    }

    /// [`Parser::parse_string`] for a string with an escape, a control character, or no end.
    #[cold]
    fn parse_string_slowly(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1;
        let mut out: Cow<'a, str> = Cow::Borrowed("");
        loop {
            let run_start = self.pos;
            let run = plain_run(self.bytes.get(run_start..).unwrap_or_default());
            self.pos = run_start + run;
            let text = self
                .text
                .get(run_start..self.pos)
                .ok_or_else(|| self.error(JsonErrorKind::InvalidUtf8, run_start))?;
            // Borrowed until an escape needs a copy to write the unescaped text into.
            if out.is_empty() {
                out = Cow::Borrowed(text);
            } else {
                out.to_mut().push_str(text);
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let c = self.parse_escape()?;
                    out.to_mut().push(c);
                }
                Some(_) => return Err(self.error(JsonErrorKind::ControlCharacter, self.pos)),
                None => return Err(self.unexpected()),
            }
        }
    }

    /// Parses the escape sequence whose backslash is at the current position.
    fn parse_escape(&mut self) -> Result<char, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.parse_unicode_escape(start),
            Some(_) => return Err(self.error(JsonErrorKind::InvalidEscape, start)),
            None => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(c)
    }

    /// Parses a `\uXXXX` escape whose backslash is at `start`, and the low
    /// surrogate escape that must follow a high one.
    fn parse_unicode_escape(&mut self, start: usize) -> Result<char, JsonError> {
        let first = self.parse_hex4(start)?;
        let code = match first {
            0xD800..=0xDBFF => {
                let second_start = self.pos;
                match (self.peek(), self.bytes.get(second_start + 1)) {
                    (Some(b'\\'), Some(b'u')) => {}
                    (None, _) | (Some(b'\\'), None) => {
                        self.pos = self.bytes.len();
                        return Err(self.unexpected());
                    }
                    _ => return Err(self.error(JsonErrorKind::LoneSurrogate, start)),
                }
                let second = self.parse_hex4(second_start)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error(JsonErrorKind::LoneSurrogate, start));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error(JsonErrorKind::LoneSurrogate, start)),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error(JsonErrorKind::LoneSurrogate, start))
    }

    /// Reads the four hex digits of a `\uXXXX` escape whose backslash is at
    /// `start`, leaving the position after them.
    fn parse_hex4(&mut self, start: usize) -> Result<u32, JsonError> {
        let mut code = 0;
        for offset in start + 2..start + 6 {
            self.pos = offset;
            let digit = match self.peek() {
                Some(b) => char::from(b)
                    .to_digit(16)
                    .ok_or_else(|| self.error(JsonErrorKind::InvalidEscape, start))?,
                None => return Err(self.unexpected()),
            };
            code = code * 16 + digit;
        }
        self.pos = start + 6;
        Ok(code)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_plain_run_ends_at_the_first_quote_backslash_or_control_character(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::u8::ANY,
                    proptest::strategy::Just(b'a'),
                    proptest::strategy::Just(0xE2),
                    proptest::sample::select(&[b'"', b'\\', 0x1F, 0x20, 0x7F, 0x80, 0xA2, 0xDC][..]),
                ],
                0..40,
            )
        ) {
            let naive = bytes
                .iter()
                .take_while(|&&b| b != b'"' && b != b'\\' && b >= 0x20)
                .count();
            proptest::prop_assert_eq!(plain_run(&bytes), naive);
        }
    }

    const DEPTH: usize = 64;

    fn parse(input: &str) -> Result<Object<'_>, JsonError> {
        parse_object(input.as_bytes(), DEPTH)
    }

    fn err(input: &[u8]) -> JsonError {
        match parse_object(input, DEPTH) {
            Ok(object) => panic!("{:?} parsed as {object:?}", String::from_utf8_lossy(input)),
            Err(e) => e,
        }
    }

    fn assert_err(input: &str, kind: JsonErrorKind, offset: usize) {
        assert_eq!(
            err(input.as_bytes()),
            JsonError { kind, offset },
            "input {input:?}"
        );
    }

    fn number(text: &str) -> Json<'_> {
        Json::Number(Number(text))
    }

    #[test]
    fn parses_all_value_kinds_in_order() {
        let object = parse(
            " \t\r\n{ \"n\" : null , \"t\":true,\"f\":false,\"i\":-12,\"x\":1.5e-3,\
             \"s\":\"hi\",\"a\":[1,\"two\",[],{}],\"o\":{\"k\":{}} } \n",
        )
        .unwrap();
        let names: Vec<&str> = object.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["n", "t", "f", "i", "x", "s", "a", "o"]);
        assert_eq!(object.len(), 8);
        assert!(!object.is_empty());
        assert_eq!(object.get("n"), Some(&Json::Null));
        assert_eq!(object.get("t"), Some(&Json::Bool(true)));
        assert_eq!(object.get("f"), Some(&Json::Bool(false)));
        assert_eq!(object.get("i"), Some(&number("-12")));
        assert_eq!(object.get("x"), Some(&number("1.5e-3")));
        assert_eq!(object.get("s").and_then(Json::as_str), Some("hi"));
        let array = object.get("a").and_then(Json::as_array).unwrap();
        assert_eq!(
            array,
            [
                number("1"),
                Json::String("two".into()),
                Json::Array(Vec::new()),
                Json::Object(Object::default()),
            ]
        );
        let inner = object.get("o").and_then(Json::as_object).unwrap();
        assert!(inner.get("k").and_then(Json::as_object).unwrap().is_empty());
        assert_eq!(object.get("missing"), None);
        let types: Vec<&str> = object.iter().map(|(_, v)| v.type_name()).collect();
        assert_eq!(
            types,
            [
                "null", "boolean", "boolean", "number", "number", "string", "array", "object"
            ]
        );
        assert_eq!(Json::Null.as_str(), None);
        assert_eq!(Json::Null.as_object(), None);
        assert_eq!(Json::Null.as_array(), None);
    }

    #[test]
    fn empty_objects_and_whitespace() {
        assert!(parse("{}").unwrap().is_empty());
        assert!(parse(" {\n\t\r } \r\n").unwrap().is_empty());
        assert_eq!(parse("{}").unwrap().len(), 0);
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let object = parse(
            r#"{"big":1e400,"small":1e-400,"neg":-0,"frac":-0.50,"long":123456789012345678901234567890,"E":1E+2}"#,
        )
        .unwrap();
        let text = |name| match object.get(name) {
            Some(Json::Number(n)) => n.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(text("big"), "1e400");
        assert_eq!(text("small"), "1e-400");
        assert_eq!(text("neg"), "-0");
        assert_eq!(text("frac"), "-0.50");
        assert_eq!(text("long"), "123456789012345678901234567890");
        assert_eq!(text("E"), "1E+2");
    }

    #[test]
    fn invalid_numbers() {
        for bad in [
            "01",
            "-01",
            "00",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "1E-",
            "NaN",
            "Infinity",
            "-Infinity",
            "-",
            "--1",
            "1.5.2",
            "0x10",
            "1e5.5",
            "1ee5",
            "1.e5",
            "-.5",
            "1a",
            "e5",
        ] {
            let input = format!("{{\"a\": {bad}}}");
            assert_err(&input, JsonErrorKind::InvalidNumber, 6);
        }
        assert_err("{\"a\":[1, 2, 03]}", JsonErrorKind::InvalidNumber, 12);
        for good in [
            "0", "-0", "0.0", "10", "1e5", "1E5", "1e+5", "1e-5", "-1.0e-0", "0e0",
        ] {
            let input = format!("{{\"a\":{good}}}");
            assert_eq!(parse(&input).unwrap().get("a"), Some(&number(good)));
        }
    }

    #[test]
    fn literals() {
        let object = parse(r#"{"a":[true,false,null]}"#).unwrap();
        assert_eq!(
            object.get("a").and_then(Json::as_array).unwrap(),
            [Json::Bool(true), Json::Bool(false), Json::Null]
        );
        assert_err(r#"{"a":truex}"#, JsonErrorKind::UnexpectedByte(b'x'), 9);
        assert_err(r#"{"a":nul}"#, JsonErrorKind::UnexpectedByte(b'}'), 8);
        assert_err(r#"{"a":nul"#, JsonErrorKind::UnexpectedEnd, 8);
        assert_err(r#"{"a":nan}"#, JsonErrorKind::UnexpectedByte(b'a'), 6);
        assert_err(r#"{"a":True}"#, JsonErrorKind::InvalidNumber, 5);
        assert_err(r#"{"a":fals e}"#, JsonErrorKind::UnexpectedByte(b' '), 9);
    }

    #[test]
    fn string_escapes() {
        let object = parse(r#"{"s":"\"\\\/\b\f\n\r\t\u0000\u00e9\u00E9\u20AC é€😀 end"}"#).unwrap();
        assert_eq!(
            object.get("s").and_then(Json::as_str),
            Some("\"\\/\u{8}\u{c}\n\r\t\u{0}éé€ é€😀 end")
        );
        // DEL is not a control character for JSON.
        let object = parse("{\"s\":\"a\u{7f}b\"}").unwrap();
        assert_eq!(object.get("s").and_then(Json::as_str), Some("a\u{7f}b"));
    }

    #[test]
    fn surrogate_pairs() {
        let object = parse(
            r#"{"a":"\uD83D\uDE00","b":"x\ud83d\ude00y","c":"\uDBFF\uDFFF","d":"\uD800\uDC00"}"#,
        )
        .unwrap();
        assert_eq!(object.get("a").and_then(Json::as_str), Some("😀"));
        assert_eq!(object.get("b").and_then(Json::as_str), Some("x😀y"));
        assert_eq!(object.get("c").and_then(Json::as_str), Some("\u{10FFFF}"));
        assert_eq!(object.get("d").and_then(Json::as_str), Some("\u{10000}"));
    }

    #[test]
    fn lone_surrogates() {
        assert_err(r#"{"a":"\uD800"}"#, JsonErrorKind::LoneSurrogate, 6);
        assert_err(r#"{"a":"x\uDC00"}"#, JsonErrorKind::LoneSurrogate, 7);
        assert_err(r#"{"a":"\uD800\u0041"}"#, JsonErrorKind::LoneSurrogate, 6);
        assert_err(r#"{"a":"\uDBFF\uDBFF"}"#, JsonErrorKind::LoneSurrogate, 6);
        assert_err(r#"{"a":"\uD800x"}"#, JsonErrorKind::LoneSurrogate, 6);
        assert_err(r#"{"a":"\uD800\n"}"#, JsonErrorKind::LoneSurrogate, 6);
        assert_err(r#"{"a":"\uDE00\uD83D"}"#, JsonErrorKind::LoneSurrogate, 6);
        assert_err(r#"{"\uDFFF":1}"#, JsonErrorKind::LoneSurrogate, 2);
        // Running out of input mid-pair is the end of input, not a lone surrogate.
        assert_err(r#"{"a":"\uD800"#, JsonErrorKind::UnexpectedEnd, 12);
        assert_err(r#"{"a":"\uD800\"#, JsonErrorKind::UnexpectedEnd, 13);
        assert_err(r#"{"a":"\uD800\uDC"#, JsonErrorKind::UnexpectedEnd, 16);
        assert_err(r#"{"a":"\uD800\uDCxx"}"#, JsonErrorKind::InvalidEscape, 12);
    }

    #[test]
    fn invalid_escapes() {
        assert_err(r#"{"a":"\x41"}"#, JsonErrorKind::InvalidEscape, 6);
        assert_err(r#"{"a":"ok\'"}"#, JsonErrorKind::InvalidEscape, 8);
        assert_err(r#"{"a":"\U0041"}"#, JsonErrorKind::InvalidEscape, 6);
        assert_err(r#"{"a":"\u00G1"}"#, JsonErrorKind::InvalidEscape, 6);
        assert_err(r#"{"a":"\u-123"}"#, JsonErrorKind::InvalidEscape, 6);
        assert_err(r#"{"a":"\u+123"}"#, JsonErrorKind::InvalidEscape, 6);
        assert_err("{\"a\":\"\\\u{e9}\"}", JsonErrorKind::InvalidEscape, 6);
        assert_err(r#"{"a":"\u12"}"#, JsonErrorKind::InvalidEscape, 6);
        assert_err(r#"{"a":"\u12"#, JsonErrorKind::UnexpectedEnd, 10);
        assert_err(r#"{"a":"\"#, JsonErrorKind::UnexpectedEnd, 7);
    }

    #[test]
    fn control_characters() {
        assert_err("{\"a\":\"x\ny\"}", JsonErrorKind::ControlCharacter, 7);
        assert_err("{\"a\":\"\t\"}", JsonErrorKind::ControlCharacter, 6);
        assert_err("{\"a\":\"\u{0}\"}", JsonErrorKind::ControlCharacter, 6);
        assert_err("{\"a\u{1f}\":1}", JsonErrorKind::ControlCharacter, 3);
    }

    #[test]
    fn invalid_utf8() {
        assert_eq!(
            err(b"{\"a\":\"\xff\"}"),
            JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 6
            }
        );
        // A truncated multi-byte sequence.
        assert_eq!(
            err(b"{\"a\":\"\xc3"),
            JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 6
            }
        );
        // An overlong encoding of '/'.
        assert_eq!(
            err(b"{\"\xc0\xaf\":1}"),
            JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 2
            }
        );
        // UTF-8 encoded surrogates are not UTF-8.
        assert_eq!(
            err(b"{\"\xed\xa0\x80\":1}"),
            JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 2
            }
        );
    }

    #[test]
    fn byte_order_mark_is_rejected() {
        assert_eq!(
            err(b"\xef\xbb\xbf{}"),
            JsonError {
                kind: JsonErrorKind::UnexpectedByte(0xEF),
                offset: 0
            }
        );
    }

    #[test]
    fn top_level_must_be_an_object() {
        for (input, offset) in [
            ("[]", 0),
            ("[{}]", 0),
            ("  \"x\"", 2),
            ("1", 0),
            ("-1", 0),
            ("true", 0),
            ("null", 0),
            ("NaN", 0),
        ] {
            assert_err(input, JsonErrorKind::NotAnObject, offset);
        }
        assert_err("", JsonErrorKind::UnexpectedEnd, 0);
        assert_err(" \n", JsonErrorKind::UnexpectedEnd, 2);
        assert_err("}", JsonErrorKind::UnexpectedByte(b'}'), 0);
        assert_err("\u{c}{}", JsonErrorKind::UnexpectedByte(0x0C), 0);
        assert_err("\u{a0}{}", JsonErrorKind::UnexpectedByte(0xC2), 0);
    }

    #[test]
    fn unexpected_end() {
        for input in [
            "{",
            "{ ",
            "{\"a\"",
            "{\"a\":",
            "{\"a\": ",
            "{\"a\":1",
            "{\"a\":1,",
            "{\"a\":\"x",
            "{\"a\":[",
            "{\"a\":[1",
            "{\"a\":[1,",
            "{\"a\":{",
            "{\"a\":{\"b\":{}",
            "{\"a",
        ] {
            assert_err(input, JsonErrorKind::UnexpectedEnd, input.len());
        }
    }

    #[test]
    fn unexpected_bytes() {
        assert_err(r#"{"a" 1}"#, JsonErrorKind::UnexpectedByte(b'1'), 5);
        assert_err(r#"{"a":1,}"#, JsonErrorKind::UnexpectedByte(b'}'), 7);
        assert_err(r#"{"a":[1,]}"#, JsonErrorKind::UnexpectedByte(b']'), 8);
        assert_err(r#"{"a":[1 2]}"#, JsonErrorKind::UnexpectedByte(b'2'), 8);
        assert_err(r#"{"a":1 "b":2}"#, JsonErrorKind::UnexpectedByte(b'"'), 7);
        assert_err(r#"{'a':1}"#, JsonErrorKind::UnexpectedByte(b'\''), 1);
        assert_err(r#"{a:1}"#, JsonErrorKind::UnexpectedByte(b'a'), 1);
        assert_err(r#"{,}"#, JsonErrorKind::UnexpectedByte(b','), 1);
        assert_err(r#"{"a":}"#, JsonErrorKind::UnexpectedByte(b'}'), 5);
        assert_err(r#"{"a":[,1]}"#, JsonErrorKind::UnexpectedByte(b','), 6);
        assert_err(r#"{"a":1]"#, JsonErrorKind::UnexpectedByte(b']'), 6);
        assert_err(r#"{"a":[1}"#, JsonErrorKind::UnexpectedByte(b'}'), 7);
        assert_err("{\"a\":\u{c}1}", JsonErrorKind::UnexpectedByte(0x0C), 5);
        assert_err("{\"a\":\u{a0}1}", JsonErrorKind::UnexpectedByte(0xC2), 5);
        assert_err(r#"{"a"::1}"#, JsonErrorKind::UnexpectedByte(b':'), 5);
    }

    #[test]
    fn trailing_data() {
        assert_err("{}x", JsonErrorKind::TrailingData, 2);
        assert_err("{} {}", JsonErrorKind::TrailingData, 3);
        assert_err("{}\n\u{0}", JsonErrorKind::TrailingData, 3);
        assert_err("{\"a\":1}}", JsonErrorKind::TrailingData, 7);
        assert!(parse("{} \t\r\n").is_ok());
    }

    #[test]
    fn duplicate_members() {
        assert_err(
            r#"{"aud":1, "xy":2,"aud":3}"#,
            JsonErrorKind::DuplicateMember("aud".into()),
            17,
        );
        assert_err(
            r#"{"aud":1,"aud":1}"#,
            JsonErrorKind::DuplicateMember("aud".into()),
            9,
        );
    }

    #[test]
    fn duplicate_members_differing_only_by_escaping() {
        assert_err(
            r#"{"aud":"a","\u0061ud":"b"}"#,
            JsonErrorKind::DuplicateMember("aud".into()),
            11,
        );
        assert_err(
            r#"{"\u0061\u0075\u0064":"a","aud":"b"}"#,
            JsonErrorKind::DuplicateMember("aud".into()),
            26,
        );
        assert_err(
            r#"{"a/b":1,"a\/b":2}"#,
            JsonErrorKind::DuplicateMember("a/b".into()),
            9,
        );
        assert_err(
            r#"{"😀":1,"\ud83d\ude00":2}"#,
            JsonErrorKind::DuplicateMember("😀".into()),
            10,
        );
        // Different names stay different: case and Unicode normalization matter.
        assert!(parse(r#"{"aud":1,"AUD":2,"Aud":3}"#).is_ok());
        assert!(parse("{\"\u{e9}\":1,\"e\u{301}\":2}").is_ok());
    }

    #[test]
    fn duplicate_members_nested() {
        // Depth 3: an object inside an object inside the top-level object.
        assert_err(
            r#"{"a":{"b":{"c":1,"c":2}}}"#,
            JsonErrorKind::DuplicateMember("c".into()),
            17,
        );
        // Inside an array inside an object.
        assert_err(
            r#"{"a":[{"x":1},{"y":1,"\u0079":2}]}"#,
            JsonErrorKind::DuplicateMember("y".into()),
            21,
        );
        // The same name in different objects is fine.
        let object = parse(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#).unwrap();
        assert_eq!(object.len(), 2);
    }

    fn object_with_members(count: usize, extra: &str) -> String {
        let mut input = String::from("{");
        for i in 0..count {
            if i > 0 {
                input.push(',');
            }
            input.push_str(&format!("\"k{i}\":{i}"));
        }
        input.push_str(extra);
        input.push('}');
        input
    }

    #[test]
    fn duplicates_found_on_both_sides_of_the_hash_set_switch() {
        for count in [1, 2, 15, 16, 17, 18, 40] {
            let input = object_with_members(count, "");
            assert_eq!(parse(&input).unwrap().len(), count);
            for dup in [0, count / 2, count - 1] {
                let extra = format!(",\"k{dup}\":0");
                let input = object_with_members(count, &extra);
                let offset = input.len() - extra.len();
                assert_err(
                    &input,
                    JsonErrorKind::DuplicateMember(format!("k{dup}").into()),
                    offset,
                );
                // And again after a few more distinct members.
                let extra = format!(",\"z1\":1,\"z2\":2,\"\\u006b{dup}\":0");
                let input = object_with_members(count, &extra);
                let offset = input.len() - 11 - dup.to_string().len();
                assert_err(
                    &input,
                    JsonErrorKind::DuplicateMember(format!("k{dup}").into()),
                    offset,
                );
            }
        }
    }

    #[test]
    fn large_object_is_not_quadratic() {
        // 2000 members: a linear scan per member would be 4 million string
        // comparisons for one object; with the hash set it is 2000 lookups.
        let input = object_with_members(2000, "");
        let object = parse(&input).unwrap();
        assert_eq!(object.len(), 2000);
        assert_eq!(object.get("k1999"), Some(&number("1999")));
        let input = object_with_members(2000, ",\"k1000\":1");
        assert_eq!(
            err(input.as_bytes()).kind,
            JsonErrorKind::DuplicateMember("k1000".into())
        );
        // A ~16 KiB payload of short keys.
        let input = object_with_members(3000, "");
        assert!(input.len() > 16 * 1024);
        assert_eq!(parse(&input).unwrap().len(), 3000);
    }

    #[test]
    fn depth_limit() {
        // The top-level object is depth 1, so `limit` nested levels fit.
        let nested = |levels: usize| {
            let mut input = "{\"a\":".to_owned();
            input.push_str(&"[".repeat(levels - 1));
            input.push_str(&"]".repeat(levels - 1));
            input.push('}');
            input
        };
        assert!(parse(&nested(DEPTH)).is_ok());
        assert_err(
            &nested(DEPTH + 1),
            JsonErrorKind::TooDeep { limit: DEPTH },
            5 + DEPTH - 1,
        );
        assert!(parse_object(b"{}", 1).is_ok());
        assert_eq!(
            parse_object(b"{\"a\":{}}", 1),
            Err(JsonError {
                kind: JsonErrorKind::TooDeep { limit: 1 },
                offset: 5
            })
        );
        assert_eq!(
            parse_object(b"{\"a\":[]}", 1),
            Err(JsonError {
                kind: JsonErrorKind::TooDeep { limit: 1 },
                offset: 5
            })
        );
        assert_eq!(
            parse_object(b"{}", 0),
            Err(JsonError {
                kind: JsonErrorKind::TooDeep { limit: 0 },
                offset: 0
            })
        );
        // Siblings do not add depth.
        let wide = format!("{{\"a\":[{}]}}", vec!["[[]]"; 1000].join(","));
        assert!(parse_object(wide.as_bytes(), 4).is_ok());
        assert!(parse_object(wide.as_bytes(), 3).is_err());
    }

    #[test]
    fn very_deep_arrays_are_too_deep_not_a_crash() {
        let levels = 5000;
        let mut input = "{\"a\":".to_owned();
        input.push_str(&"[".repeat(levels));
        input.push_str(&"]".repeat(levels));
        input.push('}');
        assert_err(
            &input,
            JsonErrorKind::TooDeep { limit: DEPTH },
            5 + DEPTH - 1,
        );
        // Unclosed, too.
        assert_eq!(
            err(&input.as_bytes()[..5 + levels]).kind,
            JsonErrorKind::TooDeep { limit: DEPTH }
        );
    }

    #[test]
    fn very_deep_objects_are_too_deep_not_a_crash() {
        let levels = 5000;
        let input = format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
        assert_err(&input, JsonErrorKind::TooDeep { limit: DEPTH }, 5 * DEPTH);
    }

    #[test]
    fn parser_does_not_recurse_even_with_a_huge_limit() {
        // Open containers live on the heap, so even a limit that does not bound
        // anything cannot overflow the call stack.
        let input = format!("{{\"a\":{}", "[{\"b\":".repeat(100_000));
        assert_eq!(
            parse_object(input.as_bytes(), usize::MAX),
            Err(JsonError {
                kind: JsonErrorKind::UnexpectedEnd,
                offset: input.len()
            })
        );
    }

    #[test]
    fn display_messages() {
        let show = |kind, offset| JsonError { kind, offset }.to_string();
        assert_eq!(
            show(JsonErrorKind::DuplicateMember("aud".into()), 17),
            "duplicate member `aud` at byte 17"
        );
        assert_eq!(
            show(JsonErrorKind::TooDeep { limit: 64 }, 130),
            "nesting deeper than 64 levels at byte 130"
        );
        assert_eq!(
            show(JsonErrorKind::InvalidUtf8, 5),
            "invalid UTF-8 at byte 5"
        );
        assert_eq!(
            show(JsonErrorKind::NotAnObject, 0),
            "top-level value is not an object at byte 0"
        );
        assert_eq!(
            show(JsonErrorKind::UnexpectedEnd, 9),
            "unexpected end of input at byte 9"
        );
        assert_eq!(
            show(JsonErrorKind::UnexpectedByte(b'}'), 3),
            "unexpected character `}` at byte 3"
        );
        assert_eq!(
            show(JsonErrorKind::UnexpectedByte(0xEF), 0),
            "unexpected byte `0xEF` at byte 0"
        );
        assert_eq!(
            show(JsonErrorKind::UnexpectedByte(b' '), 4),
            "unexpected byte `0x20` at byte 4"
        );
        assert_eq!(
            show(JsonErrorKind::InvalidNumber, 6),
            "invalid number at byte 6"
        );
        assert_eq!(
            show(JsonErrorKind::InvalidEscape, 6),
            "invalid escape sequence at byte 6"
        );
        assert_eq!(
            show(JsonErrorKind::LoneSurrogate, 6),
            "unpaired UTF-16 surrogate escape at byte 6"
        );
        assert_eq!(
            show(JsonErrorKind::ControlCharacter, 7),
            "unescaped control character in string at byte 7"
        );
        assert_eq!(
            show(JsonErrorKind::TrailingData, 2),
            "trailing data after the top-level object at byte 2"
        );
        // Names are escaped onto one line and cut short.
        assert_eq!(
            show(JsonErrorKind::DuplicateMember("a\nb`".into()), 1),
            "duplicate member `a\\nb`` at byte 1"
        );
        let long = "x".repeat(100);
        assert_eq!(
            show(JsonErrorKind::DuplicateMember(long.into()), 1),
            format!(
                "duplicate member `{}…` at byte 1",
                "x".repeat(MAX_NAME_IN_MESSAGE)
            )
        );
        let error: Box<dyn std::error::Error> = Box::new(err(br#"{"a":1,"a":2}"#));
        assert_eq!(error.to_string(), "duplicate member `a` at byte 7");
    }

    /// A small deterministic pseudo-random generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "12.5",
        "1e10",
        "1E+2",
        "1e-2",
        "-0.0e0",
        "1700000000",
        "1700000000.123456789",
        "123456789012345678901234567890",
        "1e308",
        "1e400",
        "-1e400",
        "1e-400",
        "0.000001",
        "9007199254740993",
    ];

    const STRING_PIECES: &[&str] = &[
        "a",
        "Z",
        "9",
        " ",
        "é",
        "€",
        "😀",
        "\\n",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\r",
        "\\t",
        "\\u0000",
        "\\u00e9",
        "\\u20AC",
        "\\ud83d\\ude00",
        "\\uD83D\\uDE00",
        "\u{7f}",
        "'",
    ];

    fn whitespace(rng: &mut Rng, out: &mut String) {
        if rng.below(3) == 0 {
            out.push(rng.pick(&[' ', '\t', '\n', '\r']));
        }
    }

    fn string(rng: &mut Rng, out: &mut String) {
        out.push('"');
        for _ in 0..rng.below(5) {
            out.push_str(rng.pick(STRING_PIECES));
        }
        out.push('"');
    }

    fn value(rng: &mut Rng, depth: usize, out: &mut String) {
        let choice = if depth >= 6 {
            rng.below(4)
        } else {
            rng.below(7)
        };
        match choice {
            0 => out.push_str(rng.pick(&["true", "false", "null"])),
            1 => out.push_str(rng.pick(NUMBERS)),
            2 | 3 => string(rng, out),
            4 => {
                out.push('[');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    whitespace(rng, out);
                    value(rng, depth + 1, out);
                    whitespace(rng, out);
                }
                out.push(']');
            }
            _ => object(rng, depth + 1, out),
        }
    }

    fn object(rng: &mut Rng, depth: usize, out: &mut String) {
        out.push('{');
        whitespace(rng, out);
        for i in 0..rng.below(5) {
            if i > 0 {
                out.push(',');
                whitespace(rng, out);
            }
            // Distinct names, sometimes written with escapes.
            match rng.below(3) {
                0 => out.push_str(&format!("\"k{i}\"")),
                1 => out.push_str(&format!("\"\\u006B{i}\"")),
                _ => out.push_str(&format!("\"{i}\\n{}\"", rng.pick(STRING_PIECES))),
            }
            whitespace(rng, out);
            out.push(':');
            whitespace(rng, out);
            value(rng, depth, out);
            whitespace(rng, out);
        }
        out.push('}');
    }

    /// Whether some number in `value` is beyond the range of an `f64`.
    fn has_huge_number(value: &Json) -> bool {
        match value {
            Json::Number(n) => n.as_str().parse::<f64>().is_ok_and(f64::is_infinite),
            Json::Array(items) => items.iter().any(has_huge_number),
            Json::Object(o) => o.iter().any(|(_, v)| has_huge_number(v)),
            _ => false,
        }
    }

    /// Whether our value and serde_json's agree.
    fn same(ours: &Json, theirs: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (ours, theirs) {
            (Json::Null, Value::Null) => true,
            (Json::Bool(a), Value::Bool(b)) => a == b,
            (Json::Number(a), Value::Number(b)) => {
                let a = a.as_str().parse::<f64>().unwrap();
                // serde_json's default float parsing may be off by an ulp.
                a.is_infinite() || b.as_f64().is_none_or(|b| (a - b).abs() <= a.abs() * 1e-15)
            }
            (Json::String(a), Value::String(b)) => **a == **b,
            (Json::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
            }
            (Json::Object(a), Value::Object(b)) => same_object(a, b),
            _ => false,
        }
    }

    fn same_object(ours: &Object, theirs: &serde_json::Map<String, serde_json::Value>) -> bool {
        ours.len() == theirs.len()
            && ours
                .iter()
                .all(|(name, value)| theirs.get(name).is_some_and(|v| same(value, v)))
    }

    /// Checks that we accept exactly what serde_json accepts, apart from the
    /// documented differences. Returns whether we accepted.
    fn compare_with_serde_json(input: &[u8]) -> bool {
        let ours = parse_object(input, DEPTH);
        let theirs = serde_json::from_slice::<serde_json::Value>(input);
        let shown = String::from_utf8_lossy(input);
        match (&ours, &theirs) {
            (Ok(object), Ok(value)) => {
                let Some(map) = value.as_object() else {
                    panic!("{shown:?}: serde_json gave a non-object {value:?}");
                };
                assert!(
                    same_object(object, map),
                    "{shown:?}: {object:?} vs {value:?}"
                );
            }
            (Ok(object), Err(e)) => {
                // serde_json without `arbitrary_precision` rejects numbers
                // beyond f64; we keep their text.
                assert!(
                    object.iter().any(|(_, v)| has_huge_number(v)),
                    "{shown:?}: we accept, serde_json says {e}"
                );
            }
            (Err(e), Ok(value)) => {
                let explained = match &e.kind {
                    JsonErrorKind::DuplicateMember(_) => true,
                    JsonErrorKind::NotAnObject => !value.is_object(),
                    _ => false,
                };
                assert!(
                    explained,
                    "{shown:?}: we say {e}, serde_json accepts {value:?}"
                );
            }
            (Err(_), Err(_)) => {}
        }
        ours.is_ok()
    }

    const HANDWRITTEN: &[&str] = &[
        "{}",
        " {} ",
        r#"{"a":1}"#,
        r#"{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00"}"#,
        r#"{"iss":"https://issuer.example","sub":"user","aud":["api","web"],"exp":1700000000,"nbf":1.7e9,"iat":1699999999.5}"#,
        r#"{"alg":"RS256","kid":"abc","typ":"JWT"}"#,
        r#"{"a":1e400}"#,
        r#"{"a":-1e400}"#,
        r#"{"a":1e-400}"#,
        r#"{"a":"\/\b\f\n\r\t"}"#,
        "{\"a\":\"\u{7f}\"}",
        r#"{"":""}"#,
        r#"{"a":[[[[[[[[[[]]]]]]]]]]}"#,
        r#"{"a":1,}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":01}"#,
        r#"{"a":1.}"#,
        r#"{"a":.5}"#,
        r#"{"a":+1}"#,
        r#"{"a":1e}"#,
        r#"{"a":NaN}"#,
        r#"{"a":Infinity}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        "{\"a\":\"\n\"}",
        "{\"a\":\"\u{0}\"}",
        "{\"a\":1}x",
        "{} {}",
        "[]",
        "\"x\"",
        "1",
        "",
        "\u{feff}{}",
        "{\"a\":\u{c}1}",
        "{'a':1}",
        "{a:1}",
        r#"{"a":tru}"#,
        r#"{"a":nul}"#,
        r#"{"a":true false}"#,
        r#"{"a":1 /* comment */}"#,
        r#"{"a" : 1 , "b" : [ 1 , 2 ] }"#,
    ];

    #[test]
    fn agrees_with_serde_json_on_handwritten_inputs() {
        let mut accepted = 0;
        for input in HANDWRITTEN {
            if compare_with_serde_json(input.as_bytes()) {
                accepted += 1;
            }
        }
        assert!(accepted >= 10 && accepted < HANDWRITTEN.len());
        compare_with_serde_json(b"{\"a\":\"\xff\"}");
        compare_with_serde_json(b"{\"a\":\"\xed\xa0\x80\"}");
        compare_with_serde_json(b"{\"a\":\"\xc0\xaf\"}");
    }

    #[test]
    fn agrees_with_serde_json_on_generated_inputs() {
        const MUTATION_BYTES: &[u8] = b"{}[],:\"\\01-.eE+ \t\n\x0c\x00\x1f\xff\xefatnu";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut valid, mut mutated_accepted, mut mutated_rejected) = (0, 0, 0);
        for _ in 0..400 {
            let mut input = String::new();
            whitespace(&mut rng, &mut input);
            object(&mut rng, 1, &mut input);
            whitespace(&mut rng, &mut input);
            assert!(
                compare_with_serde_json(input.as_bytes()),
                "generated input rejected: {input:?}"
            );
            valid += 1;
            for _ in 0..6 {
                let mut bytes = input.as_bytes().to_vec();
                let at = rng.below(bytes.len() + 1);
                match rng.below(4) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 if at < bytes.len() => bytes[at] = rng.pick(MUTATION_BYTES),
                    2 => bytes.truncate(at),
                    _ => bytes.insert(at, rng.pick(MUTATION_BYTES)),
                }
                if compare_with_serde_json(&bytes) {
                    mutated_accepted += 1;
                } else {
                    mutated_rejected += 1;
                }
            }
        }
        assert_eq!(valid, 400);
        // The mutations exercise both outcomes.
        assert!(mutated_accepted > 100, "{mutated_accepted}");
        assert!(mutated_rejected > 1000, "{mutated_rejected}");
    }
}
