//! Wires the serve flags into a running provider: AWS reader, credentials, mounter, socket.

use crate::aws::{AwsCredentials, AwsReader, AwsSettings, CallCounter, Endpoints, UserAgentTag};
use crate::cache::ValueCache;
use crate::cli::ServeArgs;
use crate::fetch::Fetcher;
use crate::identity::{AgentClient, IdentityResolver};
use crate::k8s::K8s;
use crate::mount::{CredentialSource, MountConfig, Mounter};
use crate::server::{self, ServerError, Socket};
use crate::service::ProviderService;
use std::sync::Arc;
use std::time::Duration;

/// How long a service account's role annotation is reused: a burst of pod starts costs one
/// lookup, and an annotation change applies within this time.
const SERVICE_ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Builds the mounter from the flags and an injected environment lookup.
pub async fn mounter(args: &ServeArgs, env: impl Fn(&str) -> Option<String>) -> Mounter {
    let settings = AwsSettings {
        endpoints: Endpoints::new(&args.endpoints, &env),
        user_agent: UserAgentTag::new(&args.eks_addon_version),
        operation_timeout: Duration::from_secs(30),
        calls: CallCounter::new(),
    };
    let aws = AwsReader::new(settings);
    let k8s = Arc::new(K8s::new(args.qps, args.burst, SERVICE_ACCOUNT_CACHE_TTL));
    let credentials = if args.local_credentials {
        CredentialSource::Local(AwsCredentials::local_chain().await)
    } else {
        let (ipv4, ipv6) = args.pod_identity_endpoints();
        let agent = AgentClient::new(ipv4, ipv6, args.pod_identity_http_timeout.0);
        CredentialSource::Pod(Box::new(IdentityResolver::new(aws.clone(), k8s.clone(), agent)))
    };
    let config = MountConfig {
        kubelet_path: args.kubelet_path.clone(),
        driver_writes: args.driver_writes_secrets,
        default_region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).filter(|r| !r.is_empty()),
        node_name: env("NODE_NAME").filter(|n| !n.is_empty()),
    };
    let fetcher = Fetcher::new(aws, ValueCache::new(args.cache_ttl.0, args.cache_max_entries));
    Mounter::new(config, fetcher, credentials, k8s)
}

/// Serves until SIGTERM/SIGINT.
pub async fn serve(args: ServeArgs) -> Result<(), ServerError> {
    let env = |k: &str| std::env::var(k).ok();
    let mounter = mounter(&args, env).await;
    if args.local_credentials {
        tracing::warn!(
            "--local-credentials: EVERY mount reads AWS with this process's own credentials, not the pod's; use only on a laptop or in the quick start"
        );
    }
    log_endpoints(&args);
    let socket = Socket::bind(&args.provider_volume, &args.provider_name)?;
    tracing::info!(
        version = crate::RUNTIME_VERSION,
        socket = %socket.path().display(),
        write_mode = if args.driver_writes_secrets { "driver writes" } else { "provider writes" },
        default_region = mounter.config().default_region.as_deref().unwrap_or("(none)"),
        "csi-provider-aws serving"
    );
    let service = ProviderService::new(Arc::new(mounter));
    socket.serve(service, server::signal(1), server::signal(2), args.shutdown_grace_period.0).await?;
    tracing::info!("stopped");
    Ok(())
}

fn log_endpoints(args: &ServeArgs) {
    for flag in &args.endpoints {
        tracing::info!(service = %flag.service, region = flag.region.as_deref().unwrap_or("*"), url = %flag.url, "endpoint override");
    }
}
