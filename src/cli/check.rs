//! `jwt-policy check [--format text|json] POLICY...`

use std::path::PathBuf;

use crate::cli::{EXIT_ERROR, EXIT_OK, say};
use crate::policy::{Diagnostic, Policy, Severity, SourceFile};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Policy files to validate.
    #[arg(required = true, value_name = "POLICY")]
    policies: Vec<PathBuf>,
    /// `text`: diagnostics rendered against the source on stderr, a summary line per policy on
    /// stdout. `json`: one JSON object per diagnostic and line on stdout (for editors and CI
    /// annotations), the summary lines on stderr.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// How `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Validates every policy and reports each diagnostic in the chosen format.
pub(crate) fn run(args: &Args) -> u8 {
    let mut code = EXIT_OK;
    let summary = |line: String| match args.format {
        Format::Text => say(format_args!("{line}")),
        Format::Json => eprintln!("{line}"),
    };
    let report = |source: &SourceFile, diagnostic: &Diagnostic| match args.format {
        Format::Text => eprintln!("{}", source.render(diagnostic)),
        Format::Json => say(format_args!("{}", json_line(source, diagnostic))),
    };
    for path in &args.policies {
        match Policy::from_file(path) {
            Ok(policy) => {
                for warning in policy.warnings() {
                    report(policy.source(), warning);
                }
                let n = policy.warnings().len();
                summary(match n {
                    0 => format!("{}: ok", path.display()),
                    n => format!(
                        "{}: ok, {n} warning{}",
                        path.display(),
                        if n == 1 { "" } else { "s" }
                    ),
                });
            }
            Err(e) => {
                match args.format {
                    Format::Text => eprintln!("{e}"),
                    Format::Json => {
                        for diagnostic in e.diagnostics() {
                            report(e.source(), diagnostic);
                        }
                    }
                }
                summary(format!("{}: invalid", path.display()));
                code = EXIT_ERROR;
            }
        }
    }
    code
}

/// One diagnostic as a JSON object on one line. Lines and columns are 1-based, columns count
/// characters, and the end is the position just after the last character (a diagnostic about
/// the whole policy is at 1:1, with an empty range).
fn json_line(source: &SourceFile, diagnostic: &Diagnostic) -> String {
    let (start, end) = match &diagnostic.span {
        Some(span) => (source.line_col(span.start), source.line_col(span.end)),
        None => ((1, 1), (1, 1)),
    };
    serde_json::json!({
        "file": source.name(),
        "line": start.0,
        "column": start.1,
        "end_line": end.0,
        "end_column": end.1,
        "severity": match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        "code": diagnostic.kind.code(),
        "message": diagnostic.message,
        "help": diagnostic.help,
    })
    .to_string()
}
