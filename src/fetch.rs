//! Fetching a mount's objects at the least AWS cost: cached values first (per proven identity),
//! then identical reads already in flight (coalesced), then one batched read of the rest. Each read
//! knows the pods it serves (a follower adds itself), for the audit log.

use crate::aws::{AwsCredentials, AwsReader};
use crate::cache::{CacheKey, ValueCache};
use crate::read::{Answers, ReadItem, ReadResult, ReadScope, Requesters};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// The context of a mount's reads, with the credentials this fetcher reads with.
pub type Scope<'a> = ReadScope<'a, AwsCredentials>;

type Shared = Option<ReadResult>;
/// Reads in flight: the result to wait for, and the pods waiting.
type Inflight = Arc<Mutex<HashMap<CacheKey, (watch::Receiver<Shared>, Requesters)>>>;

/// Reads through the cache.
#[derive(Debug)]
pub struct Fetcher {
    aws: AwsReader,
    cache: ValueCache,
    inflight: Inflight,
}

/// What each item of a mount waits on.
enum Source {
    Ready(ReadResult),
    Follow(watch::Receiver<Shared>),
    Lead(watch::Sender<Shared>),
}

impl Fetcher {
    pub fn new(aws: AwsReader, cache: ValueCache) -> Self {
        Fetcher { aws, cache, inflight: Arc::default() }
    }

    pub fn aws(&self) -> &AwsReader {
        &self.aws
    }

    /// An answer for every item, read in the scope's context (along its route, for its pod).
    pub async fn fetch(&self, scope: &Scope<'_>, items: Vec<ReadItem>) -> Answers {
        let (identity, region): (Arc<str>, Arc<str>) = (scope.identity.into(), scope.route.region.into());
        let keys: Vec<CacheKey> = items
            .into_iter()
            .map(|item| CacheKey { identity: identity.clone(), region: region.clone(), item })
            .collect();
        let sources: Vec<(CacheKey, Source)> = keys.into_iter().map(|k| (k.clone(), self.source(&k, scope))).collect();
        let _guard = InflightGuard { map: self.inflight.clone(), keys: leading_keys(&sources) };
        let lead_items: Vec<ReadItem> = leading_keys(&sources).into_iter().map(|k| k.item).collect();
        let started = self.cache.now();
        let read = if lead_items.is_empty() { Answers::default() } else { self.aws.read(scope, &lead_items).await };
        let mut answers = Answers::default();
        for (key, source) in sources {
            let item = key.item.clone();
            let result = match source {
                Source::Ready(r) => r,
                Source::Lead(tx) => self.publish(tx, key, &read, started),
                Source::Follow(rx) => self.follow(rx, scope, &key.item).await,
            };
            answers.insert(item, result);
        }
        answers
    }

    /// A cached value, an in-flight read to follow (joining its requesters), or the lead on a
    /// new read (served to `requesters`).
    fn source(&self, key: &CacheKey, scope: &Scope<'_>) -> Source {
        let pod = scope.pod;
        if let Some(hit) = self.cache.get(key) {
            return Source::Ready(Ok(hit));
        }
        let mut inflight = crate::sync::lock(&self.inflight);
        if let Some((rx, leaders)) = inflight.get(key) {
            leaders.add(&key.item.name, pod);
            tracing::debug!(object = %key.item.name, pod, "following a read in flight");
            return Source::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        scope.requesters.add(&key.item.name, pod);
        inflight.insert(key.clone(), (rx, scope.requesters.clone()));
        Source::Lead(tx)
    }

    /// Caches and shares the lead read's answer for `key`.
    fn publish(&self, tx: watch::Sender<Shared>, key: CacheKey, read: &Answers, started: Instant) -> ReadResult {
        let result = read.get(&key.item, &key.region);
        if let Ok(fetched) = &result {
            self.cache.put(key, fetched.clone(), started);
        }
        let _ = tx.send(Some(result.clone()));
        result
    }

    /// Waits for the leader; reads alone if the leader went away (its mount was cancelled).
    async fn follow(&self, mut rx: watch::Receiver<Shared>, scope: &Scope<'_>, item: &ReadItem) -> ReadResult {
        if let Ok(done) = rx.wait_for(Option::is_some).await
            && let Some(result) = done.clone()
        {
            return result;
        }
        let alone = scope.alone();
        alone.requesters.add(&item.name, scope.pod);
        self.aws.read(&alone, std::slice::from_ref(item)).await.get(item, scope.route.region)
    }
}

fn leading_keys(sources: &[(CacheKey, Source)]) -> Vec<CacheKey> {
    sources.iter().filter(|(_, s)| matches!(s, Source::Lead(_))).map(|(k, _)| k.clone()).collect()
}

/// Removes this mount's in-flight entries however it ends (success, error or cancellation).
struct InflightGuard {
    map: Inflight,
    keys: Vec<CacheKey>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut map = crate::sync::lock(&self.map);
        for key in &self.keys {
            map.remove(key);
        }
    }
}
