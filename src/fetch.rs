//! Fetching a mount's objects at the least AWS cost: cached values first (per proven identity),
//! then identical reads already in flight (coalesced), then one batched read of the rest.

use crate::aws::{AwsCredentials, AwsReader, FetchError, Fetched, ReadItem};
use crate::cache::{CacheKey, ValueCache};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

type Shared = Option<Result<Fetched, FetchError>>;

/// Reads through the cache.
#[derive(Debug)]
pub struct Fetcher {
    aws: AwsReader,
    cache: ValueCache,
    inflight: Arc<Mutex<HashMap<CacheKey, watch::Receiver<Shared>>>>,
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

    /// One result per item, in order.
    pub async fn fetch(
        &self,
        creds: &AwsCredentials,
        identity: &str,
        region: &str,
        items: &[ReadItem],
    ) -> Vec<Result<Fetched, FetchError>> {
        let keys: Vec<CacheKey> = items
            .iter()
            .map(|item| CacheKey { identity: identity.to_string(), region: region.to_string(), item: item.clone() })
            .collect();
        let sources: Vec<Source> = keys.iter().map(|k| self.source(k)).collect();
        let _guard = InflightGuard { map: self.inflight.clone(), keys: leading_keys(&keys, &sources) };
        let leaders: Vec<usize> = (0..items.len()).filter(|&i| matches!(sources[i], Source::Lead(_))).collect();
        let started = Instant::now();
        let lead_items: Vec<ReadItem> = leaders.iter().map(|&i| items[i].clone()).collect();
        let mut read = self.aws.read(creds, identity, region, &lead_items).await.into_iter();
        let mut results = Vec::with_capacity(items.len());
        for (source, key) in sources.into_iter().zip(keys) {
            results.push(match source {
                Source::Ready(r) => r,
                Source::Lead(tx) => self.publish(tx, key, read.next(), started),
                Source::Follow(rx) => self.follow(rx, creds, identity, region, &key.item).await,
            });
        }
        results
    }

    /// A cached value, an in-flight read to follow, or the lead on a new read.
    fn source(&self, key: &CacheKey) -> Source {
        if let Some(hit) = self.cache.get(key) {
            return Source::Ready(Ok(hit));
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = inflight.get(key) {
            return Source::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(key.clone(), rx);
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
        region: &str,
        item: &ReadItem,
    ) -> Result<Fetched, FetchError> {
        if let Ok(done) = rx.wait_for(Option::is_some).await
            && let Some(result) = done.clone()
        {
            return result;
        }
        let mut alone = self.aws.read(creds, identity, region, std::slice::from_ref(item)).await;
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
    map: Arc<Mutex<HashMap<CacheKey, watch::Receiver<Shared>>>>,
    keys: Vec<CacheKey>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            map.remove(key);
        }
    }
}
