//! `jwt-policy mint --key KEY.pem --claims JSON|@FILE [--header JSON] [--exp 10m] [--now T]`:
//! one signed token, for tests.

use std::io::Write as _;

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::cli::EXIT_OK;
use crate::devkey::{DevKey, read_pem};
use crate::policy::parse_duration;

/// Arguments of `mint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The private key (PKCS#8 PEM, e.g. from `jwt-policy keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// The claims: a JSON object, or `@FILE` to read it from FILE.
    #[arg(long, value_name = "JSON|@FILE")]
    claims: String,
    /// Header members (a JSON object); they win over the defaults (`typ: at+jwt`, and `alg`
    /// and `kid` from the key file).
    #[arg(long, value_name = "JSON")]
    header: Option<String>,
    /// How long the token lives: `exp` = now + this (`30s`, `10m`, `2h`, `1d`), unless the
    /// claims give `exp`.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    exp: String,
    /// Sign at this time (whole Unix seconds) instead of the system clock: `iat`, and `exp`
    /// counts from it.
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<String>,
}

/// Prints one compact JWS and a newline.
pub(crate) fn run(args: &Args) -> Result<u8, String> {
    let lifetime = parse_duration(&args.exp).ok_or_else(|| {
        format!(
            "`--exp {}` is not a duration (digits and a unit `s`, `m`, `h` or `d`, e.g. `10m`)",
            args.exp
        )
    })?;
    let now = match &args.now {
        Some(text) => text.parse::<i64>().map_err(|_| {
            format!("`--now {text}` is not a time in whole Unix seconds (e.g. `1767225600`)")
        })?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .ok_or("the system clock is before 1970")?,
    };
    let exp = i64::try_from(lifetime)
        .ok()
        .and_then(|l| now.checked_add(l))
        .ok_or_else(|| format!("`--now {now}` plus `--exp {}` is out of range", args.exp))?;

    let claims_text = match args.claims.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{path}`: {}", crate::text::io_message(&e)))?,
        None => args.claims.clone(),
    };
    let given_claims = object(&claims_text, "--claims")?;
    let given_header = match &args.header {
        Some(text) => object(text, "--header")?,
        None => Map::new(),
    };

    let pem_text = std::fs::read_to_string(&args.key).map_err(|e| {
        format!(
            "cannot read key `{}`: {}",
            args.key.display(),
            crate::text::io_message(&e)
        )
    })?;
    let pem = read_pem(&pem_text).map_err(|e| format!("key `{}`: {e}", args.key.display()))?;
    // The algorithm: `--header`'s `alg`, else the key file's `alg:` line, else the key's type.
    let alg_name = match given_header.get("alg") {
        Some(Value::String(alg)) => Some(alg.clone()),
        Some(other) => return Err(format!("`--header` `alg` is {other}, not a string")),
        None => pem.alg.clone(),
    };
    let alg = alg_name
        .map(|name| {
            Algorithm::from_name(&name)
                .filter(|a| !a.is_hmac())
                .ok_or_else(|| {
                    format!("`alg` `{name}` is not a signature algorithm mint can sign with")
                })
        })
        .transpose()?;
    let kid = match given_header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => None,
        None => pem.kid.clone(),
    };
    let key = DevKey::from_pkcs8(&pem.der, alg, kid.as_deref().unwrap_or_default())
        .map_err(|e| format!("key `{}`: {e}", args.key.display()))?;

    let mut header = Map::new();
    header.insert("typ".into(), "at+jwt".into());
    header.insert("alg".into(), key.alg().as_str().into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    header.extend(given_header);
    let mut claims = Map::new();
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), exp.into());
    claims.extend(given_claims);

    let token = key.sign(&header, &claims)?;
    // The token is what the command makes: not being able to write it is an error.
    writeln!(std::io::stdout().lock(), "{token}")
        .map_err(|e| format!("cannot write the token: {}", crate::text::io_message(&e)))?;
    Ok(EXIT_OK)
}

/// `text` read as a JSON object, or why not (naming `flag`).
fn object(text: &str, flag: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "`{flag}` must be a JSON object; found {}",
            type_name(&other)
        )),
        Err(e) => Err(format!("`{flag}` is not JSON: {e}")),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
