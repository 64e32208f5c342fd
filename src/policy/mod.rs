//! The policy language: reading, validating and linting `policy.toml`.
//!
//! [`Policy::from_file`] reads a file, reports every problem at once as located
//! [`Diagnostic`]s in a [`PolicyError`], and returns a validated [`Policy`] whose
//! [`warnings`](Policy::warnings) are the lints it triggered. The full reference of every key is
//! in `docs/policy.md`.

mod diagnostic;
#[cfg(feature = "cli")]
pub(crate) mod diff;
mod lint;
mod model;
mod pattern;
mod read;
mod reader;
mod routes;
mod syntax;

pub use diagnostic::{Diagnostic, DiagnosticKind, PolicyError, Severity, SourceFile};
pub(crate) use model::*;
pub use model::{CacheSettings, Issuer, Policy};
#[cfg(feature = "cli")]
pub(crate) use reader::parse_duration;
pub use routes::{PathError, Requirement, request_path};
