//! Keys fetched over HTTP: a JWKS URL, or the `jwks_uri` of the issuer's metadata (RFC 8414,
//! then OpenID Connect discovery), cached and refreshed with tokio.
//!
//! * The cache lifetime is the response's `Cache-Control: max-age`, clamped to the policy's
//!   bounds; a background task refreshes the keys before they expire.
//! * A token naming an unknown `kid` causes at most one refetch per cooldown, shared by every
//!   verification waiting for it (single flight); a `kid` still unknown after a refetch is
//!   remembered for a while (negative cache), so random `kid`s cannot flood the key server.
//! * Every fetch has a timeout and a bounded response size, and follows no redirect (a redirect
//!   could leave the origin the policy trusts).
//! * When refreshing fails, the last good keys are served for at most `max_stale` past their
//!   lifetime; after that the source fails closed (`keys_unavailable`).
//! * The background task holds only a weak reference and is aborted when the source is dropped:
//!   dropping the engine stops its work.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use super::{
    KeyError, KeySet, KeySource, KeyStats, KeysFuture, RemoteSettings, RemoteSource, Startup,
    is_loopback,
};
use crate::algorithm::Algorithm;
use crate::json::{self, Json};

#[derive(Debug, Default)]
struct Counters {
    fetches: AtomicU64,
    failures: AtomicU64,
    unknown_kid_refetches: AtomicU64,
    cooldown_skips: AtomicU64,
    stale_serves: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The cached keys and their timing.
#[derive(Debug, Default)]
struct Snapshot {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    expires_at: Option<Instant>,
    last_error: Option<String>,
}

/// What token-caused fetching has done lately.
#[derive(Debug, Default)]
struct Control {
    in_flight: bool,
    last_on_demand: Option<Instant>,
    unknown_kids: HashMap<String, Instant>,
    /// Whether the stale and expired states were already reported (one event per episode).
    reported_stale: bool,
    reported_expired: bool,
}

/// Bound on remembered unknown `kid`s, so random ones cannot grow memory.
const MAX_NEGATIVE_ENTRIES: usize = 1024;
/// The background refresh never comes sooner than this after a fetch, whatever the lifetime.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Background retries after a failed refresh start here and double up to the cap.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

struct Shared {
    source: RemoteSource,
    settings: RemoteSettings,
    /// The algorithms of the issuer these keys are for, when known: keys that would verify
    /// several of them are skipped.
    algorithms: Option<Vec<Algorithm>>,
    client: reqwest::Client,
    state: ArcSwap<Snapshot>,
    jwks_uri: Mutex<Option<Url>>,
    control: Mutex<Control>,
    /// Bumped after every fetch; waiters on an in-flight fetch watch it.
    done: watch::Sender<u64>,
    counters: Counters,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

/// Keys fetched from a URL, cached and refreshed. A [`KeySource`].
///
/// Needs a tokio runtime: fetches run on it, and the background refresh is spawned on it.
#[derive(Clone)]
pub struct RemoteKeys {
    shared: Arc<Shared>,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("source", &self.shared.source)
            .finish_non_exhaustive()
    }
}

/// Which kind of fetch is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Building the engine (eager start-up) or the background refresh: never rate limited.
    Scheduled,
    /// A token needed keys that were missing or expired.
    Unavailable,
    /// A token named a `kid` the keys lack.
    UnknownKid,
}

impl RemoteKeys {
    /// A source for `source`, fetched and cached as `settings` say. Nothing is fetched yet.
    ///
    /// The keys are not tied to an issuer's algorithms: evaluation still refuses a key that would
    /// verify several algorithms the token's issuer allows, but the key is not skipped when read.
    /// Prefer [`RemoteKeys::for_issuer`] for one issuer's keys.
    pub fn new(source: RemoteSource, settings: RemoteSettings) -> Result<Self, KeyError> {
        Self::build(source, settings, None)
    }

    /// Like [`RemoteKeys::new`], for an issuer that allows `algorithms`: each fetched key that
    /// would verify tokens of several of them (an RSA key without `alg` while several RSA
    /// algorithms are allowed, RFC 8725 §3.1) is skipped and logged like other unusable keys.
    pub fn for_issuer(
        source: RemoteSource,
        settings: RemoteSettings,
        algorithms: &[Algorithm],
    ) -> Result<Self, KeyError> {
        Self::build(source, settings, Some(algorithms.to_vec()))
    }

    fn build(
        source: RemoteSource,
        settings: RemoteSettings,
        algorithms: Option<Vec<Algorithm>>,
    ) -> Result<Self, KeyError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("jwt-policy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KeyError::Unavailable(format!("cannot create an HTTP client: {e}")))?;
        let jwks_uri = match &source {
            RemoteSource::JwksUrl(url) => Some(url.clone()),
            RemoteSource::Discovery { .. } => None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                source,
                settings,
                algorithms,
                client,
                state: ArcSwap::from_pointee(Snapshot::default()),
                jwks_uri: Mutex::new(jwks_uri),
                control: Mutex::new(Control::default()),
                done: watch::Sender::new(0),
                counters: Counters::default(),
                task: Mutex::new(None),
            }),
        })
    }

    /// Fetches the keys now (eager start-up), and starts the background refresh.
    pub async fn fetch_now(&self) -> Result<Arc<KeySet>, KeyError> {
        self.shared.clone().fetch(Trigger::Scheduled, None).await
    }

    /// The counters.
    pub fn stats(&self) -> KeyStats {
        let c = &self.shared.counters;
        KeyStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            unknown_kid_refetches: c.unknown_kid_refetches.load(Ordering::Relaxed),
            cooldown_skips: c.cooldown_skips.load(Ordering::Relaxed),
            stale_serves: c.stale_serves.load(Ordering::Relaxed),
        }
    }
}

impl KeySource for RemoteKeys {
    fn keys(&self) -> Result<Arc<KeySet>, KeyError> {
        let keys = self.shared.current(Instant::now());
        if keys.is_err() {
            // Nothing fetched yet (lazy start-up) or nothing fresh: the background task fetches.
            self.shared.ensure_background();
        }
        keys
    }

    fn refresh<'a>(&'a self, kid: Option<&'a str>) -> KeysFuture<'a> {
        let trigger = if kid.is_some() {
            Trigger::UnknownKid
        } else {
            Trigger::Unavailable
        };
        Box::pin(self.shared.clone().fetch(trigger, kid))
    }

    fn startup(&self) -> Option<KeysFuture<'_>> {
        (self.shared.settings.startup == Startup::Eager)
            .then(|| -> KeysFuture<'_> { Box::pin(self.fetch_now()) })
    }

    fn stats(&self) -> Option<KeyStats> {
        Some(RemoteKeys::stats(self))
    }
}

impl Shared {
    /// The keys as they are at `now`: fresh, stale within `max_stale`, or unavailable.
    fn current(&self, now: Instant) -> Result<Arc<KeySet>, KeyError> {
        let snapshot = self.state.load();
        let (Some(keys), Some(expires_at)) = (&snapshot.keys, snapshot.expires_at) else {
            let why = snapshot
                .last_error
                .as_deref()
                .map_or(String::new(), |e| format!(": {e}"));
            return Err(KeyError::Unavailable(format!(
                "{} not fetched yet{why}",
                self.source
            )));
        };
        if now <= expires_at {
            return Ok(keys.clone());
        }
        let stale_until = expires_at + self.settings.max_stale;
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if now <= stale_until {
            bump(&self.counters.stale_serves);
            if !control.reported_stale {
                control.reported_stale = true;
                tracing::warn!(source = %self.source, error = snapshot.last_error.as_deref().unwrap_or(""),
                    "serving stale keys: refreshing failed; they are refused after max_stale");
            }
            return Ok(keys.clone());
        }
        if !control.reported_expired {
            control.reported_expired = true;
            tracing::error!(source = %self.source, "keys expired beyond max_stale: failing closed");
        }
        let why = snapshot
            .last_error
            .as_deref()
            .unwrap_or("no refresh succeeded");
        Err(KeyError::Unavailable(format!(
            "keys from {} are older than their lifetime plus max_stale ({why})",
            self.source
        )))
    }

    /// Fetches the keys, unless token-caused fetching is cooling down; waits for a fetch already
    /// in flight instead of starting another.
    async fn fetch(
        self: Arc<Self>,
        trigger: Trigger,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeyError> {
        enum Plan {
            Wait(watch::Receiver<u64>),
            Skip,
            Fetch,
        }
        let now = Instant::now();
        let plan = {
            let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
            let negative = kid
                .and_then(|k| control.unknown_kids.get(k))
                .is_some_and(|at| now < *at + self.settings.negative_cache);
            let cooling = control
                .last_on_demand
                .is_some_and(|at| now < at + self.settings.cooldown);
            if control.in_flight {
                Plan::Wait(self.done.subscribe())
            } else if trigger != Trigger::Scheduled && (negative || cooling) {
                Plan::Skip
            } else {
                control.in_flight = true;
                if trigger != Trigger::Scheduled {
                    control.last_on_demand = Some(now);
                }
                Plan::Fetch
            }
        };
        match plan {
            Plan::Wait(mut done) => {
                let _ = done.changed().await;
                self.current(Instant::now())
            }
            Plan::Skip => {
                bump(&self.counters.cooldown_skips);
                tracing::debug!(source = %self.source, kid, "not refetching: cooldown");
                self.current(now)
            }
            Plan::Fetch => {
                let guard = InFlight(&self);
                if trigger == Trigger::UnknownKid {
                    bump(&self.counters.unknown_kid_refetches);
                    tracing::info!(source = %self.source, kid, "unknown kid: refetching keys");
                }
                let result = self.fetch_and_store().await;
                if let (Ok(keys), Some(kid)) = (&result, kid)
                    && !keys.keys().iter().any(|k| k.kid() == Some(kid))
                {
                    self.remember_unknown(kid, Instant::now());
                }
                drop(guard);
                self.ensure_background();
                match result {
                    Ok(keys) => Ok(keys),
                    // Keep serving what is still good; without it, say why (the snapshot now
                    // holds this failure as its last error).
                    Err(_) => self.current(Instant::now()),
                }
            }
        }
    }

    fn remember_unknown(&self, kid: &str, now: Instant) {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.settings.negative_cache;
        control.unknown_kids.retain(|_, at| now < *at + ttl);
        if control.unknown_kids.len() >= MAX_NEGATIVE_ENTRIES {
            control.unknown_kids.clear();
        }
        control.unknown_kids.insert(kid.to_owned(), now);
    }

    /// One fetch, recorded in the snapshot and the counters.
    async fn fetch_and_store(&self) -> Result<Arc<KeySet>, KeyError> {
        bump(&self.counters.fetches);
        let started = Instant::now();
        match self.fetch_keys().await {
            Ok((set, lifetime)) => {
                let keys = Arc::new(set);
                for skipped in keys.skipped() {
                    tracing::warn!(source = %self.source, "JWKS {skipped}");
                }
                tracing::info!(source = %self.source, keys = keys.keys().len(), lifetime_secs = lifetime.as_secs(), "fetched keys");
                self.state.store(Arc::new(Snapshot {
                    keys: Some(keys.clone()),
                    fetched_at: Some(started),
                    expires_at: Some(started + lifetime),
                    last_error: None,
                }));
                let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
                control.reported_stale = false;
                control.reported_expired = false;
                Ok(keys)
            }
            Err(e) => {
                bump(&self.counters.failures);
                tracing::warn!(source = %self.source, error = %e, "fetching keys failed");
                let old = self.state.load();
                self.state.store(Arc::new(Snapshot {
                    keys: old.keys.clone(),
                    fetched_at: old.fetched_at,
                    expires_at: old.expires_at,
                    last_error: Some(e.cause()),
                }));
                Err(e)
            }
        }
    }

    /// Resolves the JWKS URL (discovering it once) and fetches the set and its lifetime.
    async fn fetch_keys(&self) -> Result<(KeySet, Duration), KeyError> {
        let known = self
            .jwks_uri
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let url = match known {
            Some(url) => url,
            None => {
                let url = self.discover().await?;
                *self.jwks_uri.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.clone());
                url
            }
        };
        let (body, max_age) = self.get(&url).await?;
        // A remote set is the issuer's to change: keys we cannot read are skipped (and logged),
        // the others still work.
        let set = KeySet::from_jwks_lenient(&body)?;
        let set = match &self.algorithms {
            Some(algorithms) => set.for_algorithms(algorithms)?,
            None => set,
        };
        let lifetime = max_age.unwrap_or(self.settings.cache_default).clamp(
            self.settings.cache_min,
            self.settings.cache_max.max(self.settings.cache_min),
        );
        Ok((set, lifetime))
    }

    /// GET `url`: status 200, at most `max_response_bytes`, within the timeout. Returns the body
    /// and the `Cache-Control: max-age`, if any (`no-store`/`no-cache` count as zero).
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Option<Duration>), KeyError> {
        let fail = |what: String| KeyError::Unavailable(format!("`{url}`: {what}"));
        let request = async {
            let mut response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| fail(describe(&e)))?;
            let status = response.status();
            if status != reqwest::StatusCode::OK {
                return Err(fail(format!("HTTP {status}")));
            }
            let max_age = response
                .headers()
                .get_all(reqwest::header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(max_age);
            let limit = self.settings.max_response_bytes;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| fail(describe(&e)))? {
                if body.len() + chunk.len() > limit {
                    return Err(fail(format!("response larger than {limit} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body, max_age))
        };
        // reqwest has its own timeout too; this one also bounds reading a slow body.
        tokio::time::timeout(self.settings.timeout, request)
            .await
            .map_err(|_| {
                fail(format!(
                    "no complete answer within {} ms",
                    self.settings.timeout.as_millis()
                ))
            })?
    }

    /// The `jwks_uri` of the issuer's metadata: RFC 8414 first, then OpenID Connect discovery.
    async fn discover(&self) -> Result<Url, KeyError> {
        let RemoteSource::Discovery { issuer, origins } = &self.source else {
            return Err(KeyError::Unavailable("no JWKS URL".into()));
        };
        let issuer_url = Url::parse(issuer)
            .map_err(|e| KeyError::Unavailable(format!("issuer `{issuer}` is not a URL: {e}")))?;
        let mut errors = Vec::new();
        for url in metadata_urls(&issuer_url) {
            match self.get(&url).await {
                Ok((body, _)) => {
                    return jwks_uri_from_metadata(&body, issuer, &issuer_url, origins);
                }
                Err(KeyError::Unavailable(why)) => errors.push(why),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(KeyError::Unavailable(format!(
            "no metadata for `{issuer}`: {}",
            errors.join("; ")
        )))
    }

    /// Starts the background refresh if it is not running and a tokio runtime is at hand.
    fn ensure_background(self: &Arc<Self>) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_some() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(self);
            *task = Some(runtime.spawn(refresh_in_background(weak)).abort_handle());
        }
    }

    /// How long until the next background refresh: 80 % into the lifetime, or a backoff after
    /// `failures` failed attempts.
    fn next_refresh(&self, failures: u32, now: Instant) -> Duration {
        if failures > 0 {
            let backoff = RETRY_MIN.saturating_mul(1u32 << failures.min(16));
            return backoff.min(RETRY_MAX);
        }
        let snapshot = self.state.load();
        match (snapshot.fetched_at, snapshot.expires_at) {
            (Some(fetched), Some(expires)) => {
                let lifetime = expires.saturating_duration_since(fetched);
                let due = fetched + lifetime.mul_f64(0.8).max(MIN_REFRESH);
                due.saturating_duration_since(now)
            }
            _ => Duration::ZERO,
        }
    }
}

/// Clears `in_flight` and wakes the waiters, also when the fetching future is dropped midway.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut control = self.0.control.lock().unwrap_or_else(|e| e.into_inner());
        control.in_flight = false;
        drop(control);
        self.0.done.send_modify(|n| *n += 1);
    }
}

async fn refresh_in_background(weak: Weak<Shared>) {
    let mut failures = 0u32;
    loop {
        let wait = match weak.upgrade() {
            Some(shared) => shared.next_refresh(failures, Instant::now()),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(shared) = weak.upgrade() else { return };
        match shared.clone().fetch(Trigger::Scheduled, None).await {
            Ok(_) if shared.state.load().last_error.is_none() => failures = 0,
            _ => failures = failures.saturating_add(1),
        }
    }
}

/// A short reason for a transport error (reqwest's own text nests several layers).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_redirect() {
        "redirects are not followed".into()
    } else {
        e.to_string()
    }
}

/// `max-age` from one `Cache-Control` header value; `no-store` or `no-cache` anywhere in it
/// means zero (the policy's `cache_min` then applies).
fn max_age(value: &str) -> Option<Duration> {
    let directives: Vec<String> = value
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache")
    {
        return Some(Duration::ZERO);
    }
    directives.iter().find_map(|d| {
        let seconds = d.strip_prefix("max-age=")?.trim_matches('"');
        seconds.parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// RFC 8414 §3.1 (well-known segment before the issuer's path), then OpenID Connect Discovery
/// §4 (appended to the issuer).
fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut urls = Vec::new();
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    urls.push(rfc8414);
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    urls.push(oidc);
    for url in &mut urls {
        url.set_query(None);
        url.set_fragment(None);
    }
    urls
}

/// Reads and checks `jwks_uri` from metadata: the metadata's `issuer` is exactly the issuer
/// (RFC 8414 §3.3), and the `jwks_uri` is on the issuer's origin or an allowed one.
fn jwks_uri_from_metadata(
    body: &[u8],
    iss: &str,
    issuer: &Url,
    origins: &[Url],
) -> Result<Url, KeyError> {
    let bad = |what: String| KeyError::Unavailable(format!("metadata of `{iss}`: {what}"));
    let metadata = json::parse_object(body, 16).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    match metadata.get("issuer") {
        // RFC 8414 §3.3, OpenID Connect Discovery §4.3: identical to the issuer, not merely alike.
        Some(Json::String(named)) if **named == *iss => {}
        Some(Json::String(named)) => {
            return Err(bad(format!(
                "it names issuer {}, not this one",
                crate::text::quote(named)
            )));
        }
        _ => return Err(bad("no `issuer`".into())),
    }
    let Some(Json::String(uri)) = metadata.get("jwks_uri") else {
        return Err(bad("no `jwks_uri`".into()));
    };
    let url = Url::parse(uri).map_err(|e| bad(format!("`jwks_uri` is not a URL: {e}")))?;
    let same = |a: &Url, b: &Url| a.origin() == b.origin();
    if !same(&url, issuer) && !origins.iter().any(|o| same(&url, o)) {
        return Err(bad(format!(
            "`jwks_uri` `{url}` is on another origin than the issuer; allow it with `jwks_origins = [\"{}\"]`",
            url.origin().ascii_serialization()
        )));
    }
    if url.scheme() != "https"
        && !(url.scheme() == "http" && (is_loopback(&url) || issuer.scheme() == "http"))
    {
        return Err(bad(format!("`jwks_uri` `{url}` is not https")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(
            max_age("public, max-age=60, must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("Max-Age=\"10\""), Some(Duration::from_secs(10)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=300, no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }

    #[test]
    fn well_known_urls() {
        let urls = |s: &str| {
            metadata_urls(&Url::parse(s).unwrap())
                .iter()
                .map(Url::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urls("https://abc123.keycard.cloud"),
            [
                "https://abc123.keycard.cloud/.well-known/oauth-authorization-server",
                "https://abc123.keycard.cloud/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            urls("https://login.example.com/tenant/v2.0/"),
            [
                "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0",
                "https://login.example.com/tenant/v2.0/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn metadata_must_name_the_issuer_and_stay_on_its_origin() {
        let iss = "https://idp.example.com";
        let issuer = Url::parse(iss).unwrap();
        let ok =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/keys"}"#;
        assert_eq!(
            jwks_uri_from_metadata(ok, iss, &issuer, &[])
                .unwrap()
                .as_str(),
            "https://idp.example.com/keys"
        );
        let other =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"https://evil.example.net/keys"}"#;
        let err = jwks_uri_from_metadata(other, iss, &issuer, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("another origin"), "{err}");
        let allowed = [Url::parse("https://evil.example.net").unwrap()];
        assert!(jwks_uri_from_metadata(other, iss, &issuer, &allowed).is_ok());
        let wrong_issuer =
            br#"{"issuer":"https://idp.example.org","jwks_uri":"https://idp.example.com/keys"}"#;
        assert!(jwks_uri_from_metadata(wrong_issuer, iss, &issuer, &[]).is_err());
        let plain =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"http://idp.example.com/keys"}"#;
        assert!(jwks_uri_from_metadata(plain, iss, &issuer, &[]).is_err());
    }
}
