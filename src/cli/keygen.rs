//! `jwt-policy keygen --alg ES256|RS256|EdDSA --kid ID [--out DIR]`: a private key and its public
//! JWKS, for tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::algorithm::Algorithm;
use crate::cli::{EXIT_OK, say};
use crate::devkey::DevKey;

/// The algorithms `keygen` makes keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Alg {
    /// ECDSA with P-256 and SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, a 2048-bit key.
    #[value(name = "RS256")]
    Rs256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
}

impl Alg {
    fn algorithm(self) -> Algorithm {
        match self {
            Alg::Es256 => Algorithm::ES256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key's algorithm.
    #[arg(long, value_enum)]
    alg: Alg,
    /// The key id: tokens name it in their `kid`, and it names the files.
    #[arg(long, value_name = "ID")]
    kid: String,
    /// The directory to write `ID.key.pem` and `ID.jwks.json` in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

/// Writes `DIR/ID.key.pem` (mode 0600, never over an existing file) and `DIR/ID.jwks.json`.
pub(crate) fn run(args: &Args) -> Result<u8, String> {
    let kid = &args.kid;
    // The kid names files: keep it to characters that cannot leave the directory.
    if kid.is_empty()
        || kid.starts_with('.')
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "`--kid {kid}` must be letters, digits, `.`, `_` and `-`, not starting with `.`"
        ));
    }
    let key_path = args.out.join(format!("{kid}.key.pem"));
    let jwks_path = args.out.join(format!("{kid}.jwks.json"));
    for path in [&key_path, &jwks_path] {
        if path.symlink_metadata().is_ok() {
            return Err(format!(
                "`{}` already exists; keygen never writes over a file (choose another `--kid` or `--out`)",
                path.display()
            ));
        }
    }
    let key = DevKey::generate(args.alg.algorithm(), kid)?;
    let pem = key.to_pem()?;
    let jwks = key
        .public_jwks()
        .ok_or("a public-key algorithm has a public JWKS")?;
    let jwks =
        serde_json::to_string_pretty(&jwks).map_err(|e| format!("cannot write JSON: {e}"))?;
    write_new(&key_path, pem.as_bytes(), true)?;
    if let Err(e) = write_new(&jwks_path, format!("{jwks}\n").as_bytes(), false) {
        // Not half a pair: the key without its JWKS would only be in the way of a second try.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    say(format_args!(
        "wrote {} (private key, mode 0600)",
        key_path.display()
    ));
    say(format_args!(
        "wrote {} (public JWKS, marked `\"x-jwt-policy-test\": true`)",
        jwks_path.display()
    ));
    Ok(EXIT_OK)
}

/// Creates `path` (failing if anything is there: `O_EXCL`, no symlink followed) and writes
/// `bytes`; a private file is created with mode 0600 on Unix.
fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let cannot = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "`{}` already exists; keygen never writes over a file (choose another `--kid` or `--out`)",
                path.display()
            )
        } else {
            format!(
                "cannot write `{}`: {}",
                path.display(),
                crate::text::io_message(&e)
            )
        }
    };
    let mut file = options.open(path).map_err(cannot)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(cannot)
}
