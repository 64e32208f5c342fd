//! The MCP server example (`examples/mcp_server`) end to end: its server code on an ephemeral
//! port of 127.0.0.1, a real HTTP client speaking MCP streamable HTTP, and tokens signed by the
//! example's own start-up key.
//!
//! Cargo builds an example for an integration test only when asked, and offers no
//! `CARGO_BIN_EXE_` path for it; so the example keeps its server in a module
//! (`examples/mcp_server/server.rs`) that this test includes as it is, and runs in process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../examples/mcp_server/server.rs"]
mod server;

use serde_json::{Value, json};

/// What the test sends the server's MCP endpoint with.
struct Running {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// `http://127.0.0.1:PORT/mcp`.
    resource: String,
    /// The key the server trusts.
    issuer: server::DemoIssuer,
}

/// The example's server, as `cargo run --example mcp_server -- --port 0` starts it.
async fn start() -> Running {
    let demo = server::McpServer::bind(0).await.unwrap();
    let base = format!("http://{}", demo.addr);
    let resource = demo.resource.clone();
    let issuer = demo.issuer.clone();
    tokio::spawn(async move { demo.serve().await.unwrap() });
    Running {
        base,
        resource,
        issuer,
    }
}

/// What came back from a POST to `/mcp`.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    session: Option<String>,
    /// The JSON-RPC message of the body: the body itself when JSON, else the `data:` of the
    /// server-sent event that holds a message.
    message: Option<Value>,
}

/// POSTs `body` to `{base}/mcp` as an MCP client does, with `token` and `session` when given.
async fn post(run: &Running, token: Option<&str>, session: Option<&str>, body: &Value) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{}/mcp", run.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", PROTOCOL);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let status = response.status().as_u16();
    let challenge = header("www-authenticate");
    let session = header("mcp-session-id");
    let text = response.text().await.unwrap();
    let message = serde_json::from_str::<Value>(&text).ok().or_else(|| {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|m| m.get("jsonrpc").is_some())
    });
    Answer {
        status,
        challenge,
        session,
        message,
    }
}

/// The MCP protocol version the test speaks (sessions, `Mcp-Session-Id`).
const PROTOCOL: &str = "2025-06-18";

fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": { "name": "mcp-example-test", "version": "1.0" },
        },
    })
}

fn whoami() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "whoami", "arguments": {} },
    })
}

/// `initialize` and `notifications/initialized` with `token`; the session id.
async fn open_session(run: &Running, token: &str) -> String {
    let init = post(run, Some(token), None, &initialize()).await;
    assert_eq!(init.status, 200, "{init:?}");
    let message = init.message.as_ref().unwrap();
    assert_eq!(message["id"], 1, "{init:?}");
    assert!(
        message["result"]["capabilities"]["tools"].is_object(),
        "{init:?}"
    );
    let session = init.session.expect("no mcp-session-id");
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let ack = post(run, Some(token), Some(&session), &initialized).await;
    assert_eq!(ack.status, 202, "{ack:?}");
    session
}

#[tokio::test]
async fn the_whoami_tool_answers_with_the_client_id_of_the_token() {
    let run = start().await;
    let token = run
        .issuer
        .token(&run.resource, None, "test-client-42")
        .unwrap();
    let session = open_session(&run, &token).await;

    let call = post(&run, Some(&token), Some(&session), &whoami()).await;
    assert_eq!(call.status, 200, "{call:?}");
    let message = call.message.unwrap();
    assert_eq!(message["id"], 2);
    assert_eq!(message["result"]["isError"], false, "{message}");
    assert_eq!(
        message["result"]["content"],
        json!([{ "type": "text", "text": "test-client-42" }])
    );

    // The zone audience naming this server in `resource` is accepted too, and the tool reads the
    // client id of each request's own token, not the one that opened the session.
    let zone = run
        .issuer
        .token(server::ZONE, Some(&run.resource), "zone-client")
        .unwrap();
    let call = post(&run, Some(&zone), Some(&session), &whoami()).await;
    assert_eq!(call.status, 200, "{call:?}");
    assert_eq!(
        call.message.unwrap()["result"]["content"][0]["text"],
        "zone-client"
    );
}

#[tokio::test]
async fn tools_list_names_the_whoami_tool() {
    let run = start().await;
    let token = run
        .issuer
        .token(&run.resource, None, "demo-client")
        .unwrap();
    let session = open_session(&run, &token).await;
    let list = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" });
    let answer = post(&run, Some(&token), Some(&session), &list).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let tools = answer.message.unwrap()["result"]["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["whoami"]);
}

#[tokio::test]
async fn without_a_token_mcp_is_401_naming_the_metadata_which_is_served() {
    let run = start().await;
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", run.base);

    let answer = post(&run, None, None, &initialize()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.challenge.as_deref(),
        Some(format!("Bearer resource_metadata=\"{metadata}\"").as_str())
    );
    assert_eq!(answer.session, None);

    // No token needed for the document; it names this server and the zone.
    let response = reqwest::get(&metadata).await.unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        document,
        json!({
            "resource": run.resource,
            "authorization_servers": [server::ZONE],
            "scopes_supported": ["mcp:tools", "mcp:resources", "mcp:prompts"],
            "bearer_methods_supported": ["header"],
        })
    );
}

#[tokio::test]
async fn a_zone_token_for_another_resource_is_401_invalid_token() {
    let run = start().await;
    let other = run
        .issuer
        .token(
            server::ZONE,
            Some("https://other.example.com/mcp"),
            "demo-client",
        )
        .unwrap();
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", run.base);

    let answer = post(&run, Some(&other), None, &initialize()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.challenge.as_deref(),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"resource_mismatch: the token is not for this resource\", resource_metadata=\"{metadata}\""
            )
            .as_str()
        )
    );

    // Nor can it use a session a valid token opened.
    let token = run
        .issuer
        .token(&run.resource, None, "demo-client")
        .unwrap();
    let session = open_session(&run, &token).await;
    let answer = post(&run, Some(&other), Some(&session), &whoami()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(
        answer
            .challenge
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
}
