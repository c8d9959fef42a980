//! Command-line flags (`../shared/spec/cli.md`): bare flags serve, `serve` is an alias, `mount`
//! is a driver-like client. Every serve flag falls back to `CSI_PROVIDER_AWS_<FLAG>`.

mod doctor;
mod network;

pub use doctor::{DoctorArgs, DoctorIdentity};
pub use network::{EndpointPolicyArgs, NetworkArgs};

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// AWS Secrets Manager and Parameter Store provider for the Secrets Store CSI driver.
#[derive(Debug, Parser)]
#[command(name = "csi-provider-aws", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the provider API on the unix socket (the default).
    Serve(ServeArgs),
    /// Call a running provider as the driver does, and write the files it returns.
    Mount(MountArgs),
    /// Check the network path to AWS (DNS, TCP, TLS, an AWS answer), the socket directory and
    /// the Kubernetes API; print one row per check with a hint on failure. Exit 0 all pass, 1 any fails.
    Doctor(DoctorArgs),
}

impl Cli {
    /// The serve flags, whether given bare or after `serve`.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Flags of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory of the provider socket.
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_VOLUME", default_value = "/var/run/secrets-store-csi-providers")]
    pub provider_volume: PathBuf,
    /// Provider name: the socket is `<provider-volume>/<provider-name>.sock`.
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_NAME", default_value = "aws", value_parser = parse_provider_name)]
    pub provider_name: String,
    /// Return the files to the driver instead of writing them.
    #[arg(long, env = "CSI_PROVIDER_AWS_DRIVER_WRITES_SECRETS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub driver_writes_secrets: bool,
    /// Kubelet root: target paths must lie under `<kubelet-path>/pods`.
    #[arg(long, env = "CSI_PROVIDER_AWS_KUBELET_PATH", default_value = "/var/lib/kubelet")]
    pub kubelet_path: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
    /// How long in-flight mounts may run after SIGTERM; a second signal aborts.
    #[arg(long, env = "CSI_PROVIDER_AWS_SHUTDOWN_GRACE_PERIOD", default_value = "10s")]
    pub shutdown_grace_period: Dur,
    /// Most connections open on the socket at once (the driver keeps one); more wait in the
    /// listen backlog until one closes.
    #[arg(long, env = "CSI_PROVIDER_AWS_MAX_CONNECTIONS", default_value_t = 128,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub max_connections: usize,
    /// Endpoint override, `SERVICE[@REGION]=URL` (services: secretsmanager, ssm, sts). Repeatable.
    #[arg(long = "endpoint", env = "CSI_PROVIDER_AWS_ENDPOINT", value_delimiter = ',')]
    pub endpoints: Vec<EndpointFlag>,
    /// Read AWS with the process's own credential chain for every mount (laptops, quick start).
    #[arg(long, env = "CSI_PROVIDER_AWS_LOCAL_CREDENTIALS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub local_credentials: bool,
    /// Kubernetes client rate limit: sustained requests per second.
    #[arg(long, env = "CSI_PROVIDER_AWS_QPS", default_value_t = 5)]
    pub qps: u32,
    /// Kubernetes client rate limit: burst.
    #[arg(long, env = "CSI_PROVIDER_AWS_BURST", default_value_t = 10)]
    pub burst: u32,
    /// EKS Pod Identity agent URL (IPv4).
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_ENDPOINT_IPV4", default_value = "http://169.254.170.23/v1/credentials", value_parser = parse_url)]
    pub pod_identity_endpoint_ipv4: String,
    /// EKS Pod Identity agent URL (IPv6).
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_ENDPOINT_IPV6", default_value = "http://[fd00:ec2::23]/v1/credentials", value_parser = parse_url)]
    pub pod_identity_endpoint_ipv6: String,
    /// One EKS Pod Identity agent URL for both address families (overrides the two above).
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_ENDPOINT", value_parser = parse_url)]
    pub pod_identity_endpoint: Option<String>,
    /// Bound on each call to the Pod Identity agent.
    #[arg(long, env = "CSI_PROVIDER_AWS_POD_IDENTITY_HTTP_TIMEOUT", default_value = "5s")]
    pub pod_identity_http_timeout: Dur,
    /// How old a cached value may be when served; `0` disables the cache.
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_TTL", default_value = "60s")]
    pub cache_ttl: Dur,
    /// Bound on cached values.
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_MAX_ENTRIES", default_value_t = 10_000)]
    pub cache_max_entries: usize,
    /// Bound on the bytes cached values take (values, names and a per-entry overhead): bytes,
    /// or a Kubernetes-style quantity (`64Mi`, `512Ki`, `1Gi`, `100M`).
    #[arg(long, env = "CSI_PROVIDER_AWS_CACHE_MAX_BYTES", default_value = "64Mi")]
    pub cache_max_bytes: ByteSize,
    /// Read two or more current secrets of a mount with `BatchGetSecretValue` (20 per call);
    /// `false` reads each with `GetSecretValue`, as the Go provider does.
    #[arg(long, env = "CSI_PROVIDER_AWS_BATCH_GET_SECRET_VALUE", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", action = ArgAction::Set)]
    pub batch_get_secret_value: bool,
    /// Admin server address (`/metrics`, `/healthz`, `/readyz`); empty disables it; port 0
    /// picks a free port and logs it.
    #[arg(long, env = "CSI_PROVIDER_AWS_METRICS_ADDR", default_value = "0.0.0.0:8989")]
    pub metrics_addr: String,
    /// Allow secret names as metric label values (cardinality and privacy: off by default).
    #[arg(long, env = "CSI_PROVIDER_AWS_METRICS_SECRET_NAMES", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub metrics_secret_names: bool,
    /// EKS add-on version, appended to the user agent.
    #[arg(long, env = "CSI_PROVIDER_AWS_EKS_ADDON_VERSION", default_value = "")]
    pub eks_addon_version: String,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub endpoint_policy: EndpointPolicyArgs,
}

/// Logging flags, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// `error`, `warn`, `info`, `debug`, `trace`, or an EnvFilter directive.
    #[arg(long, env = "CSI_PROVIDER_AWS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "CSI_PROVIDER_AWS_LOG_FORMAT", default_value = "plain")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Flags of the `mount` client.
#[derive(Debug, Clone, Args)]
pub struct MountArgs {
    /// SecretProviderClass manifest (YAML): its `spec.parameters` become the attributes.
    #[arg(long)]
    pub spc: PathBuf,
    /// Target directory for the files (a relative path is made absolute). A provider that
    /// writes checks it lies under its `--kubelet-path`/pods.
    #[arg(long)]
    pub target: PathBuf,
    /// Provider socket to dial, as the driver does.
    #[arg(long, default_value = "/var/run/secrets-store-csi-providers/aws.sock")]
    pub socket: PathBuf,
    /// The pod's namespace (`csi.storage.k8s.io/pod.namespace`), unless the manifest names one.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The pod's name (`csi.storage.k8s.io/pod.name`).
    #[arg(long, default_value = "mount-cli")]
    pub pod: String,
    /// The pod's UID (`csi.storage.k8s.io/pod.uid`).
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    pub pod_uid: String,
    /// The pod's service account (`csi.storage.k8s.io/serviceAccount.name`): whose identity
    /// (IRSA role annotation, Pod Identity association) the provider reads AWS as.
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// A service-account token for an audience, `AUDIENCE=FILE` (e.g.
    /// `sts.amazonaws.com=/tmp/token`), passed as the driver passes `tokenRequests`. Repeatable.
    #[arg(long = "token")]
    pub tokens: Vec<TokenFlag>,
    /// Expect the provider to return the files (a provider run with `--driver-writes-secrets`)
    /// and write them here with the driver's layout; an error if the provider wrote them itself.
    #[arg(long)]
    pub driver_writes: bool,
    /// Repeat the mount at this interval, as the driver's rotation does, e.g. `--watch 30s`
    /// (stop with Ctrl-C). Each round prints whether anything changed.
    #[arg(long)]
    pub watch: Option<Dur>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// A duration flag: `500ms`, `30s`, `2m`, or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 500ms, 30s, 2m"))
    }
}

/// A size in bytes: `67108864`, or a Kubernetes-style quantity (`64Mi`, `512Ki`, `1Gi`, `100M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const UNITS: [(&str, u64); 6] =
            [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000)];
        let t = s.trim();
        let (digits, unit) =
            UNITS.iter().find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|d| (d, *unit))).unwrap_or((t, 1));
        let bad = || format!("invalid size {s:?}; use bytes or e.g. 512Ki, 64Mi, 1Gi");
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let bytes = n.checked_mul(unit).and_then(|b| usize::try_from(b).ok()).ok_or_else(bad)?;
        Ok(ByteSize(bytes))
    }
}

/// One `--endpoint SERVICE[@REGION]=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFlag {
    pub service: String,
    pub region: Option<String>,
    pub url: String,
}

pub const ENDPOINT_SERVICES: [&str; 3] = ["secretsmanager", "ssm", "sts"];

impl FromStr for EndpointFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, url) = s.split_once('=').ok_or_else(|| format!("endpoint {s:?}: expected SERVICE[@REGION]=URL"))?;
        let (service, region) = match key.split_once('@') {
            Some((service, region)) => (service, Some(region.to_string())),
            None => (key, None),
        };
        if !ENDPOINT_SERVICES.contains(&service) {
            return Err(format!("endpoint {s:?}: unknown service {service:?} (use secretsmanager, ssm or sts)"));
        }
        check_url(url).map_err(|e| format!("endpoint {s:?}: {e}"))?;
        Ok(EndpointFlag { service: service.to_string(), region, url: url.to_string() })
    }
}

/// An endpoint URL must be absolute http(s) with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the URL must start with https:// or http://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err("the URL must name a host (and no user info)".into());
    }
    Ok(())
}

/// One `--token AUDIENCE=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFlag {
    pub audience: String,
    pub file: PathBuf,
}

impl FromStr for TokenFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((aud, file)) if !aud.is_empty() && !file.is_empty() => {
                Ok(TokenFlag { audience: aud.to_string(), file: PathBuf::from(file) })
            }
            _ => Err(format!("token {s:?}: expected AUDIENCE=FILE")),
        }
    }
}

fn parse_url(s: &str) -> Result<String, String> {
    check_url(s).map(|()| s.to_string()).map_err(|e| format!("{s:?}: {e}"))
}

impl ServeArgs {
    /// The Pod Identity agent URLs (IPv4, IPv6), the shorthand overriding both.
    pub fn pod_identity_endpoints(&self) -> (String, String) {
        match &self.pod_identity_endpoint {
            Some(url) => (url.clone(), url.clone()),
            None => (self.pod_identity_endpoint_ipv4.clone(), self.pod_identity_endpoint_ipv6.clone()),
        }
    }
}

pub(crate) fn parse_provider_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok && !s.starts_with('.') {
        Ok(s.to_string())
    } else {
        Err(format!("provider name {s:?}: use letters, digits, '-', '_' or '.'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["csi-provider-aws"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses").into_command()
    }

    fn serve(args: &[&str]) -> ServeArgs {
        match parse(args) {
            Command::Serve(s) => s,
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
    fn bad_flags_are_refused() {
        for bad in [
            vec!["--endpoint", "kms=https://x"],
            vec!["--endpoint", "ssm=ftp://x"],
            vec!["--endpoint", "ssm"],
            vec!["--provider-name", "../x"],
            vec!["--shutdown-grace-period", "soon"],
            vec!["--log-format", "xml"],
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
