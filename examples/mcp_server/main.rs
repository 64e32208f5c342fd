//! A real MCP server (streamable HTTP, `rmcp`) at `/mcp` on 127.0.0.1, protected by the
//! reference policy through `PolicyLayer`, serving its RFC 9728 metadata, with one tool,
//! `whoami`, that answers with the calling client's id.
//!
//! The shipped demo tokens are frozen in time, so this generates an Ed25519 key at start-up,
//! trusts only it for the reference policy's issuer, and prints freshly signed tokens (valid for
//! an hour) on stdout, as shell assignments. The `curl` lines to try are in README.md.
//!
//! ```text
//! cargo run --example mcp_server --features axum [-- --port 8080]
//! ```

mod server;

use std::process::ExitCode;

use server::{McpServer, ZONE};

/// The port when `--port` is not given.
const DEFAULT_PORT: u16 = 8080;

const USAGE: &str = "usage: mcp_server [--port PORT]   (PORT 0 picks a free port; default 8080)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port = match port(std::env::args().skip(1)) {
        Ok(Some(port)) => port,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `--port` of the arguments (`--port N` or `--port=N`); `None` for `--help`.
fn port(mut args: impl Iterator<Item = String>) -> Result<Option<u16>, String> {
    let mut port = DEFAULT_PORT;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => args.next().ok_or("`--port` needs a value")?,
            _ => match arg.strip_prefix("--port=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unexpected argument `{arg}`")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("`--port` takes a number from 0 to 65535, not `{value}`"))?;
    }
    Ok(Some(port))
}

async fn run(port: u16) -> Result<(), server::Error> {
    let server = McpServer::bind(port).await?;
    let resource = &server.resource;
    let issuer = &server.issuer;
    println!("TOKEN={}", issuer.token(resource, None, "demo-client")?);
    println!(
        "ZONE_TOKEN={}",
        issuer.token(ZONE, Some(resource), "demo-client")?
    );
    println!(
        "OTHER_TOKEN={}",
        issuer.token(ZONE, Some("https://other.example.com/mcp"), "demo-client")?
    );
    eprintln!("listening on http://{}", server.addr);
    eprintln!("mcp endpoint {resource} (tokens above valid for an hour)");
    server.serve().await?;
    Ok(())
}
