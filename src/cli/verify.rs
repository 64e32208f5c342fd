//! `jwt-policy verify --policy POLICY [...] (TOKEN | --token-file FILE | --tokens-file FILE|-)`

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{EXIT_DENY, EXIT_ERROR, EXIT_OK};
use url::Url;

use crate::jwks::{KeySet, is_loopback};
use crate::policy::JwksSource;
use crate::{
    BuildError, Decision, KeyError, Policy, PolicyEngine, RemoteKeys, RemoteSource, StaticKeys,
    UnixTime,
};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One JSON object per decision, on one line.
    Json,
    /// A readable explanation.
    Text,
}

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["token", "token_file", "tokens_file"])))]
pub(crate) struct Args {
    /// The policy file.
    #[arg(long, value_name = "POLICY")]
    policy: PathBuf,
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
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// A run-time value the policy refers to, e.g. `credential.key_id=abc` (repeatable).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// The token.
    #[arg(value_name = "TOKEN")]
    token: Option<String>,
    /// Read one token from FILE (one trailing line ending is removed).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Decide about each line of FILE (`-` for stdin): one decision per line, in order.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
}

/// Runs `verify` and returns the exit code.
pub(crate) fn run(args: &Args) -> u8 {
    match try_run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_ERROR
        }
    }
}

fn try_run(args: &Args) -> Result<u8, String> {
    let now = match &args.now {
        Some(text) => UnixTime::parse(text).ok_or_else(|| {
            format!("`--now {text}` is not a time in Unix seconds (e.g. `1767225600`)")
        })?,
        None => UnixTime::now(),
    };
    let policy = match Policy::from_file(&args.policy) {
        Ok(policy) => policy,
        Err(e) => {
            // Already rendered as located diagnostics, each with its own `error[...]`.
            eprintln!("{e}");
            return Ok(EXIT_ERROR);
        }
    };
    let remote_settings = policy.remote_keys().clone();
    let jwks = match &args.jwks {
        Some(path) => Some(jwks_for(&policy, path)?),
        None => None,
    };
    let mut builder = PolicyEngine::builder(policy);
    for pair in &args.context {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`--context {pair}` must be KEY=VALUE"))?;
        builder = builder.context(key, value);
    }
    if let Some(keys) = jwks {
        builder = builder.key_source_for_all(Arc::new(keys));
    }
    if let Some(url) = &args.jwks_url {
        let url = Url::parse(url).map_err(|e| format!("`--jwks-url {url}` is not a URL: {e}"))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
            return Err(format!(
                "`--jwks-url {url}`: keys are fetched over https (plain http only from a loopback host)"
            ));
        }
        let keys = RemoteKeys::new(RemoteSource::JwksUrl(url), remote_settings)
            .map_err(|e| e.to_string())?;
        builder = builder.key_source_for_all(Arc::new(keys));
    }
    // Remote keys are fetched on this runtime; one engine (and so one key store, with its cache,
    // cooldown and single flight) serves every token of a batch.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let engine = runtime
        .block_on(builder.build_async())
        .map_err(|e| build_error(&e))?;

    if let Some(path) = &args.tokens_file {
        return batch(&runtime, &engine, path, now, args.format);
    }
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => token.as_bytes().to_vec(),
        (None, Some(path)) => {
            let mut bytes = std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read `{}`: {}",
                    path.display(),
                    crate::io_message(&e)
                )
            })?;
            strip_line_ending(&mut bytes);
            bytes
        }
        (None, None) => return Err("no token given".into()),
    };
    let decision = runtime.block_on(engine.evaluate_async_at(&token, now));
    print(&decision, args.format, None);
    Ok(if decision.is_allowed() {
        EXIT_OK
    } else {
        EXIT_DENY
    })
}

fn batch(
    runtime: &tokio::runtime::Runtime,
    engine: &PolicyEngine,
    path: &PathBuf,
    now: UnixTime,
    format: Format,
) -> Result<u8, String> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            format!(
                "cannot read `{}`: {}",
                path.display(),
                crate::io_message(&e)
            )
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut line = Vec::new();
    let mut reader = reader;
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| {
            format!(
                "cannot read `{}`: {}",
                path.display(),
                crate::io_message(&e)
            )
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        strip_line_ending(&mut line);
        let decision = runtime.block_on(engine.evaluate_async_at(&line, now));
        print(&decision, format, Some(number));
    }
    std::io::stdout()
        .flush()
        .map_err(|e| format!("cannot write output: {e}"))?;
    Ok(EXIT_OK)
}

/// A build error, with the flag that supplies a missing run-time value.
fn build_error(e: &BuildError) -> String {
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

/// Removes one `\n` or `\r\n`.
fn strip_line_ending(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
}

fn print(decision: &Decision, format: Format, line: Option<usize>) {
    match (format, line) {
        (Format::Json, _) => println!("{}", decision.to_json()),
        (Format::Text, None) => print!("{}", decision.explain()),
        (Format::Text, Some(n)) => print!("line {n}: {}", decision.explain()),
    }
}
