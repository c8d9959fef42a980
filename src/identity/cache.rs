//! Credentials reused until shortly before they expire, keyed by a hash of the token that
//! obtained them (and the role, for IRSA): only a request carrying the same token gets them.

use super::PodCredentials;
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

#[derive(Debug)]
pub struct CredentialCache {
    entries: Mutex<HashMap<CredentialKey, PodCredentials>>,
    max_entries: usize,
}

impl CredentialCache {
    pub fn new(max_entries: usize) -> Self {
        CredentialCache { entries: Mutex::new(HashMap::new()), max_entries: max_entries.max(1) }
    }

    /// Credentials for `key` that stay valid for more than the margin.
    pub fn get(&self, key: &CredentialKey) -> Option<PodCredentials> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|c| usable(c, SystemTime::now())).cloned()
    }

    pub fn put(&self, key: CredentialKey, creds: PodCredentials) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries {
            let now = SystemTime::now();
            entries.retain(|_, c| usable(c, now));
            if entries.len() >= self.max_entries
                && let Some(oldest) = entries.iter().min_by_key(|(_, c)| c.obtained).map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, creds);
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
        let now = SystemTime::now();
        PodCredentials {
            credentials: AwsCredentials::fixed("AKID", "secret", None, "test"),
            identity: "role".into(),
            expires: expires_in.map(|d| now + d),
            obtained: now,
        }
    }

    #[test]
    fn reused_until_shortly_before_expiry_and_only_for_the_same_token() {
        let cache = CredentialCache::new(10);
        cache.put(key(&["irsa", "role", "token-a"]), creds(Some(Duration::from_secs(3600))));
        assert!(cache.get(&key(&["irsa", "role", "token-a"])).is_some());
        assert!(cache.get(&key(&["irsa", "role", "token-b"])).is_none(), "another token gets nothing");
        assert!(cache.get(&key(&["irsa", "other-role", "token-a"])).is_none(), "another role gets nothing");
        cache.put(key(&["irsa", "role", "token-c"]), creds(Some(Duration::from_secs(120))));
        assert!(cache.get(&key(&["irsa", "role", "token-c"])).is_none(), "inside the margin: renew");
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]), "parts are length-delimited");
    }
}
