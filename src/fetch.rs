//! Fetching a mount's objects at the least AWS cost: cached values first (per proven identity),
//! then identical reads already in flight (coalesced), then one batched read of the rest. Each read
//! knows the pods it serves (a follower adds itself), for the audit log.

use crate::aws::{AwsCredentials, AwsReader, FetchError, Fetched, ReadItem, Requesters, Route};
use crate::cache::{CacheKey, ValueCache};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

type Shared = Option<Result<Fetched, FetchError>>;
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
    Ready(Result<Fetched, FetchError>),
    Follow(watch::Receiver<Shared>),
    Lead(watch::Sender<Shared>),
}

impl Fetcher {
    pub fn new(aws: AwsReader, cache: ValueCache) -> Self {
        Fetcher { aws, cache, inflight: Arc::default() }
    }

    pub fn cache(&self) -> &ValueCache {
        &self.cache
    }

    pub fn aws(&self) -> &AwsReader {
        &self.aws
    }

    /// One result per item, in order, read along `route` for `pod` (`namespace/name`).
    pub async fn fetch(
        &self,
        creds: &AwsCredentials,
        identity: &str,
        route: Route<'_>,
        pod: &str,
        items: Vec<ReadItem>,
    ) -> Vec<Result<Fetched, FetchError>> {
        let (shared_identity, region): (Arc<str>, Arc<str>) = (identity.into(), route.region.into());
        let keys: Vec<CacheKey> = items
            .into_iter()
            .map(|item| CacheKey { identity: shared_identity.clone(), region: region.clone(), item })
            .collect();
        let requesters = Requesters::default();
        let sources: Vec<Source> = keys.iter().map(|k| self.source(k, pod, &requesters)).collect();
        let _guard = InflightGuard { map: self.inflight.clone(), keys: leading_keys(&keys, &sources) };
        let lead_items: Vec<ReadItem> = keys
            .iter()
            .zip(&sources)
            .filter(|(_, s)| matches!(s, Source::Lead(_)))
            .map(|(k, _)| k.item.clone())
            .collect();
        let started = Instant::now();
        let mut read = if lead_items.is_empty() {
            Vec::new().into_iter()
        } else {
            self.aws.read(creds, identity, route, &lead_items, &requesters).await.into_iter()
        };
        let mut results = Vec::with_capacity(keys.len());
        for (source, key) in sources.into_iter().zip(keys) {
            results.push(match source {
                Source::Ready(r) => r,
                Source::Lead(tx) => self.publish(tx, key, read.next(), started),
                Source::Follow(rx) => self.follow(rx, creds, identity, route, pod, &key.item).await,
            });
        }
        results
    }

    /// A cached value, an in-flight read to follow (joining its requesters), or the lead on a
    /// new read (served to `requesters`).
    fn source(&self, key: &CacheKey, pod: &str, requesters: &Requesters) -> Source {
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
        requesters.add(&key.item.name, pod);
        inflight.insert(key.clone(), (rx, requesters.clone()));
        Source::Lead(tx)
    }

    fn publish(
        &self,
        tx: watch::Sender<Shared>,
        key: CacheKey,
        result: Option<Result<Fetched, FetchError>>,
        started: Instant,
    ) -> Result<Fetched, FetchError> {
        let result = result.unwrap_or_else(|| Err(missing(&key.item)));
        if let Ok(fetched) = &result {
            self.cache.put(key, fetched.clone(), started);
        }
        let _ = tx.send(Some(result.clone()));
        result
    }

    /// Waits for the leader; reads alone if the leader went away (its mount was cancelled).
    async fn follow(
        &self,
        mut rx: watch::Receiver<Shared>,
        creds: &AwsCredentials,
        identity: &str,
        route: Route<'_>,
        pod: &str,
        item: &ReadItem,
    ) -> Result<Fetched, FetchError> {
        if let Ok(done) = rx.wait_for(Option::is_some).await
            && let Some(result) = done.clone()
        {
            return result;
        }
        let requesters = Requesters::default();
        requesters.add(&item.name, pod);
        let mut alone = self.aws.read(creds, identity, route, std::slice::from_ref(item), &requesters).await;
        alone.pop().unwrap_or_else(|| Err(missing(item)))
    }
}

fn missing(item: &ReadItem) -> FetchError {
    FetchError {
        code: crate::codes::ErrorCode::Internal,
        object: item.name.clone(),
        store: item.object_type.as_str(),
        region: String::new(),
        aws_code: None,
        reason: "no result was produced for this object".into(),
    }
}

fn leading_keys(keys: &[CacheKey], sources: &[Source]) -> Vec<CacheKey> {
    keys.iter().zip(sources).filter(|(_, s)| matches!(s, Source::Lead(_))).map(|(k, _)| k.clone()).collect()
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
