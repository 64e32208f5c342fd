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

use aws_lc_rs::signature::{self as aws_sig, ParsedPublicKey, RsaParameters};
use base64::Engine as _;
use curve25519_dalek::edwards::CompressedEdwardsY;

use crate::algorithm::{Algorithm, Binding, KeyFamily, and_list};
use crate::json::{self, Json, Object};

#[cfg(feature = "remote")]
mod remote;
mod source;

#[cfg(feature = "remote")]
pub use remote::RemoteKeys;
pub(crate) use source::JwksSource;
pub use source::{KeyStats, RemoteSettings, RemoteSource, Startup, is_loopback};

/// The JWK member that marks a key made for tests (`jwt-policy keygen`).
pub(crate) const TEST_KEY_MEMBER: &str = "x-jwt-policy-test";

/// JWK sets nest a few levels at most.
const MAX_JWKS_DEPTH: usize = 16;
/// RSA moduli shorter than this are refused (NIST SP 800-131A; aws-lc refuses them at verify time).
const MIN_RSA_BITS: usize = 2048;
/// RSA moduli longer than this are refused: aws-lc verifies RSA signatures with 2048 to 8192-bit
/// moduli only, so a longer one would fail every token.
const MAX_RSA_BITS: usize = 8192;
/// RSA exponents longer than this are refused: aws-lc refuses them at verify time (a guard
/// against slow verifications); honest keys use 65537, 17 bits.
const MAX_RSA_EXPONENT_BITS: usize = 33;
/// The longest signature any algorithm here makes: RSA with the longest modulus taken.
const MAX_SIGNATURE_BYTES: usize = MAX_RSA_BITS / 8;

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

impl KeyError {
    /// What went wrong, without the "keys unavailable" a wrapping message adds itself.
    #[cfg(feature = "remote")]
    pub(crate) fn cause(&self) -> String {
        match self {
            Self::Unavailable(cause) => cause.clone(),
            other => other.to_string(),
        }
    }
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
    /// Its position in the JWK set it was read from (for messages).
    position: Option<usize>,
    family: KeyFamily,
    /// The JWK's own `alg`: when present, a token's `alg` must equal it.
    alg: Option<Algorithm>,
    /// For HMAC secrets, the secret's length (RFC 7518 §3.2 minimums depend on the algorithm).
    secret_len: usize,
    /// The key ready to check signatures, one entry per algorithm it may verify, built once when
    /// the key is read: an RSA key parsed per RSA algorithm (its JWK's `alg`, or all six), an EC
    /// or Ed25519 key for its curve's algorithm, a secret for each HMAC algorithm it is long
    /// enough for. Any other algorithm verifies nothing with this key.
    verifiers: Vec<(Algorithm, Verifier)>,
    /// The JWK carries `"x-jwt-policy-test": true`: made by `jwt-policy keygen` (or the `testing`
    /// feature), for tests only.
    test_key: bool,
}

/// A key prepared for one algorithm: parsed once, so a verification does only the signature math.
#[derive(Clone)]
enum Verifier {
    /// An RSA, EC or Ed25519 public key as aws-lc holds it, with its algorithm's parameters.
    Public(ParsedPublicKey),
    /// An HMAC secret, its inner and outer hash states already keyed.
    Hmac(HmacKey),
}

/// An HMAC secret with its inner and outer hash states already keyed, by RustCrypto's `hmac`
/// and `sha2` (SHA-NI where the processor has it) rather than aws-lc: aws-lc's prepared key
/// is over a kilobyte that each verification copies, which cost about 6 % of an HS256 decision.
/// Tags are compared in constant time (`Mac::verify_slice`).
#[derive(Clone)]
enum HmacKey {
    Sha256(Box<hmac::Hmac<sha2::Sha256>>),
    Sha384(Box<hmac::Hmac<sha2::Sha384>>),
    Sha512(Box<hmac::Hmac<sha2::Sha512>>),
}

impl HmacKey {
    /// The key for `alg` (`None` for an algorithm that is not HMAC).
    fn new(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        use hmac::KeyInit as _;
        Some(match alg {
            Algorithm::HS256 => Self::Sha256(Box::new(hmac::Hmac::new_from_slice(secret).ok()?)),
            Algorithm::HS384 => Self::Sha384(Box::new(hmac::Hmac::new_from_slice(secret).ok()?)),
            Algorithm::HS512 => Self::Sha512(Box::new(hmac::Hmac::new_from_slice(secret).ok()?)),
            _ => return None,
        })
    }

    /// Whether `tag` is this key's HMAC of `input` (compared in constant time).
    fn verify(&self, input: &[u8], tag: &[u8]) -> bool {
        fn check<M: hmac::Mac + Clone>(key: &M, input: &[u8], tag: &[u8]) -> bool {
            let mut mac = key.clone();
            mac.update(input);
            mac.verify_slice(tag).is_ok()
        }
        match self {
            Self::Sha256(key) => check(&**key, input, tag),
            Self::Sha384(key) => check(&**key, input, tag),
            Self::Sha512(key) => check(&**key, input, tag),
        }
    }
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

    /// The public key's bytes as it was parsed (`None` for an HMAC secret): two keys with the
    /// same bytes verify the same signatures.
    #[cfg(feature = "cli")]
    pub(crate) fn public_bytes(&self) -> Option<&[u8]> {
        self.verifiers.iter().find_map(|(_, v)| match v {
            Verifier::Public(key) => Some(key.as_ref()),
            Verifier::Hmac(_) => None,
        })
    }

    /// Whether the JWK is marked as a test key (`"x-jwt-policy-test": true`, written by
    /// `jwt-policy keygen`): `check` warns about it, `verify` and `serve` refuse it unless told
    /// `--allow-test-keys`.
    pub(crate) fn is_test_key(&self) -> bool {
        self.test_key
    }

    /// An HMAC key from a secret the policy names, prepared for each HMAC algorithm the secret
    /// is long enough for (RFC 7518 §3.2).
    pub(crate) fn hmac(kid: Option<String>, secret: &[u8]) -> Key {
        let verifiers = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            .into_iter()
            .filter(|alg| secret.len() >= alg.min_secret_len())
            .filter_map(|alg| Some((alg, Verifier::Hmac(HmacKey::new(alg, secret)?))))
            .collect();
        Key {
            kid,
            position: None,
            family: KeyFamily::Hmac,
            alg: None,
            secret_len: secret.len(),
            verifiers,
            test_key: false,
        }
    }

    /// Why this key cannot verify `alg` for an issuer that allows `allowed`, if it cannot.
    ///
    /// A public key verifies one algorithm only (see [`Binding`]): an RSA key without `alg`
    /// verifies nothing while the issuer allows several RSA algorithms. HMAC secrets are named by
    /// the policy, not read from a JWKS: they verify each HMAC algorithm they are long enough for.
    pub(crate) fn mismatch(&self, alg: Algorithm, allowed: &[Algorithm]) -> Option<String> {
        if self.family != alg.family() {
            return Some(format!(
                "`{alg}` needs an {} key; key is {}",
                alg.family(),
                self.family
            ));
        }
        if self.family == KeyFamily::Hmac {
            return (self.secret_len < alg.min_secret_len()).then(|| {
                format!(
                    "`{alg}` needs a secret of at least {} bytes; this one has {}",
                    alg.min_secret_len(),
                    self.secret_len
                )
            });
        }
        match self.binding(allowed) {
            Binding::One(bound) if bound == alg => None,
            Binding::One(bound) => Some(format!("key is for `{bound}` only; token says `{alg}`")),
            unbound => unbound_problem(self.family, &unbound),
        }
    }

    /// Which algorithm this key verifies for an issuer that allows `allowed`.
    fn binding(&self, allowed: &[Algorithm]) -> Binding {
        Binding::of(self.family, self.alg, allowed)
    }

    /// Why this key would verify tokens of several of `allowed`, if it would.
    fn ambiguity(&self, allowed: &[Algorithm]) -> Option<String> {
        match self.binding(allowed) {
            binding @ Binding::Ambiguous(_) => unbound_problem(self.family, &binding),
            Binding::One(_) | Binding::Unusable => None,
        }
    }

    /// [`Key::verify_bytes`] for a base64url signature (what the tests hold).
    #[cfg(test)]
    pub(crate) fn verify(&self, signing_input: &[u8], signature: &str, alg: Algorithm) -> bool {
        let mut buffer = [0u8; SIGNATURE_BUFFER];
        let Some(signature) = decode_signature(signature, &mut buffer) else {
            return false;
        };
        self.verify_bytes(signing_input, signature, alg)
    }

    /// Checks `signature` (its bytes, decoded once from the token's canonical base64url) over
    /// `signing_input` with `alg`. The caller has checked [`Key::mismatch`]; an algorithm the key
    /// was not prepared for verifies nothing all the same.
    pub(crate) fn verify_bytes(
        &self,
        signing_input: &[u8],
        signature: &[u8],
        alg: Algorithm,
    ) -> bool {
        let Some((_, verifier)) = self.verifiers.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        // Longer than any signature a key here checks: it verifies nothing.
        if signature.len() > MAX_SIGNATURE_BYTES {
            return false;
        }
        match verifier {
            Verifier::Public(key) => key.verify_sig(signing_input, signature).is_ok(),
            Verifier::Hmac(key) => key.verify(signing_input, signature),
        }
    }
}

/// Room for [`MAX_SIGNATURE_BYTES`] as the base64 decoder counts it: it wants space for 3 bytes
/// per 4 symbols before it looks at the last ones, up to 2 bytes more than the signature.
#[cfg(test)]
const SIGNATURE_BUFFER: usize = MAX_SIGNATURE_BYTES + 2;

/// The bytes of a base64url signature, decoded on the stack; `None` when it is not base64url or
/// longer than any signature a key here checks (it would verify nothing).
#[cfg(test)]
fn decode_signature<'b>(text: &str, buffer: &'b mut [u8; SIGNATURE_BUFFER]) -> Option<&'b [u8]> {
    let len = crate::json::BASE64URL.decode_slice(text, buffer).ok()?;
    buffer
        .get(..len)
        .filter(|bytes| bytes.len() <= MAX_SIGNATURE_BYTES)
}

/// Why a key without `alg` verifies nothing: it would verify several allowed algorithms, or none.
fn unbound_problem(family: KeyFamily, binding: &Binding) -> Option<String> {
    match binding {
        Binding::One(_) => None,
        Binding::Ambiguous(algs) => Some(format!(
            "{family} key has no `alg`, and the issuer allows {}: it would verify tokens of each (RFC 8725 §3.1)",
            and_list(algs)
        )),
        Binding::Unusable => Some(format!(
            "{family} key has no `alg`, and the issuer allows no {family} algorithm"
        )),
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
                Ok(Parsed::Key(mut key)) => {
                    key.position = Some(index);
                    set.keys.push(key);
                }
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
                    message: crate::text::io_message(&e),
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

    /// The keys that would verify tokens of several of `allowed` (an issuer's algorithms): RSA
    /// keys without `alg` while the issuer allows several RSA algorithms (RFC 8725 §3.1). One
    /// error each, naming the key.
    pub(crate) fn ambiguous(&self, allowed: &[Algorithm]) -> Vec<KeyError> {
        self.keys
            .iter()
            .filter_map(|key| {
                Some(KeyError::InvalidKey {
                    index: key.position.unwrap_or_default(),
                    kid: key.kid.clone(),
                    problem: key.ambiguity(allowed)?,
                })
            })
            .collect()
    }

    /// This set for an issuer that allows `allowed`, leniently: the keys [`KeySet::ambiguous`]
    /// names are skipped (and listed in [`KeySet::skipped`]) like other unusable keys of a remote
    /// set. No key left is an error.
    #[cfg(feature = "remote")]
    pub(crate) fn for_algorithms(self, allowed: &[Algorithm]) -> Result<KeySet, KeyError> {
        let KeySet { keys, mut skipped } = self;
        let mut kept = Vec::with_capacity(keys.len());
        for key in keys {
            match key.ambiguity(allowed) {
                None => kept.push(key),
                Some(problem) => skipped.push(format!(
                    "key {}{}: {problem}",
                    key.position.unwrap_or_default(),
                    kid_label(&key.kid)
                )),
            }
        }
        if kept.is_empty() {
            return Err(KeyError::NoUsableKeys { skipped });
        }
        Ok(KeySet {
            keys: kept,
            skipped,
        })
    }

    /// Chooses the key for a token with header `kid` and `alg`, from an issuer that allows
    /// `allowed`.
    ///
    /// With a `kid`, the key must have that `kid` (and fit `alg`). Without one, exactly one key
    /// may fit `alg`; several would be a guess, so that is refused too.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        allowed: &[Algorithm],
    ) -> Result<&Key, SelectError> {
        match kid {
            Some(kid) => {
                // Found without collecting the candidates (this is on every decision).
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Err(SelectError::NotFound(format!(
                        "no key has `kid` {}",
                        crate::text::quote(kid)
                    )));
                }
                let mut reasons = Vec::new();
                for key in named {
                    match key.mismatch(alg, allowed) {
                        None => return Ok(key),
                        Some(why) => reasons.push(why),
                    }
                }
                Err(SelectError::Mismatch(format!(
                    "key {}: {}",
                    crate::text::quote(kid),
                    reasons.join("; ")
                )))
            }
            None => {
                let mut fitting = self
                    .keys
                    .iter()
                    .filter(|k| k.mismatch(alg, allowed).is_none());
                match (fitting.next(), fitting.next()) {
                    (Some(one), None) => Ok(one),
                    (None, _) => {
                        // Keys of the right kind that still do not fit: say why.
                        let mut reasons: Vec<String> = Vec::new();
                        for key in self.keys.iter().filter(|k| k.family == alg.family()) {
                            if let Some(why) = key.mismatch(alg, allowed)
                                && !reasons.contains(&why)
                            {
                                reasons.push(why);
                            }
                        }
                        let why = if reasons.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", reasons.join("; "))
                        };
                        Err(SelectError::NotFound(format!(
                            "token has no `kid` and no key fits `{alg}`{why}"
                        )))
                    }
                    (Some(_), Some(_)) => Err(SelectError::NotFound(format!(
                        "token has no `kid` and {} keys fit `{alg}`; refusing to guess",
                        2 + fitting.count()
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
    let (family, material) = match kty {
        "RSA" => {
            let n = b64_member(jwk, "n")?;
            let e = b64_member(jwk, "e")?;
            check_rsa(&n, &e)?;
            (KeyFamily::Rsa, Material::Rsa { n, e })
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
            let (alg, key) = ec_public_key(family, crv, &x, &y)?;
            (family, Material::Parsed(alg, key))
        }
        "OKP" => {
            let crv = string_member(jwk, "crv")?.ok_or("OKP key has no `crv`")?;
            if crv != "Ed25519" {
                return Ok(Parsed::Skipped(format!(
                    "OKP curve `{crv}` is not supported for signatures"
                )));
            }
            let x = b64_member(jwk, "x")?;
            let point: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| format!("Ed25519 key must be 32 bytes; found {}", x.len()))?;
            check_ed25519(point)?;
            let key = ParsedPublicKey::new(&aws_sig::ED25519, point)
                .map_err(|e| format!("Ed25519 key is refused by aws-lc: {e}"))?;
            (KeyFamily::Ed25519, Material::Parsed(Algorithm::EdDSA, key))
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
    let verifiers = match material {
        Material::Parsed(alg, key) => vec![(alg, Verifier::Public(key))],
        Material::Rsa { n, e } => rsa_verifiers(&n, &e, alg)?,
    };
    Ok(Parsed::Key(Key {
        kid,
        position: None,
        family,
        alg,
        secret_len: 0,
        verifiers,
        // Only `true` marks a test key; the member is ours, so another value is a mistake, not a
        // reason to refuse the key.
        test_key: matches!(jwk.get(TEST_KEY_MEMBER), Some(Json::Bool(true))),
    }))
}

/// A public key read from a JWK, before it is prepared for the algorithms it verifies.
enum Material {
    /// RSA `n` and `e` (checked by [`check_rsa`]): parsed once per RSA algorithm the key may
    /// verify, as aws-lc ties a parsed key to one algorithm's parameters.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An EC or Ed25519 key, parsed for the one algorithm its curve has.
    Parsed(Algorithm, ParsedPublicKey),
}

/// The aws-lc parameters of an RSA algorithm (RFC 7518 §3.3, §3.5: PKCS #1 v1.5 and PSS with the
/// salt as long as the hash); `None` for the others.
fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    match alg {
        Algorithm::RS256 => Some(&aws_sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Some(&aws_sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Some(&aws_sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Some(&aws_sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Some(&aws_sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Some(&aws_sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

/// The RSA key `n`, `e` parsed for each algorithm it may verify: its JWK's `alg` only, or, without
/// one, every RSA algorithm (which one the key verifies then depends on the issuer, see
/// [`Binding`]).
fn rsa_verifiers(
    n: &[u8],
    e: &[u8],
    alg: Option<Algorithm>,
) -> Result<Vec<(Algorithm, Verifier)>, String> {
    let components = aws_sig::RsaPublicKeyComponents { n, e };
    Algorithm::ALL
        .into_iter()
        .filter(|a| alg.is_none_or(|own| own == *a))
        .filter_map(|a| Some((a, rsa_parameters(a)?)))
        .map(|(a, parameters)| {
            components
                .to_parsed_public_key(parameters)
                .map(|key| (a, Verifier::Public(key)))
                .map_err(|e| format!("RSA key is refused by aws-lc: {e}"))
        })
        .collect()
}

/// Refuses an RSA public key aws-lc would refuse when verifying (every token would then fail with
/// `invalid_signature`), or that no honest issuer publishes, saying why.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let n_trimmed = strip_leading_zeros(n);
    let bits = bit_len(n_trimmed);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "RSA modulus has {bits} bits; at most {MAX_RSA_BITS} are supported"
        ));
    }
    // RFC 7518 §2 (Base64urlUInt) and §6.3.1.1: the fewest octets; aws-lc refuses the others.
    if n_trimmed.len() != n.len() {
        return Err("RSA modulus `n` starts with a zero octet; it must be written in the fewest octets (RFC 7518 §6.3.1.1)".into());
    }
    if n.last().is_some_and(|b| b % 2 == 0) {
        return Err("RSA modulus is even: it is not a product of two odd primes".into());
    }
    let e_trimmed = strip_leading_zeros(e);
    if e_trimmed.is_empty() {
        return Err("RSA exponent is zero".into());
    }
    if e_trimmed.len() != e.len() {
        return Err("RSA exponent `e` starts with a zero octet; it must be written in the fewest octets (RFC 7518 §6.3.1.1)".into());
    }
    let e_bits = bit_len(e_trimmed);
    if e_bits > MAX_RSA_EXPONENT_BITS {
        return Err(format!(
            "RSA exponent has {e_bits} bits; at most {MAX_RSA_EXPONENT_BITS} are supported (65537 is usual)"
        ));
    }
    // At most 33 bits: five bytes fit a u64.
    let exponent = e_trimmed
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if exponent == 1 {
        return Err("RSA exponent is 1: anyone could forge signatures for this key".into());
    }
    if exponent % 2 == 0 {
        return Err(format!(
            "RSA exponent {exponent} is even; an RSA public exponent is odd (65537 is usual)"
        ));
    }
    Ok(())
}

/// The bit length of a big-endian number without leading zero bytes.
fn bit_len(trimmed: &[u8]) -> usize {
    // The first byte is non-zero, so it has at most 7 leading zero bits. (An empty modulus once
    // underflowed here: found by the `jwks` fuzz target.)
    trimmed
        .first()
        .map_or(0, |b| trimmed.len() * 8 - b.leading_zeros() as usize)
}

/// The EC public key `x`, `y` parsed for its curve's algorithm, verifying fixed-width `r || s`
/// signatures (RFC 7518 §3.4; a DER signature verifies nothing). Coordinates that are not a point
/// of the curve (the point at infinity has none) are refused: the JWK gives the curve, so a point
/// off it would fail every signature, and invalid-curve points are how ECDH keys leak. aws-lc
/// checks the point as it parses it.
fn ec_public_key(
    family: KeyFamily,
    crv: &str,
    x: &[u8],
    y: &[u8],
) -> Result<(Algorithm, ParsedPublicKey), String> {
    let (alg, algorithm): (_, &'static aws_sig::EcdsaVerificationAlgorithm) = match family {
        KeyFamily::P384 => (Algorithm::ES384, &aws_sig::ECDSA_P384_SHA384_FIXED),
        _ => (Algorithm::ES256, &aws_sig::ECDSA_P256_SHA256_FIXED),
    };
    // SEC 1 §2.3.3: an uncompressed point is 0x04, then x, then y.
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    ParsedPublicKey::new(algorithm, &point)
        .map(|key| (alg, key))
        .map_err(|_| format!("EC point is not on {crv}"))
}

/// Refuses an Ed25519 public key no honest issuer publishes: bytes that decode to no point (every
/// signature would fail); a point of small order, for which signatures can be forged without
/// any private key (aws-lc's cofactorless check accepts R = identity, S = 0 for every message
/// under the identity point); and an encoding that is not canonical (y ≥ p, or a sign bit on
/// x = 0: RFC 8032 §5.1.2 encodes each point one way). curve25519-dalek does the point
/// arithmetic.
fn check_ed25519(x: [u8; 32]) -> Result<(), String> {
    let compressed = CompressedEdwardsY(x);
    let point = compressed
        .decompress()
        .ok_or("Ed25519 `x` is not a point on the curve")?;
    if point.is_small_order() {
        return Err("Ed25519 `x` is a point of small order: signatures could be forged for it without any private key".into());
    }
    if point.compress() != compressed {
        return Err(
            "Ed25519 `x` is not the canonical encoding of its point (RFC 8032 §5.1.2)".into(),
        );
    }
    Ok(())
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
    crate::json::BASE64URL
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
    ///
    /// Return the same `Arc` while the keys do not change: an engine with a decision cache
    /// (`[cache]`) compares it with the set a cached decision was made with, by address, and
    /// decides again when it differs.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn ed25519_jwks(x: &[u8]) -> String {
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{}"}}]}}"#,
            crate::json::BASE64URL.encode(x)
        )
    }

    /// What the strict reader says about the one key of `jwks`; `None` when it is accepted. The
    /// lenient reader must agree: it skips the key for the same reason.
    fn refusal(jwks: &str) -> Option<String> {
        match KeySet::from_jwks(jwks.as_bytes()) {
            Ok(set) => {
                let lenient = KeySet::from_jwks_lenient(jwks.as_bytes()).unwrap();
                assert_eq!(lenient.keys().len(), set.keys().len());
                None
            }
            Err(KeyError::InvalidKey { problem, .. }) => {
                match KeySet::from_jwks_lenient(jwks.as_bytes()) {
                    Err(KeyError::NoUsableKeys { skipped }) => {
                        assert_eq!(skipped, [format!("key 0 (`kid` `k`): {problem}")]);
                    }
                    other => panic!("lenient: {other:?}"),
                }
                Some(problem)
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    /// The eight points of small order (the torsion subgroup), canonically encoded.
    const SMALL_ORDER: [&str; 8] = [
        // order 1: the identity, y = 1
        "0100000000000000000000000000000000000000000000000000000000000000",
        // order 2: y = -1
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // order 4: y = 0, both signs of x
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        // order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];

    const SMALL_ORDER_PROBLEM: &str = "Ed25519 `x` is a point of small order: signatures could be forged for it without any private key";

    #[test]
    fn the_eight_small_order_ed25519_points_are_refused() {
        for point in SMALL_ORDER {
            assert_eq!(
                refusal(&ed25519_jwks(&hex(point))).as_deref(),
                Some(SMALL_ORDER_PROBLEM),
                "{point}"
            );
        }
        // They are eight different points: the whole torsion subgroup.
        let mut distinct = SMALL_ORDER.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn non_canonical_spellings_of_small_order_points_are_refused() {
        for point in [
            // y = p (that is, 0) and y = p + 1 (that is, 1), each with both sign bits
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            // x = 0 with its sign bit set: the identity, and (0, -1)
            "0100000000000000000000000000000000000000000000000000000000000080",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ] {
            assert_eq!(
                refusal(&ed25519_jwks(&hex(point))).as_deref(),
                Some(SMALL_ORDER_PROBLEM),
                "{point}"
            );
        }
    }

    /// y = p + k as a little-endian encoding (k < 19, so y < 2^255 and the sign bit is clear).
    fn p_plus(k: u8) -> [u8; 32] {
        let mut y = hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        y[0] += k;
        y
    }

    #[test]
    fn other_ed25519_keys_must_be_canonical_points() {
        // y = p + k for small k is y = k spelled another way; some of these are points.
        let mut non_canonical = 0;
        let mut not_points = 0;
        for k in 2..19 {
            let x = p_plus(k);
            let canonical = {
                let mut c = [0u8; 32];
                c[0] = k;
                c
            };
            match refusal(&ed25519_jwks(&canonical)) {
                // The same value written canonically is a good key: its other spelling is not.
                None => {
                    non_canonical += 1;
                    assert_eq!(
                        refusal(&ed25519_jwks(&x)).as_deref(),
                        Some(
                            "Ed25519 `x` is not the canonical encoding of its point (RFC 8032 §5.1.2)"
                        ),
                        "y = p + {k}"
                    );
                }
                Some(problem) => {
                    not_points += 1;
                    assert_eq!(
                        problem, "Ed25519 `x` is not a point on the curve",
                        "y = {k}"
                    );
                    assert_eq!(refusal(&ed25519_jwks(&x)), Some(problem), "y = p + {k}");
                }
            }
        }
        assert!(
            non_canonical > 0 && not_points > 0,
            "{non_canonical} {not_points}"
        );
        // A real public key (RFC 8032 §7.1, test 1) is accepted.
        let rfc8032 = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(refusal(&ed25519_jwks(&rfc8032)), None);
    }

    fn rsa_jwks(n: &[u8], e: &[u8], alg: Option<&str>) -> String {
        let alg = alg.map(|a| format!(r#","alg":"{a}""#)).unwrap_or_default();
        format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"k","n":"{}","e":"{}"{alg}}}]}}"#,
            crate::json::BASE64URL.encode(n),
            crate::json::BASE64URL.encode(e)
        )
    }

    /// An odd modulus of `bits` bits (not a real key: nothing here verifies with it).
    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xffu8; bits.div_ceil(8)];
        n[0] = 0xff >> (n.len() * 8 - bits);
        n
    }

    #[test]
    fn rsa_keys_aws_lc_would_refuse_are_refused_when_read() {
        let e = [1, 0, 1];
        assert_eq!(refusal(&rsa_jwks(&modulus(2048), &e, None)), None);
        assert_eq!(refusal(&rsa_jwks(&modulus(8192), &e, None)), None);
        let cases: [(Vec<u8>, Vec<u8>, &str); 9] = [
            (
                modulus(2047),
                e.to_vec(),
                "RSA modulus has 2047 bits; at least 2048 are required",
            ),
            (
                modulus(8193),
                e.to_vec(),
                "RSA modulus has 8193 bits; at most 8192 are supported",
            ),
            (
                [&[0u8][..], &modulus(2048)].concat(),
                e.to_vec(),
                "RSA modulus `n` starts with a zero octet; it must be written in the fewest octets (RFC 7518 §6.3.1.1)",
            ),
            (
                [&modulus(2047)[..], &[0xfe]].concat(),
                e.to_vec(),
                "RSA modulus is even: it is not a product of two odd primes",
            ),
            (modulus(2048), vec![0], "RSA exponent is zero"),
            (
                modulus(2048),
                vec![0, 1, 0, 1],
                "RSA exponent `e` starts with a zero octet; it must be written in the fewest octets (RFC 7518 §6.3.1.1)",
            ),
            (
                modulus(2048),
                vec![1],
                "RSA exponent is 1: anyone could forge signatures for this key",
            ),
            (
                modulus(2048),
                vec![2],
                "RSA exponent 2 is even; an RSA public exponent is odd (65537 is usual)",
            ),
            (
                modulus(2048),
                vec![2, 0, 0, 0, 1],
                "RSA exponent has 34 bits; at most 33 are supported (65537 is usual)",
            ),
        ];
        for (n, e, problem) in cases {
            assert_eq!(
                refusal(&rsa_jwks(&n, &e, None)).as_deref(),
                Some(problem),
                "{e:?}"
            );
        }
        // e = 3 and the largest exponent aws-lc takes (33 bits) are fine.
        for e in [vec![3], vec![1, 0xff, 0xff, 0xff, 0xff]] {
            assert_eq!(refusal(&rsa_jwks(&modulus(2048), &e, None)), None, "{e:?}");
        }
    }

    #[test]
    fn rsa_keys_without_alg_are_bound_by_the_issuer_algorithms() {
        use Algorithm::*;
        let set = KeySet::from_jwks(rsa_jwks(&modulus(2048), &[1, 0, 1], None).as_bytes()).unwrap();
        let key = set.keys().first().unwrap();
        // One RSA algorithm allowed: bound to it.
        assert_eq!(key.mismatch(PS256, &[PS256, ES256]), None);
        assert!(set.ambiguous(&[PS256, ES256]).is_empty());
        // Several: bound to none.
        let problem = "RSA key has no `alg`, and the issuer allows `RS256`, `PS256` and `RS512`: it would verify tokens of each (RFC 8725 §3.1)";
        assert_eq!(
            key.mismatch(RS256, &[RS256, PS256, RS512]).as_deref(),
            Some(problem)
        );
        assert_eq!(
            set.ambiguous(&[RS256, PS256, RS512]),
            [KeyError::InvalidKey {
                index: 0,
                kid: Some("k".into()),
                problem: problem.into()
            }]
        );
        assert_eq!(
            set.select(Some("k"), PS256, &[RS256, PS256, RS512])
                .map(Key::kid),
            Err(SelectError::Mismatch(format!("key `k`: {problem}")))
        );
        assert_eq!(
            set.select(None, PS256, &[RS256, PS256, RS512])
                .map(Key::kid),
            Err(SelectError::NotFound(format!(
                "token has no `kid` and no key fits `PS256` ({problem})"
            )))
        );
        // A fetched set skips such keys.
        #[cfg(feature = "remote")]
        {
            match set.clone().for_algorithms(&[RS256, PS256]) {
                Err(KeyError::NoUsableKeys { skipped }) => assert_eq!(
                    skipped,
                    [
                        "key 0 (`kid` `k`): RSA key has no `alg`, and the issuer allows `RS256` and `PS256`: it would verify tokens of each (RFC 8725 §3.1)"
                    ]
                ),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                set.clone().for_algorithms(&[RS256]).unwrap().keys().len(),
                1
            );
        }
        // With its own `alg`, never ambiguous.
        let pinned =
            KeySet::from_jwks(rsa_jwks(&modulus(2048), &[1, 0, 1], Some("PS256")).as_bytes())
                .unwrap();
        assert!(pinned.ambiguous(&[RS256, PS256]).is_empty());
        let key = pinned.keys().first().unwrap();
        assert_eq!(key.mismatch(PS256, &[RS256, PS256]), None);
        assert_eq!(
            key.mismatch(RS256, &[RS256, PS256]).as_deref(),
            Some("key is for `PS256` only; token says `RS256`")
        );
    }

    /// Prepared keys against `jsonwebtoken::crypto::verify` on the same key: the same answer for
    /// every signature, and no algorithm a key was not prepared for.
    mod prepared {
        use super::*;
        use std::sync::OnceLock;

        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
        use jsonwebtoken::DecodingKey;

        const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

        /// A private key, its public key as this crate reads it, and as jsonwebtoken holds it.
        struct Fixture {
            private: Private,
            key: Key,
            theirs: DecodingKey,
        }

        enum Private {
            Rsa(&'static RsaKeyPair),
            /// The key pair signing fixed-width `r || s`, and the same key signing DER.
            Ec(EcdsaKeyPair, EcdsaKeyPair),
            Ed(Ed25519KeyPair),
            Hmac(Vec<u8>),
        }

        fn rsa_pair() -> &'static RsaKeyPair {
            static PAIR: OnceLock<RsaKeyPair> = OnceLock::new();
            PAIR.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
        }

        fn b64(bytes: &[u8]) -> String {
            crate::json::BASE64URL.encode(bytes)
        }

        /// The one key of a JWK set holding `jwk`.
        fn read(jwk: serde_json::Value) -> Key {
            let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
            let set = KeySet::from_jwks(jwks.as_bytes()).unwrap();
            set.keys().first().unwrap().clone()
        }

        /// A key for `alg`; an RSA key is read with `alg` in its JWK when `rsa_alg` is set (and
        /// verifies every RSA algorithm otherwise), an HMAC secret has `secret_len` bytes.
        fn fixture(alg: Algorithm, rsa_alg: bool, secret_len: usize) -> Fixture {
            match alg.family() {
                KeyFamily::Rsa => {
                    let pair = rsa_pair();
                    let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                    let mut jwk = serde_json::json!({
                        "kty": "RSA", "kid": "k", "n": b64(&c.n), "e": b64(&c.e),
                    });
                    if rsa_alg {
                        jwk["alg"] = alg.as_str().into();
                    }
                    Fixture {
                        private: Private::Rsa(pair),
                        key: read(jwk),
                        theirs: DecodingKey::from_rsa_raw_components(&c.n, &c.e),
                    }
                }
                KeyFamily::P256 | KeyFamily::P384 => {
                    let (fixed, der, crv) = if alg == Algorithm::ES256 {
                        (
                            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                            "P-256",
                        )
                    } else {
                        (
                            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                            &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                            "P-384",
                        )
                    };
                    let pair = EcdsaKeyPair::generate(fixed).unwrap();
                    let der_pair =
                        EcdsaKeyPair::from_pkcs8(der, pair.to_pkcs8v1().unwrap().as_ref()).unwrap();
                    let point = pair.public_key().as_ref();
                    let len = (point.len() - 1) / 2;
                    let (x, y) = (b64(&point[1..=len]), b64(&point[1 + len..]));
                    let jwk = serde_json::json!({ "kty": "EC", "crv": crv, "x": x, "y": y });
                    Fixture {
                        key: read(jwk),
                        theirs: DecodingKey::from_ec_components(&x, &y).unwrap(),
                        private: Private::Ec(pair, der_pair),
                    }
                }
                KeyFamily::Ed25519 => {
                    let pair = Ed25519KeyPair::generate().unwrap();
                    let x = b64(pair.public_key().as_ref());
                    let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
                    Fixture {
                        key: read(jwk),
                        theirs: DecodingKey::from_ed_components(&x).unwrap(),
                        private: Private::Ed(pair),
                    }
                }
                KeyFamily::Hmac => {
                    let secret: Vec<u8> = (0..secret_len).map(|i| (i * 7 + 1) as u8).collect();
                    Fixture {
                        key: Key::hmac(Some("h".into()), &secret),
                        theirs: DecodingKey::from_secret(&secret),
                        private: Private::Hmac(secret),
                    }
                }
            }
        }

        impl Fixture {
            /// A signature over `message` with `alg` (which must suit the private key).
            fn sign(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
                let rng = SystemRandom::new();
                match &self.private {
                    Private::Rsa(pair) => {
                        let padding: &'static dyn sig::RsaEncoding = match alg {
                            Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
                            Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                            Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                            Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                            Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                            Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                            other => panic!("{other}"),
                        };
                        let mut out = vec![0; pair.public_modulus_len()];
                        pair.sign(padding, &rng, message, &mut out).unwrap();
                        out
                    }
                    Private::Ec(pair, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
                    Private::Ed(pair) => pair.sign(message).as_ref().to_vec(),
                    Private::Hmac(secret) => {
                        let algorithm = match alg {
                            Algorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
                            Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                            Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                            other => panic!("{other}"),
                        };
                        let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
                        aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
                    }
                }
            }

            /// What this crate's key says about `signature` over `message` for `alg`.
            fn ours(&self, message: &[u8], signature: &[u8], alg: Algorithm) -> bool {
                self.key.verify(message, &b64(signature), alg)
            }

            /// What `jsonwebtoken::crypto::verify` says with the same key.
            fn theirs(&self, message: &[u8], signature: &[u8], alg: Algorithm) -> bool {
                let alg: jsonwebtoken::Algorithm = alg.as_str().parse().unwrap();
                jsonwebtoken::crypto::verify(&b64(signature), message, &self.theirs, alg)
                    .unwrap_or(false)
            }
        }

        #[test]
        fn prepared_keys_verify_what_jsonwebtoken_verifies_and_refuse_what_it_refuses() {
            for alg in Algorithm::ALL {
                // RSA keys without `alg` and 64-byte secrets verify every algorithm of their
                // family: a signature of another one is refused by the check itself.
                let f = fixture(alg, false, 64);
                let good = f.sign(alg, MESSAGE);
                let mut flipped = good.clone();
                *flipped.last_mut().unwrap() ^= 1;
                let mut cases: Vec<(String, Vec<u8>, bool)> = vec![
                    ("valid".into(), good.clone(), true),
                    ("over other bytes".into(), f.sign(alg, b"other"), false),
                    ("truncated".into(), good[..good.len() - 1].to_vec(), false),
                    ("extended".into(), [&good[..], &[0]].concat(), false),
                    ("zero-prefixed".into(), [&[0], &good[..]].concat(), false),
                    ("last bit flipped".into(), flipped, false),
                    ("all zeros".into(), vec![0; good.len()], false),
                    ("one zero byte".into(), vec![0], false),
                    ("empty".into(), Vec::new(), false),
                ];
                for other in Algorithm::ALL {
                    if other != alg && other.family() == alg.family() {
                        cases.push((
                            format!("a `{other}` signature"),
                            f.sign(other, MESSAGE),
                            false,
                        ));
                    }
                }
                if let Private::Ec(_, der) = &f.private {
                    let der = der.sign(&SystemRandom::new(), MESSAGE).unwrap();
                    cases.push(("DER-encoded".into(), der.as_ref().to_vec(), false));
                }
                for (what, signature, verifies) in &cases {
                    assert_eq!(f.ours(MESSAGE, signature, alg), *verifies, "{alg}: {what}");
                    assert_eq!(
                        f.theirs(MESSAGE, signature, alg),
                        *verifies,
                        "{alg}: {what}"
                    );
                }
                // The valid signature, checked as any other algorithm: refused by both.
                for other in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
                    assert!(!f.ours(MESSAGE, &good, other), "{alg} as {other}");
                    assert!(!f.theirs(MESSAGE, &good, other), "{alg} as {other}");
                }
            }
        }

        #[test]
        fn the_signature_buffer_holds_the_longest_signature_and_no_more() {
            let mut buffer = [0u8; SIGNATURE_BUFFER];
            // An RSA signature with an 8192-bit modulus (1366 symbols).
            let longest = vec![0xa5u8; MAX_SIGNATURE_BYTES];
            assert_eq!(
                decode_signature(&b64(&longest), &mut buffer),
                Some(&longest[..])
            );
            for len in [0, 1, 2, 3, 64, 96, 256, 512, MAX_SIGNATURE_BYTES - 1] {
                let signature = vec![7u8; len];
                assert_eq!(
                    decode_signature(&b64(&signature), &mut buffer),
                    Some(&signature[..]),
                    "{len}"
                );
            }
            // Longer than any signature, or not base64url: nothing to verify.
            for len in [MAX_SIGNATURE_BYTES + 1, MAX_SIGNATURE_BYTES + 2, 5000] {
                let longer = vec![0xa5u8; len];
                assert_eq!(decode_signature(&b64(&longer), &mut buffer), None, "{len}");
            }
            assert_eq!(decode_signature("a+b/", &mut buffer), None);
        }

        #[test]
        fn a_key_verifies_only_the_algorithms_it_was_prepared_for() {
            use Algorithm::*;
            // An RSA key whose JWK says `RS256`: a valid `PS256` signature by the same private
            // key is refused (jsonwebtoken, which holds no binding, verifies it).
            let f = fixture(RS256, true, 0);
            for other in [RS384, RS512, PS256, PS384, PS512] {
                let signature = f.sign(other, MESSAGE);
                assert!(f.theirs(MESSAGE, &signature, other), "{other}");
                assert!(!f.ours(MESSAGE, &signature, other), "{other}");
            }
            let good = f.sign(RS256, MESSAGE);
            assert!(f.ours(MESSAGE, &good, RS256));
            // A 32-byte secret verifies `HS256` only (RFC 7518 §3.2), even when the tag is right.
            let f = fixture(HS256, false, 32);
            for other in [HS384, HS512] {
                let tag = f.sign(other, MESSAGE);
                assert!(f.theirs(MESSAGE, &tag, other), "{other}");
                assert!(!f.ours(MESSAGE, &tag, other), "{other}");
            }
            assert!(f.ours(MESSAGE, &f.sign(HS256, MESSAGE), HS256));
            // A 48-byte one: `HS256` and `HS384`.
            let f = fixture(HS384, false, 48);
            assert!(f.ours(MESSAGE, &f.sign(HS256, MESSAGE), HS256));
            assert!(f.ours(MESSAGE, &f.sign(HS384, MESSAGE), HS384));
            assert!(!f.ours(MESSAGE, &f.sign(HS512, MESSAGE), HS512));
        }
    }
}
