//! `jwt-policy init --preset NAME [--out FILE]`: a starting policy with its comments and its
//! tests file, from the shipped policies.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{say, tests_file};

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The kind of authorization server the tokens come from.
    #[arg(long, value_enum)]
    preset: Preset,
    /// Where to write the policy; its cases go beside it (`NAME.tests.toml`). Neither is written
    /// over an existing file.
    #[arg(long, value_name = "FILE", default_value = "policy.toml")]
    out: PathBuf,
}

/// The presets: each a shipped policy and its cases, with the issuer's keys fetched from where
/// that server publishes them instead of the demo key set beside the shipped policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Preset {
    /// An MCP server behind a Keycard zone (zone audience only with `resource` naming it).
    Keycard,
    /// An API registered in Auth0.
    Auth0,
    /// A web API registered in Microsoft Entra ID (v2.0 tokens).
    Entra,
    /// An API behind an Okta custom authorization server.
    Okta,
    /// Any RFC 9068 (JWT access token profile) authorization server.
    Rfc9068,
}

impl Preset {
    /// The policy text and its cases.
    fn files(self) -> (String, &'static str) {
        /// The shipped policy's demo key set, and where the server publishes its keys.
        fn remote(policy: &str, demo: &str, keys: &str) -> String {
            policy.replace(demo, keys)
        }
        match self {
            Self::Keycard => (
                include_str!("../../policies/keycard-mcp-remote.toml").to_owned(),
                include_str!("../../policies/keycard-mcp-remote.tests.toml"),
            ),
            Self::Auth0 => (
                remote(
                    include_str!("../../policies/auth0-api.toml"),
                    "# A demo set lives beside this policy; in production, https://{auth0_domain}/.well-known/jwks.json.\njwks_file = \"auth0-api.jwks.json\"",
                    "# The tenant's keys.\njwks_url = \"https://${auth0_domain}/.well-known/jwks.json\"",
                ),
                include_str!("../../policies/auth0-api.tests.toml"),
            ),
            Self::Entra => (
                remote(
                    include_str!("../../policies/entra-id-v2.toml"),
                    "# A demo set lives beside this policy; in production,\n# https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys (the keys roll over regularly).\njwks_file = \"entra-id-v2.jwks.json\"",
                    "# The tenant's keys (they roll over regularly: fetched and refreshed as `[remote_keys]` says).\njwks_url = \"https://login.microsoftonline.com/${tenant_id}/discovery/v2.0/keys\"",
                ),
                include_str!("../../policies/entra-id-v2.tests.toml"),
            ),
            Self::Okta => (
                remote(
                    include_str!("../../policies/okta.toml"),
                    "# A demo set lives beside this policy; in production,\n# https://{okta_domain}/oauth2/{auth_server_id}/v1/keys (keys rotate automatically by default).\njwks_file = \"okta.jwks.json\"",
                    "# The authorization server's keys (they rotate automatically by default).\njwks_url = \"https://${okta_domain}/oauth2/${auth_server_id}/v1/keys\"",
                ),
                include_str!("../../policies/okta.tests.toml"),
            ),
            Self::Rfc9068 => (
                remote(
                    include_str!("../../policies/rfc9068.toml"),
                    "# A demo set lives beside this policy; in production, the keys at the `jwks_uri` of the\n# authorization server's metadata (or verify offline with `jwt-policy verify --jwks FILE`).\njwks_file = \"rfc9068.jwks.json\"",
                    "# The keys at the `jwks_uri` of the authorization server's metadata (RFC 8414).\ndiscovery = true",
                ),
                include_str!("../../policies/rfc9068.tests.toml"),
            ),
        }
    }
}

/// Writes the preset's policy and cases; the exit code comes from `finish`.
pub(crate) fn run(args: &Args) -> Result<u8, String> {
    let (policy, cases) = args.preset.files();
    let tests = tests_file(&args.out);
    for path in [&args.out, &tests] {
        if path.exists() {
            return Err(format!(
                "`{}` already exists: nothing written (choose another `--out`)",
                path.display()
            ));
        }
    }
    write_new(&args.out, &policy)?;
    write_new(&tests, cases)?;
    say(format_args!(
        "wrote {} and {}: set its [vars] (and the same values in the cases' [base]), then run\n  jwt-policy check {}\n  jwt-policy test {}",
        args.out.display(),
        tests.display(),
        args.out.display(),
        args.out.display()
    ));
    Ok(crate::cli::EXIT_OK)
}

/// Creates `path` with `text`, never over an existing file.
fn write_new(path: &Path, text: &str) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot write `{}`: {}",
                path.display(),
                crate::text::io_message(&e)
            )
        })?;
    file.write_all(text.as_bytes()).map_err(|e| {
        format!(
            "cannot write `{}`: {}",
            path.display(),
            crate::text::io_message(&e)
        )
    })
}
