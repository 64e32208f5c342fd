//! `jwt-policy schema`: the JSON Schema of the policy language, for editors.

use std::io::Write;

use crate::cli::EXIT_OK;

/// The JSON Schema (draft-07) of a policy file, as checked in: editors can point at
/// `src/policy/schema.json` in the repository or at the file this command writes.
const SCHEMA: &str = include_str!("../policy/schema.json");

/// Prints the schema on stdout.
pub(crate) fn run() -> Result<u8, String> {
    let mut out = std::io::stdout().lock();
    out.write_all(SCHEMA.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the schema: {}", crate::text::io_message(&e)))?;
    Ok(EXIT_OK)
}
