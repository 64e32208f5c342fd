//! The verified-decision cache: the decision made about a token whose signature verified, kept
//! so that the same token (for the same requirement) is not decoded and verified again.
//!
//! - Keyed on the full token bytes and the requirement. The hash only picks a shard and a
//!   bucket; the key compared is the whole token, so a collision never returns another token's
//!   decision.
//! - Scoped to one engine: each [`PolicyEngine`](super::PolicyEngine) has its own cache, so a
//!   reload (a new engine) starts empty. A decision also records the key set its issuer gave
//!   (pointer identity); when the issuer's source gives another set (a refresh, a rotation), the
//!   entry is stale.
//! - Time is re-checked on every hit, with the very comparisons the time checks make; outside
//!   the token's window the engine decides in full (and denies with the exact reason).
//! - Only decisions made after the signature verified are cached, and never one with reason
//!   `internal`. Denials before the signature (malformed, too large, untrusted issuer, algorithm,
//!   unknown key, bad signature, keys unavailable) are not: they are cheap to make again, or
//!   depend on keys that are missing now, and anyone can send unlimited unique garbage, which
//!   must not evict the decisions about real tokens.
//! - An entry holds its decision with the texts written (`Decision::detached`): a decision as
//!   evaluated refers back to the engine, which holds this cache, and the old engine would
//!   never be freed after a reload.
//! - Bounded in entries and in bytes at every moment (see [`DecisionCache::new`]); shards of
//!   [`quick_cache`] (S3-FIFO eviction), each behind its own read-write lock: a hit takes one
//!   shard's read lock, never a global one.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, OptionsBuilder, Weighter};

use super::decision::{Decision, Outcome, Reason};
use super::time::Window;
use super::{CompiledIssuer, Inner, UnixTime};
use crate::jwks::{KeyError, KeySet};
use crate::policy::{CacheSettings, Requirement};

/// What the cache has done since the engine was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Decisions answered from the cache.
    pub hits: u64,
    /// Decisions made in full: the token was not cached, or its entry no longer held (outside
    /// the token's time window, or its issuer's keys changed).
    pub misses: u64,
    /// Decisions added to the cache.
    pub inserts: u64,
    /// Decisions dropped to stay within the bounds (or refused as larger than a shard).
    pub evictions: u64,
    /// Decisions held now.
    pub entries: u64,
    /// Bytes held now, as estimated when each was cached (each entry counts at least a little
    /// more than `max_bytes / (max_entries + 1)`, which is how both bounds hold at once).
    pub bytes: u64,
}

/// The key an entry is stored under.
struct Key {
    token: Box<[u8]>,
    requirement: Requirement,
}

/// The key a lookup compares with, without copying the token.
struct Lookup<'a> {
    token: &'a [u8],
    requirement: &'a Requirement,
}

/// One hash for [`Key`] and [`Lookup`] (the cache finds a `Key` by a `Lookup`'s hash).
fn hash_parts<H: Hasher>(token: &[u8], requirement: &Requirement, state: &mut H) {
    token.hash(state);
    requirement.hash(state);
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(&self.token, &self.requirement, state);
    }
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(self.token, self.requirement, state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token && self.requirement == other.requirement
    }
}

impl Eq for Key {}

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.token == *key.token && *self.requirement == key.requirement
    }
}

/// The key set a decision was made with: the issuer's index and the set itself. A `Weak`
/// compares by address without keeping the keys alive, and keeps the address from being
/// reused while the entry exists.
#[derive(Default)]
pub(crate) struct KeysUsed(std::cell::Cell<Option<(usize, Weak<KeySet>)>>);

impl KeysUsed {
    /// Notes the keys `issuer` gave for this evaluation, and passes them on.
    pub(crate) fn record(
        &self,
        inner: &Inner,
        issuer: &CompiledIssuer,
        keys: Result<Arc<KeySet>, KeyError>,
    ) -> Result<Arc<KeySet>, KeyError> {
        if let Ok(set) = &keys
            && let Some(index) = inner.issuers.iter().position(|i| std::ptr::eq(i, issuer))
        {
            self.0.set(Some((index, Arc::downgrade(set))));
        }
        keys
    }
}

/// A cached decision.
struct Entry {
    decision: Decision,
    window: Window,
    /// `None` when no key source was asked (HMAC secrets are the engine's own, fixed).
    keys: Option<(usize, Weak<KeySet>)>,
    weight: u64,
}

#[derive(Clone)]
struct EntryWeight;

impl Weighter<Key, Arc<Entry>> for EntryWeight {
    fn weight(&self, _key: &Key, entry: &Arc<Entry>) -> u64 {
        entry.weight
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
}

/// Counts evictions.
#[derive(Clone)]
struct Evictions(Arc<Counters>);

impl Lifecycle<Key, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Key, _entry: Arc<Entry>) {
        self.0.evictions.fetch_add(1, Ordering::Relaxed);
    }
}

/// The cache of one engine.
pub(crate) struct DecisionCache {
    map: Cache<Key, Arc<Entry>, EntryWeight, DefaultHashBuilder, Evictions>,
    /// The least weight of an entry (see [`DecisionCache::new`]).
    unit: u64,
    counters: Arc<Counters>,
}

impl fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DecisionCache {
    /// A cache that never holds more than `max_entries` decisions nor more than `max_bytes`.
    ///
    /// One bound, weight, enforces both. The weight capacity `C` is `max_bytes` (rounded down
    /// to a whole share per shard), and an entry weighs its estimated bytes, but at least
    /// `unit = C / (max_entries + 1) + 1`. The weights never exceed `C`, so the bytes do not;
    /// and `unit > C / (max_entries + 1)`, so at most `max_entries` entries fit. (Not
    /// `C / max_entries`: then a cache of one entry would weigh it at all of `C`, and quick_cache
    /// refuses an entry heavier than 97 % of a shard.)
    pub(crate) fn new(settings: CacheSettings) -> Option<Self> {
        let max_bytes = settings.max_bytes();
        let max_entries = u64::try_from(settings.max_entries()).unwrap_or(u64::MAX);
        // Shards of at least 32 entries (quick_cache's own rule), a power of two.
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let mut shards = (parallelism * 4).next_power_of_two();
        while shards > 1 && max_entries / (shards as u64) < 32 {
            shards /= 2;
        }
        let shards_u64 = shards as u64;
        let weight_capacity = max_bytes / shards_u64 * shards_u64;
        let unit = weight_capacity / max_entries.saturating_add(1) + 1;
        let options = OptionsBuilder::new()
            .shards(shards)
            // The table grows as needed; this is only where it starts.
            .estimated_items_capacity(settings.max_entries().min(1 << 16))
            .weight_capacity(weight_capacity)
            .build()
            .ok()?;
        let counters = Arc::new(Counters::default());
        Some(Self {
            map: Cache::with_options(
                options,
                EntryWeight,
                DefaultHashBuilder::default(),
                Evictions(counters.clone()),
            ),
            unit,
            counters,
        })
    }

    /// The cached decision about `token` for `requirement`, if there is one that still holds
    /// at `now`: inside the token's time window, and with the keys its issuer gives now.
    pub(crate) fn get(
        &self,
        inner: &Inner,
        token: &[u8],
        requirement: &Requirement,
        now: UnixTime,
    ) -> Option<Decision> {
        let lookup = Lookup { token, requirement };
        let found = self.map.get(&lookup);
        let fresh = found.as_ref().is_some_and(|entry| {
            entry.window.contains(now)
                && entry.keys.as_ref().is_none_or(|(index, used)| {
                    inner.issuers.get(*index).is_some_and(|issuer| {
                        // A key source is the service's code: if it panics, the entry does not
                        // hold, and the full evaluation reports it (`internal`).
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            super::current_keys(issuer)
                        }))
                        .is_ok_and(|now| {
                            now.is_ok_and(|set| std::ptr::eq(used.as_ptr(), Arc::as_ptr(&set)))
                        })
                    })
                })
        });
        match found {
            Some(entry) if fresh => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.decision.clone())
            }
            stale => {
                if let Some(stale) = stale {
                    // Expired, or made with keys the issuer no longer gives: a full evaluation
                    // follows, and replaces it if its decision is cached. Only this entry goes,
                    // not one another thread has just put in its place.
                    self.map
                        .remove_if(&lookup, |entry| Arc::ptr_eq(entry, &stale));
                }
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches `decision` about `token` for `requirement`, made at `now` with `keys`, when it
    /// may be: its signature verified, it holds at `now`, and it is not `internal`.
    pub(crate) fn insert(
        &self,
        token: &[u8],
        requirement: &Requirement,
        now: UnixTime,
        decision: &Decision,
        keys: &KeysUsed,
    ) {
        let Some(window) = decision.window() else {
            return;
        };
        if !window.contains(now) || decision.reasons().contains(&Reason::Internal) {
            return;
        }
        // Texts and claims written now, once per entry: what a hit hands out is then complete
        // without the engine (which holds this cache) being referenced from inside it.
        let decision = decision.detached();
        let weight = estimate(token, requirement, &decision).max(self.unit);
        let entry = Entry {
            decision,
            window,
            keys: keys.0.take(),
            weight,
        };
        let key = Key {
            token: token.into(),
            requirement: requirement.clone(),
        };
        self.map.insert(key, Arc::new(entry));
        self.counters.inserts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, and what the cache holds now.
    pub(crate) fn stats(&self) -> CacheStats {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: count(&self.counters.hits),
            misses: count(&self.counters.misses),
            inserts: count(&self.counters.inserts),
            evictions: count(&self.counters.evictions),
            entries: self.map.len() as u64,
            bytes: self.map.weight(),
        }
    }
}

/// The bytes an entry holds: the token, the requirement, the decision's strings and the
/// structures around them. An estimate, made once when the entry is cached.
fn estimate(token: &[u8], requirement: &Requirement, decision: &Decision) -> u64 {
    use std::mem::size_of;
    let strings =
        |items: &[String]| -> usize { items.iter().map(|s| s.len() + size_of::<String>()).sum() };
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let checks: usize = decision
        .checks()
        .iter()
        .map(|c| {
            let failed = match c.outcome() {
                Outcome::Failed {
                    expected, observed, ..
                } => expected.len() + observed.len(),
                _ => 0,
            };
            size_of::<super::decision::Check>() + c.rule().len() + c.detail().len() + failed
        })
        .sum();
    let p = decision.principal();
    let principal = [
        &p.issuer,
        &p.subject,
        &p.client_id,
        &p.client_id_source,
        &p.resource_client_id,
        &p.audience,
        &p.resource,
    ]
    .into_iter()
    .map(optional)
    .sum::<usize>()
        + strings(&p.scopes);
    // The map's own slot, hash and links, roughly.
    const OVERHEAD: usize = 64;
    let total = OVERHEAD
        + size_of::<Key>()
        + size_of::<Entry>()
        + token.len()
        + strings(requirement.scopes())
        + strings(requirement.rules())
        + checks
        + principal
        + strings(decision.required_scopes())
        + decision.claims().map_or(0, |c| c.json().len());
    u64::try_from(total).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;
    use std::num::{NonZeroU64, NonZeroUsize};

    use super::*;

    #[test]
    fn a_key_and_its_lookup_hash_alike_and_only_the_same_bytes_are_equivalent() {
        let hasher = DefaultHashBuilder::default();
        let admin = Requirement::new().scope("mcp:admin");
        let key = Key {
            token: b"aaaa.bbbb.cccc".as_slice().into(),
            requirement: admin.clone(),
        };
        let lookup = |token: &'static [u8], requirement| Lookup { token, requirement };
        assert_eq!(
            hasher.hash_one(&key),
            hasher.hash_one(lookup(b"aaaa.bbbb.cccc", &admin))
        );
        assert!(lookup(b"aaaa.bbbb.cccc", &admin).equivalent(&key));
        // Whatever the hashes, a lookup matches only the very token and requirement.
        assert!(!lookup(b"aaaa.bbbb.cccd", &admin).equivalent(&key));
        assert!(!lookup(b"aaaa.bbbb.ccc", &admin).equivalent(&key));
        assert!(!lookup(b"aaaa.bbbb.cccc", &Requirement::new()).equivalent(&key));
    }

    #[test]
    fn the_weight_capacity_bounds_both_entries_and_bytes() {
        for (entries, bytes) in [
            (1, 65_536),
            (7, 100_000),
            (100, 64 << 20),
            (10_000, 16 << 20),
            (100_000, 256 << 10),
            (10_000_000, 64 << 10),
            (10_000_000, 64 << 30),
        ] {
            let settings = CacheSettings::new(
                NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN),
                NonZeroU64::new(bytes).unwrap_or(NonZeroU64::MIN),
            );
            let cache = DecisionCache::new(settings).unwrap_or_else(|| panic!("{settings:?}"));
            let capacity = cache.map.capacity();
            let shards = cache.map.num_shards() as u64;
            assert!(capacity <= bytes, "{settings:?}: {capacity}");
            // Every shard's share is whole, and holds at most its share of the entries.
            assert_eq!(capacity % shards, 0, "{settings:?}");
            assert!(capacity / cache.unit <= entries as u64, "{settings:?}");
            // One entry of the least weight fits in a shard (quick_cache refuses one heavier
            // than 97 % of it).
            assert!(cache.unit * 100 <= capacity / shards * 97, "{settings:?}");
            assert!(capacity > 0, "{settings:?}");
        }
    }
}
