//! A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) that the test controls: what each path
//! answers, how slowly, and whether the server is up at all. Every request is counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a path answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long (on the tokio clock) before answering.
    pub delay: Duration,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    /// Adds `Cache-Control: max-age=SECS`.
    pub fn max_age(mut self, secs: u64) -> Self {
        self.headers
            .push(("Cache-Control".into(), format!("public, max-age={secs}")));
        self
    }

    /// An empty answer with this status.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Default)]
struct State {
    replies: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

/// The server. Dropping it stops it.
pub struct KeyServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl KeyServer {
    /// Starts a server on an ephemeral port of 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Self {
            addr,
            state: Arc::default(),
            task: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(answer(stream, state.clone()));
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// What `path` answers from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.state
            .lock()
            .unwrap()
            .replies
            .insert(path.to_owned(), reply);
    }

    /// How many requests `path` has had.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Stops listening: connections are refused until [`KeyServer::restart`].
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.stop();
        // The aborted task drops its listener when the runtime next polls it.
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("cannot listen on {} again", self.addr);
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let reply = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(path.clone()).or_default() += 1;
        state
            .replies
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Reply::status(404))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}
