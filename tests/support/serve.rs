//! A `jwt-policy serve` process for tests: started on an ephemeral port of 127.0.0.1 (the port
//! is read from the `listening on http://ADDR` line on stderr), its stdout (the logs) and stderr
//! kept for assertions, signalled with `kill`, killed when dropped.
//!
//! Not part of `support/mod.rs`: only test binaries that require the `cli` feature (and so have
//! the binary built) include it, with `#[path = "support/serve.rs"]`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `jwt-policy serve`.
pub struct Serve {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// How long a process may take to start listening (the first test of a run may wait for the
/// machine, and eager remote keys are fetched first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Serve {
    /// Starts `jwt-policy serve ARGS`, panicking with its stderr if it exits instead of listening.
    pub fn start(args: &[String]) -> Serve {
        Self::start_with_env(args, &[])
    }

    /// Like [`Serve::start`], with these environment variables set.
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Serve {
        match Self::try_start(args, env) {
            Ok(serve) => serve,
            Err((code, stderr)) => {
                panic!("serve exited with {code:?} instead of listening:\n{stderr}")
            }
        }
    }

    /// Starts it on a blocking thread, for async tests whose runtime also serves keys.
    pub async fn spawn(args: Vec<String>) -> Serve {
        tokio::task::spawn_blocking(move || Serve::start(&args))
            .await
            .unwrap()
    }

    /// Starts `jwt-policy serve ARGS`: the process once it listens, or its exit code and stderr.
    pub fn try_start(
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Serve, (Option<i32>, String)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-policy"))
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (listening, addr) = mpsc::channel();
        collect(child.stdout.take().unwrap(), stdout.clone(), None);
        collect(
            child.stderr.take().unwrap(),
            stderr.clone(),
            Some(listening),
        );
        match addr.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Ok(Serve {
                child,
                addr,
                stdout,
                stderr,
            }),
            Err(_) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut code = None;
                while Instant::now() < deadline {
                    if let Some(status) = child.try_wait().unwrap() {
                        code = status.code();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if code.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                // The reader threads finish once the pipes close.
                std::thread::sleep(Duration::from_millis(100));
                let text = stderr.lock().unwrap().join("\n");
                Err((code, text))
            }
        }
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the signal `name` (`HUP`, `TERM`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lines written to stdout so far (the logs).
    pub fn logs(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The lines written to stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for a log line that `matches`.
    pub fn wait_for_log(&self, timeout: Duration, matches: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().iter().any(|l| matches(l)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `pipe` line by line into `lines` on a thread of its own; the first `listening on`
/// line's address goes to `listening`.
fn collect(
    pipe: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    listening: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut listening = listening;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on http://")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(addr.parse().unwrap());
            }
            lines.lock().unwrap().push(line);
        }
    });
}

/// A port of 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The value of the sample `series` (name and labels exactly as exposed) in a Prometheus text
/// exposition; `None` when absent.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}
