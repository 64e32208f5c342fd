//! Development keys: generated here, written as PKCS#8 PEM with a public JWKS beside them, and
//! signing compact JWS tokens. Shared by `jwt-policy keygen`/`mint` and the `testing` feature;
//! never used to decide about a token.
//!
//! Every public JWK made here carries the marker member `"x-jwt-policy-test": true`, which
//! `check` warns about and `verify`/`serve` refuse (see docs/policy.md, "Test keys").

#[cfg(feature = "cli")]
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, KeyFamily};
use crate::json::BASE64URL;
use crate::jwks::TEST_KEY_MEMBER;

/// The PEM label of a PKCS#8 private key (RFC 7468 §10).
#[cfg(feature = "cli")]
const PEM_LABEL: &str = "PRIVATE KEY";

/// A private key able to sign tokens of one algorithm, with the `kid` its tokens name.
pub(crate) struct DevKey {
    kid: String,
    alg: Algorithm,
    private: Private,
}

enum Private {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The ECDSA signing parameters of `alg` (fixed-width `r || s`, as JWS wants), if it is ECDSA.
fn ecdsa(alg: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

/// The RSA padding of `alg`, if it is an RSA algorithm.
fn rsa_padding(alg: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

impl DevKey {
    /// A fresh key for `alg` (RSA keys have 2048 bits; an HMAC secret 64 bytes, enough for each
    /// HMAC algorithm, RFC 7518 §3.2).
    pub(crate) fn generate(alg: Algorithm, kid: &str) -> Result<DevKey, String> {
        let failed = |_| format!("cannot generate a `{alg}` key");
        let private = match alg.family() {
            KeyFamily::P256 | KeyFamily::P384 => {
                let params = ecdsa(alg).ok_or_else(|| failed(()))?;
                Private::Ec(EcdsaKeyPair::generate(params).map_err(|_| failed(()))?)
            }
            KeyFamily::Rsa => {
                Private::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed(()))?)
            }
            KeyFamily::Ed25519 => Private::Ed(Ed25519KeyPair::generate().map_err(|_| failed(()))?),
            KeyFamily::Hmac => {
                let mut secret = vec![0u8; Algorithm::HS512.min_secret_len()];
                aws_lc_rs::rand::fill(&mut secret).map_err(|_| failed(()))?;
                Private::Hmac(secret)
            }
        };
        Ok(DevKey {
            kid: kid.to_owned(),
            alg,
            private,
        })
    }

    #[cfg(feature = "cli")]
    /// Reads a PKCS#8 private key (DER) for `alg`, or for the algorithm its key type implies
    /// (`ES256`/`ES384` by curve, `RS256` for RSA, `EdDSA`) when `alg` is `None`.
    pub(crate) fn from_pkcs8(
        der: &[u8],
        alg: Option<Algorithm>,
        kid: &str,
    ) -> Result<Self, String> {
        let ec = |alg: Algorithm| {
            ecdsa(alg).and_then(|params| EcdsaKeyPair::from_pkcs8(params, der).ok())
        };
        let (alg, private) = if let Some(pair) = ec(alg.unwrap_or(Algorithm::ES256)) {
            (alg.unwrap_or(Algorithm::ES256), Private::Ec(pair))
        } else if let Some(pair) = alg.is_none().then(|| ec(Algorithm::ES384)).flatten() {
            (Algorithm::ES384, Private::Ec(pair))
        } else if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            (alg.unwrap_or(Algorithm::RS256), Private::Rsa(pair))
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            (alg.unwrap_or(Algorithm::EdDSA), Private::Ed(pair))
        } else {
            return Err(match alg {
                Some(alg) => format!("not a PKCS#8 private key for `{alg}`"),
                None => "not a PKCS#8 EC (P-256, P-384), RSA or Ed25519 private key".into(),
            });
        };
        let fits = match &private {
            Private::Ec(_) => matches!(alg.family(), KeyFamily::P256 | KeyFamily::P384),
            Private::Rsa(_) => alg.family() == KeyFamily::Rsa,
            Private::Ed(_) => alg.family() == KeyFamily::Ed25519,
            Private::Hmac(_) => false,
        };
        if !fits {
            return Err(format!("`alg` `{alg}` does not fit this private key"));
        }
        Ok(DevKey {
            kid: kid.to_owned(),
            alg,
            private,
        })
    }

    #[cfg(feature = "testing")]
    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm its tokens are signed with.
    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    #[cfg(feature = "testing")]
    /// The HMAC secret, for an HMAC key.
    pub(crate) fn secret(&self) -> Option<&[u8]> {
        match &self.private {
            Private::Hmac(secret) => Some(secret),
            _ => None,
        }
    }

    #[cfg(feature = "cli")]
    /// The private key as PKCS#8 (DER); `None` for an HMAC secret.
    fn pkcs8(&self) -> Option<Result<Vec<u8>, String>> {
        let failed = |_| "cannot encode the private key as PKCS#8".to_owned();
        Some(match &self.private {
            Private::Ec(pair) => pair
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(failed),
            Private::Rsa(pair) => pair.as_der().map(|d| d.as_ref().to_vec()).map_err(failed),
            Private::Ed(pair) => pair
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(failed),
            Private::Hmac(_) => return None,
        })
    }

    #[cfg(feature = "cli")]
    /// The private key as PKCS#8 PEM (RFC 7468), after explanatory text lines naming its `kid`
    /// and `alg` (RFC 7468 §5.2 lets text stand outside the boundaries), which [`read_pem`]
    /// reads back.
    pub(crate) fn to_pem(&self) -> Result<String, String> {
        let der = self.pkcs8().ok_or("an HMAC secret has no PKCS#8 form")??;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = format!(
            "jwt-policy test key: for tests only, never for production\nkid: {}\nalg: {}\n-----BEGIN {PEM_LABEL}-----\n",
            self.kid, self.alg
        );
        // RFC 7468 §2: 64 characters a line. The text is ASCII, so any split is on a character.
        let mut rest = body.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            pem.push_str(line);
            pem.push('\n');
            rest = tail;
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        Ok(pem)
    }

    /// The public JWK: `kty`, `kid`, `alg`, `use`, the key members, and the test-key marker.
    /// `None` for an HMAC secret, which is never published in a JWKS.
    pub(crate) fn public_jwk(&self) -> Option<Value> {
        let mut jwk = Map::new();
        match &self.private {
            Private::Ec(pair) => {
                // The uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                jwk.insert("kty".into(), "EC".into());
                let crv = if self.alg == Algorithm::ES384 {
                    "P-384"
                } else {
                    "P-256"
                };
                jwk.insert("crv".into(), crv.into());
                jwk.insert("x".into(), BASE64URL.encode(x).into());
                jwk.insert("y".into(), BASE64URL.encode(y).into());
            }
            Private::Rsa(pair) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), BASE64URL.encode(&c.n).into());
                jwk.insert("e".into(), BASE64URL.encode(&c.e).into());
            }
            Private::Ed(pair) => {
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), BASE64URL.encode(pair.public_key()).into());
            }
            Private::Hmac(_) => return None,
        }
        jwk.insert("kid".into(), self.kid.clone().into());
        jwk.insert("alg".into(), self.alg.as_str().into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert(TEST_KEY_MEMBER.into(), true.into());
        Some(Value::Object(jwk))
    }

    /// A JWK set holding [`DevKey::public_jwk`].
    pub(crate) fn public_jwks(&self) -> Option<Value> {
        let jwk = self.public_jwk()?;
        Some(serde_json::json!({ "keys": [jwk] }))
    }

    /// A compact JWS of `header` and `claims` as given, signed with this key's algorithm
    /// (whatever `alg` the header says: callers set it).
    pub(crate) fn sign(
        &self,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
    ) -> Result<String, String> {
        let encode = |value: &Map<String, Value>| {
            serde_json::to_vec(value)
                .map(|bytes| BASE64URL.encode(bytes))
                .map_err(|e| format!("cannot write JSON: {e}"))
        };
        let signing_input = format!("{}.{}", encode(header)?, encode(claims)?);
        let signature = self.signature(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", BASE64URL.encode(signature)))
    }

    fn signature(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let failed = |_| format!("cannot sign with the `{}` key", self.alg);
        let unsupported = || failed(aws_lc_rs::error::Unspecified);
        let rng = SystemRandom::new();
        match &self.private {
            Private::Ec(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(failed),
            Private::Rsa(pair) => {
                let padding = rsa_padding(self.alg).ok_or_else(unsupported)?;
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .map_err(failed)?;
                Ok(out)
            }
            Private::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Private::Hmac(secret) => {
                let algorithm = match self.alg {
                    Algorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => return Err(unsupported()),
                };
                let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
                Ok(aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec())
            }
        }
    }
}

/// What a PEM file written by [`DevKey::to_pem`] (or any PKCS#8 PEM) holds.
#[cfg(feature = "cli")]
#[derive(Debug)]
pub(crate) struct Pem {
    /// The `kid: ...` explanatory line, if any.
    pub(crate) kid: Option<String>,
    /// The `alg: ...` explanatory line, if any.
    pub(crate) alg: Option<String>,
    /// The PKCS#8 DER.
    pub(crate) der: Vec<u8>,
}

/// Reads one PKCS#8 PEM block (`-----BEGIN PRIVATE KEY-----`) and the `kid:`/`alg:` text lines
/// before it. Hand-written rather than with a PEM crate because those lines are ours to read
/// anyway, and the framing is a few lines: one block with this label, strict base64 with padding
/// inside (RFC 7468 §3, the strict grammar), whitespace at line ends tolerated.
#[cfg(feature = "cli")]
pub(crate) fn read_pem(text: &str) -> Result<Pem, String> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let mut kid = None;
    let mut alg = None;
    let mut lines = text.lines().map(str::trim_end);
    loop {
        let Some(line) = lines.next() else {
            return Err(format!("no `{begin}` line (a PKCS#8 PEM private key)"));
        };
        if line == begin {
            break;
        }
        if line.starts_with("-----BEGIN ") {
            return Err(format!(
                "`{line}`: only an unencrypted PKCS#8 private key (`{begin}`) is read"
            ));
        }
        if let Some(value) = line.strip_prefix("kid:") {
            kid = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("alg:") {
            alg = Some(value.trim().to_owned());
        }
    }
    let mut body = String::new();
    loop {
        let Some(line) = lines.next() else {
            return Err(format!("no `{end}` line"));
        };
        if line == end {
            break;
        }
        body.push_str(line);
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    Ok(Pem { kid, alg, der })
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::jwks::KeySet;

    #[test]
    fn pem_round_trips_with_kid_and_alg() {
        for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
            let key = DevKey::generate(alg, "k1").unwrap();
            let pem = read_pem(&key.to_pem().unwrap()).unwrap();
            assert_eq!(pem.kid.as_deref(), Some("k1"));
            assert_eq!(pem.alg.as_deref(), Some(alg.as_str()));
            let back = DevKey::from_pkcs8(&pem.der, None, "k1").unwrap();
            assert_eq!(back.alg(), alg);
            assert_eq!(back.public_jwk(), key.public_jwk());
            let set = KeySet::from_jwks(key.public_jwks().unwrap().to_string().as_bytes()).unwrap();
            assert!(set.keys().iter().all(crate::jwks::Key::is_test_key));
        }
    }
}
