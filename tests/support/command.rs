//! The `jwt-policy` command, run as a process by the tests of the command line.

use std::process::{Command, Output};

/// The built `jwt-policy`.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
}

/// `jwt-policy ARGS...`, run to its end.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// The exit code (a signal is a test failure).
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

/// Standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}
