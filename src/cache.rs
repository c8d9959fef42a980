//! The value cache: values read from AWS, keyed by the proven identity that read them, the
//! region, and the object and version asked for. A value is never served older than the TTL;
//! the cache holds at most `max_entries`; evicted values are wiped (`SecretBytes` zeroizes on
//! drop). Two pods that proved the same identity share entries; no other sharing exists.

use crate::aws::{Fetched, ReadItem};
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
}

/// Counters for metrics and tests (shared handles: clones count together).
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub entries: Gauge,
}

/// The identity-scoped value cache.
#[derive(Debug)]
pub struct ValueCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<CacheKey, Entry>>,
    pub stats: CacheStats,
}

impl ValueCache {
    /// A cache serving values at most `ttl` old (`0` disables it), bounded by `max_entries`.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        ValueCache { ttl, max_entries, entries: Mutex::new(HashMap::new()), stats: CacheStats::default() }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    /// A value younger than the TTL, if cached.
    pub fn get(&self, key: &CacheKey) -> Option<Fetched> {
        if !self.enabled() {
            return None;
        }
        let mut entries = self.lock();
        let found = match entries.get(key) {
            Some(e) if e.at.elapsed() < self.ttl => Some(e.fetched.clone()),
            Some(_) => {
                entries.remove(key);
                self.stats.evictions.inc();
                self.stats.entries.set(entries.len() as i64);
                None
            }
            None => None,
        };
        let counter = if found.is_some() { &self.stats.hits } else { &self.stats.misses };
        counter.inc();
        found
    }

    /// Stores a value read at `at` (the start of the read, so its age is never understated).
    pub fn put(&self, key: CacheKey, fetched: Fetched, at: Instant) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            self.make_room(&mut entries);
        }
        entries.insert(key, Entry { fetched, at });
        self.stats.entries.set(entries.len() as i64);
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired entries, then the oldest if still full.
    fn make_room(&self, entries: &mut HashMap<CacheKey, Entry>) {
        let before = entries.len();
        entries.retain(|_, e| e.at.elapsed() < self.ttl);
        if entries.len() >= self.max_entries
            && let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        self.stats.evictions.inc_by((before - entries.len()) as u64);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
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
        };
        CacheKey { identity: identity.into(), region: "us-west-2".into(), item }
    }

    fn value(v: &str) -> Fetched {
        Fetched { value: SecretBytes::from(v), version: "1".into() }
    }

    #[test]
    fn entries_never_cross_identities() {
        let cache = ValueCache::new(Duration::from_secs(60), 10);
        cache.put(key("role-a", "db"), value("a"), Instant::now());
        assert_eq!(cache.get(&key("role-a", "db")).map(|f| f.value), Some(SecretBytes::from("a")));
        assert_eq!(cache.get(&key("role-b", "db")), None);
        assert_eq!(cache.stats.hits.get(), 1);
        assert_eq!(cache.stats.misses.get(), 1);
    }

    #[test]
    fn values_expire_after_the_ttl_and_zero_disables() {
        let cache = ValueCache::new(Duration::from_millis(50), 10);
        cache.put(key("r", "db"), value("a"), Instant::now() - Duration::from_millis(60));
        assert_eq!(cache.get(&key("r", "db")), None, "older than the TTL");
        assert!(cache.is_empty(), "the expired entry is evicted");
        let off = ValueCache::new(Duration::ZERO, 10);
        off.put(key("r", "db"), value("a"), Instant::now());
        assert_eq!(off.get(&key("r", "db")), None);
    }

    #[test]
    fn the_bound_evicts_the_oldest() {
        let cache = ValueCache::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        cache.put(key("r", "a"), value("a"), now - Duration::from_secs(2));
        cache.put(key("r", "b"), value("b"), now - Duration::from_secs(1));
        cache.put(key("r", "c"), value("c"), now);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key("r", "a")), None);
        assert!(cache.get(&key("r", "c")).is_some());
        assert_eq!(cache.stats.evictions.get(), 1);
    }
}
