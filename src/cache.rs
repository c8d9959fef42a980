//! The value cache: values read from AWS, keyed by the proven identity that read them, the
//! region, and the object and version asked for. A value is never served older than the TTL;
//! the cache holds at most `max_entries` values and at most `max_bytes` bytes of them (values,
//! names and a fixed per-entry overhead); evicted values are wiped (`SecretBytes` zeroizes on
//! drop). The TTL may differ per store (`--cache-ttl-ssm`, `--cache-ttl-secretsmanager`), and each
//! entry's is shortened by up to [`TTL_JITTER`] at random, so the refreshes of many entries (and
//! of many nodes) spread out instead of falling due together. An expired value is kept a while
//! longer (`--stale-if-throttled`) only so that [`ValueCache::get_stale`] can serve it while AWS
//! throttles; [`ValueCache::get`] never serves it.
//!
//! Two pods that proved the same identity share entries; no other sharing exists.

use crate::clock::{self, SharedClock};
use crate::params::ObjectType;
use crate::read::{Fetched, ReadItem};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a cached value is for. Identity and region are shared by the keys of one mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// IRSA: the assumed role; Pod Identity: account and namespace/service account; `local`.
    pub identity: Arc<str>,
    pub region: Arc<str>,
    pub item: ReadItem,
}

#[derive(Debug)]
struct Entry {
    fetched: Fetched,
    at: Instant,
    /// This entry's TTL (its store's, less its jitter).
    life: Duration,
    /// What this entry counts against `max_bytes`.
    bytes: usize,
}

/// Bytes counted per entry beyond its value and names: the map slot, the key's and value's
/// headers and allocator rounding (measured order of magnitude, not exact).
const ENTRY_OVERHEAD: usize = 256;

/// What one entry counts against the byte bound.
fn entry_bytes(key: &CacheKey, fetched: &Fetched) -> usize {
    let item = &key.item;
    let names = item.name.len()
        + item.version_id.as_ref().map_or(0, String::len)
        + item.version_label.as_ref().map_or(0, String::len)
        + key.identity.len()
        + key.region.len()
        + fetched.version.len();
    fetched.value.len() + names + ENTRY_OVERHEAD
}

/// Counters for metrics and tests (shared handles: clones count together).
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub entries: Gauge,
    /// Bytes the held entries count against the byte bound.
    pub bytes: Gauge,
    /// The bounds, as gauges (so an alert can compare the two above with them).
    pub max_entries: Gauge,
    pub max_bytes: Gauge,
}

/// The most an entry's TTL is shortened at random (a fraction of it).
pub const TTL_JITTER: f64 = 0.1;

/// How long values live: per store, and how long past that one may be served while throttled.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub ssm: Duration,
    pub secrets_manager: Duration,
    pub stale_if_throttled: Duration,
    /// The most an entry's TTL is shortened at random, a fraction ([`TTL_JITTER`] in service).
    pub jitter: f64,
}

/// The identity-scoped value cache.
#[derive(Debug)]
pub struct ValueCache {
    ttl: Duration,
    lifetimes: Lifetimes,
    /// How long past its TTL a value is kept for a re-sync whose refresh the AWS budget has
    /// queued (the budget's queue bound; zero without a budget): see [`ValueCache::get_queued`].
    queued_window: Duration,
    jitter: Mutex<crate::jitter::Jitter>,
    max_entries: usize,
    max_bytes: usize,
    entries: Mutex<Entries>,
    clock: SharedClock,
    pub stats: CacheStats,
}

/// The entries and the bytes they count.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<CacheKey, Entry>,
    bytes: usize,
}

impl Entries {
    fn remove(&mut self, key: &CacheKey) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.bytes -= entry.bytes;
        Some(entry)
    }

    fn insert(&mut self, key: CacheKey, entry: Entry) {
        self.bytes += entry.bytes;
        if let Some(old) = self.map.insert(key, entry) {
            self.bytes -= old.bytes;
        }
    }
}

impl ValueCache {
    /// A cache serving values at most `ttl` old (`0` disables it), bounded by `max_entries`
    /// values and `max_bytes` bytes.
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        let entries = Mutex::new(Entries::default());
        let stats = CacheStats::default();
        stats.max_entries.set(i64::try_from(max_entries).unwrap_or(i64::MAX));
        stats.max_bytes.set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        let lifetimes = Lifetimes { ssm: ttl, secrets_manager: ttl, stale_if_throttled: Duration::ZERO, jitter: 0.0 };
        let jitter = Mutex::new(crate::jitter::Jitter::new(0));
        ValueCache {
            ttl,
            lifetimes,
            queued_window: Duration::ZERO,
            jitter,
            max_entries,
            max_bytes,
            entries,
            clock: clock::system(),
            stats,
        }
    }

    /// The same cache with per-store TTLs (each `0` disables caching of that store) and a stale
    /// window, its jitter seeded from `seed`.
    pub fn with_lifetimes(self, lifetimes: Lifetimes, seed: u64) -> Self {
        let ttl = lifetimes.ssm.max(lifetimes.secrets_manager);
        ValueCache { ttl, lifetimes, jitter: Mutex::new(crate::jitter::Jitter::new(seed)), ..self }
    }

    /// The TTL of `object_type`'s values.
    fn ttl_for(&self, object_type: ObjectType) -> Duration {
        match object_type {
            ObjectType::Parameter => self.lifetimes.ssm,
            ObjectType::SecretsManager => self.lifetimes.secrets_manager,
        }
    }

    /// A new entry's TTL: its store's, less up to `jitter` of it.
    fn life_for(&self, object_type: ObjectType, fraction: f64) -> Duration {
        let jitter = self.lifetimes.jitter.clamp(0.0, 0.5);
        self.ttl_for(object_type).mul_f64(1.0 - jitter * fraction)
    }

    /// A draw of the TTL's jitter, for [`ValueCache::put_drawn`]: the values one read answered
    /// share it, so they expire together (each drawn apart, a re-sync between the first and the
    /// last expiry refreshed only part of a batch, a call of its own, and the batch's values
    /// drifted apart: two budgeted calls where one did).
    pub fn life_draw(&self) -> f64 {
        if self.lifetimes.jitter > 0.0 { crate::sync::lock(&self.jitter).fraction() } else { 0.0 }
    }

    /// The same cache keeping values up to `window` past their TTL for re-syncs whose refresh
    /// the AWS budget has queued ([`ValueCache::get_queued`]).
    pub fn with_queued_window(self, window: Duration) -> Self {
        ValueCache { queued_window: window, ..self }
    }

    /// Whether an entry is past its TTL and every stale window (to be dropped).
    fn gone(&self, e: &Entry) -> bool {
        self.age(e.at) >= e.life + self.lifetimes.stale_if_throttled.max(self.queued_window)
    }

    /// The same cache, reading time from `clock`.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        ValueCache { clock, ..self }
    }

    /// The current instant on this cache's clock (a read's start, to [`ValueCache::put`]).
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// How old something stamped `at` is now.
    fn age(&self, at: Instant) -> Duration {
        self.clock.now().saturating_duration_since(at)
    }

    /// Publishes the size of `entries` in the gauges.
    fn publish(&self, entries: &Entries) {
        self.stats.entries.set(entries.map.len() as i64);
        self.stats.bytes.set(i64::try_from(entries.bytes).unwrap_or(i64::MAX));
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0 && self.max_bytes > 0
    }

    /// A value younger than the TTL, if cached.
    pub fn get(&self, key: &CacheKey) -> Option<Fetched> {
        if !self.enabled() {
            return None;
        }
        let mut entries = self.lock();
        let found = match entries.map.get(key) {
            Some(e) if self.age(e.at) < e.life => Some(e.fetched.clone()),
            Some(e) if !self.gone(e) => None,
            Some(_) => {
                entries.remove(key);
                self.stats.evictions.inc();
                self.publish(&entries);
                None
            }
            None => None,
        };
        let counter = if found.is_some() { &self.stats.hits } else { &self.stats.misses };
        counter.inc();
        found
    }

    /// A value past its TTL but within `--stale-if-throttled` of it: only for when AWS (or the
    /// budget) throttles a refresh.
    pub fn get_stale(&self, key: &CacheKey) -> Option<Fetched> {
        self.get_within(key, self.lifetimes.stale_if_throttled)
    }

    /// A value past its TTL for a re-sync whose refresh the AWS budget has queued: within
    /// `--stale-if-throttled` of its TTL, or within the budget's queue bound if that is longer.
    /// The budget paces this node's refreshes, one batch per slot, so a value is refreshed once
    /// per cycle of the node's batches (at 5,000 nodes, about half an hour); without this, a
    /// value past the stale window failed its pods' re-syncs until its turn came, and a pod
    /// only took a rotated value when every one of its objects happened to be within the window
    /// at the same re-sync. The pod's files are never newer than this node's cached value, so
    /// serving it is never staler than failing the re-sync.
    pub fn get_queued(&self, key: &CacheKey) -> Option<Fetched> {
        self.get_within(key, self.lifetimes.stale_if_throttled.max(self.queued_window))
    }

    fn get_within(&self, key: &CacheKey, window: Duration) -> Option<Fetched> {
        let entries = self.lock();
        entries.map.get(key).filter(|e| self.age(e.at) < e.life + window).map(|e| e.fetched.clone())
    }

    /// Stores a value read at `at` (the start of the read, so its age is never understated).
    /// A value larger than the whole byte bound is not cached.
    #[cfg(test)]
    pub fn put(&self, key: CacheKey, fetched: Fetched, at: Instant) {
        let draw = self.life_draw();
        self.put_drawn(key, fetched, at, draw);
    }

    /// [`ValueCache::put`] with the TTL's jitter drawn by [`ValueCache::life_draw`].
    pub fn put_drawn(&self, key: CacheKey, fetched: Fetched, at: Instant, draw: f64) {
        let bytes = entry_bytes(&key, &fetched);
        let life = self.life_for(key.item.object_type, draw);
        if !self.enabled() || bytes > self.max_bytes || life.is_zero() {
            return;
        }
        let mut entries = self.lock();
        entries.remove(&key);
        self.make_room(&mut entries, bytes);
        entries.insert(key, Entry { fetched, at, life, bytes });
        self.publish(&entries);
    }

    /// Entries currently held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Bytes the held entries count against `max_bytes`.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `incoming` more bytes (one more entry) fit within both bounds.
    fn fits(&self, entries: &Entries, incoming: usize) -> bool {
        entries.map.len() < self.max_entries && entries.bytes + incoming <= self.max_bytes
    }

    /// Makes room for one entry of `incoming` bytes: drops expired entries, then the oldest
    /// until it fits.
    fn make_room(&self, entries: &mut Entries, incoming: usize) {
        if self.fits(entries, incoming) {
            return;
        }
        let before = entries.map.len();
        entries.map.retain(|_, e| !self.gone(e));
        entries.bytes = entries.map.values().map(|e| e.bytes).sum();
        while !self.fits(entries, incoming) {
            let Some(oldest) = entries.map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone()) else {
                break;
            };
            entries.remove(&oldest);
        }
        self.stats.evictions.inc_by((before - entries.map.len()) as u64);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        crate::sync::lock(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ObjectType;
    use crate::secret::SecretBytes;

    fn key(identity: &str, name: &str) -> CacheKey {
        let item = ReadItem {
            name: name.into(),
            object_type: ObjectType::SecretsManager,
            version_id: None,
            version_label: None,
            listing: None,
        };
        CacheKey { identity: identity.into(), region: "us-west-2".into(), item }
    }

    fn value(v: &str) -> Fetched {
        Fetched { value: SecretBytes::from(v), version: "1".into() }
    }

    #[test]
    fn entries_never_cross_identities() {
        let cache = ValueCache::new(Duration::from_secs(60), 10, 1 << 20);
        cache.put(key("role-a", "db"), value("a"), Instant::now());
        assert_eq!(cache.get(&key("role-a", "db")).map(|f| f.value), Some(SecretBytes::from("a")));
        assert_eq!(cache.get(&key("role-b", "db")), None);
        assert_eq!(cache.stats.hits.get(), 1);
        assert_eq!(cache.stats.misses.get(), 1);
    }

    #[test]
    fn values_expire_after_the_ttl_and_zero_disables() {
        let cache = ValueCache::new(Duration::from_millis(50), 10, 1 << 20);
        cache.put(key("r", "db"), value("a"), Instant::now() - Duration::from_millis(60));
        assert_eq!(cache.get(&key("r", "db")), None, "older than the TTL");
        assert!(cache.is_empty(), "the expired entry is evicted");
        let off = ValueCache::new(Duration::ZERO, 10, 1 << 20);
        off.put(key("r", "db"), value("a"), Instant::now());
        assert_eq!(off.get(&key("r", "db")), None);
    }

    #[test]
    fn a_value_expires_when_the_injected_clock_passes_the_ttl() {
        let clock = crate::clock::ManualClock::new();
        let cache = ValueCache::new(Duration::from_secs(60), 10, 1 << 20).with_clock(clock.clone());
        cache.put(key("r", "db"), value("a"), cache.now());
        clock.advance(Duration::from_secs(59));
        assert!(cache.get(&key("r", "db")).is_some(), "59 s old: still served");
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get(&key("r", "db")), None, "60 s old: expired");
        assert_eq!(cache.stats.evictions.get(), 1);
    }

    #[test]
    fn ttls_are_per_store_jittered_down_and_a_stale_value_is_only_served_by_get_stale() {
        let clock = crate::clock::ManualClock::new();
        let lifetimes = Lifetimes {
            ssm: Duration::from_secs(300),
            secrets_manager: Duration::from_secs(60),
            stale_if_throttled: Duration::from_secs(120),
            jitter: TTL_JITTER,
        };
        let cache = ValueCache::new(Duration::from_secs(60), 100, 1 << 20)
            .with_clock(clock.clone())
            .with_lifetimes(lifetimes, 3);
        let mut param = key("r", "p");
        param.item.object_type = ObjectType::Parameter;
        cache.put(key("r", "db"), value("a"), cache.now());
        cache.put(param.clone(), value("p"), cache.now());
        clock.advance(Duration::from_secs(60));
        assert_eq!(cache.get(&key("r", "db")), None, "never served past its store's TTL");
        assert!(cache.get_stale(&key("r", "db")).is_some(), "kept for the stale window");
        assert!(cache.get(&param).is_some(), "the parameter's TTL is 300 s");
        clock.advance(Duration::from_secs(120));
        assert_eq!(cache.get_stale(&key("r", "db")), None, "never beyond the stale window");
        let lives: Vec<Duration> = (0..50)
            .map(|i| {
                cache.put(key("r", &format!("j{i}")), value("v"), cache.now());
                cache.lock().map[&key("r", &format!("j{i}"))].life
            })
            .collect();
        assert!(lives.iter().all(|l| *l <= Duration::from_secs(60) && *l >= Duration::from_secs(54)));
        assert!(lives.iter().any(|l| *l != lives[0]), "jittered");
    }

    #[test]
    fn the_bound_evicts_the_oldest() {
        let cache = ValueCache::new(Duration::from_secs(60), 2, 1 << 20);
        let now = Instant::now();
        cache.put(key("r", "a"), value("a"), now - Duration::from_secs(2));
        cache.put(key("r", "b"), value("b"), now - Duration::from_secs(1));
        cache.put(key("r", "c"), value("c"), now);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key("r", "a")), None);
        assert!(cache.get(&key("r", "c")).is_some());
        assert_eq!(cache.stats.evictions.get(), 1);
    }

    fn sized(v: usize) -> Fetched {
        Fetched { value: SecretBytes::from(vec![7u8; v]), version: "1".into() }
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest_until_the_new_value_fits() {
        let one = entry_bytes(&key("r", "a"), &sized(64 * 1024));
        let cache = ValueCache::new(Duration::from_secs(60), 1000, 3 * one);
        let now = Instant::now();
        for (age, name) in [(4, "a"), (3, "b"), (2, "c")] {
            cache.put(key("r", name), sized(64 * 1024), now - Duration::from_secs(age));
        }
        assert_eq!((cache.len(), cache.bytes()), (3, 3 * one), "exactly full");
        cache.put(key("r", "d"), sized(64 * 1024), now);
        assert_eq!((cache.len(), cache.bytes()), (3, 3 * one));
        assert_eq!(cache.get(&key("r", "a")), None, "the oldest went first");
        cache.put(key("r", "big"), sized(128 * 1024), now);
        assert!(cache.bytes() <= 3 * one, "never over the bound: {}", cache.bytes());
        assert_eq!(cache.get(&key("r", "b")), None);
        assert_eq!(cache.get(&key("r", "c")), None, "two entries made room for one twice their size");
        assert!(cache.get(&key("r", "d")).is_some() && cache.get(&key("r", "big")).is_some());
        assert_eq!(cache.stats.evictions.get(), 3);
    }

    #[test]
    fn a_value_larger_than_the_bound_is_not_cached_and_a_replaced_value_is_not_counted_twice() {
        let cache = ValueCache::new(Duration::from_secs(60), 10, 100 * 1024);
        cache.put(key("r", "huge"), sized(200 * 1024), Instant::now());
        assert!(cache.is_empty());
        cache.put(key("r", "a"), sized(1024), Instant::now());
        let once = cache.bytes();
        cache.put(key("r", "a"), sized(1024), Instant::now());
        assert_eq!((cache.len(), cache.bytes()), (1, once));
    }
}
