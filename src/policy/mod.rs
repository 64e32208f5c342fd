//! The policy language: reading, validating and linting `policy.toml`.
//!
//! [`Policy::from_file`] reads a file, reports every problem at once as located
//! [`Diagnostic`]s in a [`PolicyError`], and returns a validated [`Policy`] whose
//! [`warnings`](Policy::warnings) are the lints it triggered. The full reference of every key is
//! in `docs/policy.md`.

mod diagnostic;
mod lint;
mod model;
mod parse;
mod pattern;
mod reader;

use std::path::Path;
use std::sync::Arc;

pub use diagnostic::{Diagnostic, DiagnosticKind, PolicyError, Severity, SourceFile};
pub(crate) use model::*;
pub use model::{ClaimPath, Issuer, Policy};

impl Policy {
    /// Reads and validates the policy at `path`. Relative file names inside it (a `jwks_file`,
    /// say) are resolved against the policy's own directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                let diagnostic = Diagnostic::whole_file(
                    Severity::Error,
                    DiagnosticKind::Io,
                    format!("cannot read policy `{name}`: {}", crate::io_message(&e)),
                )
                .with_help("a policy is a UTF-8 TOML file; check the path");
                return Err(PolicyError::new(
                    Arc::new(SourceFile::new(name, "")),
                    vec![diagnostic],
                ));
            }
        };
        let base_dir = path.parent().unwrap_or(Path::new("."));
        parse::parse(Arc::new(SourceFile::new(name, text)), base_dir)
    }

    /// Validates policy `text`, naming it `name` in diagnostics. Relative file names inside it
    /// are resolved against `base_dir`.
    pub fn from_toml(
        name: impl Into<String>,
        text: impl Into<String>,
        base_dir: impl AsRef<Path>,
    ) -> Result<Policy, PolicyError> {
        parse::parse(Arc::new(SourceFile::new(name, text)), base_dir.as_ref())
    }
}
