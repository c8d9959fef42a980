//! The simulated AWS of the fleet simulator: the read side of Parameter Store and Secrets
//! Manager behind the fetcher's `Reader`, with the account-wide, per-Region quotas enforced as
//! token buckets (`ThrottlingException` past them) and every call counted per API per second.
//! It plans calls with the provider's own `plan_calls` (the real batching), answers each item
//! with its current version (rotation bumps it), and sends nothing anywhere.

use crate::aws::plan_calls;
use crate::budget::{Api, PlannedCall};
use crate::codes::ErrorCode;
use crate::fetch::Reader;
use crate::read::{Answers, FetchError, Fetched, ReadItem, ReadScope};
use crate::secret::SecretBytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Calls per second each API allows an account in a Region (token buckets holding `burst` seconds
/// of quota, one by default).
#[derive(Debug, Clone)]
pub struct Quotas(pub BTreeMap<Api, f64>);

impl Quotas {
    /// AWS's defaults: Parameter Store standard throughput 40/s shared by GetParameter,
    /// GetParameters and GetParametersByPath; BatchGetSecretValue 100/s; GetSecretValue 10,000/s.
    pub fn standard() -> Self {
        Quotas(BTreeMap::from([
            (Api::GetParameters, 40.0),
            (Api::GetParametersByPath, 40.0),
            (Api::GetSecretValue, 10_000.0),
            (Api::BatchGetSecretValue, 100.0),
        ]))
    }

    /// Parameter Store's higher throughput: 3,000/s for GetParameter and GetParameters, 100/s for
    /// GetParametersByPath.
    pub fn higher_throughput() -> Self {
        let mut q = Quotas::standard();
        q.0.insert(Api::GetParameters, 3000.0);
        q.0.insert(Api::GetParametersByPath, 100.0);
        q
    }

    /// The quota of `api`.
    pub fn of(&self, api: Api) -> f64 {
        self.0.get(&api).copied().unwrap_or(f64::INFINITY)
    }

    /// The bucket `api`'s quota shares with others (GetParametersByPath shares Parameter Store's
    /// standard throughput with GetParameters).
    fn bucket(&self, api: Api) -> Api {
        if api == Api::GetParametersByPath && self.of(Api::GetParameters) <= 40.0 { Api::GetParameters } else { api }
    }
}

/// Calls in one second of one API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Second {
    pub ok: u64,
    pub throttled: u64,
}

/// The simulated AWS, shared by every node.
#[derive(Debug)]
pub struct SimAws {
    quotas: Quotas,
    /// Whether nodes batch current secrets into `BatchGetSecretValue` (the provider's default;
    /// `false` is `--batch-get-secret-value=false`: one `GetSecretValue` per secret).
    batch_secrets: bool,
    /// How many seconds of quota a bucket holds (AWS does not publish its burst; 1 s by default).
    burst: f64,
    start: Instant,
    clock: crate::clock::SharedClock,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<(String, Api), (f64, Instant)>,
    versions: HashMap<String, u32>,
    seconds: BTreeMap<(Api, u64), Second>,
}

impl SimAws {
    /// A simulated AWS enforcing `quotas`, on `clock`, for nodes that batch secrets
    /// (`batch_secrets`) or read each alone.
    pub fn new(
        quotas: Quotas,
        burst: std::time::Duration,
        clock: crate::clock::SharedClock,
        batch_secrets: bool,
    ) -> Arc<Self> {
        let start = clock.now();
        let burst = burst.as_secs_f64().max(f64::MIN_POSITIVE);
        Arc::new(SimAws { quotas, batch_secrets, burst, start, clock, state: Mutex::default() })
    }

    /// A new version of `object` (a rotation).
    pub fn rotate(&self, object: &str) -> u32 {
        let mut state = crate::sync::lock(&self.state);
        let v = state.versions.entry(object.to_string()).or_insert(1);
        *v += 1;
        *v
    }

    /// Calls per API per second since the start.
    pub fn seconds(&self) -> BTreeMap<(Api, u64), Second> {
        crate::sync::lock(&self.state).seconds.clone()
    }

    /// One call of `api` in `scope` now: within the quota, or throttled.
    fn call(&self, state: &mut State, scope: &str, api: Api, now: Instant) -> bool {
        let bucket_api = self.quotas.bucket(api);
        let quota = self.quotas.of(bucket_api);
        let capacity = (quota * self.burst).max(1.0);
        let (tokens, at) = state.buckets.entry((scope.to_string(), bucket_api)).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * quota).min(capacity);
        *at = now;
        let ok = *tokens >= 1.0;
        if ok {
            *tokens -= 1.0;
        }
        let second = now.saturating_duration_since(self.start).as_secs();
        let entry = state.seconds.entry((api, second)).or_default();
        if ok {
            entry.ok += 1
        } else {
            entry.throttled += 1
        }
        ok
    }

    fn answer(&self, state: &State, call: &PlannedCall, ok: bool, region: &str, answers: &mut Answers) {
        for item in &call.items {
            let result = if ok {
                let version = state.versions.get(&item.name).copied().unwrap_or(1).to_string();
                Ok(Fetched { value: SecretBytes::from(format!("v{version}").as_str()), version })
            } else {
                let reason = "ThrottlingException: Rate exceeded".to_string();
                Err(FetchError::new(item, region, ErrorCode::Throttled, Some("ThrottlingException".into()), reason))
            };
            answers.insert(item.clone(), result);
        }
    }
}

/// One node's handle on the shared simulated AWS.
#[derive(Debug, Clone)]
pub struct SimReader(pub Arc<SimAws>);

impl Reader for SimReader {
    type Credentials = ();

    fn plan(&self, _identity: &str, items: &[ReadItem]) -> Vec<PlannedCall> {
        plan_calls(items, self.0.batch_secrets)
    }

    async fn read(&self, scope: &ReadScope<'_, ()>, items: &[ReadItem]) -> Answers {
        let aws = &self.0;
        let scope_key = crate::budget::scope_of(scope.identity, scope.route.region);
        let now = aws.clock.now();
        let mut state = crate::sync::lock(&aws.state);
        let mut answers = Answers::default();
        let trace = std::env::var("FLEET_TRACE").ok().filter(|t| t.split(',').any(|t| scope.pod.starts_with(t)));
        for call in plan_calls(items, aws.batch_secrets) {
            let ok = aws.call(&mut state, &scope_key, call.api, now);
            if trace.is_some() {
                eprintln!(
                    "TRACE t={:.1} pod={} id={} api={:?} n={} ok={ok}",
                    now.saturating_duration_since(aws.start).as_secs_f64(),
                    scope.pod,
                    scope.identity.rsplit('/').next().unwrap_or_default(),
                    call.api,
                    call.items.len()
                );
            }
            aws.answer(&state, &call, ok, scope.route.region, &mut answers);
        }
        answers
    }
}
