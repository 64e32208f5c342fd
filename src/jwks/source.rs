//! Where keys come from: a JWK set in a file or in the policy, or one fetched over HTTP, with how
//! it is fetched and the counters of a source that fetches.
//!
//! These are plain values, in every build: a policy names its sources whether or not this build
//! can fetch keys (the fetching itself, `RemoteKeys`, is the cargo feature `remote`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Where a key source's JWKS comes from.
#[derive(Debug, Clone)]
pub(crate) enum JwksSource {
    /// A file, resolved relative to the policy file.
    File(PathBuf),
    /// JSON text written in the policy.
    Inline(String),
}

/// How remote keys are fetched and cached (`[remote_keys]` in a policy).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteSettings {
    /// Longest a fetch (connect, request and body) may take.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Lower bound on a cache lifetime, whatever `Cache-Control` says.
    pub cache_min: Duration,
    /// Upper bound on a cache lifetime.
    pub cache_max: Duration,
    /// Lifetime when the response has no usable `Cache-Control: max-age`.
    pub cache_default: Duration,
    /// How long past their lifetime the last good keys are served while refreshing fails.
    pub max_stale: Duration,
    /// Least time between two fetches caused by tokens (an unknown `kid`, missing keys).
    pub cooldown: Duration,
    /// How long a `kid` still unknown after a refetch is not looked for again.
    pub negative_cache: Duration,
    /// Whether building the engine fetches the keys first (and fails if it cannot).
    pub startup: Startup,
}

/// When remote keys are first fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// When the engine is built with [`EngineBuilder::build_async`](crate::EngineBuilder::build_async),
    /// which fails if the keys cannot be fetched.
    Eager,
    /// When a token first needs them.
    Lazy,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_response_bytes: 256 * 1024,
            cache_min: Duration::from_secs(60),
            cache_max: Duration::from_secs(24 * 3600),
            cache_default: Duration::from_secs(3600),
            max_stale: Duration::from_secs(6 * 3600),
            cooldown: Duration::from_secs(30),
            negative_cache: Duration::from_secs(60),
            startup: Startup::Eager,
        }
    }
}

/// Where remote keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSource {
    /// A JWKS at this URL.
    JwksUrl(Url),
    /// The `jwks_uri` of the issuer's metadata. It must be on the issuer's own origin or on one
    /// of `origins`.
    Discovery {
        /// The issuer's `iss`, exactly as tokens and its metadata must name it.
        issuer: String,
        /// Other origins (`https://keys.example.com`) the `jwks_uri` may be on.
        origins: Vec<Url>,
    },
}

impl fmt::Display for RemoteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JwksUrl(url) => write!(f, "JWKS `{url}`"),
            Self::Discovery { issuer, .. } => write!(f, "the metadata of `{issuer}`"),
        }
    }
}

/// Whether plain `http://` to `url` is acceptable without an explicit `allow_http`: loopback only.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Counters a service can read (see [`PolicyEngine::key_stats`](crate::PolicyEngine::key_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStats {
    /// Fetches started (metadata and JWKS count as one).
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Fetches caused by a token naming an unknown `kid`.
    pub unknown_kid_refetches: u64,
    /// Token-caused fetches not made because of the cooldown or the negative cache.
    pub cooldown_skips: u64,
    /// Times keys were served past their lifetime (within `max_stale`).
    pub stale_serves: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]/x",
            "http://127.9.9.9/",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1/x",
            "http://example.com/x",
            "http://localhost.example.com/",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }
}
