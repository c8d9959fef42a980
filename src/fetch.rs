//! Fetching a mount's objects at the least AWS cost: cached values first (per proven identity),
//! then identical reads already in flight (coalesced), then one batched read of the rest, admitted
//! by the node's AWS budget ([`crate::budget`]: first mounts ahead of re-syncs, adaptive backoff).
//! A refresh that AWS or the budget throttled is answered from the cache past its TTL, within
//! `--stale-if-throttled`, never beyond. Each read knows the pods it serves (a follower adds
//! itself), for the audit log.
//!
//! The fetcher reads through a [`Reader`]: [`AwsReader`] in service, a simulated AWS in the fleet
//! simulator (`crate::fleet`), so the same cache, coalescing, budget and stale rules run in both.

use crate::aws::{AwsCredentials, AwsReader};
use crate::budget::{Budget, PlannedCall, Priority, Turn};
use crate::cache::{CacheKey, ValueCache};
use crate::codes::ErrorCode;
use crate::read::{Answers, FetchError, ReadItem, ReadResult, ReadScope, Requesters, Route};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The context of a mount's reads, with the credentials this fetcher reads with.
pub type Scope<'a> = ReadScope<'a, AwsCredentials>;

/// What the fetcher reads through: plans the calls a read makes, then makes them.
pub trait Reader: Send + Sync + std::fmt::Debug {
    /// The credentials a read carries.
    type Credentials: Send + Sync;
    /// The calls reading `items` as `identity` makes now.
    fn plan(&self, identity: &str, items: &[ReadItem]) -> Vec<PlannedCall>;
    /// An answer for every item.
    fn read(
        &self,
        scope: &ReadScope<'_, Self::Credentials>,
        items: &[ReadItem],
    ) -> impl Future<Output = Answers> + Send;
}

impl Reader for AwsReader {
    type Credentials = AwsCredentials;

    fn plan(&self, identity: &str, items: &[ReadItem]) -> Vec<PlannedCall> {
        AwsReader::plan(self, identity, items)
    }

    fn read(&self, scope: &Scope<'_>, items: &[ReadItem]) -> impl Future<Output = Answers> + Send {
        AwsReader::read(self, scope, items)
    }
}

type Shared = Option<ReadResult>;
/// Reads in flight: the result to wait for, and the pods waiting.
type Inflight = Arc<Mutex<HashMap<CacheKey, (watch::Receiver<Shared>, Requesters)>>>;

/// Reads through the cache.
#[derive(Debug)]
pub struct Fetcher<R = AwsReader> {
    aws: Arc<R>,
    cache: Arc<ValueCache>,
    budget: Arc<Budget>,
    inflight: Inflight,
}

/// What each item of a mount waits on.
enum Source {
    Ready(ReadResult),
    Follow(watch::Receiver<Shared>),
    Lead(watch::Sender<Shared>),
}

impl<R: Reader + 'static> Fetcher<R>
where
    R::Credentials: Clone + 'static,
{
    pub fn new(aws: R, cache: ValueCache, budget: Budget) -> Self {
        let cache = cache.with_queued_window(budget.queued_window());
        Fetcher { aws: Arc::new(aws), cache: Arc::new(cache), budget: Arc::new(budget), inflight: Arc::default() }
    }

    pub fn aws(&self) -> &R {
        &self.aws
    }

    /// The value cache.
    pub fn cache(&self) -> &ValueCache {
        &self.cache
    }

    /// The budget's counters (metrics).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// An answer for every item, read in the scope's context (along its route, for its pod),
    /// as a first mount or a re-sync (`priority`).
    pub async fn fetch(
        &self,
        scope: &ReadScope<'_, R::Credentials>,
        items: Vec<ReadItem>,
        priority: Priority,
    ) -> Answers {
        let (identity, region): (Arc<str>, Arc<str>) = (scope.identity.into(), scope.route.region.into());
        let keys: Vec<CacheKey> = items
            .into_iter()
            .map(|item| CacheKey { identity: identity.clone(), region: region.clone(), item })
            .collect();
        let sources: Vec<(CacheKey, Source)> = keys.into_iter().map(|k| (k.clone(), self.source(&k, scope))).collect();
        let _guard = InflightGuard { map: self.inflight.clone(), keys: leading_keys(&sources) };
        let lead_items: Vec<ReadItem> = leading_keys(&sources).into_iter().map(|k| k.item).collect();
        let started = self.cache.now();
        // The TTL's jitter is drawn only when something is read (not on every cache hit).
        let (read, queued, draw) = if lead_items.is_empty() {
            (Answers::default(), HashSet::new(), 0.0)
        } else {
            let (read, queued) = self.read_admitted(scope, &lead_items, priority).await;
            (read, queued, self.cache.life_draw())
        };
        let mut answers = Answers::default();
        let mut stale = 0usize;
        let (mut throttled, mut answered) = (Vec::new(), Vec::new());
        for (key, source) in sources {
            let item = key.item.clone();
            let result = match source {
                Source::Ready(r) => r,
                Source::Lead(tx) => {
                    let queued = queued.contains(&key.item);
                    self.publish(tx, key, &read, (started, draw), queued, &mut stale)
                }
                Source::Follow(rx) => self.follow(rx, scope, &key.item).await,
            };
            if priority == Priority::First {
                match &result {
                    Err(e) if e.code == ErrorCode::Throttled => throttled.push(item.clone()),
                    _ => answered.push(item.clone()),
                }
            }
            answers.insert(item, result);
        }
        self.first_mount_outcome(scope, &throttled, &answered);
        if stale > 0 {
            tracing::warn!(
                objects = stale,
                pod = scope.pod,
                "AWS throttled the refresh; serving cached values past their TTL (--stale-if-throttled)"
            );
        }
        answers
    }

    /// A cached value, an in-flight read to follow (joining its requesters), or the lead on a
    /// new read (served to `requesters`).
    fn source(&self, key: &CacheKey, scope: &ReadScope<'_, R::Credentials>) -> Source {
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

    /// A first mount's outcome for every pod that asked (the leader of a coalesced read and its
    /// followers alike): if any item was throttled, its retries are budgeted for every API it
    /// reads; once every item is answered, that ends.
    fn first_mount_outcome(
        &self,
        scope: &ReadScope<'_, R::Credentials>,
        throttled: &[ReadItem],
        answered: &[ReadItem],
    ) {
        if throttled.is_empty() && answered.is_empty() {
            return;
        }
        let budget_scope = crate::budget::scope_of(scope.identity, scope.route.region);
        if throttled.is_empty() {
            for call in self.aws.plan(scope.identity, answered) {
                self.budget.first_mount_answered(&budget_scope, scope.pod, call.api);
            }
            return;
        }
        // The mount failed: every API it reads stays a retry (an API answered this time would
        // otherwise go ahead unbudgeted on the next attempt, once its cached answer expired).
        let all: Vec<ReadItem> = throttled.iter().chain(answered).cloned().collect();
        for call in self.aws.plan(scope.identity, &all) {
            self.budget.first_mount_throttled(&budget_scope, scope.pod, call.api);
        }
    }

    /// Reads `items` once the budget admits them: now, after a bounded wait (a first mount), or
    /// not at all (a re-sync the budget or a backoff defers: every item is answered `Throttled`).
    /// Throttling seen in the answers backs off the scope and API. Also returns the items whose
    /// refresh the budget has queued (served from the cache until it lands).
    async fn read_admitted(
        &self,
        scope: &ReadScope<'_, R::Credentials>,
        items: &[ReadItem],
        priority: Priority,
    ) -> (Answers, HashSet<ReadItem>) {
        let budget_scope = crate::budget::scope_of(scope.identity, scope.route.region);
        let plan = self.budget.spill(&budget_scope, self.aws.plan(scope.identity, items), priority);
        let admission = self.budget.admit_pod(&budget_scope, scope.pod, &plan, priority);
        if !admission.wait.is_zero() {
            tokio::time::sleep(admission.wait).await;
        }
        let mut go: Vec<&PlannedCall> = Vec::new();
        let mut not_now: Vec<&PlannedCall> = Vec::new();
        let mut refused: Vec<&PlannedCall> = Vec::new();
        for (call, turn) in plan.iter().zip(&admission.turns) {
            match turn {
                Turn::Go => go.push(call),
                Turn::Refuse => refused.push(call),
                Turn::Defer => not_now.push(call),
                Turn::Queue(wait) => {
                    not_now.push(call);
                    self.refresh_later(scope, &budget_scope, call.clone(), *wait);
                }
            }
        }
        let mut answers = self.read_calls(scope, &go).await;
        let queued: HashSet<ReadItem> = not_now
            .iter()
            .filter(|call| self.budget.queued(&budget_scope, call))
            .flat_map(|call| call.items.iter().cloned())
            .collect();
        for call in not_now {
            if priority == Priority::First {
                answers.extend(refused_retry(&call.items, scope.route.region, call.api));
            } else {
                answers.extend(deferred(&call.items, scope.route.region, call.api));
            }
        }
        for call in refused {
            answers.extend(refused_retry(&call.items, scope.route.region, call.api));
        }
        for call in go {
            let throttled = call
                .items
                .iter()
                .any(|i| matches!(answers.get(i, scope.route.region), Err(e) if e.code == ErrorCode::Throttled));
            if throttled {
                self.budget.throttled(&budget_scope, call.api);
            } else {
                self.budget.succeeded(&budget_scope, call.api);
            }
        }
        (answers, queued)
    }

    /// Reads the admitted calls: as one read (the reader batches as it planned), with each
    /// secret the budget split out of a batch ([`Budget::spill`]) read alone beside it.
    async fn read_calls(&self, scope: &ReadScope<'_, R::Credentials>, calls: &[&PlannedCall]) -> Answers {
        let (split, planned): (Vec<&PlannedCall>, Vec<&PlannedCall>) =
            calls.iter().partition(|c| c.api == crate::budget::Api::GetSecretValue);
        let together: Vec<ReadItem> = planned.iter().flat_map(|c| c.items.iter().cloned()).collect();
        if split.len() <= 1 {
            let all: Vec<ReadItem> = together.into_iter().chain(split.iter().flat_map(|c| c.items.clone())).collect();
            return if all.is_empty() { Answers::default() } else { self.aws.read(scope, &all).await };
        }
        let mut reads = Vec::with_capacity(split.len() + 1);
        if !together.is_empty() {
            reads.push(together);
        }
        reads.extend(split.iter().map(|c| c.items.clone()));
        let answered = futures::future::join_all(reads.iter().map(|items| self.aws.read(scope, items))).await;
        let mut answers = Answers::default();
        for a in answered {
            answers.extend(a);
        }
        answers
    }

    /// Reads `call` in the background after `wait` (the slot the budget reserved for it) and
    /// caches what it answers, so the pod's next re-sync finds the values fresh.
    fn refresh_later(
        &self,
        scope: &ReadScope<'_, R::Credentials>,
        budget_scope: &str,
        call: PlannedCall,
        wait: Duration,
    ) {
        let (aws, cache, budget) = (self.aws.clone(), self.cache.clone(), self.budget.clone());
        let credentials = scope.credentials.clone();
        let (identity, region, pod) =
            (scope.identity.to_string(), scope.route.region.to_string(), scope.pod.to_string());
        let (spc, budget_scope) = (scope.route.spc.clone(), budget_scope.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let scope = ReadScope::new(&credentials, &identity, Route::new(&region, &spc), &pod);
            let (started, draw) = (cache.now(), cache.life_draw());
            let answers = aws.read(&scope, &call.items).await;
            budget.refreshed(&budget_scope, &call);
            let mut throttled = false;
            for item in &call.items {
                match answers.get(item, &region) {
                    Ok(fetched) => {
                        let key = CacheKey {
                            identity: identity.as_str().into(),
                            region: region.as_str().into(),
                            item: item.clone(),
                        };
                        cache.put_drawn(key, fetched, started, draw);
                    }
                    Err(e) => throttled |= e.code == ErrorCode::Throttled,
                }
            }
            if throttled {
                budget.throttled(&budget_scope, call.api);
            }
        });
    }

    /// Caches and shares the lead read's answer for `key`; a throttled refresh is answered from
    /// the cache within the stale window, or, when the budget has queued its refresh (`queued`),
    /// until that refresh lands (counted in `stale`).
    fn publish(
        &self,
        tx: watch::Sender<Shared>,
        key: CacheKey,
        read: &Answers,
        (started, draw): (Instant, f64),
        queued: bool,
        stale: &mut usize,
    ) -> ReadResult {
        let mut result = read.get(&key.item, &key.region);
        match &result {
            Ok(fetched) => self.cache.put_drawn(key, fetched.clone(), started, draw),
            Err(e) if e.code == ErrorCode::Throttled => {
                let old = if queued { self.cache.get_queued(&key) } else { self.cache.get_stale(&key) };
                if let Some(old) = old {
                    *stale += 1;
                    self.budget.stats.stale_served.inc();
                    result = Ok(old);
                }
            }
            Err(_) => {}
        }
        let _ = tx.send(Some(result.clone()));
        result
    }

    /// Waits for the leader; reads alone if the leader went away (its mount was cancelled).
    async fn follow(
        &self,
        mut rx: watch::Receiver<Shared>,
        scope: &ReadScope<'_, R::Credentials>,
        item: &ReadItem,
    ) -> ReadResult {
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

/// Every item answered `Throttled`: the budget deferred this re-sync.
fn deferred(items: &[ReadItem], region: &str, api: crate::budget::Api) -> Vec<(ReadItem, ReadResult)> {
    let reason = format!(
        "not read now: this node's AWS budget for {} is spent or backing off after throttling (--aws-budget); the pod keeps its files and the driver asks again at its next poll",
        api.as_str()
    );
    items
        .iter()
        .map(|i| (i.clone(), Err(FetchError::new(i, region, ErrorCode::Throttled, None, reason.clone()))))
        .collect()
}

/// Every item answered `Throttled`: a first mount's retry found no budgeted slot.
fn refused_retry(items: &[ReadItem], region: &str, api: crate::budget::Api) -> Vec<(ReadItem, ReadResult)> {
    let reason = format!(
        "not read now: AWS throttled this pod's earlier attempt, and this node's AWS budget for {} has no slot within --aws-budget-max-wait (its read is queued at the next one) or it backs off after throttling; retryable: the kubelet retries the mount",
        api.as_str()
    );
    items
        .iter()
        .map(|i| (i.clone(), Err(FetchError::new(i, region, ErrorCode::Throttled, None, reason.clone()))))
        .collect()
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
