//! The ground floor: JSON as JOSE writes it (RFC 7515, RFC 7517, RFC 7519), read strictly.
//!
//! - [`parse`]: the strict parser of token headers and payloads, key sets and issuer metadata;
//! - [`number`]: exact arithmetic on the text of JSON numbers, with no floating point;
//! - [`time`]: [`UnixTime`], an instant exact to the nanosecond: the clock, `--now`, and a
//!   token's NumericDates;
//! - [`BASE64URL`]: how JOSE writes bytes, in a compact JWS and in a JWK.
//!
//! Nothing here knows about keys, tokens or policies.

pub(crate) mod number;
mod parse;
mod time;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

pub(crate) use parse::{Json, Object, parse_object};
pub(crate) use time::NumericDateError;
pub use time::UnixTime;

/// Unpadded, canonical base64url (RFC 7515 §2): `=` padding, whitespace, the standard alphabet
/// and non-zero trailing bits are all rejected, so each token has exactly one spelling.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);
