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
mod routes;
mod syntax;

use std::path::Path;
use std::sync::Arc;

pub use diagnostic::{Diagnostic, DiagnosticKind, PolicyError, Severity, SourceFile};
pub(crate) use model::*;
pub use model::{ClaimPath, Issuer, Policy};
pub use routes::{PathError, Requirement, request_path};

impl Policy {
    /// Reads and validates the policy at `path`. Relative file names inside it (a `jwks_file`,
    /// say) are resolved against the policy's own directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let diagnostic = Diagnostic::whole_file(
                    Severity::Error,
                    DiagnosticKind::Io,
                    format!(
                        "cannot read policy `{name}`: {}",
                        crate::text::io_message(&e)
                    ),
                )
                .with_help("a policy is a UTF-8 TOML file; check the path");
                return Err(PolicyError::new(
                    Arc::new(SourceFile::new(name, "")),
                    vec![diagnostic],
                ));
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return Err(not_utf8(name, &e)),
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

/// A policy file that is not UTF-8, located at its first invalid byte. The line is shown with
/// the invalid bytes as `\u{fffd}`; up to that byte, the text is the file's own.
fn not_utf8(name: String, error: &std::string::FromUtf8Error) -> PolicyError {
    let at = error.utf8_error().valid_up_to();
    let bytes = error.as_bytes();
    let byte = bytes.get(at).copied().unwrap_or_default();
    let source = SourceFile::new(name, String::from_utf8_lossy(bytes));
    let (line, col) = source.line_col(at);
    let diagnostic = Diagnostic::error(
        DiagnosticKind::Io,
        // The invalid sequence became one U+FFFD.
        at..at + char::REPLACEMENT_CHARACTER.len_utf8(),
        format!(
            "policy `{}` is not UTF-8: invalid byte {byte:#04x} at line {line}, column {col}",
            source.name()
        ),
    )
    .with_help("save the policy as UTF-8");
    PolicyError::new(Arc::new(source), vec![diagnostic])
}
