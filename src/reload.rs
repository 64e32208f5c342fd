//! Hot reload: an engine that follows its policy file and the files the policy names.
//!
//! [`ReloadingEngine::start`] reads the policy, builds the first engine, and from then on
//! watches the directories of the policy file and of every file the policy in effect names (key
//! sets, HMAC secret files). Watching directories, not files, sees atomic saves (a temporary
//! file renamed over the policy) and Kubernetes ConfigMap updates (a new `..data` symlink renamed
//! over the old one). After a change it waits until the directories have been quiet for 250 ms
//! (at most 1 s after the first change, so a steady stream of writes cannot postpone it), then
//! reads the policy again, off the request path, and swaps the new engine in atomically when
//! something changed. A policy that does not read or build leaves the engine in effect, and is
//! logged and counted.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use jwt_policy::{PolicyEngine, ReloadingEngine};
//!
//! let engine = ReloadingEngine::start("policies/keycard-mcp.toml", |policy| {
//!     PolicyEngine::builder(policy).context("credential.key_id", "mcp-server-key-1")
//! })
//! .await?;
//! // Each request asks for the engine in effect now.
//! let decision = engine.current().evaluate("not.a.token");
//! assert_eq!(decision.policy_revision(), engine.status().revision);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::engine::{BuildError, Decision, EngineBuilder, PolicyEngine, SharedEngine};
use crate::json::UnixTime;
use crate::policy::SecretSource;
use crate::policy::{PathError, Policy, PolicyError, Requirement};

/// How long the watched directories must be quiet before the policy is read again.
const QUIET: Duration = Duration::from_millis(250);
/// The longest a read waits after the first change it follows, however busy the directories.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// What turns a policy into an engine: the service's context and key sources.
type Build = dyn Fn(Policy) -> EngineBuilder + Send + Sync;

/// Why the policy could not be (re)loaded. Clone-able: the last one is kept in [`ReloadStatus`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The policy is invalid or unreadable: every located diagnostic, rendered by `Display`.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy is valid, but no engine could be built from it (a key file or a secret cannot
    /// be read, the service's context lacks a value, eager remote keys cannot be fetched).
    #[error("cannot build the engine: {0}")]
    Build(#[from] BuildError),
    /// A directory to watch could not be watched (when starting).
    #[error("cannot watch `{path}`: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// [`ReloadingEngine::start`] was not called inside a tokio runtime.
    #[error("a reloading engine needs a tokio runtime")]
    NoRuntime,
    /// The reloader is gone (its runtime shut down).
    #[error("the reloader has stopped")]
    Stopped,
    /// Reading the policy or the service's builder panicked (a bug); the engine in effect stays.
    #[error("reloading panicked: {0}")]
    Panicked(String),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// A new engine, built from the policy as it is now, is in effect.
    Reloaded {
        /// The new engine's policy revision.
        revision: String,
    },
    /// The policy and the files it names are as they were: the engine in effect stays.
    Unchanged {
        /// The revision in effect.
        revision: String,
    },
}

/// Where the reloader stands; every attempt to reload publishes a new one
/// ([`ReloadingEngine::subscribe`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// The policy revision of the engine in effect.
    pub revision: String,
    /// How many times a new engine was swapped in (not counting the first).
    pub reloads: u64,
    /// How many attempts failed, keeping the engine in effect.
    pub failures: u64,
    /// How many attempts found nothing changed (a change elsewhere in a watched directory).
    pub unchanged: u64,
    /// Why the last attempt failed; `None` once one succeeds (or finds nothing changed).
    pub last_error: Option<ReloadError>,
}

/// An engine that follows its policy file and the files the policy names (see the
/// [module documentation](self)).
///
/// Cheap to clone; clones share one reloader, which stops (its watcher too) when the last clone
/// is dropped. The [`SharedEngine`] it updates ([`ReloadingEngine::shared`]) may live longer: it
/// then keeps the last engine.
#[derive(Clone)]
pub struct ReloadingEngine {
    shared: SharedEngine,
    status: watch::Receiver<ReloadStatus>,
    commands: mpsc::Sender<Command>,
    _task: Arc<Task>,
}

/// What a handle asks the reloader.
enum Command {
    /// Read the policy now; answer with the outcome.
    ReloadNow(oneshot::Sender<Result<ReloadOutcome, ReloadError>>),
}

/// Stops the reloader when the last handle is dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ReloadingEngine {
    /// Reads the policy at `path`, builds the first engine with `build(policy).build_async()`
    /// (so `build` supplies the service's context and key sources, and eager remote keys are
    /// fetched first), starts watching, and returns. Every later reload builds the same way.
    ///
    /// Must be called inside a tokio runtime (multi-thread or current-thread) with timers
    /// enabled (as `#[tokio::main]` and `Runtime::new` do); the reloader is a task of that
    /// runtime, and reads files on its blocking threads.
    ///
    /// # Errors
    ///
    /// The policy is invalid or unreadable ([`ReloadError::Policy`]), cannot be built
    /// ([`ReloadError::Build`]), or its directories cannot be watched ([`ReloadError::Watch`]).
    pub async fn start<F>(path: impl AsRef<Path>, build: F) -> Result<Self, ReloadError>
    where
        F: Fn(Policy) -> EngineBuilder + Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ReloadError::NoRuntime)?;
        let path = path.as_ref().to_path_buf();
        // The notify callback runs on notify's thread: it only says "something changed".
        // One slot: a change already signalled and not yet seen covers the next ones.
        let (changed, events) = mpsc::channel(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if is_change(&event) {
                    let _ = changed.try_send(());
                }
            })
            .map_err(|e| watch_error(&path, &e))?;
        // The policy's own directory first, so a change made while it is read is seen.
        let watched = directories(&path, &[]);
        let mut failed = None;
        for dir in &watched {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                failed.get_or_insert(watch_error(dir, &e));
            }
        }
        // A missing policy is better told as such than as a directory that cannot be watched.
        let (policy, fingerprint) = read(&path).await?;
        if let Some(e) = failed {
            return Err(e);
        }
        let files = policy.files().to_vec();
        let engine = build_engine(&build, *policy).await?;
        let shared = SharedEngine::new(engine.clone());
        let mut reloader = Reloader {
            path,
            build: Box::new(build),
            shared: shared.clone(),
            fingerprint,
            files,
            watcher,
            watched,
            recheck: false,
        };
        reloader.arm(true)?;
        let (status_tx, status) = watch::channel(ReloadStatus {
            revision: engine.policy().revision().to_owned(),
            reloads: 0,
            failures: 0,
            unchanged: 0,
            last_error: None,
        });
        let (commands, command_rx) = mpsc::channel(8);
        let task = runtime.spawn(reloader.run(command_rx, events, status_tx));
        Ok(Self {
            shared,
            status,
            commands,
            _task: Arc::new(Task(task)),
        })
    }

    /// The engine in effect now (for one request; ask again for the next).
    pub fn current(&self) -> PolicyEngine {
        self.shared.current()
    }

    /// The slot this reloader updates, for what takes a [`SharedEngine`]. It does not keep the
    /// reloader running.
    pub fn shared(&self) -> SharedEngine {
        self.shared.clone()
    }

    /// Where the reloader stands now: revision in effect, counters, last error.
    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees each new [`ReloadStatus`] (after every attempt to reload), to react
    /// to a reload or wait for one. It reports an error once the reloader has stopped.
    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        let mut status = self.status.clone();
        status.mark_unchanged();
        status
    }

    /// Reads the policy and the files it names now (e.g. on `SIGHUP`), without waiting for a
    /// change to be noticed, and swaps a new engine in if something changed.
    ///
    /// # Errors
    ///
    /// Why the policy could not be reloaded (the engine in effect stays); this also counts as a
    /// failure in [`ReloadStatus`].
    pub async fn reload_now(&self) -> Result<ReloadOutcome, ReloadError> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::ReloadNow(reply))
            .await
            .map_err(|_| ReloadError::Stopped)?;
        outcome.await.map_err(|_| ReloadError::Stopped)?
    }
}

/// A candidate policy decided beside the one in effect, never enforced: the safe way to roll out
/// a tighter (or looser) policy is to see, on live traffic, the requests on which the two
/// disagree before the candidate takes over.
///
/// The candidate is a [`ReloadingEngine`] of its own (its file is watched too); [`Shadow::compare`]
/// decides a request again with it, the candidate's own `[[routes]]` applying, and says whether the
/// two agree: the same verdict for the same reason.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use jwt_policy::{PolicyEngine, Requirement, UnixTime};
/// use jwt_policy::reload::{ReloadingEngine, Shadow};
///
/// let build = |policy| PolicyEngine::builder(policy).context("credential.key_id", "mcp-server-key-1");
/// let active = ReloadingEngine::start("policies/keycard-mcp.toml", build).await?;
/// let shadow = Shadow::start("policies/keycard-mcp.toml", build).await?;
///
/// let token = std::fs::read_to_string("policies/demo/zone-audience.jwt")?;
/// let now = UnixTime::from_secs(1_767_225_600);
/// let decision = active.current().evaluate_at_with(token.trim_end(), now, &Requirement::new());
/// let comparison = shadow
///     .compare(&decision, token.trim_end(), Some(("GET", "/mcp")), now)
///     .await?;
/// assert!(comparison.agrees);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Shadow {
    candidate: ReloadingEngine,
}

/// How the candidate policy decided a request, next to the decision in effect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Comparison {
    /// The candidate's decision (never enforced).
    pub candidate: Decision,
    /// Whether it has the verdict and the reason of the decision in effect.
    pub agrees: bool,
}

impl Shadow {
    /// Starts following the candidate policy at `path`, built like [`ReloadingEngine::start`]
    /// builds (use the same `build` as the engine in effect, so both see the same keys and
    /// context).
    ///
    /// # Errors
    ///
    /// As [`ReloadingEngine::start`]: the candidate is invalid, cannot be built, or watched.
    pub async fn start<F>(path: impl AsRef<Path>, build: F) -> Result<Self, ReloadError>
    where
        F: Fn(Policy) -> EngineBuilder + Send + Sync + 'static,
    {
        Ok(Self {
            candidate: ReloadingEngine::start(path, build).await?,
        })
    }

    /// The candidate's reloading engine (its revision, reload status).
    pub fn candidate(&self) -> &ReloadingEngine {
        &self.candidate
    }

    /// Decides `token` with the candidate, at `now`, for the request `(method, path)` (`None`:
    /// no route applies, as for the decision in effect), and compares with `active`, the
    /// decision the engine in effect made for the same request.
    ///
    /// # Errors
    ///
    /// The request's path cannot be matched against the candidate's routes ([`PathError`]:
    /// the same path refuses under any policy, so the request was refused before a decision).
    pub async fn compare(
        &self,
        active: &Decision,
        token: &str,
        request: Option<(&str, &str)>,
        now: UnixTime,
    ) -> Result<Comparison, PathError> {
        let engine = self.candidate.current();
        let requirement = match request {
            Some((method, path)) => engine.policy().requirement_for(method, path)?,
            None => Requirement::new(),
        };
        let candidate = engine
            .evaluate_async_at_with(token, now, &requirement)
            .await;
        let agrees =
            candidate.verdict() == active.verdict() && candidate.reason() == active.reason();
        Ok(Comparison { candidate, agrees })
    }
}

impl fmt::Debug for Shadow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shadow")
            .field("candidate", &self.candidate)
            .finish()
    }
}

impl fmt::Debug for ReloadingEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingEngine")
            .field("shared", &self.shared)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

/// Whether a file-system event may be a change. Opening and reading files (the reloader's own
/// reads among them) are not; closing a file that was written is.
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        // Lost events (an overflowing queue, say): read again to be sure.
        Err(_) => true,
    }
}

fn watch_error(path: &Path, error: &notify::Error) -> ReloadError {
    ReloadError::Watch {
        path: path.to_path_buf(),
        message: match &error.kind {
            notify::ErrorKind::Io(e) => crate::text::io_message(e),
            notify::ErrorKind::PathNotFound => "directory not found".into(),
            notify::ErrorKind::MaxFilesWatch => {
                "too many watches (raise `fs.inotify.max_user_watches`)".into()
            }
            notify::ErrorKind::Generic(message) => lowercase_first(message),
            _ => "the file-system watcher failed".into(),
        },
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// What an engine was built from, to tell whether a read found anything new: the revision
/// (policy text and key set files) and, since the revision leaves them out, a digest of each
/// HMAC secret file (kept in memory only, never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    revision: String,
    secrets: Vec<(PathBuf, Option<[u8; 32]>)>,
}

/// The reloader's task: owns the watcher, so dropping the task stops notify's thread too.
struct Reloader {
    path: PathBuf,
    build: Box<Build>,
    shared: SharedEngine,
    /// What the engine in effect was built from.
    fingerprint: Fingerprint,
    /// The files the policy in effect names.
    files: Vec<PathBuf>,
    watcher: RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    /// A directory was added to the watch after the files in it were read: read again.
    recheck: bool,
}

impl Reloader {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<()>,
        status: watch::Sender<ReloadStatus>,
    ) {
        // (first change, latest change) not yet read.
        let mut pending: Option<(Instant, Instant)> = None;
        loop {
            if std::mem::take(&mut self.recheck) {
                let now = Instant::now();
                pending.get_or_insert((now, now));
            }
            let due = pending.map(|(first, last)| (last + QUIET).min(first + MAX_WAIT));
            tokio::select! {
                command = commands.recv() => {
                    let Some(Command::ReloadNow(reply)) = command else { break };
                    // This read sees every change signalled so far.
                    pending = None;
                    let outcome = self.attempt(&status).await;
                    let _ = reply.send(outcome);
                }
                event = events.recv() => {
                    if event.is_none() {
                        break;
                    }
                    let now = Instant::now();
                    pending = Some(pending.map_or((now, now), |(first, _)| (first, now)));
                }
                () = sleep_until(due) => {
                    pending = None;
                    let _ = self.attempt(&status).await;
                }
            }
        }
    }

    /// Reads the policy; builds and swaps in a new engine if anything changed; re-arms the
    /// watcher; logs and publishes the outcome.
    async fn attempt(
        &mut self,
        status: &watch::Sender<ReloadStatus>,
    ) -> Result<ReloadOutcome, ReloadError> {
        let outcome = self.reload().await;
        // Also after a failure: a directory removed and made again is watched anew.
        if let Err(e) = self.arm(false) {
            tracing::warn!(policy = %self.path.display(), error = %e, "cannot watch a directory");
        }
        let policy = self.path.display();
        match &outcome {
            Ok(ReloadOutcome::Reloaded { revision }) => {
                tracing::info!(policy = %policy, revision = %revision, "policy reloaded");
            }
            Ok(ReloadOutcome::Unchanged { .. }) => {
                tracing::debug!(policy = %policy, "policy unchanged");
            }
            // One event, with every located diagnostic rendered as `check` prints them.
            Err(e @ ReloadError::Policy(_)) => tracing::error!(
                policy = %policy,
                diagnostics = %e,
                "policy reload failed: keeping revision `{}`",
                self.fingerprint.revision
            ),
            Err(e) => tracing::error!(
                policy = %policy,
                error = %e,
                "policy reload failed: keeping revision `{}`",
                self.fingerprint.revision
            ),
        }
        status.send_modify(|s| match &outcome {
            Ok(ReloadOutcome::Reloaded { revision }) => {
                s.revision.clone_from(revision);
                s.reloads += 1;
                s.last_error = None;
            }
            Ok(ReloadOutcome::Unchanged { .. }) => {
                s.unchanged += 1;
                s.last_error = None;
            }
            Err(e) => {
                s.failures += 1;
                s.last_error = Some(e.clone());
            }
        });
        outcome
    }

    /// Reads the policy; if anything changed, builds a new engine and swaps it in.
    async fn reload(&mut self) -> Result<ReloadOutcome, ReloadError> {
        let (policy, fingerprint) = read(&self.path).await?;
        if fingerprint == self.fingerprint {
            return Ok(ReloadOutcome::Unchanged {
                revision: fingerprint.revision,
            });
        }
        let files = policy.files().to_vec();
        let engine = build_engine(&self.build, *policy).await?;
        let revision = fingerprint.revision.clone();
        let lints = engine.policy().warnings();
        if !lints.is_empty() {
            let source = engine.policy().source();
            let rendered: Vec<String> = lints.iter().map(|d| source.render(d)).collect();
            tracing::warn!(
                policy = %self.path.display(),
                revision = %revision,
                warnings = %rendered.join("\n"),
                "the reloaded policy draws {} warning{}",
                lints.len(),
                if lints.len() == 1 { "" } else { "s" }
            );
        }
        self.shared.replace(engine);
        self.fingerprint = fingerprint;
        self.files = files;
        Ok(ReloadOutcome::Reloaded { revision })
    }

    /// Watches the directories of the policy and of the files the policy in effect names, and
    /// stops watching the others. Watching a directory again is harmless, and follows one that
    /// was removed and made again. `strict`: fail on the first directory that cannot be watched
    /// (when starting); otherwise keep the others and report the last failure.
    fn arm(&mut self, strict: bool) -> Result<(), ReloadError> {
        let wanted = directories(&self.path, &self.files);
        let mut watched = BTreeSet::new();
        let mut failed = None;
        for dir in &wanted {
            match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    if !self.watched.contains(dir) {
                        // Its files were read before it was watched.
                        self.recheck = true;
                    }
                    watched.insert(dir.clone());
                }
                Err(e) if strict => return Err(watch_error(dir, &e)),
                Err(e) => failed = Some(watch_error(dir, &e)),
            }
        }
        for dir in self.watched.difference(&watched) {
            // It may be gone already (a replaced ConfigMap version): nothing left to stop.
            let _ = self.watcher.unwatch(dir);
        }
        self.watched = watched;
        failed.map_or(Ok(()), Err)
    }
}

/// Reads and validates the policy on a blocking thread (file reads, regex compilation), with
/// what it was read from.
async fn read(path: &Path) -> Result<(Box<Policy>, Fingerprint), ReloadError> {
    let path = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let policy = Policy::from_file(&path)?;
        let fingerprint = fingerprint(&policy);
        Ok::<_, PolicyError>((Box::new(policy), fingerprint))
    })
    .await
    .map_err(|e| {
        if e.is_panic() {
            ReloadError::Panicked("reading the policy".into())
        } else {
            ReloadError::Stopped
        }
    })?;
    Ok(read?)
}

/// Builds an engine the way the service does; only a complete engine comes out.
async fn build_engine(build: &Build, policy: Policy) -> Result<PolicyEngine, ReloadError> {
    let builder = catch_unwind(AssertUnwindSafe(|| build(policy)))
        .map_err(|_| ReloadError::Panicked("the engine builder".into()))?;
    Ok(builder.build_async().await?)
}

/// The digest of each HMAC secret file the policy names, read before the engine is built so a
/// secret written meanwhile is noticed by the next read, not missed.
fn fingerprint(policy: &Policy) -> Fingerprint {
    let secrets = policy
        .issuers
        .iter()
        .flat_map(|issuer| &issuer.hmac_secrets)
        .filter_map(|secret| match &secret.source {
            SecretSource::File(path) => Some(path.clone()),
            SecretSource::Env(_) => None,
            #[cfg(feature = "testing")]
            SecretSource::Bytes(_) => None,
        })
        .map(|path| {
            let digest = std::fs::read(&path).ok().map(|bytes| {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
                let mut out = [0; 32];
                out.copy_from_slice(digest.as_ref());
                out
            });
            (path, digest)
        })
        .collect();
    Fingerprint {
        revision: policy.revision().to_owned(),
        secrets,
    }
}

/// The directories to watch for a change to `policy` or `files`: for each, the directory that
/// holds it once every symlink is resolved, and each directory holding a symlink met on the way
/// (a ConfigMap's `..data`, a deploy's `current -> releases/2`), where a swap shows.
fn directories(policy: &Path, files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for file in std::iter::once(policy).chain(files.iter().map(PathBuf::as_path)) {
        resolve(file, &mut dirs);
    }
    dirs
}

/// Resolves `file` one component at a time (`std::fs::canonicalize` tells the end, not the
/// symlinks on the way), adding to `dirs` the directory of each symlink met and the directory
/// of what it resolves to. A missing file resolves to itself: its directory is watched for it
/// to appear.
fn resolve(file: &Path, dirs: &mut BTreeSet<PathBuf>) {
    use std::path::Component;

    /// As many symlinks as Linux follows in one path before giving up (`ELOOP`).
    const MAX_HOPS: usize = 40;
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    // The components still to resolve, the next one last.
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    let mut resolved = PathBuf::new();
    let push = |rest: &mut Vec<std::ffi::OsString>, resolved: &mut PathBuf, path: &Path| {
        let mut names = Vec::new();
        let mut prefixed = false;
        for component in path.components() {
            match component {
                // An absolute target starts over from the root (of its drive, on Windows).
                Component::Prefix(prefix) => {
                    *resolved = PathBuf::from(prefix.as_os_str());
                    prefixed = true;
                }
                Component::RootDir => {
                    if !prefixed {
                        *resolved = PathBuf::new();
                    }
                    resolved.push(component.as_os_str());
                }
                Component::CurDir => {}
                Component::ParentDir | Component::Normal(_) => {
                    names.push(component.as_os_str().to_os_string());
                }
            }
        }
        rest.extend(names.into_iter().rev());
    };
    push(&mut rest, &mut resolved, &file);
    let mut hops = 0;
    while let Some(name) = rest.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&name);
        match std::fs::read_link(&next) {
            Ok(target) if hops < MAX_HOPS => {
                hops += 1;
                dirs.insert(resolved.clone());
                push(&mut rest, &mut resolved, &target);
            }
            _ => resolved = next,
        }
    }
    if let Some(dir) = resolved.parent() {
        dirs.insert(dir.to_path_buf());
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_symlinked_file_is_watched_where_each_symlink_lives_and_where_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("c")).unwrap();
        std::fs::write(root.join("a/b/policy.toml"), "").unwrap();
        // c/link -> ../a (relative), c/policy.toml -> <root>/c/link/b/policy.toml (absolute).
        symlink("../a", root.join("c/link")).unwrap();
        symlink(
            root.join("c/link/b/policy.toml"),
            root.join("c/policy.toml"),
        )
        .unwrap();
        assert_eq!(
            directories(
                &root.join("c/policy.toml"),
                &[root.join("missing/keys.json")]
            ),
            BTreeSet::from([root.join("a/b"), root.join("c"), root.join("missing")])
        );
    }

    #[test]
    fn a_symlink_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        symlink("two", root.join("one")).unwrap();
        symlink("one", root.join("two")).unwrap();
        assert_eq!(
            directories(&root.join("one/policy.toml"), &[]),
            BTreeSet::from([root.clone(), root.join("one")])
        );
    }
}
