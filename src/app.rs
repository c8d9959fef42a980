//! Wires the serve flags into a running provider: AWS reader, credentials, mounter, socket.

use crate::admin::{self, MetricsAddr, Readiness};
use crate::aws::{AwsCredentials, AwsReader, AwsSettings, CallCounter, Endpoints, UserAgentTag};
use crate::budget::{Budget, BudgetConfig};
use crate::cache::{Lifetimes, TTL_JITTER, ValueCache};
use crate::cli::ServeArgs;
use crate::clock;
use crate::events::RotationEvents;
use crate::fetch::Fetcher;
use crate::identity::{AgentClient, CredentialSource, IdentityResolver, RoleAllowlist};
use crate::jitter::Jitter;
use crate::k8s::K8s;
use crate::metrics::Metrics;
use crate::mount::{MountConfig, Mounter};
use crate::net::{EndpointAllowlist, NetworkSettings};
use crate::server::{self, ServerError, Socket};
use crate::service::ProviderService;
use std::sync::Arc;
use std::time::Duration;

/// The running parts the server and the admin server share.
#[derive(Debug)]
pub(crate) struct Provider {
    pub mounter: Mounter,
    pub metrics: Arc<Metrics>,
    pub k8s: Arc<K8s>,
}

/// Builds the provider from the flags and an injected environment lookup (which also holds the
/// proxy variables: a malformed one stops the start).
pub(crate) async fn provider(args: &ServeArgs, env: impl Fn(&str) -> Option<String>) -> Result<Provider, ServerError> {
    let clock = clock::system();
    let lifetimes = Lifetimes {
        ssm: args.cache_ttl_ssm.map_or(args.cache_ttl.0, |d| d.0),
        secrets_manager: args.cache_ttl_secretsmanager.map_or(args.cache_ttl.0, |d| d.0),
        stale_if_throttled: args.stale_if_throttled.0,
        jitter: TTL_JITTER,
    };
    let cache = ValueCache::new(args.cache_ttl.0, args.cache_max_entries, args.cache_max_bytes.0)
        .with_clock(clock.clone())
        .with_lifetimes(lifetimes, Jitter::random_seed());
    let budget_config = BudgetConfig {
        rates: args.aws_budget.clone(),
        max_wait: args.aws_budget_max_wait.0,
        ..BudgetConfig::default()
    };
    let budget = Budget::new(budget_config, clock.clone(), Jitter::random_seed());
    let metrics = Arc::new(Metrics::new(&cache.stats, &budget.stats, args.metrics_secret_names));
    let settings = AwsSettings {
        endpoints: Endpoints::new(&args.endpoints, &env),
        user_agent: UserAgentTag::new(&args.eks_addon_version),
        operation_timeout: Duration::from_secs(30),
        calls: CallCounter::with_observer(metrics.clone()),
        network: NetworkSettings::new(&args.network, &env)?,
        audit: args.endpoint_policy.audit_log,
        batch_get_secret_value: args.batch_get_secret_value,
        clock: clock.clone(),
    };
    let aws = AwsReader::new(settings);
    let k8s = Arc::new(K8s::new(args.qps, args.burst, args.service_account_cache_ttl.0, clock.clone()));
    let credentials = if args.local_credentials {
        CredentialSource::Local(AwsCredentials::local_chain().await)
    } else {
        let (ipv4, ipv6) = args.pod_identity_endpoints();
        let agent = AgentClient::new(ipv4, ipv6, args.pod_identity_http_timeout.0);
        CredentialSource::Pod(Box::new(IdentityResolver::new(aws.clone(), k8s.clone(), agent, clock)))
    };
    let config = MountConfig {
        kubelet_path: args.kubelet_path.clone(),
        driver_writes: args.driver_writes_secrets,
        default_region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).filter(|r| !r.is_empty()),
        node_name: env("NODE_NAME").filter(|n| !n.is_empty()),
        allowed_endpoints: EndpointAllowlist::new(args.endpoint_policy.allowed_endpoint_hosts.clone()),
        max_objects_per_mount: usize::try_from(args.max_objects_per_mount).unwrap_or(usize::MAX),
        allowed_assume_roles: RoleAllowlist::new(args.endpoint_policy.allowed_assume_roles.clone()),
    };
    let node = config.node_name.clone();
    let fetcher = Fetcher::new(aws, cache, budget);
    let mut mounter = Mounter::new(config, fetcher, credentials, k8s.clone());
    if args.rotation_events {
        let (qps, burst) = (args.rotation_events_qps, args.rotation_events_burst);
        let observer: Arc<dyn crate::events::EventObserver> = metrics.clone();
        let events = RotationEvents::new(k8s.clone(), node, qps, burst, Some(observer), clock::system());
        mounter = mounter.with_rotation_events(events);
    }
    Ok(Provider { mounter, metrics, k8s })
}

/// Serves until SIGTERM/SIGINT; an error when the provider cannot start, or its drain was cut
/// short.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let Provider { mounter, metrics, k8s } = provider(&args, env).await?;
    let ready = Arc::new(Readiness::default());
    start_admin(args.metrics_addr, metrics.clone(), ready.clone()).await?;
    watch_backends(args.local_credentials, k8s, ready.clone());
    if args.local_credentials {
        tracing::warn!(
            "--local-credentials: EVERY mount reads AWS with this process's own credentials, not the pod's; use only on a laptop or in the quick start"
        );
    }
    log_endpoints(&args);
    mounter.fetcher().aws().network().log();
    let socket = Socket::bind(&args.provider_volume, &args.provider_name)?;
    tracing::info!(
        version = crate::RUNTIME_VERSION,
        socket = %socket.path().display(),
        write_mode = if args.driver_writes_secrets { "driver writes" } else { "provider writes" },
        default_region = mounter.config().default_region.as_deref().unwrap_or("(none)"),
        rotation_events = args.rotation_events,
        "csi-provider-aws serving"
    );
    let service = ProviderService::new(Arc::new(mounter), metrics);
    let grace = args.shutdown_grace_period.0;
    let (shutdown, abort) = server::signals();
    socket.serve(service, shutdown, abort, grace, args.max_connections, ready).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the admin server (`--metrics-addr`; empty disables it) and logs where it listens.
async fn start_admin(addr: MetricsAddr, metrics: Arc<Metrics>, ready: Arc<Readiness>) -> Result<(), ServerError> {
    let Some(listener) = admin::bind(addr).await.map_err(|e| ServerError::Admin(e.to_string()))? else {
        tracing::info!("admin server disabled (--metrics-addr is empty)");
        return Ok(());
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(addr = %local, "admin server listening (/metrics, /healthz, /readyz)");
    tokio::spawn(admin::serve(listener, metrics, ready));
    Ok(())
}

/// Marks the Kubernetes API and credentials path ready: at once with local credentials, else
/// once the Kubernetes client is configured (retried every 10 s until it is).
fn watch_backends(local: bool, k8s: Arc<K8s>, ready: Arc<Readiness>) {
    if local {
        ready.set_backends(true);
        return;
    }
    tokio::spawn(async move {
        loop {
            match k8s.configure().await {
                Ok(()) => return ready.set_backends(true),
                Err(e) => {
                    tracing::warn!(error = %e, "not ready: the Kubernetes API is not configured; retrying in 10 s")
                }
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
}

fn log_endpoints(args: &ServeArgs) {
    for flag in &args.endpoints {
        tracing::info!(service = %flag.service, region = flag.region.as_deref().unwrap_or("*"), url = %flag.url, "endpoint override");
    }
    let policy = &args.endpoint_policy;
    let allowed: Vec<String> = policy.allowed_endpoint_hosts.iter().map(ToString::to_string).collect();
    let roles: Vec<String> = policy.allowed_assume_roles.iter().map(ToString::to_string).collect();
    tracing::info!(
        allowed_endpoint_hosts = %if allowed.is_empty() { "(none: SecretProviderClass endpoints are refused)".to_string() } else { allowed.join(",") },
        allowed_assume_roles = %if roles.is_empty() { "(none: assumeRoleArn is refused)".to_string() } else { roles.join(",") },
        audit_log = policy.audit_log,
        "SecretProviderClass endpoint policy"
    );
}
