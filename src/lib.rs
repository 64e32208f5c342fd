#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod algorithm;
mod engine;
#[cfg(feature = "http")]
pub mod http;
pub mod jwks;
pub mod policy;
#[cfg(feature = "reload")]
pub mod reload;
mod token;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

pub use algorithm::{Algorithm, KeyFamily};
pub use engine::{
    BuildError, Check, Claims, ClaimsError, Decision, EngineBuilder, ForwardError, Outcome,
    PolicyEngine, Principal, Reason, SharedEngine, UnixTime, Verdict,
};
pub use jwks::{
    KeyError, KeySet, KeySource, KeyStats, RemoteKeys, RemoteSettings, RemoteSource, Startup,
    StaticKeys,
};
pub use policy::{Diagnostic, Policy, PolicyError, Requirement, Severity};
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

/// An I/O error as one lowercase phrase for messages ("file not found", not "No such file or
/// directory (os error 2)").
pub(crate) fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "file not found".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::InvalidData => "not UTF-8 text".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
        }
    }
}
