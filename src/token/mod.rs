//! Strict compact-JWS decoding and the proof that a signature was checked.
//!
//! [`decode`] turns text into an [`UnverifiedToken`]: size first, then exactly three canonical
//! base64url segments, then strict JSON objects. Only [`UnverifiedToken::verify`] makes a
//! [`VerifiedToken`], and claim rules take only a [`VerifiedToken`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;

use crate::algorithm::Algorithm;
use crate::json::{self, BASE64URL, Json, Object};
use crate::jwks::Key;
use crate::text::quote;

/// The header parameters RFC 7515 §4.1 registers; `crit` must never list them.
pub(crate) const REGISTERED_HEADER_PARAMETERS: [&str; 11] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
];

/// A `typ` value as a comparable media type: lowercase, with `application/` added when there is
/// no `/` (RFC 7515 §4.1.9), so `at+jwt` and `application/AT+JWT` are the same type.
pub(crate) fn media_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    if lower.contains('/') {
        lower
    } else {
        format!("application/{lower}")
    }
}

/// Header parameters that only a JWE has (RFC 7516 §4.1.2-4.1.3, RFC 7518 §4.6-4.8): a header
/// carrying one belongs to a token meant for decryption, not to a signed token.
pub(crate) const JWE_HEADER_PARAMETERS: [&str; 9] =
    ["enc", "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c"];

/// Claims a JWT may replicate in its header (RFC 7519 §5.3); a copy must equal the claim.
pub(crate) const REPLICATED_CLAIMS: [&str; 3] = ["iss", "sub", "aud"];

/// Header and payload JSON may nest at most this deep; deeper input is rejected, never recursed.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// A part of a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    /// The protected header.
    Header,
    /// The payload (claims).
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// Why a token could not be decoded. Every variant denies; none of them panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TokenError {
    /// Larger than the policy's `limits.max_token_bytes`; nothing else was looked at.
    #[error("token is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The token's length in bytes.
        size: usize,
        /// The policy's limit.
        limit: usize,
    },
    /// A byte that is not ASCII (a compact JWS is base64url text and dots).
    #[error("byte {offset} of the token is not ASCII")]
    NotAscii {
        /// Offset of the first non-ASCII byte.
        offset: usize,
    },
    /// Not three `.`-separated segments.
    #[error("token has {0} segment{s}; a compact JWS has exactly 3", s = if *.0 == 1 { "" } else { "s" })]
    Segments(usize),
    /// A segment is empty.
    #[error("the {0} segment is empty")]
    Empty(Segment),
    /// A segment is not canonical unpadded base64url.
    #[error("the {segment} segment is not canonical unpadded base64url: {problem}")]
    Base64 {
        /// Which segment.
        segment: Segment,
        /// What is wrong, e.g. an invalid byte and its offset.
        problem: String,
    },
    /// The header or payload is not a strict JSON object.
    #[error("the {segment} is not a strict JSON object: {problem}")]
    Json {
        /// Which segment.
        segment: Segment,
        /// What is wrong (duplicate member, nesting, UTF-8, syntax), with its byte offset.
        problem: String,
    },
    /// A header parameter has the wrong type (`alg` missing or not a string, `kid` not a string...).
    #[error("header parameter {0}")]
    Header(String),
}

/// A decoded token whose signature has not been checked. Its claims are only used to find the
/// issuer (and so the keys); rules never see them.
#[derive(Debug)]
pub(crate) struct UnverifiedToken<'t> {
    signing_input: &'t [u8],
    /// The signature's bytes, decoded once here (the key checks them as they are).
    signature: &'t [u8],
    header: Held<'t>,
    claims: Object<'t>,
}

/// A token's header: read from this token, or shared with an earlier token whose header segment
/// was the same text (see [`HeaderCache`]).
#[derive(Debug)]
enum Held<'t> {
    /// Boxed, so that a token stays small to move about (most headers are shared).
    Read(Box<Header<'t>>),
    Shared(Arc<Header<'static>>),
}

impl<'t> Held<'t> {
    fn get(&self) -> &Header<'t> {
        match self {
            Held::Read(header) => header,
            Held::Shared(header) => header,
        }
    }
}

/// The headers of the last few tokens decoded on this thread, by the exact text of their header
/// segment. An issuer signs its tokens with the same header (`alg`, `typ`, `kid`), so most tokens
/// find theirs here and skip decoding and reading it again: the same text decodes to the same
/// header, so this changes no outcome. Only headers that decoded and were read without error, and
/// whose members are all strings, are kept.
struct HeaderCache {
    entries: [Option<KeptHeader>; HeaderCache::ENTRIES],
    /// The entry the next new header replaces.
    next: usize,
}

/// A header segment's text and the header it decoded to.
type KeptHeader = (Box<[u8]>, Arc<Header<'static>>);

impl HeaderCache {
    /// Headers kept per thread (a few issuers and keys in rotation).
    const ENTRIES: usize = 4;
    /// Longer header segments are not kept.
    const MAX_TEXT: usize = 512;

    fn get(&self, text: &[u8]) -> Option<Arc<Header<'static>>> {
        self.entries
            .iter()
            .flatten()
            .find(|(kept, _)| **kept == *text)
            .map(|(_, header)| header.clone())
    }

    fn keep(&mut self, text: &[u8], header: &Header<'_>) {
        if text.len() > Self::MAX_TEXT {
            return;
        }
        // Read again from its own copy, by the same reading (it read without error before).
        let Some(owned) = header
            .object
            .strings_into_owned()
            .and_then(|object| read_header(object).ok())
        else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(self.next) {
            *entry = Some((text.into(), Arc::new(owned)));
        }
        self.next = (self.next + 1) % Self::ENTRIES;
    }
}

thread_local! {
    static HEADERS: RefCell<HeaderCache> = const {
        RefCell::new(HeaderCache { entries: [const { None }; HeaderCache::ENTRIES], next: 0 })
    };
}

/// The header parameters the engine uses, type-checked, plus the whole header.
#[derive(Debug)]
pub(crate) struct Header<'t> {
    pub(crate) alg: Cow<'t, str>,
    pub(crate) kid: Option<Cow<'t, str>>,
    pub(crate) typ: Option<Cow<'t, str>>,
    /// `crit` as written, if present (checked against the policy by the engine).
    pub(crate) crit: Option<Json<'t>>,
    pub(crate) object: Object<'t>,
}

/// The header and claims of a token whose signature was verified with a key of the issuer it
/// names. Only [`UnverifiedToken::verify`] constructs one, and claim rules take nothing else.
#[derive(Debug)]
pub(crate) struct VerifiedToken<'t> {
    header: Held<'t>,
    claims: Object<'t>,
}

impl<'t> VerifiedToken<'t> {
    /// The verified claims.
    pub(crate) fn claims(&self) -> &Object<'t> {
        &self.claims
    }

    /// The verified header.
    pub(crate) fn header(&self) -> &Object<'t> {
        &self.header.get().object
    }
}

impl<'t> UnverifiedToken<'t> {
    /// The header (unverified: used to pick and check the key, never to grant anything).
    pub(crate) fn header(&self) -> &Header<'t> {
        self.header.get()
    }

    /// The unverified claims, used only to read `iss` and find that issuer's keys.
    pub(crate) fn unverified_claims(&self) -> &Object<'t> {
        &self.claims
    }

    /// Checks the signature with `key` for `alg`; only this makes a [`VerifiedToken`].
    pub(crate) fn verify(self, key: &Key, alg: Algorithm) -> Option<VerifiedToken<'t>> {
        key.verify_bytes(self.signing_input, self.signature, alg)
            .then_some(VerifiedToken {
                header: self.header,
                claims: self.claims,
            })
    }

    /// The outcome an earlier [`UnverifiedToken::verify`] of this same token with the same key
    /// had, recorded by the decision it made: used only to write that decision's texts again,
    /// never to decide.
    pub(crate) fn verified_as_recorded(self, verified: bool) -> Option<VerifiedToken<'t>> {
        verified.then_some(VerifiedToken {
            header: self.header,
            claims: self.claims,
        })
    }
}

/// The payload's JSON text of a token that decoded (and so whose payload is canonical base64url
/// of strict UTF-8 JSON); `None` for anything else.
pub(crate) fn payload_text(token: &[u8]) -> Option<String> {
    let payload = token.split(|b| *b == b'.').nth(1)?;
    let bytes = BASE64URL.decode(payload).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
thread_local! {
    /// How many tokens this thread decoded (tests count decodes with it).
    pub(crate) static DECODED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Decodes `token` strictly, rejecting anything over `max_bytes` before looking at it. The
/// header's, payload's and signature's bytes are decoded into `buffer` (reuse it to save an
/// allocation), and what is decoded borrows from it.
pub(crate) fn decode<'t>(
    token: &'t [u8],
    max_bytes: usize,
    buffer: &'t mut Vec<u8>,
) -> Result<UnverifiedToken<'t>, TokenError> {
    #[cfg(test)]
    DECODED.with(|n| n.set(n.get() + 1));
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge {
            size: token.len(),
            limit: max_bytes,
        });
    }
    // The header ends at the first dot and the signature starts after the last. Any other byte
    // that is not base64url (a dot more, a byte that is not ASCII) fails the decoding of its
    // segment, and only then is the token read again to say what is wrong with it, in the order
    // a reader would check: ASCII, three segments, none empty, canonical base64url.
    let (Some(first_dot), Some(last_dot)) =
        (memchr::memchr(b'.', token), memchr::memrchr(b'.', token))
    else {
        return Err(refusal(token));
    };
    let header_b64 = token.get(..first_dot).unwrap_or_default();
    let payload_b64 = token.get(first_dot + 1..last_dot).unwrap_or_default();
    let signature_b64 = token.get(last_dot + 1..).unwrap_or_default();
    // Room for each segment's bytes, one after the other. The buffer only grows (a thread
    // reuses it), so a token no larger than the last ones costs no allocation and no zeroing.
    let shared = HEADERS.with(|cache| cache.try_borrow().ok()?.get(header_b64));
    // A header found in the cache is not decoded again (its text was canonical then).
    let header_text: &[u8] = if shared.is_some() { &[] } else { header_b64 };
    let room: usize = [header_text, payload_b64, signature_b64]
        .iter()
        .map(|text| BASE64URL_FAST.estimated_decoded_length(text.len()))
        .sum();
    if buffer.len() < room {
        buffer.resize(room, 0);
    }
    let decoded = |text: &[u8], out: &mut [u8]| -> Result<usize, TokenError> {
        match BASE64URL_FAST.decode(text, base64_simd::Out::from_slice(out)) {
            Ok(bytes) if !text.is_empty() => Ok(bytes.len()),
            _ => Err(refusal(token)),
        }
    };
    let header_len = match shared {
        Some(_) => 0,
        None => decoded(header_b64, buffer)?,
    };
    let payload_len = decoded(
        payload_b64,
        buffer.get_mut(header_len..).unwrap_or_default(),
    )?;
    // Canonical like the others, so one token has one spelling; its bytes are what the key checks.
    let signature_len = decoded(
        signature_b64,
        buffer
            .get_mut(header_len + payload_len..)
            .unwrap_or_default(),
    )?;
    let buffer: &'t [u8] = buffer;
    let (header_bytes, rest) = buffer.split_at_checked(header_len).unwrap_or((buffer, &[]));
    let (payload_bytes, rest) = rest.split_at_checked(payload_len).unwrap_or((rest, &[]));
    let signature = rest.get(..signature_len).unwrap_or_default();
    // The header's JSON, then the payload's, then the header's parameters: the first problem in
    // that order is the one reported.
    let header_object = match shared {
        Some(_) => None,
        None => Some(
            json::parse_object(header_bytes, MAX_JSON_DEPTH).map_err(|e| TokenError::Json {
                segment: Segment::Header,
                problem: e.to_string(),
            })?,
        ),
    };
    let claims =
        json::parse_object(payload_bytes, MAX_JSON_DEPTH).map_err(|e| TokenError::Json {
            segment: Segment::Payload,
            problem: e.to_string(),
        })?;
    let header = match (shared, header_object) {
        (Some(header), _) => Held::Shared(header),
        (None, object) => {
            let header = read_header(object.unwrap_or_default())?;
            HEADERS.with(|cache| {
                if let Ok(mut cache) = cache.try_borrow_mut() {
                    cache.keep(header_b64, &header);
                }
            });
            Held::Read(Box::new(header))
        }
    };
    let signing_input = token.get(..last_dot).unwrap_or_default();
    Ok(UnverifiedToken {
        signing_input,
        signature,
        header,
        claims,
    })
}

/// base64url without padding, as [`BASE64URL`] reads it, decoded with SIMD instructions where
/// the processor has them (about 3× the `base64` crate on a token; the AWS SDK for Rust decodes
/// with it too). A property test holds the two to accepting exactly the same texts with the
/// same bytes.
const BASE64URL_FAST: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Why `token`, which did not decode, is refused: the first of its problems in reading order.
fn refusal(token: &[u8]) -> TokenError {
    // A compact JWS is base64url and dots: ASCII.
    let Ok(text) = std::str::from_utf8(token)
        .map_err(|_| ())
        .and_then(|text| if text.is_ascii() { Ok(text) } else { Err(()) })
    else {
        let offset = token.iter().position(|b| !b.is_ascii()).unwrap_or(0);
        return TokenError::NotAscii { offset };
    };
    let parts: Vec<&str> = text.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return TokenError::Segments(parts.len());
    };
    for (text, segment) in [
        (header, Segment::Header),
        (payload, Segment::Payload),
        (signature, Segment::Signature),
    ] {
        if text.is_empty() {
            return TokenError::Empty(segment);
        }
        if BASE64URL_FAST.decode_to_vec(text).is_err() {
            return TokenError::Base64 {
                segment,
                problem: base64_problem(text),
            };
        }
    }
    // Nothing found (the decoders disagree, which a property test says they never do): refuse.
    TokenError::Base64 {
        segment: Segment::Header,
        problem: "it is not canonical unpadded base64url".into(),
    }
}

/// What is wrong with base64url text that did not decode: the fast decoder only says that it
/// failed, so the `base64` crate, which says where and why, reads it again (only on this path).
fn base64_problem(text: &str) -> String {
    match BASE64URL.decode(text) {
        Err(base64::DecodeError::InvalidByte(offset, byte)) => format!(
            "byte `{}` at offset {offset}",
            char::from(byte).escape_default()
        ),
        Err(base64::DecodeError::InvalidLength(len)) => {
            format!("{len} symbols is not a valid length")
        }
        Err(base64::DecodeError::InvalidLastSymbol { offset, .. }) => {
            format!("the last symbol (offset {offset}) has non-zero trailing bits")
        }
        Err(base64::DecodeError::InvalidPadding) => "`=` padding is not allowed".into(),
        // The two decoders disagree (the property test says they never do): refuse anyway.
        Ok(_) => "it is not canonical unpadded base64url".into(),
    }
}

fn read_header(object: Object<'_>) -> Result<Header<'_>, TokenError> {
    let string = |name: &str| -> Result<Option<Cow<'_, str>>, TokenError> {
        match object.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(TokenError::Header(format!(
                "`{name}` is {}, not a string",
                other.type_name()
            ))),
        }
    };
    let alg = string("alg")?.ok_or_else(|| TokenError::Header("`alg` is missing".into()))?;
    let kid = string("kid")?;
    let typ = string("typ")?;
    // A nested JWT (RFC 7519 §5.2) would make the payload another token: access tokens are never
    // nested (RFC 9068), and reading the inner one's claims as this one's would be a confusion.
    // `cty` is a media type (RFC 7515 §4.1.10): `JWT`, `jwt` and `application/JWT` are the same.
    if let Some(cty) = string("cty")?
        && media_type(&cty) == "application/jwt"
    {
        return Err(TokenError::Header(format!(
            "`cty` is {}: nested tokens are not accepted",
            quote(&cty)
        )));
    }
    if let Some(name) = JWE_HEADER_PARAMETERS
        .iter()
        .find(|name| object.get(name).is_some())
    {
        return Err(TokenError::Header(format!(
            "`{name}` is a JWE parameter: this is the header of an encrypted token, not of a signed one"
        )));
    }
    let crit = object.get("crit").cloned();
    Ok(Header {
        alg,
        kid,
        typ,
        crit,
        object,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Both decoders' answer for `text`: the bytes, or that it is refused.
    fn both(text: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let fast = BASE64URL_FAST.decode_to_vec(text).ok();
        let reference = BASE64URL.decode(text).ok();
        (fast, reference)
    }

    fn error(token: &str) -> String {
        match decode(token.as_bytes(), 1 << 16, &mut Vec::new()) {
            Ok(_) => panic!("{token:?} decoded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_token_that_does_not_decode_is_refused_for_its_first_problem_in_reading_order() {
        // `{}` is `e30`, `{"alg":"none"}` is below; the signature `AA` is one zero byte.
        let header = "eyJhbGciOiJub25lIn0";
        for (token, expected) in [
            ("e30.e30.é.x.y", "byte 8 of the token is not ASCII"),
            ("e30", "token has 1 segment; a compact JWS has exactly 3"),
            (
                "e30.e30",
                "token has 2 segments; a compact JWS has exactly 3",
            ),
            (
                "e30.e30.AA.AA",
                "token has 4 segments; a compact JWS has exactly 3",
            ),
            (".e30.AA", "the header segment is empty"),
            (
                "e3=..",
                "the header segment is not canonical unpadded base64url: `=` padding is not allowed",
            ),
            ("e30..AA", "the payload segment is empty"),
            ("e30.e30.", "the signature segment is empty"),
            (
                "e30.e3+.AA",
                "the payload segment is not canonical unpadded base64url: byte `+` at offset 2",
            ),
            (
                "e30.e30.AB",
                "the signature segment is not canonical unpadded base64url: the last symbol (offset 1) has non-zero trailing bits",
            ),
            (
                "e30.e30.A",
                "the signature segment is not canonical unpadded base64url: 1 symbols is not a valid length",
            ),
            ("e30.e30.AA", "header parameter `alg` is missing"),
            (
                "e30.e30.AA==",
                "the signature segment is not canonical unpadded base64url: `=` padding is not allowed",
            ),
        ] {
            assert_eq!(error(token), expected, "{token:?}");
        }
        assert!(decode(format!("{header}.e30.AA").as_bytes(), 100, &mut Vec::new()).is_ok());
    }

    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.";

    #[test]
    fn the_fast_decoder_accepts_exactly_the_short_texts_base64url_accepts() {
        // Every text of one to three symbols: the last symbol's trailing bits, the lengths that
        // cannot be, padding and the other alphabet's symbols.
        let mut texts = vec![String::new()];
        for _ in 0..3 {
            texts = texts
                .iter()
                .flat_map(|t| {
                    SYMBOLS
                        .iter()
                        .map(move |&b| format!("{t}{}", char::from(b)))
                })
                .collect();
            for text in &texts {
                let (fast, reference) = both(text);
                assert_eq!(fast, reference, "{text:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_decoder_accepts_exactly_what_base64url_accepts(
            symbols in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::sample::select(SYMBOLS),
                    1 => proptest::num::u8::ANY,
                ],
                0..200,
            )
        ) {
            let text = String::from_utf8_lossy(&symbols);
            let (fast, reference) = both(&text);
            proptest::prop_assert_eq!(fast, reference);
        }

        #[test]
        fn what_the_fast_decoder_writes_is_the_encoded_bytes(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
        ) {
            let text = BASE64URL.encode(&bytes);
            proptest::prop_assert_eq!(BASE64URL_FAST.decode_to_vec(&text).ok(), Some(bytes));
        }
    }

    /// A token with `header` (JSON text) and an empty payload.
    fn with_header(header: &str) -> String {
        format!("{}.e30.AA", BASE64URL.encode(header))
    }

    #[test]
    fn a_header_read_before_on_the_thread_is_shared_and_reads_the_same() {
        // More distinct headers than the cache keeps, in rotation, so entries are replaced; one
        // with a number and one with `crit` are never kept. Each token still gets its own header.
        let headers: Vec<String> = (0..HeaderCache::ENTRIES + 2)
            .map(|i| format!(r#"{{"alg":"HS256","kid":"k{i}","typ":"at+jwt"}}"#))
            .chain([
                r#"{"alg":"HS256","kid":"n","v":1}"#.to_owned(),
                r#"{"alg":"HS256","kid":"c","crit":["x"],"x":"y"}"#.to_owned(),
                // Kept (every member a string), and its malformed `crit` with it.
                r#"{"alg":"HS256","kid":"s","crit":"x","x":"y"}"#.to_owned(),
            ])
            .collect();
        let mut shared = 0;
        for round in 0..3 {
            for (i, header) in headers.iter().chain(headers.iter().take(2)).enumerate() {
                let token = with_header(header);
                let fresh = read_header(parse_object_for_test(header)).unwrap();
                // Twice in a row: the second finds the first's header, if it was kept.
                for time in 0..2 {
                    let mut buffer = Vec::new();
                    let decoded = decode(token.as_bytes(), 1 << 16, &mut buffer).unwrap();
                    assert_eq!(
                        format!("{:?}", decoded.header()),
                        format!("{fresh:?}"),
                        "round {round}, token {i}, time {time}"
                    );
                    shared += usize::from(matches!(decoded.header, Held::Shared(_)));
                }
            }
        }
        // Back to back, the same header is shared.
        let token = with_header(&headers[0]);
        for _ in 0..2 {
            let mut buffer = Vec::new();
            let decoded = decode(token.as_bytes(), 1 << 16, &mut buffer).unwrap();
            assert_eq!(decoded.header().kid.as_deref(), Some("k0"));
        }
        let mut buffer = Vec::new();
        let decoded = decode(token.as_bytes(), 1 << 16, &mut buffer).unwrap();
        assert!(matches!(decoded.header, Held::Shared(_)));
        assert!(shared > 0);
    }

    #[test]
    fn a_shared_header_does_not_hide_a_problem_of_the_payload() {
        let header = r#"{"alg":"HS256","kid":"p"}"#;
        let good = with_header(header);
        decode(good.as_bytes(), 1 << 16, &mut Vec::new()).unwrap();
        let bad = format!(
            "{}.{}.AA",
            BASE64URL.encode(header),
            BASE64URL.encode(r#"{"a":1,"a":2}"#)
        );
        assert_eq!(
            error(&bad),
            "the payload is not a strict JSON object: duplicate member `a` at byte 7"
        );
    }

    fn parse_object_for_test(text: &str) -> Object<'_> {
        json::parse_object(text.as_bytes(), MAX_JSON_DEPTH).unwrap()
    }
}
