//! Keys: JWK sets, the [`KeySource`] trait an engine asks for an issuer's keys, and key selection.
//!
//! Keys belong to an issuer: an engine holds one key source per issuer and never looks for a
//! token's key anywhere else. Header parameters that point at keys (`jku`, `jwk`, `x5u`, `x5c`)
//! are never used. HMAC secrets never come from a JWKS: symmetric JWKs are skipped when a set is
//! read, and secrets are held apart from the key source (see `engine`).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::DecodingKey;

use crate::algorithm::{Algorithm, KeyFamily};
use crate::policy::JwksSource;
use crate::token::json::{self, Json, Object};

mod remote;

pub use remote::{KeyStats, RemoteKeys, RemoteSettings, RemoteSource, Startup, is_loopback};

/// JWK sets nest a few levels at most.
const MAX_JWKS_DEPTH: usize = 16;
/// RSA moduli shorter than this are refused (NIST SP 800-131A; aws-lc refuses them at verify time).
const MIN_RSA_BITS: usize = 2048;

/// Why keys could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A JWKS file could not be read.
    #[error("cannot read JWKS file `{path}`: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The JWKS is not strict JSON.
    #[error("JWKS is not valid JSON: {0}")]
    Json(String),
    /// The JWKS is JSON but not a JWK set.
    #[error("not a JWK set: {0}")]
    NotAJwkSet(String),
    /// A key in the set is malformed.
    #[error("JWKS key {index}{}: {problem}", kid_label(kid))]
    InvalidKey {
        /// Position in `keys`.
        index: usize,
        /// Its `kid`, if it has one.
        kid: Option<String>,
        /// What is wrong.
        problem: String,
    },
    /// Nothing in the set can verify a signature.
    #[error(
        "JWKS has no usable signature verification key{}",
        skipped_label(skipped)
    )]
    NoUsableKeys {
        /// Why each key was skipped.
        skipped: Vec<String>,
    },
    /// An HMAC secret the policy names could not be read or is too short.
    #[error("HMAC secret {0}")]
    Secret(String),
    /// A remote key source has no keys to offer (yet, or any more).
    #[error("keys unavailable: {0}")]
    Unavailable(String),
}

fn kid_label(kid: &Option<String>) -> String {
    kid.as_ref()
        .map(|k| format!(" (`kid` `{k}`)"))
        .unwrap_or_default()
}

fn skipped_label(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join("; "))
    }
}

/// A public key (or, kept apart from any JWKS, a named HMAC secret) able to verify signatures.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    family: KeyFamily,
    /// The JWK's own `alg`: when present, a token's `alg` must equal it.
    alg: Option<Algorithm>,
    /// For HMAC secrets, the secret's length (RFC 7518 §3.2 minimums depend on the algorithm).
    secret_len: usize,
    decoding: DecodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// What kind of key this is.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// The JWK's `alg`, if it names one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// An HMAC key from a secret the policy names.
    pub(crate) fn hmac(kid: Option<String>, secret: &[u8]) -> Key {
        Key {
            kid,
            family: KeyFamily::Hmac,
            alg: None,
            secret_len: secret.len(),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Why this key cannot verify `alg`, if it cannot.
    pub(crate) fn mismatch(&self, alg: Algorithm) -> Option<String> {
        if self.family != alg.family() {
            return Some(format!(
                "`{alg}` needs an {} key; key is {}",
                alg.family(),
                self.family
            ));
        }
        if let Some(own) = self.alg.filter(|own| *own != alg) {
            return Some(format!("key is for `{own}` only; token says `{alg}`"));
        }
        if self.family == KeyFamily::Hmac && self.secret_len < alg.min_secret_len() {
            return Some(format!(
                "`{alg}` needs a secret of at least {} bytes; this one has {}",
                alg.min_secret_len(),
                self.secret_len
            ));
        }
        None
    }

    /// Checks `signature` (base64url, already checked canonical) over `signing_input` with `alg`.
    /// The caller has checked [`Key::mismatch`].
    pub(crate) fn verify(&self, signing_input: &[u8], signature: &str, alg: Algorithm) -> bool {
        jsonwebtoken::crypto::verify(
            signature,
            signing_input,
            &self.decoding,
            alg.to_jsonwebtoken(),
        )
        .unwrap_or(false)
    }
}

/// Why no key could be chosen for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// No key with the token's `kid`, or the token has no `kid` and none (or several) could fit.
    NotFound(String),
    /// The key the `kid` names cannot verify the token's `alg`.
    Mismatch(String),
}

/// The verification keys of one issuer.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    skipped: Vec<String>,
}

impl KeySet {
    /// Reads a JWK set (RFC 7517 §5) strictly: a JSON object with a `keys` array.
    ///
    /// Keys that are well-formed but not for us (`use` other than `sig`, `key_ops` without
    /// `verify`, symmetric `oct` keys, other key types or curves) are skipped and listed in
    /// [`KeySet::skipped`]; a malformed key is an error naming it.
    pub fn from_jwks(bytes: &[u8]) -> Result<KeySet, KeyError> {
        Self::parse(bytes, false)
    }

    /// Like [`KeySet::from_jwks`], but a malformed key (or a second key with the same `kid`) is
    /// skipped and listed in [`KeySet::skipped`] instead of failing the whole set: for sets the
    /// issuer publishes and may change under us. The JSON itself must still be a JWK set.
    pub fn from_jwks_lenient(bytes: &[u8]) -> Result<KeySet, KeyError> {
        Self::parse(bytes, true)
    }

    fn parse(bytes: &[u8], lenient: bool) -> Result<KeySet, KeyError> {
        let root = json::parse_object(bytes, MAX_JWKS_DEPTH)
            .map_err(|e| KeyError::Json(e.at_line(bytes)))?;
        let keys = match root.get("keys") {
            Some(Json::Array(keys)) => keys,
            Some(other) => {
                return Err(KeyError::NotAJwkSet(format!(
                    "`keys` is {}, not an array",
                    other.type_name()
                )));
            }
            None => return Err(KeyError::NotAJwkSet("no `keys` member".into())),
        };
        let mut set = KeySet::default();
        for (index, jwk) in keys.iter().enumerate() {
            let (kid, read) = set.read_key(jwk);
            match read {
                Ok(Parsed::Key(key)) => set.keys.push(key),
                Ok(Parsed::Skipped(why)) => {
                    set.skipped
                        .push(format!("key {index}{}: {why}", kid_label(&kid)));
                }
                Err(problem) if lenient => {
                    set.skipped
                        .push(format!("key {index}{}: {problem}", kid_label(&kid)));
                }
                Err(problem) => {
                    return Err(KeyError::InvalidKey {
                        index,
                        kid,
                        problem,
                    });
                }
            }
        }
        if set.keys.is_empty() {
            return Err(KeyError::NoUsableKeys {
                skipped: set.skipped,
            });
        }
        Ok(set)
    }

    /// Reads one JWK of the set: its `kid` (for messages), and the key or why there is none.
    fn read_key(&self, jwk: &Json) -> (Option<String>, Result<Parsed, String>) {
        let Some(jwk) = jwk.as_object() else {
            return (None, Err(format!("is {}, not an object", jwk.type_name())));
        };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Json::String(kid)) => Some(kid.to_string()),
            Some(other) => {
                return (
                    None,
                    Err(format!("`kid` is {}, not a string", other.type_name())),
                );
            }
        };
        let parsed = parse_jwk(jwk, kid.clone()).and_then(|parsed| match (&parsed, &kid) {
            (Parsed::Key(key), Some(kid))
                if self
                    .keys
                    .iter()
                    .any(|k| k.kid.as_ref() == Some(kid) && k.family == key.family) =>
            {
                Err(format!(
                    "a second {} key with this `kid`: a token's `kid` could not pick one",
                    key.family
                ))
            }
            _ => Ok(parsed),
        });
        (kid, parsed)
    }

    /// Loads a static JWKS source.
    pub(crate) fn load(source: &JwksSource) -> Result<KeySet, KeyError> {
        match source {
            JwksSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| KeyError::Io {
                    path: path.clone(),
                    message: crate::io_message(&e),
                })?;
                KeySet::from_jwks(&bytes)
            }
            JwksSource::Inline(text) => KeySet::from_jwks(text.as_bytes()),
        }
    }

    /// A set of the given keys.
    pub(crate) fn from_keys(keys: Vec<Key>) -> KeySet {
        KeySet {
            keys,
            skipped: Vec::new(),
        }
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Why each skipped key was skipped.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Chooses the key for a token with header `kid` and `alg`.
    ///
    /// With a `kid`, the key must have that `kid` (and fit `alg`). Without one, exactly one key
    /// may fit `alg`; several would be a guess, so that is refused too.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, SelectError> {
        match kid {
            Some(kid) => {
                let named: Vec<&Key> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    return Err(SelectError::NotFound(format!(
                        "no key has `kid` {}",
                        crate::token::quote(kid)
                    )));
                }
                let mut reasons = Vec::new();
                for key in &named {
                    match key.mismatch(alg) {
                        None => return Ok(key),
                        Some(why) => reasons.push(why),
                    }
                }
                Err(SelectError::Mismatch(format!(
                    "key {}: {}",
                    crate::token::quote(kid),
                    reasons.join("; ")
                )))
            }
            None => {
                let fitting: Vec<&Key> = self
                    .keys
                    .iter()
                    .filter(|k| k.mismatch(alg).is_none())
                    .collect();
                match fitting.as_slice() {
                    [one] => Ok(one),
                    [] => Err(SelectError::NotFound(format!(
                        "token has no `kid` and no key fits `{alg}`"
                    ))),
                    many => Err(SelectError::NotFound(format!(
                        "token has no `kid` and {} keys fit `{alg}`; refusing to guess",
                        many.len()
                    ))),
                }
            }
        }
    }
}

enum Parsed {
    Key(Key),
    Skipped(String),
}

fn parse_jwk(jwk: &Object, kid: Option<String>) -> Result<Parsed, String> {
    let kty = string_member(jwk, "kty")?.ok_or("no `kty`")?;
    if let Some(usage) = string_member(jwk, "use")?
        && usage != "sig"
    {
        return Ok(Parsed::Skipped(format!("`use` is `{usage}`, not `sig`")));
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Json::Array(ops)) if !ops.iter().any(|op| op.as_str() == Some("verify")) => {
            return Ok(Parsed::Skipped(
                "`key_ops` does not include `verify`".into(),
            ));
        }
        Some(other) => return Err(format!("`key_ops` is {}, not an array", other.type_name())),
    }
    let alg = match string_member(jwk, "alg")? {
        None => None,
        Some(name) => match Algorithm::from_name(name) {
            Some(alg) if !alg.is_hmac() => Some(alg),
            _ => {
                return Ok(Parsed::Skipped(format!(
                    "`alg` `{name}` is not a signature algorithm this crate verifies from a JWKS"
                )));
            }
        },
    };
    let (family, decoding) = match kty {
        "RSA" => {
            let n = b64_member(jwk, "n")?;
            let e = b64_member(jwk, "e")?;
            let n_trimmed: &[u8] = strip_leading_zeros(&n);
            // The first byte left is non-zero, so it has at most 7 leading zero bits. (An empty
            // modulus once underflowed here: found by the `jwks` fuzz target.)
            let bits = n_trimmed
                .first()
                .map_or(0, |b| n_trimmed.len() * 8 - b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus has {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            if strip_leading_zeros(&e).is_empty() {
                return Err("RSA exponent is zero".into());
            }
            (KeyFamily::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let crv = string_member(jwk, "crv")?.ok_or("EC key has no `crv`")?;
            let (family, len) = match crv {
                "P-256" => (KeyFamily::P256, 32),
                "P-384" => (KeyFamily::P384, 48),
                other => {
                    return Ok(Parsed::Skipped(format!(
                        "EC curve `{other}` is not supported"
                    )));
                }
            };
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
            if x.len() != len || y.len() != len {
                return Err(format!(
                    "{crv} coordinates must be {len} bytes each; found {} and {}",
                    x.len(),
                    y.len()
                ));
            }
            let x = string_member(jwk, "x")?.unwrap_or_default();
            let y = string_member(jwk, "y")?.unwrap_or_default();
            let key =
                DecodingKey::from_ec_components(x, y).map_err(|e| format!("bad EC key: {e}"))?;
            (family, key)
        }
        "OKP" => {
            let crv = string_member(jwk, "crv")?.ok_or("OKP key has no `crv`")?;
            if crv != "Ed25519" {
                return Ok(Parsed::Skipped(format!(
                    "OKP curve `{crv}` is not supported for signatures"
                )));
            }
            let x = b64_member(jwk, "x")?;
            if x.len() != 32 {
                return Err(format!("Ed25519 key must be 32 bytes; found {}", x.len()));
            }
            let x = string_member(jwk, "x")?.unwrap_or_default();
            let key =
                DecodingKey::from_ed_components(x).map_err(|e| format!("bad Ed25519 key: {e}"))?;
            (KeyFamily::Ed25519, key)
        }
        "oct" => {
            return Ok(Parsed::Skipped(
                "symmetric (`oct`) keys are never taken from a JWKS".into(),
            ));
        }
        other => {
            return Ok(Parsed::Skipped(format!(
                "key type `{other}` is not supported"
            )));
        }
    };
    if let Some(alg) = alg
        && alg.family() != family
    {
        return Err(format!("`alg` `{alg}` does not fit a {family} key"));
    }
    Ok(Parsed::Key(Key {
        kid,
        family,
        alg,
        secret_len: 0,
        decoding,
    }))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or(&[])
}

fn string_member<'a>(jwk: &'a Object, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("`{name}` is {}, not a string", other.type_name())),
    }
}

fn b64_member(jwk: &Object, name: &str) -> Result<Vec<u8>, String> {
    let text = string_member(jwk, name)?.ok_or_else(|| format!("no `{name}`"))?;
    crate::token::BASE64URL
        .decode(text)
        .map_err(|_| format!("`{name}` is not canonical unpadded base64url"))
}

/// A future resolving to an issuer's keys.
pub type KeysFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<KeySet>, KeyError>> + Send + 'a>>;

/// Where an engine gets one issuer's keys.
///
/// Evaluation asks [`KeySource::keys`] for the current set and never waits. When a token names a
/// `kid` the set lacks, [`PolicyEngine::evaluate_async`](crate::PolicyEngine::evaluate_async)
/// awaits [`KeySource::refresh`] once and tries again; a remote source refetches there (bounded
/// by its own cooldown), a static one just answers with what it has. The rules do not change
/// with the source.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The keys as they are now.
    fn keys(&self) -> Result<Arc<KeySet>, KeyError>;

    /// Fresh keys, because a token named `kid` and [`KeySource::keys`] lacked it, or because
    /// `keys` had none to give (`kid` is `None`). A remote source may refetch (bounded by its
    /// cooldown); a static one answers with what it has.
    fn refresh<'a>(&'a self, kid: Option<&'a str>) -> KeysFuture<'a> {
        let _ = kid;
        Box::pin(std::future::ready(self.keys()))
    }

    /// The fetch to make before the engine is first used, for a source that fetches eagerly
    /// ([`EngineBuilder::build_async`](crate::EngineBuilder::build_async) awaits it).
    fn startup(&self) -> Option<KeysFuture<'_>> {
        None
    }

    /// Counters of a source that fetches keys; `None` for one that does not.
    fn stats(&self) -> Option<KeyStats> {
        None
    }
}

/// Keys that never change: a JWKS file, an inline JWKS, or keys built in code.
#[derive(Debug, Clone)]
pub struct StaticKeys(Arc<KeySet>);

impl StaticKeys {
    /// Wraps a key set.
    pub fn new(keys: KeySet) -> Self {
        Self(Arc::new(keys))
    }

    /// Shares an existing key set.
    pub fn from_arc(keys: Arc<KeySet>) -> Self {
        Self(keys)
    }

    /// Reads a JWKS file.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, KeyError> {
        KeySet::load(&JwksSource::File(path.into())).map(Self::new)
    }
}

impl KeySource for StaticKeys {
    fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
        Ok(self.0.clone())
    }
}
