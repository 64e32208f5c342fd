#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

// The layers, lowest first; each uses only the layers below it:
// `algorithm`, `json`, `text` (leaves) < `jwks` < `token` < `policy` < `engine` < `http`,
// `reload` < `cli`.
mod algorithm;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod engine;
#[cfg(feature = "http")]
pub mod http;
mod json;
pub mod jwks;
pub mod policy;
#[cfg(feature = "reload")]
pub mod reload;
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
pub use policy::{CacheSettings, Diagnostic, Policy, PolicyError, Requirement, Severity};
#[cfg(feature = "reload")]
pub use reload::{ReloadError, ReloadOutcome, ReloadStatus, ReloadingEngine};
pub use token::{Segment, TokenError};

/// Any error this crate returns: each layer has its own enum, this only wraps them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The engine could not be built from a valid policy.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Keys could not be read.
    #[error(transparent)]
    Keys(#[from] KeyError),
}
