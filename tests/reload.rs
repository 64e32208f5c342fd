//! `ReloadingEngine`: real files in a temporary directory, real file-system notifications. Every
//! wait is bounded (5 s); where the issue asks for it, a change must be in effect within 2 s of
//! the write that made it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jwt_policy::{
    Decision, Policy, PolicyEngine, ReloadError, ReloadOutcome, ReloadStatus, ReloadingEngine,
    UnixTime,
};
use serde_json::json;
use support::{NOW, TestKey, jwks, outcome};

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://api.example.com";
/// How long a test waits for anything before failing.
const PATIENCE: Duration = Duration::from_secs(5);
/// How soon a change must be in effect after the write that made it (the issue's promise).
const PROMPT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A policy trusting ES256 keys from `jwks_file`, followed by `extra` (a comment, a table).
fn policy(jwks_file: &str, extra: &str) -> String {
    format!(
        r#"version = 1

[resource]
url = "{AUD}"

[[issuers]]
iss = "{ISS}"
algorithms = ["ES256"]
jwks_file = "{jwks_file}"

[audience]
accept = [{{ value = "{AUD}" }}]

[client_id]
sources = [{{ claim = "client_id" }}]
{extra}"#
    )
}

/// A policy whose only issuer uses the HMAC secret in `secret.key` (kid `s1`).
fn hmac_policy() -> String {
    format!(
        r#"version = 1

[resource]
url = "{AUD}"

[[issuers]]
iss = "{ISS}"
algorithms = ["HS256"]
hmac_secrets = [{{ file = "secret.key", kid = "s1" }}]

[audience]
accept = [{{ value = "{AUD}" }}]

[client_id]
sources = [{{ claim = "client_id" }}]
"#
    )
}

/// A token `key` signs that every policy here allows at [`NOW`].
fn token(key: &TestKey) -> String {
    key.sign(&json!({
        "iss": ISS, "aud": AUD, "sub": "user-1", "client_id": "client-1",
        "exp": NOW + 3600, "iat": NOW - 60,
    }))
}

fn decide(engine: &PolicyEngine, token: &str) -> Decision {
    engine.evaluate_at(token, UnixTime::from_secs(NOW))
}

/// The revision a policy text has in `dir` (with the key files there as they are now).
fn revision_of(dir: &Path, text: &str) -> String {
    Policy::from_toml("policy.toml", text, dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .revision()
        .to_owned()
}

/// Writes `text` to `path` in place (truncate and write, as an editor without atomic saves does).
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Writes `text` beside `path` and renames it over `path` (an atomic save).
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp~");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// A directory with `policy.toml` (from `text`) and `keys.jwks.json` (holding `keys`).
fn setup(keys: &[&TestKey], text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.jwks.json"), jwks(keys)).unwrap();
    let path = dir.path().join("policy.toml");
    write(&path, text);
    (dir, path)
}

async fn start(path: &Path) -> ReloadingEngine {
    ReloadingEngine::start(path, PolicyEngine::builder)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (at most [`PATIENCE`]) until the reloader's status satisfies `done`, and returns it.
async fn wait_until(
    engine: &ReloadingEngine,
    what: &str,
    done: impl FnMut(&ReloadStatus) -> bool,
) -> ReloadStatus {
    let mut status = engine.subscribe();
    match tokio::time::timeout(PATIENCE, status.wait_for(done)).await {
        Ok(Ok(status)) => status.clone(),
        Ok(Err(_)) => panic!("the reloader stopped while waiting for {what}"),
        Err(_) => panic!(
            "no {what} within {PATIENCE:?}; status: {:?}",
            engine.status()
        ),
    }
}

/// Waits until revision `expected` is in effect, and asserts it took at most [`PROMPT`] since
/// `written`.
async fn wait_for_revision(engine: &ReloadingEngine, expected: &str, written: Instant) {
    wait_until(engine, &format!("revision {expected}"), |s| {
        s.revision == expected
    })
    .await;
    let took = written.elapsed();
    assert!(took <= PROMPT, "revision {expected} took {took:?}");
    assert_eq!(engine.current().policy().revision(), expected);
    assert_eq!(engine.shared().current().policy().revision(), expected);
}

// ---------------------------------------------------------------------------------------------
// Following the files
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn an_in_place_rewrite_takes_effect_within_two_seconds() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let first = revision_of(dir.path(), &policy("keys.jwks.json", ""));
    assert_eq!(engine.status().revision, first);
    assert_eq!(
        decide(&engine.current(), &token(&key)).policy_revision(),
        first
    );

    let text = policy("keys.jwks.json", "# edited in place\n");
    let written = Instant::now();
    write(&path, &text);
    let second = revision_of(dir.path(), &text);
    assert_ne!(second, first);
    wait_for_revision(&engine, &second, written).await;

    let decision = decide(&engine.current(), &token(&key));
    assert_eq!(outcome(&decision), "allow");
    assert_eq!(decision.policy_revision(), second);
    let json: serde_json::Value = serde_json::from_str(&decision.to_json()).unwrap();
    assert_eq!(json["policy_revision"], second.as_str());
    let status = engine.status();
    assert_eq!((status.reloads, status.failures), (1, 0));
    assert!(status.last_error.is_none());

    // The reloader's own reads of the files are not changes: nothing more happens.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = engine.status();
    assert_eq!(
        (status.reloads, status.unchanged, status.failures),
        (1, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_rename_takes_effect_within_two_seconds() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;

    let text = policy("keys.jwks.json", "# saved atomically\n");
    let written = Instant::now();
    write_atomically(&path, &text);
    wait_for_revision(&engine, &revision_of(dir.path(), &text), written).await;
    assert_eq!(outcome(&decide(&engine.current(), &token(&key))), "allow");
}

/// The layout Kubernetes gives a mounted ConfigMap: the files are symlinks through `..data`,
/// itself a symlink to a timestamped directory, and an update renames a new `..data` over it.
#[cfg(unix)]
#[tokio::test(flavor = "current_thread")]
async fn a_configmap_symlink_swap_takes_effect_within_two_seconds() {
    use std::os::unix::fs::symlink;

    let old_key = TestKey::es256("old");
    let new_key = TestKey::es256("new");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let version = |name: &str, key: &TestKey, extra: &str| {
        let data = root.join(name);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("policy.toml"), policy("keys.jwks.json", extra)).unwrap();
        std::fs::write(data.join("keys.jwks.json"), jwks(&[key])).unwrap();
    };
    version("..2026_01_01_a", &old_key, "");
    symlink("..2026_01_01_a", root.join("..data")).unwrap();
    symlink("..data/policy.toml", root.join("policy.toml")).unwrap();
    symlink("..data/keys.jwks.json", root.join("keys.jwks.json")).unwrap();

    let engine = start(&root.join("policy.toml")).await;
    assert_eq!(
        outcome(&decide(&engine.current(), &token(&old_key))),
        "allow"
    );
    let first = engine.status().revision;

    // What the kubelet does: write the new version, point a new symlink at it, rename that
    // symlink over `..data`, remove the old version.
    version("..2026_01_01_b", &new_key, "# version b\n");
    let written = Instant::now();
    symlink("..2026_01_01_b", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_01_01_a")).unwrap();

    let expected = revision_of(root, &policy("keys.jwks.json", "# version b\n"));
    assert_ne!(expected, first);
    wait_for_revision(&engine, &expected, written).await;
    let current = engine.current();
    assert_eq!(outcome(&decide(&current, &token(&new_key))), "allow");
    assert_eq!(
        outcome(&decide(&current, &token(&old_key))),
        "key_not_found"
    );
}

/// A deploy that keeps its old releases (`current -> releases/2`, the old one left in place):
/// only the directory holding `current` changes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swap_that_keeps_the_old_version_takes_effect_within_two_seconds() {
    use std::os::unix::fs::symlink;

    let key = TestKey::es256("k1");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let release = |n: u32| {
        let data = root.join(format!("releases/{n}"));
        std::fs::create_dir_all(&data).unwrap();
        let extra = format!("# release {n}\n");
        std::fs::write(data.join("policy.toml"), policy("keys.jwks.json", &extra)).unwrap();
        std::fs::write(data.join("keys.jwks.json"), jwks(&[&key])).unwrap();
        revision_of(&data, &policy("keys.jwks.json", &extra))
    };
    release(1);
    symlink("releases/1", root.join("current")).unwrap();
    let engine = start(&root.join("current/policy.toml")).await;

    let expected = release(2);
    let written = Instant::now();
    symlink("releases/2", root.join("current.new")).unwrap();
    std::fs::rename(root.join("current.new"), root.join("current")).unwrap();
    wait_for_revision(&engine, &expected, written).await;
}

/// A policy file removed (a failed reload: the engine in effect stays) and written again.
#[tokio::test(flavor = "current_thread")]
async fn a_policy_removed_and_written_again_is_followed() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let first = engine.status().revision;

    std::fs::remove_file(&path).unwrap();
    let status = wait_until(&engine, "a failed reload", |s| s.failures == 1).await;
    let Some(ReloadError::Policy(error)) = &status.last_error else {
        panic!("{:?}", status.last_error)
    };
    assert_eq!(error.errors().next().unwrap().kind.code(), "io");
    assert_eq!(engine.current().policy().revision(), first);

    let text = policy("keys.jwks.json", "# written again\n");
    let written = Instant::now();
    write(&path, &text);
    wait_for_revision(&engine, &revision_of(dir.path(), &text), written).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_changed_key_set_file_takes_effect_within_two_seconds() {
    let old_key = TestKey::es256("old");
    let new_key = TestKey::es256("new");
    let dir = tempfile::tempdir().unwrap();
    // The keys live in a directory of their own: it is watched because the policy names it.
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let keys = dir.path().join("keys/set.jwks.json");
    std::fs::write(&keys, jwks(&[&old_key])).unwrap();
    let path = dir.path().join("policy.toml");
    let text = policy("keys/set.jwks.json", "");
    write(&path, &text);
    let engine = start(&path).await;
    let first = engine.status().revision;
    assert_eq!(
        outcome(&decide(&engine.current(), &token(&old_key))),
        "allow"
    );
    assert_eq!(
        outcome(&decide(&engine.current(), &token(&new_key))),
        "key_not_found"
    );

    let written = Instant::now();
    write_atomically(&keys, &jwks(&[&new_key]));
    let second = revision_of(dir.path(), &text);
    assert_ne!(second, first, "the revision covers the key set file");
    wait_for_revision(&engine, &second, written).await;

    let current = engine.current();
    let allowed = decide(&current, &token(&new_key));
    assert_eq!(outcome(&allowed), "allow");
    assert_eq!(allowed.policy_revision(), second);
    assert_eq!(
        outcome(&decide(&current, &token(&old_key))),
        "key_not_found"
    );
}

/// The set of watched directories follows the policy: a key file in a directory only the new
/// policy names is watched from the moment that policy is in effect.
#[tokio::test(flavor = "current_thread")]
async fn a_key_file_only_the_reloaded_policy_names_is_watched() {
    let key = TestKey::es256("k1");
    let other = TestKey::es256("k2");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;

    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let moved = dir.path().join("elsewhere/keys.jwks.json");
    std::fs::write(&moved, jwks(&[&key])).unwrap();
    let text = policy("elsewhere/keys.jwks.json", "");
    let written = Instant::now();
    write(&path, &text);
    wait_for_revision(&engine, &revision_of(dir.path(), &text), written).await;

    let written = Instant::now();
    std::fs::write(&moved, jwks(&[&other])).unwrap();
    wait_for_revision(&engine, &revision_of(dir.path(), &text), written).await;
    assert_eq!(outcome(&decide(&engine.current(), &token(&other))), "allow");
}

/// A rotated HMAC secret file rebuilds the engine although the revision (which never covers a
/// secret) stays the same.
#[tokio::test(flavor = "current_thread")]
async fn a_rotated_hmac_secret_file_rebuilds_the_engine() {
    let old = TestKey::hmac("s1", "HS256", &[b'a'; 32]);
    let new = TestKey::hmac("s1", "HS256", &[b'b'; 32]);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.key");
    std::fs::write(&secret, [b'a'; 32]).unwrap();
    let path = dir.path().join("policy.toml");
    write(&path, &hmac_policy());
    let engine = start(&path).await;
    let revision = engine.status().revision;
    assert_eq!(outcome(&decide(&engine.current(), &token(&old))), "allow");

    let written = Instant::now();
    std::fs::write(&secret, [b'b'; 32]).unwrap();
    let status = wait_until(&engine, "a reload", |s| s.reloads == 1).await;
    assert!(written.elapsed() <= PROMPT, "took {:?}", written.elapsed());
    assert_eq!(status.revision, revision);
    let current = engine.current();
    assert_eq!(outcome(&decide(&current, &token(&new))), "allow");
    assert_eq!(
        outcome(&decide(&current, &token(&old))),
        "invalid_signature"
    );
}

// ---------------------------------------------------------------------------------------------
// Failures keep the engine in effect
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn an_invalid_policy_keeps_the_old_engine_and_reports_located_diagnostics() {
    let key = TestKey::es256("k1");
    let (_dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let good = engine.status().revision;

    write(
        &path,
        &policy("keys.jwks.json", "").replace(r#"["ES256"]"#, r#"["none"]"#),
    );
    let status = wait_until(&engine, "a failed reload", |s| s.failures == 1).await;
    assert_eq!(status.revision, good);
    assert_eq!(status.reloads, 0);
    let Some(ReloadError::Policy(error)) = &status.last_error else {
        panic!("{:?}", status.last_error)
    };
    let located: Vec<String> = error
        .errors()
        .map(|d| {
            let (line, col) = error.source().line_col(d.span.clone().unwrap().start);
            format!("{}:{line}:{col}", d.kind.code())
        })
        .collect();
    assert_eq!(located, ["forbidden-algorithm:8:15"]);
    assert!(
        status
            .last_error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("error[forbidden-algorithm]: "),
        "{}",
        status.last_error.as_ref().unwrap()
    );

    // Decisions go on under the old policy.
    let decision = decide(&engine.current(), &token(&key));
    assert_eq!(outcome(&decision), "allow");
    assert_eq!(decision.policy_revision(), good);

    // Fixing the file clears the error.
    let text = policy("keys.jwks.json", "# fixed\n");
    let written = Instant::now();
    write(&path, &text);
    wait_for_revision(&engine, &revision_of(_dir.path(), &text), written).await;
    let status = engine.status();
    assert_eq!((status.reloads, status.failures), (1, 1));
    assert!(status.last_error.is_none());
}

/// A policy that is valid but cannot be built (here: its HMAC secret file is too short) keeps
/// the old engine too.
#[tokio::test(flavor = "current_thread")]
async fn an_engine_that_fails_to_build_is_never_swapped_in() {
    let key = TestKey::hmac("s1", "HS256", &[b'a'; 32]);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.key");
    std::fs::write(&secret, [b'a'; 32]).unwrap();
    let path = dir.path().join("policy.toml");
    write(&path, &hmac_policy());
    let engine = start(&path).await;

    std::fs::write(&secret, b"short").unwrap();
    let status = wait_until(&engine, "a failed reload", |s| s.failures == 1).await;
    assert!(
        matches!(status.last_error, Some(ReloadError::Build(_))),
        "{:?}",
        status.last_error
    );
    assert_eq!(
        status.last_error.unwrap().to_string(),
        format!(
            "cannot build the engine: issuer `{ISS}`: HMAC secret from file `{}` is 5 bytes; the issuer's HMAC algorithms need at least 32",
            secret.display()
        )
    );
    assert_eq!(outcome(&decide(&engine.current(), &token(&key))), "allow");
}

#[tokio::test(flavor = "current_thread")]
async fn a_partial_write_then_the_complete_write_ends_on_the_complete_one() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let good = engine.status().revision;

    let text = policy("keys.jwks.json", "# complete\n");
    // The first half of the new text, left long enough to be read (and refused).
    write(&path, &text[..text.len() / 2]);
    let status = wait_until(&engine, "a failed reload", |s| s.failures >= 1).await;
    assert_eq!(status.revision, good);
    assert_eq!(outcome(&decide(&engine.current(), &token(&key))), "allow");

    let written = Instant::now();
    write(&path, &text);
    wait_for_revision(&engine, &revision_of(dir.path(), &text), written).await;
    assert!(engine.status().last_error.is_none());
}

// ---------------------------------------------------------------------------------------------
// Reloading on demand
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn reload_now_reads_the_files_at_once() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let first = engine.status().revision;

    assert_eq!(
        engine.reload_now().await.unwrap(),
        ReloadOutcome::Unchanged {
            revision: first.clone()
        }
    );

    let text = policy("keys.jwks.json", "# reloaded on demand\n");
    write(&path, &text);
    // Well before the watcher's debounce would: the outcome of this very call.
    let second = revision_of(dir.path(), &text);
    assert_eq!(
        engine.reload_now().await.unwrap(),
        ReloadOutcome::Reloaded {
            revision: second.clone()
        }
    );
    assert_eq!(engine.current().policy().revision(), second);

    write(&path, "[resource\n");
    let Err(ReloadError::Policy(error)) = engine.reload_now().await else {
        panic!("an invalid policy reloaded")
    };
    assert_eq!(error.errors().next().unwrap().kind.code(), "syntax");
    assert_eq!(engine.current().policy().revision(), second);
    let status = engine.status();
    assert_eq!(status.revision, second);
    assert!(status.failures >= 1);
    assert!(matches!(status.last_error, Some(ReloadError::Policy(_))));
}

// ---------------------------------------------------------------------------------------------
// Starting
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn start_refuses_what_it_cannot_load() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], "version = 1\n");
    let Err(ReloadError::Policy(error)) =
        ReloadingEngine::start(&path, PolicyEngine::builder).await
    else {
        panic!("an invalid policy started")
    };
    assert!(error.errors().any(|d| d.kind.code() == "missing-key"));

    let missing = dir.path().join("missing.toml");
    let Err(ReloadError::Policy(error)) =
        ReloadingEngine::start(&missing, PolicyEngine::builder).await
    else {
        panic!("a missing policy started")
    };
    assert_eq!(error.errors().next().unwrap().kind.code(), "io");
    let nowhere = dir.path().join("nowhere/policy.toml");
    let Err(ReloadError::Policy(error)) =
        ReloadingEngine::start(&nowhere, PolicyEngine::builder).await
    else {
        panic!("a policy in a missing directory started")
    };
    assert_eq!(
        error.errors().next().unwrap().message,
        format!("cannot read policy `{}`: file not found", nowhere.display())
    );

    // A valid policy the service's builder cannot build.
    write(
        &path,
        &policy(
            "keys.jwks.json",
            "[resource_client_id]\nsources = [{ context = \"credential.key_id\" }]\n",
        ),
    );
    let error = ReloadingEngine::start(&path, PolicyEngine::builder)
        .await
        .unwrap_err();
    assert!(matches!(error, ReloadError::Build(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot build the engine: no resource client id: none of context `credential.key_id` is set"
    );

    // The same policy with the context the service supplies.
    let engine = ReloadingEngine::start(&path, |policy| {
        PolicyEngine::builder(policy).context("credential.key_id", "key-1")
    })
    .await
    .unwrap();
    assert_eq!(engine.current().resource_client_id(), Some("key-1"));
}

// ---------------------------------------------------------------------------------------------
// Under load, and after the last handle is gone
// ---------------------------------------------------------------------------------------------

/// Four threads decide about valid tokens in a loop while the policy is rewritten 20 times in
/// bursts (once with an invalid text): no valid token is ever denied, every decision names a
/// revision that was written, and the last one ends in effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_no_decision_sees_a_half_built_or_invalid_engine() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let mut valid = BTreeSet::from([engine.status().revision]);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let shared = engine.shared();
            let stop = stop.clone();
            let token = token(&key);
            std::thread::spawn(move || {
                let mut seen = BTreeSet::new();
                let (mut allowed, mut denied) = (0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let decision = decide(&shared.current(), &token);
                    if decision.is_allowed() {
                        allowed += 1;
                    } else {
                        denied.push(decision.explain());
                    }
                    seen.insert(decision.policy_revision().to_owned());
                }
                (allowed, denied, seen)
            })
        })
        .collect();

    let mut last = Instant::now();
    let mut last_text = String::new();
    for i in 0..20 {
        if i == 10 {
            write(&path, "[[issuers]\niss = \n");
            wait_until(&engine, "a failed reload", |s| s.failures >= 1).await;
        } else {
            // Variants of the same meaning: the valid token stays valid under every one.
            let text = policy("keys.jwks.json", &format!("# variant {i}\n"));
            valid.insert(revision_of(dir.path(), &text));
            last = Instant::now();
            write(&path, &text);
            if i % 5 == 4 {
                // The end of a burst: let it take effect (the writes in a burst come faster
                // than the reloader's debounce, and only the last of them may be loaded).
                wait_for_revision(&engine, &revision_of(dir.path(), &text), last).await;
            }
            last_text = text;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    wait_for_revision(&engine, &revision_of(dir.path(), &last_text), last).await;
    // Let the workers decide under the last revision for a while too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for worker in workers {
        let (allowed, denied, seen) = worker.join().unwrap();
        assert!(
            denied.is_empty(),
            "{} denials, first:\n{}",
            denied.len(),
            denied[0]
        );
        assert!(seen.is_subset(&valid), "{seen:?} not all in {valid:?}");
        total += allowed;
    }
    assert!(total > 100, "only {total} decisions");
    let status = engine.status();
    assert!(status.reloads >= 3, "{status:?}");
    assert!(status.failures >= 1, "{status:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_reloads_after_the_last_handle_is_dropped() {
    let key = TestKey::es256("k1");
    let (dir, path) = setup(&[&key], &policy("keys.jwks.json", ""));
    let engine = start(&path).await;
    let shared = engine.shared();
    let mut status = engine.subscribe();

    // A clone keeps the reloader going.
    let clone = engine.clone();
    drop(engine);
    let text = policy("keys.jwks.json", "# while a clone lives\n");
    let written = Instant::now();
    write(&path, &text);
    let second = revision_of(dir.path(), &text);
    wait_for_revision(&clone, &second, written).await;

    // The last one stops it: its status channel closes, and a change is not followed any more.
    drop(clone);
    let closed =
        tokio::time::timeout(PATIENCE, async { while status.changed().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the reloader is still running");
    write(&path, &policy("keys.jwks.json", "# after the drop\n"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(shared.current().policy().revision(), second);
}
