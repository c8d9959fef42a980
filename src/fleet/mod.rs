//! The fleet simulator (`scripts/bench.sh fleet`, `benches/fleet.rs`; a small configuration runs
//! in `cargo test`): N nodes in one process, each with the provider's own `Fetcher` (value
//! cache with per-store TTLs and jitter, coalescing, the call plan and its batching, the AWS
//! budget, adaptive backoff, stale-if-throttled), on one injected clock (tokio's, paused: time
//! jumps to the next timer, so an hour of fleet runs in seconds), against [`aws::SimAws`], a
//! simulated AWS behind the fetcher's `Reader` that enforces the quotas and counts calls.
//!
//! What is simulated, not run: the AWS services (token buckets of one second's quota per account,
//! Region and API; a call is one attempt: the SDK's own retries of a throttled call are not
//! modelled, they would add attempts), the CSI driver (each node re-syncs every mounted pod once
//! per poll interval at its own phase, one after another, as driver v1.5's rotation reconciler
//! does; or, with [`FleetConfig::per_pod_polls`], each pod at its own phase, as the kubelet
//! republishes volumes for driver v1.6; a first mount
//! that fails is retried after 1, 2, 4 … 60 s as the kubelet does), the identity step (STS is not
//! simulated: credentials are cached per pod for an hour, one `AssumeRoleWithWebIdentity` per pod
//! per hour, outside the read quotas), and the rendering and writing of files.

pub mod aws;
pub mod go;
mod report;

pub use crate::budget::Api;
pub use report::{ApiStats, FleetReport};

use crate::budget::{Budget, BudgetConfig, BudgetRate, Priority};
use crate::cache::{Lifetimes, ValueCache};
use crate::clock::{Clock, SharedClock};
use crate::fetch::Fetcher;
use crate::jitter::Jitter;
use crate::params::ObjectType;
use crate::read::{ReadItem, ReadScope, Route, ServiceUrls};
use aws::{Quotas, SimAws, SimReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The simulator's inputs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub nodes: usize,
    pub pods_per_node: usize,
    /// Distinct (identity, SecretProviderClass) pairs on one node: the pods of one app share both.
    pub apps_per_node: usize,
    /// Distinct apps in the cluster (each node runs `apps_per_node` of them).
    pub apps: usize,
    pub secrets_per_spc: usize,
    pub params_per_spc: usize,
    /// The driver's rotation poll interval.
    pub poll: Duration,
    pub ttl_ssm: Duration,
    pub ttl_secretsmanager: Duration,
    pub stale_if_throttled: Duration,
    pub jitter: f64,
    /// `Some(h)`: each node's `--aws-budget` is `h` × quota / nodes for every API (the chart's
    /// formula); `None`: no budget (today's default).
    pub budget_headroom: Option<f64>,
    /// Another headroom for some APIs (the chart's `fleet.budgetHeadroomByApi`).
    pub budget_headroom_by_api: Vec<(Api, f64)>,
    pub max_wait: Duration,
    /// The longest a re-sync waits for the node's next slot (the provider's, by default).
    pub resync_wait: Duration,
    pub quotas: Quotas,
    /// A Deployment of this many new replicas (a new app) rolling out over `rollout_over`.
    pub rollout_replicas: usize,
    pub rollout_over: Duration,
    /// `false` (the steady-state scenario): the run starts from a running fleet, every pod
    /// already mounted and every node's cache warm, with values cached at ages spread evenly
    /// across the TTL; `true`: every node and pod starts at once (the cold start of the whole
    /// fleet, measured as its drain time against R / Q).
    pub cold_start: bool,
    /// How many seconds of quota the simulated AWS lets an account spend at once (AWS does not
    /// publish it; 1 s by default).
    pub aws_burst: Duration,
    /// The app whose objects rotate: app 0 runs on nodes n ≡ 0 (mod 20), every one of which also
    /// runs a rollout pod (the busiest nodes: 11 apps and a first mount); app 1 on nodes
    /// n ≡ 3 (mod 20), none of which does.
    pub rotated_app: usize,
    /// Whether secrets are batched into `BatchGetSecretValue` (the default; `false` is
    /// `--batch-get-secret-value=false`, one `GetSecretValue` per secret).
    pub batch_secrets: bool,
    /// How re-syncs come: `false` (the default), a node's whole round at once, every poll, at the
    /// node's phase (driver v1.5's rotation reconciler walks its pods in one loop); `true`, each
    /// pod at its own phase (driver v1.6: the kubelet republishes each pod's volume on its own).
    pub per_pod_polls: bool,
    pub seed: u64,
}

/// The chart's default `fleet.budgetHeadroom`: the share of each quota the fleet's budgets add up
/// to.
pub const CHART_HEADROOM: f64 = 0.8;
/// The chart's default `fleet.budgetHeadroomByApi`: `GetSecretValue` 0.9. First mounts, which go
/// ahead of the budget, read secrets with `BatchGetSecretValue`, so its quota needs less room for
/// them; and at 0.8 a node at 5,000 nodes needs 57 s to read its 100 secrets, longer than the
/// shortest TTL (54 s), so driver v1.5's reconciler read them twice in one pass (docs/fleet.md).
pub const CHART_HEADROOM_BY_API: [(Api, f64); 1] = [(Api::GetSecretValue, 0.9)];

impl FleetConfig {
    /// The issue's fleet at `nodes` nodes: 30 pods per node from 10 apps (3 replicas of each per
    /// node: one IRSA role and one SecretProviderClass per app), 20 objects per
    /// SecretProviderClass (10 secrets, 10 parameters), the driver's 2-minute poll, the 60 s TTL,
    /// standard quotas, a 500-replica rollout over 5 minutes, no budget.
    pub fn issue(nodes: usize) -> Self {
        FleetConfig {
            nodes,
            pods_per_node: 30,
            apps_per_node: 10,
            apps: 200,
            secrets_per_spc: 10,
            params_per_spc: 10,
            poll: Duration::from_secs(120),
            ttl_ssm: Duration::from_secs(60),
            ttl_secretsmanager: Duration::from_secs(60),
            stale_if_throttled: Duration::from_secs(300),
            jitter: crate::cache::TTL_JITTER,
            budget_headroom: None,
            budget_headroom_by_api: Vec::new(),
            max_wait: Duration::ZERO,
            resync_wait: BudgetConfig::default().resync_wait,
            quotas: Quotas::standard(),
            rollout_replicas: 500,
            rollout_over: Duration::from_secs(300),
            cold_start: false,
            aws_burst: Duration::from_secs(1),
            rotated_app: 0,
            batch_secrets: true,
            per_pod_polls: false,
            seed: 1,
        }
    }

    /// The same fleet with the budget the chart computes for it (`headroom` of each quota).
    pub fn with_budget(self, headroom: f64) -> Self {
        FleetConfig { budget_headroom: Some(headroom), ..self }
    }

    /// The same fleet with the budget the chart computes for it by default ([`CHART_HEADROOM`],
    /// [`CHART_HEADROOM_BY_API`]).
    pub fn with_chart_budget(self) -> Self {
        FleetConfig { budget_headroom_by_api: CHART_HEADROOM_BY_API.to_vec(), ..self.with_budget(CHART_HEADROOM) }
    }

    /// Each node's `--aws-budget` flags.
    pub fn budget_rates(&self) -> Vec<BudgetRate> {
        let Some(headroom) = self.budget_headroom else { return Vec::new() };
        Api::ALL
            .into_iter()
            .map(|api| {
                let headroom =
                    self.budget_headroom_by_api.iter().find(|(a, _)| *a == api).map_or(headroom, |(_, h)| *h);
                BudgetRate { api, per_second: headroom * self.quotas.of(api) / self.nodes.max(1) as f64 }
            })
            .collect()
    }

    /// R / Q: the fewest seconds in which the fleet can refresh every value once, for the API
    /// that binds (R distinct reads: nodes × apps per node × batches per app).
    pub fn refresh_floor(&self) -> Duration {
        let reads = |batches: usize| (self.nodes * self.apps_per_node * batches) as f64;
        let gp = reads(self.params_per_spc.div_ceil(10)) / self.quotas.of(Api::GetParameters);
        // Secrets can be read one per `GetSecretValue` or up to 20 per `BatchGetSecretValue`, two
        // quotas side by side (with a budget the provider spends both: `Budget::spill`).
        let per_batch = self.secrets_per_spc.clamp(1, 20) as f64;
        let secrets_per_second = if self.secrets_per_spc >= 2 && self.batch_secrets {
            self.quotas.of(Api::GetSecretValue) + self.quotas.of(Api::BatchGetSecretValue) * per_batch
        } else {
            self.quotas.of(Api::GetSecretValue)
        };
        let bgsv = reads(self.secrets_per_spc) / secrets_per_second;
        Duration::from_secs_f64(gp.max(bgsv))
    }

    /// The issue's rotation target: 1.25 × (R / Q + the poll interval).
    pub fn rotation_bound(&self) -> Duration {
        (self.refresh_floor() + self.poll).mul_f64(1.25)
    }
}

/// Tokio's clock (paused in the simulator) as the provider's [`Clock`].
#[derive(Debug)]
struct TokioClock {
    std: Instant,
    tokio: tokio::time::Instant,
    system: SystemTime,
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        self.std + (tokio::time::Instant::now() - self.tokio)
    }

    fn system_now(&self) -> SystemTime {
        self.system + (tokio::time::Instant::now() - self.tokio)
    }
}

/// The phases of a run, as offsets from its start.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    warmup: Duration,
    rotation: Duration,
    rollout: Duration,
    end: Duration,
}

impl Timeline {
    /// A warm start is measured from its first second; a cold start's steady state begins after a
    /// warm-up of twice R / Q (at least two polls) and one poll.
    fn of(config: &FleetConfig) -> Self {
        let warmup = if config.cold_start {
            (config.poll * 2).max(config.refresh_floor() * 2) + config.poll
        } else {
            Duration::ZERO
        };
        let rotation = warmup + Duration::from_secs(60);
        let rollout = warmup + Duration::from_secs(300);
        let end = (rotation + config.rotation_bound().mul_f64(1.5))
            .max(rollout + config.rollout_over + config.poll * 2)
            .max(warmup + Duration::from_secs(900));
        Timeline { warmup, rotation, rollout, end }
    }
}

/// One app: its identity and the items of its SecretProviderClass.
#[derive(Debug)]
struct App {
    identity: String,
    items: Vec<ReadItem>,
}

fn app(config: &FleetConfig, k: usize) -> App {
    let item = |name: String, object_type| ReadItem {
        name,
        object_type,
        version_id: None,
        version_label: None,
        listing: None,
    };
    let mut items: Vec<ReadItem> =
        (0..config.secrets_per_spc).map(|i| item(format!("app{k}/secret{i}"), ObjectType::SecretsManager)).collect();
    items.extend((0..config.params_per_spc).map(|i| item(format!("/app{k}/param{i}"), ObjectType::Parameter)));
    App { identity: format!("arn:aws:iam::111122223333:role/app{k}"), items }
}

/// A mounted pod, as its node's reconciler sees it.
#[derive(Debug)]
struct Pod {
    app: usize,
    name: String,
    /// Holds the rotated values (only tracked for the rotated app).
    rotated: bool,
}

/// One node: its provider's fetcher and its mounted pods.
struct Node {
    fetcher: Fetcher<SimReader>,
    pods: Mutex<Vec<Pod>>,
}

/// What every task shares.
struct World {
    config: FleetConfig,
    apps: Vec<App>,
    nodes: Vec<Node>,
    aws: Arc<SimAws>,
    start: tokio::time::Instant,
    timeline: Timeline,
    /// The rotated objects and their new versions, once rotated.
    rotated: Mutex<Option<Vec<(String, String)>>>,
    record: Mutex<report::Record>,
}

const REGION: &str = "us-east-1";

impl World {
    fn node(config: &FleetConfig, aws: &Arc<SimAws>, clock: &SharedClock, n: usize) -> Node {
        let lifetimes = Lifetimes {
            ssm: config.ttl_ssm,
            secrets_manager: config.ttl_secretsmanager,
            stale_if_throttled: config.stale_if_throttled,
            jitter: config.jitter,
        };
        let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(n as u64);
        let cache = ValueCache::new(config.ttl_ssm.max(config.ttl_secretsmanager), 10_000, 64 << 20)
            .with_clock(clock.clone())
            .with_lifetimes(lifetimes, seed);
        let budget_config = BudgetConfig {
            rates: config.budget_rates(),
            max_wait: config.max_wait,
            resync_wait: config.resync_wait,
            ..BudgetConfig::default()
        };
        let budget = Budget::new(budget_config, clock.clone(), seed ^ 0x5555);
        Node { fetcher: Fetcher::new(SimReader(aws.clone()), cache, budget), pods: Mutex::default() }
    }

    /// The apps node `n` runs.
    fn apps_of(&self, n: usize) -> Vec<usize> {
        let c = &self.config;
        (0..c.apps_per_node).map(|j| (n * 7 + j * (c.apps / c.apps_per_node).max(1)) % c.apps).collect()
    }

    fn at(&self, offset: Duration) -> tokio::time::Instant {
        self.start + offset
    }

    fn elapsed(&self) -> Duration {
        tokio::time::Instant::now() - self.start
    }

    /// One fetch of `pod`'s objects on `node`: whether every object was answered, and whether
    /// the answers carry the rotated versions.
    async fn fetch(&self, node: &Node, app: usize, pod: &str, priority: Priority) -> (bool, bool) {
        let spc = ServiceUrls::default();
        let app = &self.apps[app];
        let scope = ReadScope::new(&(), app.identity.as_str(), Route::new(REGION, &spc), pod);
        let answers = node.fetcher.fetch(&scope, app.items.clone(), priority).await;
        let ok = app.items.iter().all(|i| answers.get(i, REGION).is_ok());
        let rotated = crate::sync::lock(&self.rotated).as_ref().is_some_and(|objects| {
            objects.iter().all(|(name, version)| {
                app.items
                    .iter()
                    .filter(|i| &i.name == name)
                    .all(|i| answers.get(i, REGION).is_ok_and(|f| &f.version == version))
            })
        });
        (ok, rotated)
    }

    /// A pod's first mount at `offset`, retried as the kubelet does until it succeeds; then the
    /// pod joins its node's re-syncs.
    async fn first_mount(self: Arc<Self>, n: usize, app: usize, name: String, offset: Duration, rollout: bool) {
        tokio::time::sleep_until(self.at(offset)).await;
        let node = &self.nodes[n];
        let mut backoff = Duration::from_secs(1);
        loop {
            let (ok, rotated) = self.fetch(node, app, &name, Priority::First).await;
            if ok {
                let delay = self.elapsed().saturating_sub(offset);
                crate::sync::lock(&self.record).cold(delay, rollout, offset >= self.timeline.warmup);
                let index = {
                    let mut pods = crate::sync::lock(&node.pods);
                    pods.push(Pod { app, name, rotated });
                    pods.len() - 1
                };
                if self.config.per_pod_polls {
                    let next = self.elapsed() + self.config.poll;
                    self.resync_pod(n, index, next).await;
                }
                return;
            }
            if self.elapsed() >= self.timeline.end {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    /// Node `n`'s reconciler: every poll interval, at the node's own phase, a re-sync of every
    /// mounted pod.
    async fn reconcile(self: Arc<Self>, n: usize, phase: Duration) {
        let node = &self.nodes[n];
        let mut next = phase;
        while next < self.timeline.end {
            tokio::time::sleep_until(self.at(next)).await;
            let pods: Vec<(usize, String, bool)> =
                crate::sync::lock(&node.pods).iter().map(|p| (p.app, p.name.clone(), p.rotated)).collect();
            let started = self.elapsed();
            for (i, (app, name, held)) in pods.into_iter().enumerate() {
                self.resync(node, i, (app, &name, held), Priority::ResyncInTurn).await;
            }
            crate::sync::lock(&self.record).pass(self.elapsed() - started);
            next += self.config.poll;
        }
    }

    /// Pod `index` of node `n` on its own: a re-sync every poll interval from `next` (driver v1.6,
    /// [`FleetConfig::per_pod_polls`]).
    async fn resync_pod(&self, n: usize, index: usize, mut next: Duration) {
        let node = &self.nodes[n];
        while next < self.timeline.end {
            tokio::time::sleep_until(self.at(next)).await;
            let (app, name, held) = {
                let pods = crate::sync::lock(&node.pods);
                let p = &pods[index];
                (p.app, p.name.clone(), p.rotated)
            };
            self.resync(node, index, (app, &name, held), Priority::Resync).await;
            next += self.config.poll;
        }
    }

    /// One re-sync of pod `index` of `node` (its app, name and whether it held the rotated values
    /// before), recording when a pod of the rotated app first holds them.
    async fn resync(&self, node: &Node, index: usize, (app, name, held): (usize, &str, bool), priority: Priority) {
        let (_, rotated) = self.fetch(node, app, name, priority).await;
        if app == self.config.rotated_app && rotated && !held {
            crate::sync::lock(&node.pods)[index].rotated = true;
            crate::sync::lock(&self.record).rotated_pod(self.elapsed());
            if std::env::var_os("FLEET_TRACE").is_some() {
                eprintln!("ROTATED t={:.1} pod={name}", self.elapsed().as_secs_f64());
            }
        }
    }

    /// A running node `n`: its pods mounted, and each app's values in its cache, read at an age
    /// spread evenly across the TTL (as in a fleet that has run for longer than the TTL).
    fn warm(&self, n: usize, apps: &[usize], jitter: &mut Jitter) {
        let node = &self.nodes[n];
        let cache = node.fetcher.cache();
        let now = cache.now();
        let ttl = self.config.ttl_ssm.min(self.config.ttl_secretsmanager);
        for &app in apps {
            let age = ttl.mul_f64(jitter.fraction());
            let draw = cache.life_draw();
            let (identity, region): (Arc<str>, Arc<str>) = (self.apps[app].identity.as_str().into(), REGION.into());
            for item in &self.apps[app].items {
                let key =
                    crate::cache::CacheKey { identity: identity.clone(), region: region.clone(), item: item.clone() };
                let fetched =
                    crate::read::Fetched { value: crate::secret::SecretBytes::from("v1"), version: "1".into() };
                cache.put_drawn(key, fetched, now.checked_sub(age).unwrap_or(now), draw);
            }
        }
        let mut pods = crate::sync::lock(&node.pods);
        for p in 0..self.config.pods_per_node {
            pods.push(Pod { app: apps[p % apps.len()], name: format!("node{n}/pod{p}"), rotated: false });
        }
    }

    /// Rotates one secret and one parameter of the rotated app at the rotation time.
    async fn rotate(self: Arc<Self>) {
        tokio::time::sleep_until(self.at(self.timeline.rotation)).await;
        let app = &self.apps[self.config.rotated_app];
        let mut objects = Vec::new();
        for object_type in [ObjectType::SecretsManager, ObjectType::Parameter] {
            if let Some(item) = app.items.iter().find(|i| i.object_type == object_type) {
                objects.push((item.name.clone(), self.aws.rotate(&item.name).to_string()));
            }
        }
        *crate::sync::lock(&self.rotated) = Some(objects);
        let pods = self
            .nodes
            .iter()
            .map(|n| crate::sync::lock(&n.pods).iter().filter(|p| p.app == self.config.rotated_app).count())
            .sum();
        crate::sync::lock(&self.record).rotation(self.elapsed(), pods);
    }
}

/// Runs the fleet to the end of its timeline on tokio's clock. Call it on a current-thread
/// runtime started paused (`tokio::runtime::Builder::start_paused`), or it runs in real time.
pub async fn run(config: FleetConfig) -> FleetReport {
    let wall = std::time::Instant::now();
    let clock: SharedClock =
        Arc::new(TokioClock { std: Instant::now(), tokio: tokio::time::Instant::now(), system: SystemTime::now() });
    let aws = SimAws::new(config.quotas.clone(), config.aws_burst, clock.clone(), config.batch_secrets);
    let timeline = Timeline::of(&config);
    let nodes = (0..config.nodes).map(|n| World::node(&config, &aws, &clock, n)).collect();
    let apps = (0..=config.apps).map(|k| app(&config, k)).collect();
    let world = Arc::new(World {
        config: config.clone(),
        apps,
        nodes,
        aws: aws.clone(),
        start: tokio::time::Instant::now(),
        timeline,
        rotated: Mutex::default(),
        record: Mutex::default(),
    });
    let mut jitter = Jitter::new(config.seed);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..config.nodes {
        let apps = world.apps_of(n);
        if config.cold_start {
            for p in 0..config.pods_per_node {
                let name = format!("node{n}/pod{p}");
                tasks.spawn(world.clone().first_mount(n, apps[p % apps.len()], name, Duration::ZERO, false));
            }
        } else {
            world.warm(n, &apps, &mut jitter);
        }
        if config.per_pod_polls {
            let warm = if config.cold_start { 0 } else { config.pods_per_node };
            for index in 0..warm {
                let (world, phase) = (world.clone(), config.poll.mul_f64(jitter.fraction()));
                tasks.spawn(async move { world.resync_pod(n, index, phase).await });
            }
        } else {
            tasks.spawn(world.clone().reconcile(n, config.poll.mul_f64(jitter.fraction())));
        }
    }
    for i in 0..config.rollout_replicas {
        let n = i * config.nodes / config.rollout_replicas.max(1);
        let at = timeline.rollout + config.rollout_over.mul_f64(i as f64 / config.rollout_replicas.max(1) as f64);
        tasks.spawn(world.clone().first_mount(n, config.apps, format!("rollout/pod{i}"), at, true));
    }
    tasks.spawn(world.clone().rotate());
    while tasks.join_next().await.is_some() {}
    if std::env::var_os("FLEET_SECONDS").is_some() {
        for ((api, t), s) in aws.seconds().iter().filter(|(_, s)| s.throttled > 0).take(400) {
            eprintln!("SECOND {api:?} t={t} ok={} throttled={}", s.ok, s.throttled);
        }
    }
    let budget = world.nodes.iter().map(|n| n.fetcher.budget().stats.clone()).collect::<Vec<_>>();
    let record = std::mem::take(&mut *crate::sync::lock(&world.record));
    report::build(&config, &aws.seconds(), record, &budget, report::Windows::of(&timeline, &config), wall.elapsed())
}

#[cfg(test)]
mod tests;
