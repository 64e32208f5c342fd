//! The command-line interface. Not a stable library API; use the binary.

mod check;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: valid policy / token allowed / every batch line decided.
pub const EXIT_OK: u8 = 0;
/// Exit code: the single token was denied.
pub const EXIT_DENY: u8 = 1;
/// Exit code: usage, policy or I/O error.
pub const EXIT_ERROR: u8 = 2;

/// Decide from a TOML policy whether OAuth/JWT access tokens may reach a service, and explain why.
#[derive(Debug, Parser)]
#[command(name = "jwt-policy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate policies: every error and lint, located (exit 0 valid, 2 invalid).
    Check(check::Args),
    /// Decide about tokens (exit 0 allow, 1 deny, 2 error; batch: 0 when every line was decided).
    Verify(verify::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { EXIT_OK });
        }
    };
    let code = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Verify(args) => verify::run(&args),
    };
    ExitCode::from(code)
}
