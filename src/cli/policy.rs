//! The serve-only endpoint policy and audit flags (the network flags it shares with `doctor`
//! are `net::NetworkArgs`).

use crate::identity::RolePattern;
use crate::net::HostPattern;
use clap::{ArgAction, Args};

/// What a SecretProviderClass may ask for, and the audit trail. Serve only.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct EndpointPolicyArgs {
    /// A host (or `*.vpce.amazonaws.com`-style pattern) a SecretProviderClass may name in its
    /// endpoint parameters; none by default, since the endpoint would receive the pod's token.
    /// Repeatable.
    #[arg(
        long = "allowed-endpoint-host",
        env = "CSI_PROVIDER_AWS_ALLOWED_ENDPOINT_HOST",
        value_name = "PATTERN",
        value_delimiter = ','
    )]
    pub(crate) allowed_endpoint_hosts: Vec<HostPattern>,
    /// A role ARN (`*` matches any run of characters) a SecretProviderClass's `assumeRoleArn`
    /// may name; the role is assumed with the pod's own credentials (role chaining). None by
    /// default, so `assumeRoleArn` is refused until an admin allows it. Repeatable.
    #[arg(
        long = "allowed-assume-role",
        env = "CSI_PROVIDER_AWS_ALLOWED_ASSUME_ROLE",
        value_name = "PATTERN",
        value_delimiter = ','
    )]
    pub(crate) allowed_assume_roles: Vec<RolePattern>,
    /// One info line (target `audit`) per AWS request: service, operation, region, endpoint,
    /// the pods and object names it served, the AWS request id. Never a value.
    #[arg(long, env = "CSI_PROVIDER_AWS_AUDIT_LOG", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) audit_log: bool,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let mut all = vec!["csi-provider-aws"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(Cli::into_command)
    }

    #[test]
    fn serve_takes_the_private_networking_flags() {
        let Ok(Command::Serve(s)) = parse(&[
            "--allowed-endpoint-host=*.vpce.amazonaws.com,secrets.internal.example",
            "--allowed-endpoint-host",
            "10.0.0.5",
            "--require-private-endpoints",
            "--use-fips-endpoint=true",
            "--use-dualstack-endpoint=false",
            "--resolve",
            "vpce-1.example=10.0.0.7,10.0.0.8",
            "--audit-log",
            "--allowed-assume-role=arn:aws:iam::111122223333:role/secrets-*",
            "--allowed-assume-role",
            "arn:aws:iam::*:role/csi-reader",
        ]) else {
            panic!("parses as serve")
        };
        assert_eq!(s.endpoint_policy.allowed_endpoint_hosts.len(), 3);
        assert_eq!(s.endpoint_policy.allowed_assume_roles.len(), 2);
        assert!(s.endpoint_policy.audit_log);
        assert!(s.network.require_private_endpoints && s.network.use_fips_endpoint);
        assert!(!s.network.use_dualstack_endpoint);
        assert_eq!(s.network.resolve[0].addrs.len(), 2);
    }

    #[test]
    fn doctor_takes_the_networking_flags_and_bad_values_are_usage_errors() {
        let Ok(Command::Doctor(d)) = parse(&[
            "doctor",
            "--region",
            "us-west-2",
            "--failover-region=us-east-1",
            "--endpoint",
            "sts=https://vpce-1.sts.us-west-2.vpce.amazonaws.com",
            "--require-private-endpoints",
            "--resolve=a.example=10.0.0.1",
        ]) else {
            panic!("parses as doctor")
        };
        assert_eq!((d.region.as_deref(), d.failover_region.as_deref()), (Some("us-west-2"), Some("us-east-1")));
        assert!(d.network.require_private_endpoints);
        for bad in [
            vec!["--allowed-endpoint-host", "vpce-*.amazonaws.com"],
            vec!["--allowed-assume-role", "role/reader"],
            vec!["--resolve", "a.example=not-an-ip"],
            vec!["--ca-bundle", "/nonexistent/ca.pem"],
            vec!["doctor", "--endpoint", "kms=https://x"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} should be refused");
        }
    }
}
