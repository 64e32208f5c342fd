//! `jwt-policy verify --policy POLICY [...] (TOKEN | --token-file FILE | --tokens-file FILE|-)`

use std::io::{BufRead, Write};
use std::path::PathBuf;

use crate::cli::{
    EXIT_DENY, EXIT_ERROR, EXIT_OK, EngineArgs, Engines, TestKeyArgs, build_error,
    current_thread_runtime, read_policy, refuse_test_keys,
};
use crate::engine::{Decision, PolicyEngine};
use crate::json::UnixTime;

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
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    test_keys: TestKeyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
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
pub(crate) fn run(args: &Args) -> Result<u8, String> {
    let now = args.engine.now()?.unwrap_or_else(UnixTime::now);
    let Some(policy) = read_policy(&args.policy) else {
        return Ok(EXIT_ERROR);
    };
    let engines = Engines::new(&args.engine, &policy)?;
    // Remote keys are fetched on this runtime; one engine (and so one key store, with its cache,
    // cooldown and single flight) serves every token of a batch.
    let runtime = current_thread_runtime()?;
    let engine = runtime
        .block_on(engines.builder(policy).build_async())
        .map_err(|e| build_error(&e))?;
    refuse_test_keys(&args.test_keys, &engine)?;

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
                    crate::text::io_message(&e)
                )
            })?;
            strip_line_ending(&mut bytes);
            bytes
        }
        (None, None) => return Err("no token given".into()),
    };
    let decision = runtime.block_on(engine.evaluate_async_at(&token, now));
    let mut out = std::io::stdout().lock();
    if let Err(e) = print(&mut out, &decision, args.format, None).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(write_error(&e));
    }
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
                crate::text::io_message(&e)
            )
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut line = Vec::new();
    let mut reader = reader;
    let mut number = 0usize;
    // One `write` per buffer, not per decision: printing was a quarter of a batch's time.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| {
            format!(
                "cannot read `{}`: {}",
                path.display(),
                crate::text::io_message(&e)
            )
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        strip_line_ending(&mut line);
        let decision = runtime.block_on(engine.evaluate_async_at(&line, now));
        if let Err(e) = print(&mut out, &decision, format, Some(number)) {
            return batch_ended(&e);
        }
    }
    out.flush().or_else(|e| batch_ended(&e).map(drop))?;
    Ok(EXIT_OK)
}

/// A reader that went away (`verify ... | head -1`) ends a batch quietly, as for other filters;
/// any other write error is an error.
fn batch_ended(e: &std::io::Error) -> Result<u8, String> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(EXIT_OK)
    } else {
        Err(write_error(e))
    }
}

fn write_error(e: &std::io::Error) -> String {
    format!("cannot write output: {}", crate::text::io_message(e))
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

fn print(
    out: &mut impl Write,
    decision: &Decision,
    format: Format,
    line: Option<usize>,
) -> std::io::Result<()> {
    match (format, line) {
        (Format::Json, _) => writeln!(out, "{}", decision.to_json()),
        (Format::Text, None) => write!(out, "{}", decision.explain()),
        (Format::Text, Some(n)) => write!(out, "line {n}: {}", decision.explain()),
    }
}
