//! Credentials reused until shortly before they expire, keyed by a hash of the token that
//! obtained them (and the role, for IRSA): only a request carrying the same token gets them.

use super::PodCredentials;
use crate::clock::SharedClock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Credentials are renewed when less than this is left.
const MARGIN: Duration = Duration::from_secs(5 * 60);
/// Reuse of credentials whose expiry is unknown.
const UNKNOWN_EXPIRY_REUSE: Duration = Duration::from_secs(10 * 60);

/// The key: a SHA-256 of the parts, so no token is held in the map.
pub type CredentialKey = [u8; 32];

pub fn key(parts: &[&str]) -> CredentialKey {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// Credentials by key, bounded in entries and in bytes.
#[derive(Debug)]
pub struct CredentialCache {
    entries: Mutex<Entries>,
    max_entries: usize,
    max_bytes: usize,
    clock: SharedClock,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<CredentialKey, PodCredentials>,
    bytes: usize,
}

/// The bytes one entry holds: its key, its credentials and its identity.
fn entry_bytes(creds: &PodCredentials) -> usize {
    std::mem::size_of::<(CredentialKey, PodCredentials)>() + creds.credentials.heap_bytes() + creds.identity.len()
}

impl Entries {
    fn remove(&mut self, key: &CredentialKey) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= entry_bytes(&old);
        }
    }

    fn drop_unusable(&mut self, now: SystemTime) {
        let stale: Vec<CredentialKey> = (self.map.iter()).filter(|(_, c)| !usable(c, now)).map(|(k, _)| *k).collect();
        stale.iter().for_each(|k| self.remove(k));
    }

    fn drop_oldest(&mut self) {
        if let Some(oldest) = self.map.iter().min_by_key(|(_, c)| c.obtained).map(|(k, _)| *k) {
            self.remove(&oldest);
        }
    }
}

impl CredentialCache {
    /// A cache of at most `max_entries` entries and `max_bytes` bytes; expiry read on `clock`.
    pub fn new(max_entries: usize, max_bytes: usize, clock: SharedClock) -> Self {
        CredentialCache { entries: Mutex::default(), max_entries: max_entries.max(1), max_bytes, clock }
    }

    /// Credentials for `key` that stay valid for more than the margin.
    pub fn get(&self, key: &CredentialKey) -> Option<PodCredentials> {
        let entries = crate::sync::lock(&self.entries);
        entries.map.get(key).filter(|c| usable(c, self.clock.system_now())).cloned()
    }

    /// Keeps `creds` under `key`, making room first: expired entries go, then the oldest. An
    /// entry larger than the whole budget is not kept.
    pub fn put(&self, key: CredentialKey, creds: PodCredentials) {
        let size = entry_bytes(&creds);
        if size > self.max_bytes {
            return;
        }
        let mut entries = crate::sync::lock(&self.entries);
        entries.remove(&key);
        let full = |e: &Entries| e.map.len() >= self.max_entries || e.bytes + size > self.max_bytes;
        if full(&entries) {
            entries.drop_unusable(self.clock.system_now());
        }
        while full(&entries) && !entries.map.is_empty() {
            entries.drop_oldest();
        }
        entries.bytes += size;
        entries.map.insert(key, creds);
    }

    /// The bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        crate::sync::lock(&self.entries).bytes
    }
}

fn usable(creds: &PodCredentials, now: SystemTime) -> bool {
    let deadline = match creds.expires {
        Some(expires) => expires.checked_sub(MARGIN),
        None => creds.obtained.checked_add(UNKNOWN_EXPIRY_REUSE),
    };
    deadline.is_some_and(|d| now < d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsCredentials;

    fn creds(expires_in: Option<Duration>) -> PodCredentials {
        creds_with_token(expires_in, None)
    }

    fn creds_with_token(expires_in: Option<Duration>, token: Option<&str>) -> PodCredentials {
        let now = SystemTime::now();
        PodCredentials {
            credentials: AwsCredentials::fixed("AKID", "secret", token, "test"),
            identity: "role".into(),
            expires: expires_in.map(|d| now + d),
            obtained: now,
        }
    }

    #[test]
    fn reused_until_shortly_before_expiry_and_only_for_the_same_token() {
        let cache = CredentialCache::new(10, 1 << 20, crate::clock::system());
        cache.put(key(&["irsa", "role", "token-a"]), creds(Some(Duration::from_secs(3600))));
        assert!(cache.get(&key(&["irsa", "role", "token-a"])).is_some());
        assert!(cache.get(&key(&["irsa", "role", "token-b"])).is_none(), "another token gets nothing");
        assert!(cache.get(&key(&["irsa", "other-role", "token-a"])).is_none(), "another role gets nothing");
        cache.put(key(&["irsa", "role", "token-c"]), creds(Some(Duration::from_secs(120))));
        assert!(cache.get(&key(&["irsa", "role", "token-c"])).is_none(), "inside the margin: renew");
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]), "parts are length-delimited");
    }

    /// Regression (issue #11): the cache was bounded in entries only, and an agent may answer
    /// with session tokens of up to 64 KiB: 10,000 of them are 640 MiB.
    #[test]
    fn bounded_in_bytes() {
        let budget = 1 << 20;
        let cache = CredentialCache::new(10_000, budget, crate::clock::system());
        let token = "t".repeat(60 * 1024);
        for i in 0..100 {
            cache.put(
                key(&["pod-identity", &i.to_string()]),
                creds_with_token(Some(Duration::from_secs(3600)), Some(&token)),
            );
            assert!(cache.bytes() <= budget, "{} bytes after {i}", cache.bytes());
        }
        assert!(cache.get(&key(&["pod-identity", "99"])).is_some(), "the newest is kept");
        assert!(cache.get(&key(&["pod-identity", "0"])).is_none(), "the oldest made room");
        cache.put(key(&["pod-identity", "99"]), creds(Some(Duration::from_secs(3600))));
        let huge = "t".repeat(budget + 1);
        cache.put(key(&["huge"]), creds_with_token(Some(Duration::from_secs(3600)), Some(&huge)));
        assert!(cache.get(&key(&["huge"])).is_none(), "larger than the budget: not kept");
        assert!(cache.bytes() <= budget);
    }

    #[test]
    fn renewed_when_the_injected_clock_reaches_the_margin() {
        use crate::clock::Clock;
        let clock = crate::clock::ManualClock::new();
        let cache = CredentialCache::new(10, 1 << 20, clock.clone());
        let now = clock.system_now();
        let expiring =
            PodCredentials { expires: Some(now + MARGIN + Duration::from_secs(60)), obtained: now, ..creds(None) };
        cache.put(key(&["irsa", "role", "token"]), expiring);
        assert!(cache.get(&key(&["irsa", "role", "token"])).is_some(), "a minute outside the margin");
        clock.advance(Duration::from_secs(60));
        assert!(cache.get(&key(&["irsa", "role", "token"])).is_none(), "inside the margin: renew");
        cache.put(key(&["pod-identity", "token"]), PodCredentials { expires: None, obtained: now, ..creds(None) });
        clock.advance(UNKNOWN_EXPIRY_REUSE - Duration::from_secs(61));
        assert!(cache.get(&key(&["pod-identity", "token"])).is_some(), "unknown expiry: reused for a while");
        clock.advance(Duration::from_secs(1));
        assert!(cache.get(&key(&["pod-identity", "token"])).is_none(), "unknown expiry: then obtained again");
    }
}
