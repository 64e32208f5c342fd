//! The JWS algorithms this crate verifies.

use std::fmt;

/// A JWS `alg` value this crate can verify (RFC 7518, RFC 8037).
///
/// `none` is not one of them, and never will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256 (only with a secret the policy names).
    HS256,
    /// HMAC with SHA-384 (only with a secret the policy names).
    HS384,
    /// HMAC with SHA-512 (only with a secret the policy names).
    HS512,
}

/// The kind of key an [`Algorithm`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// An RSA public key (`kty = RSA`).
    Rsa,
    /// A P-256 public key (`kty = EC`, `crv = P-256`).
    P256,
    /// A P-384 public key (`kty = EC`, `crv = P-384`).
    P384,
    /// An Ed25519 public key (`kty = OKP`, `crv = Ed25519`).
    Ed25519,
    /// A shared secret.
    Hmac,
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::P384 => "EC P-384",
            Self::Ed25519 => "OKP Ed25519",
            Self::Hmac => "HMAC secret",
        })
    }
}

impl Algorithm {
    /// Every algorithm, in the order documented.
    pub const ALL: [Algorithm; 12] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
        Self::HS256,
        Self::HS384,
        Self::HS512,
    ];

    /// The exact, case-sensitive JWS name: `alg` values are compared with this.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// The algorithm with exactly this name, if any (`rs256` and `none` are not names).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// The key family the algorithm needs.
    pub fn family(self) -> KeyFamily {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyFamily::Rsa
            }
            Self::ES256 => KeyFamily::P256,
            Self::ES384 => KeyFamily::P384,
            Self::EdDSA => KeyFamily::Ed25519,
            Self::HS256 | Self::HS384 | Self::HS512 => KeyFamily::Hmac,
        }
    }

    /// Whether this is a shared-secret algorithm.
    pub fn is_hmac(self) -> bool {
        self.family() == KeyFamily::Hmac
    }

    /// The minimum HMAC secret length in bytes (RFC 7518 §3.2: at least the hash size).
    pub(crate) fn min_secret_len(self) -> usize {
        match self {
            Self::HS384 => 48,
            Self::HS512 => 64,
            _ => 32,
        }
    }
}

/// Which algorithm a key verifies under an issuer's allowed algorithms. A key is used with one
/// algorithm only (RFC 8725 §3.1): a JWK's own `alg` says which; without one, an EC or OKP key is
/// bound by its curve (P-256 to `ES256`, P-384 to `ES384`, Ed25519 to `EdDSA`), and an RSA key to
/// the one RSA algorithm the issuer allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// The key verifies this algorithm only.
    One(Algorithm),
    /// The key names no `alg`, and the issuer allows several algorithms of its kind (this many).
    Ambiguous(Vec<Algorithm>),
    /// The key names no `alg`, and the issuer allows no algorithm of its kind.
    Unusable,
}

impl Binding {
    /// The one algorithm a key of `family` verifies, given the JWK's own `alg` (`own`) and the
    /// algorithms its issuer allows.
    pub(crate) fn of(family: KeyFamily, own: Option<Algorithm>, allowed: &[Algorithm]) -> Binding {
        match (own, family) {
            (Some(alg), _) => Binding::One(alg),
            (None, KeyFamily::P256) => Binding::One(Algorithm::ES256),
            (None, KeyFamily::P384) => Binding::One(Algorithm::ES384),
            (None, KeyFamily::Ed25519) => Binding::One(Algorithm::EdDSA),
            (None, KeyFamily::Rsa | KeyFamily::Hmac) => {
                let mut fitting: Vec<Algorithm> = Vec::new();
                for alg in allowed.iter().filter(|a| a.family() == family) {
                    if !fitting.contains(alg) {
                        fitting.push(*alg);
                    }
                }
                match fitting.as_slice() {
                    [] => Binding::Unusable,
                    [one] => Binding::One(*one),
                    _ => Binding::Ambiguous(fitting),
                }
            }
        }
    }
}

/// "`A`", "`A` and `B`", "`A`, `B` and `C`".
pub(crate) fn and_list(algs: &[Algorithm]) -> String {
    let names: Vec<String> = algs.iter().map(|a| format!("`{a}`")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Algorithm::*;

    #[test]
    fn a_key_is_bound_to_one_algorithm() {
        let all = Algorithm::ALL;
        // Its own `alg` first, whatever the issuer allows.
        assert_eq!(
            Binding::of(KeyFamily::Rsa, Some(PS256), &[RS256]),
            Binding::One(PS256)
        );
        // EC and OKP keys by their curve.
        assert_eq!(
            Binding::of(KeyFamily::P256, None, &all),
            Binding::One(ES256)
        );
        assert_eq!(
            Binding::of(KeyFamily::P384, None, &all),
            Binding::One(ES384)
        );
        assert_eq!(
            Binding::of(KeyFamily::Ed25519, None, &[RS256]),
            Binding::One(EdDSA)
        );
        // RSA keys without `alg` by the one RSA algorithm the issuer allows.
        assert_eq!(
            Binding::of(KeyFamily::Rsa, None, &[ES256, PS384, EdDSA]),
            Binding::One(PS384)
        );
        assert_eq!(
            Binding::of(KeyFamily::Rsa, None, &[RS256, ES256, PS256]),
            Binding::Ambiguous(vec![RS256, PS256])
        );
        assert_eq!(
            Binding::of(KeyFamily::Rsa, None, &[ES256, EdDSA]),
            Binding::Unusable
        );
    }

    #[test]
    fn lists_read_as_english() {
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&[RS256]), "`RS256`");
        assert_eq!(and_list(&[RS256, PS256]), "`RS256` and `PS256`");
        assert_eq!(
            and_list(&[RS256, PS256, RS512]),
            "`RS256`, `PS256` and `RS512`"
        );
    }
}
