//! `jwt-policy check POLICY...`

use std::path::PathBuf;

use crate::cli::{EXIT_ERROR, EXIT_OK};
use crate::policy::Policy;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Policy files to validate.
    #[arg(required = true, value_name = "POLICY")]
    policies: Vec<PathBuf>,
}

/// Validates every policy; diagnostics go to stderr, one summary line per policy to stdout.
pub(crate) fn run(args: &Args) -> u8 {
    let mut code = EXIT_OK;
    for path in &args.policies {
        match Policy::from_file(path) {
            Ok(policy) => {
                for warning in policy.warnings() {
                    eprintln!("{}", policy.source().render(warning));
                }
                let n = policy.warnings().len();
                match n {
                    0 => println!("{}: ok", path.display()),
                    n => println!(
                        "{}: ok, {n} warning{}",
                        path.display(),
                        if n == 1 { "" } else { "s" }
                    ),
                }
            }
            Err(e) => {
                eprintln!("{e}");
                println!("{}: invalid", path.display());
                code = EXIT_ERROR;
            }
        }
    }
    code
}
