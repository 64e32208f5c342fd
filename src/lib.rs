#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

// The layers, lowest first; each uses only the layers below it:
// `algorithm`, `json`, `text` (leaves) < `jwks` < `token`, `devkey` < `policy` < `engine` <
// `http`, `reload`, `testing` < `cli`.
mod algorithm;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
// Test keys: for `testing`, which `cli` turns on.
#[cfg(feature = "testing")]
mod devkey;
mod engine;
#[cfg(feature = "http")]
pub mod http;
mod json;
pub mod jwks;
pub mod policy;
#[cfg(feature = "reload")]
pub mod reload;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
mod token;

pub use algorithm::{Algorithm, KeyFamily};
pub use engine::{
    BuildError, CacheStats, Check, Claims, ClaimsError, Decision, EngineBuilder, ForwardError,
    Outcome, PolicyEngine, Principal, Reason, SharedEngine, Verdict,
};
pub use json::UnixTime;
#[cfg(feature = "remote")]
pub use jwks::RemoteKeys;
pub use jwks::{
    KeyError, KeySet, KeySource, KeyStats, RemoteSettings, RemoteSource, Startup, StaticKeys,
};
pub use policy::{
    CacheSettings, Diagnostic, PathError, Policy, PolicyError, Requirement, Severity,
};
#[cfg(feature = "reload")]
pub use reload::{Comparison, ReloadError, ReloadOutcome, ReloadStatus, ReloadingEngine, Shadow};

/// Any error this crate returns: each part has its own type, and this wraps every one of them,
/// so that `?` works in a function that meets several.
///
/// ```
/// use jwt_policy::{Policy, PolicyEngine, Requirement, UnixTime};
///
/// /// The client id an allowed token was issued to, for `GET /mcp`.
/// fn client_of(token: &str) -> Result<Option<String>, jwt_policy::Error> {
///     let policy = Policy::from_file("policies/keycard-mcp.toml")?; // a `PolicyError`
///     let engine = PolicyEngine::builder(policy)
///         .context("credential.key_id", "mcp-server-key-1")
///         .build()?; // a `BuildError`
///     let route: Requirement = engine.policy().requirement_for("GET", "/mcp")?; // a `PathError`
///     let decision = engine.evaluate_at_with(token, UnixTime::from_secs(1_767_225_600), &route);
///     #[derive(serde::Deserialize)]
///     struct Caller {
///         client_id: String,
///     }
///     match decision.claims() {
///         Some(claims) => Ok(Some(claims.deserialize::<Caller>()?.client_id)), // a `ClaimsError`
///         None => Ok(None),
///     }
/// }
///
/// let token = std::fs::read_to_string("policies/demo/zone-audience.jwt").unwrap();
/// assert_eq!(client_of(token.trim_end())?.as_deref(), Some("mcp-inspector"));
/// assert_eq!(client_of("not-a-token")?, None);
/// # Ok::<(), jwt_policy::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The engine could not be built from a valid policy.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Keys could not be read or fetched.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A request's path could not be matched against the policy's routes.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Verified claims could not be read into the caller's type.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// A verified claim cannot be forwarded as a header.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// A reloading engine could not start, or a reload failed.
    #[cfg(feature = "reload")]
    #[error(transparent)]
    Reload(#[from] ReloadError),
}
