//! Test issuers: fresh keys standing in for a policy's issuers, and tokens signed with them, so a
//! service's own tests reach allow, 401 and 403 without real keys, key files or a network.
//!
//! Behind the cargo feature `testing` (off by default): add it to the service's
//! `[dev-dependencies]` only, e.g. `jwt-policy = { version = "0.1", features = ["testing"] }`.
//!
//! [`TestIssuers::new`] makes one key per issuer of the policy, for an algorithm the issuer
//! allows (`ES256` first, then `EdDSA`, `RS256`, the other RSA and EC algorithms, and an HMAC
//! secret for an issuer that allows only `HS256`, `HS384` or `HS512`). Its
//! [`TestIssuers::engine_builder`] is [`PolicyEngine::builder`] with these keys in place of each
//! issuer's own key source ([`EngineBuilder::key_source`]); the rest of the policy is enforced as
//! written. [`TestIssuers::mint`] and [`TestIssuers::token`] sign tokens for an issuer, with the
//! defaults a well-formed access token has, which each test then changes.
//!
//! ```
//! use jwt_policy::testing::TestIssuers;
//! use jwt_policy::{Policy, Reason, UnixTime};
//! use serde_json::json;
//!
//! let policy = Policy::from_file("policies/keycard-mcp.toml")?;
//! let issuers = TestIssuers::new(&policy)?;
//! let engine = issuers
//!     .engine_builder(policy)
//!     .context("credential.key_id", "k1")
//!     .build()?;
//! let now = UnixTime::from_secs(1_767_225_600);
//! let zone = "https://abc123.keycard.cloud";
//! let claims = json!({
//!     "aud": "https://mcp.example.com/mcp",
//!     "client_id": "my-client",
//!     "scope": "mcp:tools",
//! });
//!
//! // Allowed.
//! let token = issuers.mint(zone, claims.clone(), now)?;
//! assert!(engine.evaluate_at(&token, now).is_allowed());
//!
//! // 401: expired ten minutes after it was minted (and the 30 s leeway).
//! let later = UnixTime::from_secs(1_767_225_600 + 631);
//! assert_eq!(engine.evaluate_at(&token, later).reason(), Some(Reason::Expired));
//!
//! // 403: the required scope is missing.
//! let token = issuers
//!     .token(zone)?
//!     .claims(claims.clone())
//!     .claims(json!({ "scope": "mcp:prompts" }))
//!     .sign(now)?;
//! let reason = engine.evaluate_at(&token, now).reason();
//! assert_eq!(reason, Some(Reason::InsufficientScope));
//! assert_eq!(reason.map(Reason::http_status), Some(403));
//!
//! // 401: no `exp`, which the policy requires.
//! let token = issuers.token(zone)?.claims(claims).without("exp").sign(now)?;
//! assert_eq!(engine.evaluate_at(&token, now).reason(), Some(Reason::MissingClaim));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::devkey::DevKey;
use crate::engine::{EngineBuilder, PolicyEngine};
use crate::json::UnixTime;
use crate::jwks::{KeySet, StaticKeys};
use crate::policy::{HmacSecret, Policy, SecretSource};

/// How long a minted token lives unless its claims say otherwise: ten minutes.
pub const DEFAULT_LIFETIME_SECS: u64 = 600;

/// The order in which an algorithm is chosen for an issuer's test key, among those it allows.
const PREFERENCE: [Algorithm; 12] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES384,
    Algorithm::RS384,
    Algorithm::PS384,
    Algorithm::RS512,
    Algorithm::PS512,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

/// Why test issuers could not be made, or a token not minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// The policy has no issuer with this `iss`.
    #[error("the policy has no issuer `{0}`")]
    UnknownIssuer(String),
    /// Claims or header members given that are not a JSON object.
    #[error("the {what} must be a JSON object; found `{found}`")]
    NotAnObject {
        /// `claims` or `header`.
        what: &'static str,
        /// The value given.
        found: String,
    },
    /// A key could not be made, or a token not signed.
    #[error("{0}")]
    Key(String),
}

/// One fresh key per issuer of a policy, standing in for its key source. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct TestIssuers {
    issuers: Vec<TestIssuer>,
}

#[derive(Debug)]
struct TestIssuer {
    iss: String,
    key: DevKey,
    /// The public key as a key source; `None` for an HMAC secret.
    keys: Option<Arc<StaticKeys>>,
}

impl TestIssuers {
    /// Fresh keys for every issuer of `policy`, each for an algorithm the issuer allows, with
    /// `kid` `test-1`, `test-2`, ... in issuer order.
    pub fn new(policy: &Policy) -> Result<Self, TestingError> {
        let mut issuers = Vec::with_capacity(policy.issuers().len());
        for (n, issuer) in policy.issuers().iter().enumerate() {
            let alg = PREFERENCE
                .into_iter()
                .find(|a| issuer.algorithms().contains(a))
                .ok_or_else(|| {
                    TestingError::Key(format!("issuer `{}` allows no algorithm", issuer.iss()))
                })?;
            let key =
                DevKey::generate(alg, &format!("test-{}", n + 1)).map_err(TestingError::Key)?;
            // An HMAC secret is no public key: it replaces the issuer's `hmac_secrets` instead.
            let keys = match key.public_jwks() {
                Some(jwks) => Some(Arc::new(StaticKeys::new(
                    KeySet::from_jwks(jwks.to_string().as_bytes())
                        .map_err(|e| TestingError::Key(e.to_string()))?,
                ))),
                None => None,
            };
            issuers.push(TestIssuer {
                iss: issuer.iss().to_owned(),
                key,
                keys,
            });
        }
        Ok(TestIssuers { issuers })
    }

    /// An engine builder for `policy` (the one these issuers were made for) with each issuer's
    /// key source replaced by its test key (an issuer signing with an HMAC secret: its
    /// `hmac_secrets` replaced by the test secret).
    pub fn engine_builder(&self, mut policy: Policy) -> EngineBuilder {
        for issuer in &mut policy.issuers {
            let Some(test) = self.issuers.iter().find(|t| t.iss == issuer.iss) else {
                continue;
            };
            if let Some(secret) = test.key.secret() {
                issuer.hmac_secrets = vec![HmacSecret {
                    kid: Some(test.key.kid().to_owned()),
                    source: SecretSource::Bytes(Arc::from(secret)),
                    span: 0..0,
                }];
            }
        }
        self.issuers.iter().fold(
            PolicyEngine::builder(policy),
            |builder, issuer| match &issuer.keys {
                Some(keys) => builder.key_source(issuer.iss.clone(), keys.clone()),
                None => builder,
            },
        )
    }

    /// The public keys standing in for issuer `iss` (e.g. to give a server under test); `None`
    /// when it signs with an HMAC secret.
    pub fn keys(&self, iss: &str) -> Result<Option<Arc<StaticKeys>>, TestingError> {
        Ok(self.issuer(iss)?.keys.clone())
    }

    /// The algorithm issuer `iss`'s test key signs with.
    pub fn algorithm(&self, iss: &str) -> Result<Algorithm, TestingError> {
        Ok(self.issuer(iss)?.key.alg())
    }

    /// A token from issuer `iss` with `claims` (a JSON object) over the defaults, signed at
    /// `now`: [`TestIssuers::token`]`(iss)?.claims(claims).sign(now)`.
    pub fn mint(&self, iss: &str, claims: Value, now: UnixTime) -> Result<String, TestingError> {
        self.token(iss)?.claims(claims).sign(now)
    }

    /// A token from issuer `iss` to change before [`TestToken::sign`]. Its defaults: header
    /// `typ: "at+jwt"`, `alg` and `kid` of the test key; claims `iss` = the issuer, `iat` and
    /// `nbf` = now, `exp` = now + 10 minutes.
    pub fn token(&self, iss: &str) -> Result<TestToken<'_>, TestingError> {
        let issuer = self.issuer(iss)?;
        Ok(TestToken {
            key: &issuer.key,
            iss: issuer.iss.clone(),
            header: Map::new(),
            claims: Map::new(),
            removed: Vec::new(),
            error: None,
        })
    }

    fn issuer(&self, iss: &str) -> Result<&TestIssuer, TestingError> {
        self.issuers
            .iter()
            .find(|i| i.iss == iss)
            .ok_or_else(|| TestingError::UnknownIssuer(iss.to_owned()))
    }
}

/// A token being made by [`TestIssuers::token`]: given members win over the defaults, and
/// [`TestToken::without`] leaves one out.
#[derive(Debug)]
#[must_use = "a token is made by `sign`"]
pub struct TestToken<'a> {
    key: &'a DevKey,
    iss: String,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    removed: Vec<String>,
    /// The first claims or header given that were not an object (reported by `sign`).
    error: Option<TestingError>,
}

impl TestToken<'_> {
    /// Adds these claims (a JSON object), replacing defaults and earlier claims of the same name.
    pub fn claims(mut self, claims: Value) -> Self {
        match claims {
            Value::Object(map) => self.claims.extend(map),
            other => {
                self.error.get_or_insert(TestingError::NotAnObject {
                    what: "claims",
                    found: other.to_string(),
                });
            }
        }
        self
    }

    /// Adds these header members (a JSON object), replacing defaults (`typ`, `kid`; an `alg`
    /// other than the key's is signed with the key's algorithm all the same, to test a lie).
    pub fn header(mut self, header: Value) -> Self {
        match header {
            Value::Object(map) => self.header.extend(map),
            other => {
                self.error.get_or_insert(TestingError::NotAnObject {
                    what: "header",
                    found: other.to_string(),
                });
            }
        }
        self
    }

    /// Leaves claim or header member `name` out (a default such as `exp`, `iat`, `nbf`, `iss`,
    /// `typ` or `kid`, or one given), e.g. to test a token without `exp`.
    pub fn without(mut self, name: &str) -> Self {
        self.removed.push(name.to_owned());
        self
    }

    /// The compact JWS, signed at `now`.
    pub fn sign(self, now: UnixTime) -> Result<String, TestingError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let secs = now.seconds_floor();
        let exp = secs.saturating_add(i64::try_from(DEFAULT_LIFETIME_SECS).unwrap_or(i64::MAX));
        let mut header = Map::new();
        header.insert("typ".into(), "at+jwt".into());
        header.insert("alg".into(), self.key.alg().as_str().into());
        header.insert("kid".into(), self.key.kid().into());
        header.extend(self.header);
        let mut claims = Map::new();
        claims.insert("iss".into(), self.iss.into());
        claims.insert("iat".into(), secs.into());
        claims.insert("nbf".into(), secs.into());
        claims.insert("exp".into(), exp.into());
        claims.extend(self.claims);
        for name in &self.removed {
            header.remove(name);
            claims.remove(name);
        }
        self.key.sign(&header, &claims).map_err(TestingError::Key)
    }
}
