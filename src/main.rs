//! The `jwt-policy` command: parse arguments, dispatch, map the result to an exit code.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    jwt_policy::cli::main()
}
