#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod algorithm;
mod engine;
pub mod jwks;
pub mod policy;
mod token;

#[doc(hidden)]
pub mod cli;

pub use algorithm::{Algorithm, KeyFamily};
pub use engine::{
    BuildError, Check, Decision, EngineBuilder, Outcome, PolicyEngine, Principal, Reason, UnixTime,
    Verdict,
};
pub use jwks::{KeyError, KeySet, KeySource, StaticKeys};
pub use policy::{Diagnostic, Policy, PolicyError, Severity};
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
