//! Command-line flags (`../shared/spec/cli.md`): bare flags serve, `serve` is an alias, `mount`
//! is a driver-like client. Every serve flag falls back to `CSI_PROVIDER_AWS_<FLAG>`.

mod policy;

pub(crate) use policy::EndpointPolicyArgs;

use crate::admin::MetricsAddr;
use crate::aws::EndpointFlag;
use crate::budget::BudgetRate;
use crate::client::MountArgs;
use crate::doctor::DoctorArgs;
use crate::net::{NetworkArgs, check_url};
use crate::telemetry::LogArgs;
use crate::units::{ByteSize, Dur};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

/// AWS Secrets Manager and Parameter Store provider for the Secrets Store CSI driver.
#[derive(Debug, Parser)]
#[command(name = "csi-provider-aws", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

/// What to run.
#[derive(Debug, Subcommand)]
// Parsed once at start and consumed at once: the size of `ServeArgs` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve the provider API on the unix socket (the default). Boxed: the serve flags are
    /// most of the command line's size.
    Serve(Box<ServeArgs>),
    /// Call a running provider as the driver does, and write the files it returns.
    Mount(MountArgs),
    /// Check the network path to AWS (DNS, TCP, TLS, an AWS answer), the socket directory and
    /// the Kubernetes API; print one row per check with a hint on failure. Exit 0 all pass, 1 any fails.
    Doctor(DoctorArgs),
}

impl Cli {
    /// The serve flags, whether given bare or after `serve`.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or_else(|| Command::Serve(Box::new(self.serve)))
    }
}

impl Command {
    /// The logging flags, which every subcommand takes.
    pub fn log(&self) -> &LogArgs {
        match self {
            Command::Serve(args) => &args.log,
            Command::Mount(args) => &args.log,
            Command::Doctor(args) => &args.log,
        }
    }
}

/// Flags of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory of the provider socket.
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_VOLUME", default_value = "/var/run/secrets-store-csi-providers")]
    pub(crate) provider_volume: PathBuf,
    /// Provider name: the socket is `<provider-volume>/<provider-name>.sock`.
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_NAME", default_value = "aws", value_parser = crate::units::parse_provider_name)]
    pub(crate) provider_name: String,
    /// Return the files to the driver instead of writing them.
    #[arg(long, env = "CSI_PROVIDER_AWS_DRIVER_WRITES_SECRETS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) driver_writes_secrets: bool,
    /// Kubelet root: target paths must lie under `<kubelet-path>/pods`.
    #[arg(long, env = "CSI_PROVIDER_AWS_KUBELET_PATH", default_value = "/var/lib/kubelet")]
    pub(crate) kubelet_path: PathBuf,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    /// How long in-flight mounts may run after SIGTERM; a second signal aborts.
    #[arg(long, env = "CSI_PROVIDER_AWS_SHUTDOWN_GRACE_PERIOD", default_value = "10s")]
    pub(crate) shutdown_grace_period: Dur,
    /// Most connections open on the socket at once (the driver keeps one); more wait in the
    /// listen backlog until one closes.
    #[arg(long, env = "CSI_PROVIDER_AWS_MAX_CONNECTIONS", default_value_t = 128,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub(crate) max_connections: usize,
    /// Endpoint override, `SERVICE[@REGION]=URL` (services: secretsmanager, ssm, sts). Repeatable.
    #[arg(long = "endpoint", env = "CSI_PROVIDER_AWS_ENDPOINT", value_delimiter = ',')]
    pub(crate) endpoints: Vec<EndpointFlag>,
    /// Read AWS with the process's own credential chain for every mount (laptops, quick start).
    #[arg(long, env = "CSI_PROVIDER_AWS_LOCAL_CREDENTIALS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) local_credentials: bool,
    /// Kubernetes client rate limit: sustained requests per second.
    #[arg(long, env = "CSI_PROVIDER_AWS_QPS", default_value_t = 5)]
    pub(crate) qps: u32,
    /// Kubernetes client rate limit: burst.
    #[arg(long, env = "CSI_PROVIDER_AWS_BURST", default_value_t = 10)]
    pub(crate) burst: u32,
    /// EKS Pod Identity agent URL (IPv4).
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_ENDPOINT_IPV4", default_value = "http://169.254.170.23/v1/credentials", value_parser = parse_url)]
    pub(crate) pod_identity_endpoint_ipv4: String,
    /// EKS Pod Identity agent URL (IPv6).
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_ENDPOINT_IPV6", default_value = "http://[fd00:ec2::23]/v1/credentials", value_parser = parse_url)]
    pub(crate) pod_identity_endpoint_ipv6: String,
    /// One EKS Pod Identity agent URL for both address families (overrides the two above).
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_ENDPOINT", value_parser = parse_url)]
    pub(crate) pod_identity_endpoint: Option<String>,
    /// Bound on each call to the Pod Identity agent.
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_HTTP_TIMEOUT", default_value = "5s")]
    pub(crate) pod_identity_http_timeout: Dur,
    /// How old a cached value may be when served; `0` disables the cache.
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_TTL", default_value = "60s")]
    pub(crate) cache_ttl: Dur,
    /// How old a cached Parameter Store value may be when served (default: `--cache-ttl`).
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_TTL_SSM")]
    pub(crate) cache_ttl_ssm: Option<Dur>,
    /// How old a cached Secrets Manager value may be when served (default: `--cache-ttl`).
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_TTL_SECRETSMANAGER")]
    pub(crate) cache_ttl_secretsmanager: Option<Dur>,
    /// While AWS (or this node's budget) throttles a refresh, serve the cached value up to this
    /// long past its TTL, never beyond; `0` never serves a value past its TTL.
    #[arg(long, env = "CSI_PROVIDER_AWS_STALE_IF_THROTTLED", default_value = "5m")]
    pub(crate) stale_if_throttled: Dur,
    /// This node's share of an account-wide, per-Region AWS quota: `API=RATE` calls per second
    /// (GetParameters, GetParametersByPath, GetSecretValue, BatchGetSecretValue); repeatable.
    /// Re-syncs spend only what the budget holds; first mounts go ahead. Unset: no budget.
    #[arg(long = "aws-budget", env = "CSI_PROVIDER_AWS_AWS_BUDGET", value_delimiter = ',')]
    pub(crate) aws_budget: Vec<BudgetRate>,
    /// The longest a first mount waits for the budget before it calls AWS anyway (`0`: first
    /// mounts never wait; they go ahead and push queued re-sync refreshes back).
    #[arg(long, env = "CSI_PROVIDER_AWS_AWS_BUDGET_MAX_WAIT", default_value = "0s")]
    pub(crate) aws_budget_max_wait: Dur,
    /// How long a service account's role annotation is reused (refreshed in the background
    /// in its last quarter while mounts use it). Hidden: for benchmarks that space repetitions
    /// past it.
    #[arg(long, env = "CSI_PROVIDER_AWS_SERVICE_ACCOUNT_CACHE_TTL", default_value = "30s", hide = true)]
    pub(crate) service_account_cache_ttl: Dur,
    /// Bound on cached values.
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_MAX_ENTRIES", default_value_t = 10_000)]
    pub(crate) cache_max_entries: usize,
    /// Bound on the bytes cached values take (values, names and a per-entry overhead): bytes,
    /// or a Kubernetes-style quantity (`64Mi`, `512Ki`, `1Gi`, `100M`).
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_MAX_BYTES", default_value = "64Mi")]
    pub(crate) cache_max_bytes: ByteSize,
    /// Read two or more current secrets of a mount with `BatchGetSecretValue` (20 per call);
    /// `false` reads each with `GetSecretValue`, as the Go provider does.
    #[arg(long, env = "CSI_PROVIDER_AWS_BATCH_GET_SECRET_VALUE", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) batch_get_secret_value: bool,
    /// The most files the `jsonKeys` objects and bulk descriptors (`objectPath`, `filters`) of one
    /// mount may give together, and the largest `maxObjects` a SecretProviderClass may ask for
    /// (1 to 10,000); past it the mount fails and writes nothing.
    #[arg(long, env = "CSI_PROVIDER_AWS_MAX_OBJECTS_PER_MOUNT", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) max_objects_per_mount: u64,
    /// Admin server address (`/metrics`, `/healthz`, `/readyz`); empty disables it; port 0
    /// picks a free port and logs it.
    #[arg(long, env = "CSI_PROVIDER_AWS_METRICS_ADDR", default_value = "0.0.0.0:8989")]
    pub(crate) metrics_addr: MetricsAddr,
    /// Allow secret names as metric label values (cardinality and privacy: off by default).
    #[arg(long, env = "CSI_PROVIDER_AWS_METRICS_SECRET_NAMES", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) metrics_secret_names: bool,
    /// After a re-sync that swapped in a changed set, a Kubernetes Event on the pod (reason
    /// `SecretRotated`, naming the objects and their new versions, never a value). Needs
    /// `create` and `patch` on events.
    #[arg(long, env = "CSI_PROVIDER_AWS_ROTATION_EVENTS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) rotation_events: bool,
    /// Rotation events this node sends per second, sustained; past the rate (and the burst)
    /// events are dropped and counted (`rotation_events_total{outcome="rate_limited"}`).
    #[arg(long, env = "CSI_PROVIDER_AWS_ROTATION_EVENTS_QPS", default_value = "1", value_parser = parse_rate)]
    pub(crate) rotation_events_qps: f64,
    /// Rotation events this node sends at once before the rate applies.
    #[arg(long, env = "CSI_PROVIDER_AWS_ROTATION_EVENTS_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) rotation_events_burst: u32,
    /// EKS add-on version, appended to the user agent.
    #[arg(long, env = "CSI_PROVIDER_AWS_EKS_ADDON_VERSION", default_value = "")]
    pub(crate) eks_addon_version: String,
    #[command(flatten)]
    pub(crate) network: NetworkArgs,
    #[command(flatten)]
    pub(crate) endpoint_policy: EndpointPolicyArgs,
}

/// A rate: a finite number greater than 0 and at most 1000 (`0.5` is one every two seconds).
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1000.0 => Ok(rate),
        _ => Err(format!("{s:?} is not a rate (a number greater than 0 and at most 1000, e.g. 1 or 0.5)")),
    }
}

fn parse_url(s: &str) -> Result<String, String> {
    check_url(s).map(|()| s.to_string()).map_err(|e| format!("{s:?}: {e}"))
}

impl ServeArgs {
    /// The Pod Identity agent URLs (IPv4, IPv6), the shorthand overriding both.
    pub(crate) fn pod_identity_endpoints(&self) -> (String, String) {
        match &self.pod_identity_endpoint {
            Some(url) => (url.clone(), url.clone()),
            None => (self.pod_identity_endpoint_ipv4.clone(), self.pod_identity_endpoint_ipv6.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["csi-provider-aws"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses").into_command()
    }

    fn serve(args: &[&str]) -> ServeArgs {
        match parse(args) {
            Command::Serve(s) => *s,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn bare_flags_serve_with_go_chart_forms() {
        let s =
            serve(&["--provider-volume=/etc/kubernetes/secrets-store-csi-providers", "--driver-writes-secrets=true"]);
        assert_eq!(s.provider_volume, PathBuf::from("/etc/kubernetes/secrets-store-csi-providers"));
        assert!(s.driver_writes_secrets);
        assert_eq!(s.provider_name, "aws");
        assert!(!serve(&["--driver-writes-secrets=false"]).driver_writes_secrets);
        assert!(serve(&["--driver-writes-secrets"]).driver_writes_secrets);
        assert!(serve(&["serve", "--local-credentials"]).local_credentials);
    }

    #[test]
    fn durations_and_endpoints() {
        let s = serve(&[
            "--shutdown-grace-period",
            "500ms",
            "--endpoint",
            "sts@us-east-1=https://vpce-1.sts.us-east-1.vpce.amazonaws.com",
            "--endpoint=ssm=http://127.0.0.1:5000",
        ]);
        assert_eq!(s.shutdown_grace_period, Dur(Duration::from_millis(500)));
        assert_eq!(s.endpoints[0].region.as_deref(), Some("us-east-1"));
        assert_eq!(
            s.endpoints[1],
            EndpointFlag { service: "ssm".into(), region: None, url: "http://127.0.0.1:5000".into() }
        );
        assert_eq!("2m".parse::<Dur>(), Ok(Dur(Duration::from_secs(120))));
        let go_chart = serve(&["--qps=5", "--burst=10", "--pod-identity-http-timeout=250ms", "--eks-addon-version=v1"]);
        assert_eq!((go_chart.qps, go_chart.burst), (5, 10));
        assert_eq!(go_chart.pod_identity_http_timeout, Dur(Duration::from_millis(250)));
        assert_eq!(go_chart.pod_identity_endpoints().1, "http://[fd00:ec2::23]/v1/credentials");
        let both = serve(&["--pod-identity-endpoint", "http://127.0.0.1:9/v1/credentials"]);
        assert_eq!(both.pod_identity_endpoints().0, both.pod_identity_endpoints().1);
    }

    #[test]
    fn cache_bytes_and_batching() {
        let defaults = serve(&[]);
        assert_eq!(defaults.cache_max_bytes, ByteSize(64 << 20));
        assert!(defaults.batch_get_secret_value);
        assert_eq!(serve(&["--cache-max-bytes=33554432"]).cache_max_bytes, ByteSize(32 << 20));
        assert_eq!(serve(&["--cache-max-bytes", "512Ki"]).cache_max_bytes, ByteSize(512 << 10));
        assert_eq!("1Gi".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("100M".parse::<ByteSize>(), Ok(ByteSize(100_000_000)));
        assert!("64MB".parse::<ByteSize>().is_err() && "-1".parse::<ByteSize>().is_err());
        assert!(!serve(&["--batch-get-secret-value=false"]).batch_get_secret_value);
        assert!(serve(&["--batch-get-secret-value"]).batch_get_secret_value);
    }

    #[test]
    fn max_objects_per_mount_defaults_to_1000_up_to_the_parse_ceiling() {
        assert_eq!(serve(&[]).max_objects_per_mount, 1000);
        let ceiling = crate::params::limits::MAX_OBJECTS_CEILING;
        assert_eq!(serve(&[&format!("--max-objects-per-mount={ceiling}")]).max_objects_per_mount, ceiling as u64);
    }

    #[test]
    fn bad_flags_are_refused() {
        for bad in [
            vec!["--endpoint", "kms=https://x"],
            vec!["--endpoint", "ssm=ftp://x"],
            vec!["--endpoint", "ssm"],
            vec!["--provider-name", "../x"],
            vec!["--shutdown-grace-period", "soon"],
            vec!["--log-format", "xml"],
            vec!["--max-objects-per-mount=0"],
            vec!["--max-objects-per-mount=10001"],
        ] {
            let mut all = vec!["csi-provider-aws"];
            all.extend_from_slice(&bad);
            assert!(Cli::try_parse_from(all).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn mount_subcommand() {
        match parse(&[
            "mount",
            "--spc",
            "a.yaml",
            "--target",
            "/t",
            "--token",
            "sts.amazonaws.com=/tok",
            "--watch",
            "30s",
        ]) {
            Command::Mount(m) => {
                assert_eq!(m.tokens[0].audience, "sts.amazonaws.com");
                assert_eq!(m.watch, Some(Dur(Duration::from_secs(30))));
            }
            other => panic!("expected mount, got {other:?}"),
        }
    }
}
