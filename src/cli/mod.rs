//! The command-line interface. Not a stable library API; use the binary.

mod bench;
mod check;
mod diff;
mod init;
mod keygen;
mod mint;
mod schema;
mod serve;
mod test;

pub(crate) use test::tests_file;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use url::Url;

use crate::engine::{BuildError, EngineBuilder, PolicyEngine};
use crate::json::UnixTime;
use crate::jwks::{
    JwksSource, KeyError, KeySet, KeySource, KeysFuture, RemoteKeys, RemoteSource, StaticKeys,
    is_loopback,
};
use crate::policy::Policy;

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
    /// What NEW accepts that OLD refused, and the reverse, by concern (exit 0 when NEW accepts
    /// nothing OLD refused, 1 when it does or may, 2 error).
    Diff(diff::Args),
    /// Decide about tokens (exit 0 allow, 1 deny, 2 error; batch: 0 when every line was decided).
    Verify(verify::Args),
    /// Answer forward-auth requests from a proxy over HTTP (exit 0 when stopped, 2 if it cannot
    /// start).
    Serve(serve::Args),
    /// Measure how fast tokens are decided in process, against the signature check alone
    /// (exit 0 measured, 2 error).
    Bench(bench::Args),
    /// Print the JSON Schema of the policy language, for editors (exit 0).
    Schema,
    /// Run each policy's cases (`POLICY.tests.toml`) with test keys standing in for the
    /// issuers' keys, and say what no case covers (exit 0 all pass, 1 a case fails, 2 error).
    Test(test::Args),
    /// Write a starting policy for a kind of authorization server, with its cases (exit 0
    /// written, 2 error).
    Init(init::Args),
    /// Write a test private key (PKCS#8 PEM, mode 0600) and its public JWKS, marked as a test
    /// key (exit 0 written, 2 error).
    Keygen(keygen::Args),
    /// Print a token signed with a test private key (exit 0 printed, 2 error).
    Mint(mint::Args),
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
        Command::Diff(args) => diff::run(&args),
        Command::Verify(args) => finish(verify::run(&args)),
        Command::Serve(args) => finish(serve::run(&args)),
        Command::Bench(args) => finish(bench::run(&args)),
        Command::Schema => finish(schema::run()),
        Command::Test(args) => test::run(&args),
        Command::Init(args) => finish(init::run(&args)),
        Command::Keygen(args) => finish(keygen::run(&args)),
        Command::Mint(args) => finish(mint::run(&args)),
    };
    ExitCode::from(code)
}

/// Writes one line of a report to stdout. A reader that went away (`jwt-policy test | head`)
/// drops the rest of the report quietly instead of a panic; the exit code still says how the
/// command went.
pub(crate) fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// The flags `verify`, `serve` and `bench` share: where keys come from, run-time values, the clock.
#[derive(Debug, clap::Args)]
pub(crate) struct EngineArgs {
    /// Verify with this JWKS file instead of every issuer's own key source (offline).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_url")]
    jwks: Option<PathBuf>,
    /// Verify with the JWKS at this URL instead of every issuer's own key source (fetched,
    /// cached and refreshed as the policy's `[remote_keys]` say).
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// Decide at this time (Unix seconds, fractions allowed) instead of the system clock.
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<String>,
    /// A run-time value the policy refers to, e.g. `credential.key_id=abc` (repeatable).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
}

impl EngineArgs {
    /// `--now`: `None` for the system clock.
    pub(crate) fn now(&self) -> Result<Option<UnixTime>, String> {
        self.now
            .as_deref()
            .map(|text| {
                UnixTime::parse(text).ok_or_else(|| {
                    format!("`--now {text}` is not a time in Unix seconds (e.g. `1767225600`)")
                })
            })
            .transpose()
    }
}

/// `--allow-test-keys`, which `verify` and `serve` take (`bench` measures with any key).
#[derive(Debug, clap::Args)]
pub(crate) struct TestKeyArgs {
    /// Verify with keys marked as test keys (`"x-jwt-policy-test": true`, from `jwt-policy
    /// keygen`) instead of refusing to start: for tests only.
    #[arg(long)]
    allow_test_keys: bool,
}

/// Refuses an engine that verifies with a key marked as a test key, unless `--allow-test-keys`.
pub(crate) fn refuse_test_keys(args: &TestKeyArgs, engine: &PolicyEngine) -> Result<(), String> {
    if args.allow_test_keys {
        return Ok(());
    }
    match engine.test_keys().first() {
        None => Ok(()),
        Some((iss, kid)) => {
            let kid = kid
                .as_deref()
                .map_or_else(|| "without `kid`".to_owned(), |kid| format!("`{kid}`"));
            Err(format!(
                "issuer `{iss}` trusts test key {kid} (made by `jwt-policy keygen`); refusing to start\n  help: pass `--allow-test-keys` to use it anyway (tests only), or give the issuer its own keys"
            ))
        }
    }
}

/// Builds engines as the flags say: with the `--context` values, and the `--jwks` or
/// `--jwks-url` keys in place of every issuer's own. `serve` builds one for every (re)load.
#[derive(Debug)]
pub(crate) struct Engines {
    context: Vec<(String, String)>,
    keys: Keys,
}

/// Whose keys the engines verify with.
#[derive(Debug)]
enum Keys {
    /// Each issuer's own key source.
    Own,
    /// `--jwks FILE`: read once.
    File(Arc<StaticKeys>),
    /// `--jwks-url URL`: each engine fetches with the `[remote_keys]` of its own policy.
    Url(Url),
}

impl Engines {
    /// Checks the flags (for `--jwks`, against `policy`).
    pub(crate) fn new(args: &EngineArgs, policy: &Policy) -> Result<Self, String> {
        let keys = match (&args.jwks, &args.jwks_url) {
            (Some(path), _) => Keys::File(Arc::new(jwks_for(policy, path)?)),
            (None, Some(url)) => {
                let url =
                    Url::parse(url).map_err(|e| format!("`--jwks-url {url}` is not a URL: {e}"))?;
                if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
                    return Err(format!(
                        "`--jwks-url {url}`: keys are fetched over https (plain http only from a loopback host)"
                    ));
                }
                // Fails only when no HTTP client can be made: better said now than at a reload.
                remote(&url, policy).map_err(|e| e.to_string())?;
                Keys::Url(url)
            }
            (None, None) => Keys::Own,
        };
        let mut context = Vec::with_capacity(args.context.len());
        for pair in &args.context {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`--context {pair}` must be KEY=VALUE"))?;
            context.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self { context, keys })
    }

    /// A builder for `policy` with the flags' context and keys.
    pub(crate) fn builder(&self, policy: Policy) -> EngineBuilder {
        let keys: Option<Arc<dyn KeySource>> = match &self.keys {
            Keys::Own => None,
            Keys::File(keys) => Some(keys.clone()),
            Keys::Url(url) => Some(match remote(url, &policy) {
                Ok(keys) => Arc::new(keys),
                Err(e) => Arc::new(Unavailable(e)),
            }),
        };
        let mut builder = PolicyEngine::builder(policy);
        for (key, value) in &self.context {
            builder = builder.context(key, value);
        }
        match keys {
            Some(keys) => builder.key_source_for_all(keys),
            None => builder,
        }
    }
}

/// The `--jwks-url` keys for an engine of `policy`: a store of its own (cache, cooldown, single
/// flight), fetched as the policy's `[remote_keys]` say.
fn remote(url: &Url, policy: &Policy) -> Result<RemoteKeys, KeyError> {
    RemoteKeys::new(
        RemoteSource::JwksUrl(url.clone()),
        policy.remote_keys().clone(),
    )
}

/// Keys that cannot be had (no HTTP client could be made for `--jwks-url`): building an engine
/// with them fails, eagerly or at the first token, rather than putting it in effect silently.
#[derive(Debug)]
struct Unavailable(KeyError);

impl KeySource for Unavailable {
    fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
        Err(self.0.clone())
    }

    fn startup(&self) -> Option<KeysFuture<'_>> {
        Some(Box::pin(std::future::ready(self.keys())))
    }
}

/// The exit code of a command that failed with `Err(message)` (printed as `error: message`) or
/// ended with `Ok(code)`.
fn finish(result: Result<u8, String>) -> u8 {
    result.unwrap_or_else(|message| {
        eprintln!("error: {message}");
        EXIT_ERROR
    })
}

/// The policy at `path`; `None` once its located diagnostics are printed (each with its own
/// `error[...]`, so the caller only exits with [`EXIT_ERROR`]).
pub(crate) fn read_policy(path: &Path) -> Option<Policy> {
    Policy::from_file(path).map_err(|e| eprintln!("{e}")).ok()
}

/// The runtime of a command that decides on one thread (remote keys are fetched on it).
pub(crate) fn current_thread_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// A build error, with the flag that supplies a missing run-time value.
pub(crate) fn build_error(e: &BuildError) -> String {
    match e {
        BuildError::MissingResourceClientId { contexts, .. } if !contexts.is_empty() => {
            let flags: Vec<String> = contexts
                .iter()
                .map(|key| format!("`--context {key}=VALUE`"))
                .collect();
            format!(
                "{e}\n  help: pass {} (this server's own client id)",
                flags.join(" or ")
            )
        }
        _ => e.to_string(),
    }
}

/// Reads the `--jwks` file, refusing it when a key would verify tokens of several algorithms one
/// issuer of the policy allows (every such token would be denied with `key_mismatch`).
fn jwks_for(policy: &Policy, path: &Path) -> Result<StaticKeys, String> {
    let set = KeySet::load(&JwksSource::File(path.to_path_buf())).map_err(|e| match e {
        // Names the file already.
        KeyError::Io { .. } => e.to_string(),
        _ => format!("`--jwks {}`: {e}", path.display()),
    })?;
    for issuer in policy.issuers() {
        if let Some(error) = set.ambiguous(issuer.algorithms()).first() {
            return Err(format!(
                "`--jwks {}`: for issuer `{}`: {error}",
                path.display(),
                issuer.iss()
            ));
        }
    }
    Ok(StaticKeys::new(set))
}
