//! Flags of the network path to AWS (private networking), shared by `serve` and `doctor`: kept
//! beside the settings they become ([`super::NetworkSettings::new`]).

use super::{CaBundle, ResolveFlag};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

/// How the provider reaches AWS. Shared by `serve` and `doctor`.
#[derive(Debug, Clone, Default, Args)]
pub struct NetworkArgs {
    /// Before any AWS request (STS included), resolve the host that will be dialled (the
    /// endpoint, or the proxy) and refuse if any address is public; then connect only to the
    /// addresses checked.
    #[arg(long, env = "CSI_PROVIDER_AWS_REQUIRE_PRIVATE_ENDPOINTS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub require_private_endpoints: bool,
    /// Use the FIPS variant of the AWS default endpoints, for every service including STS.
    #[arg(long, env = "AWS_USE_FIPS_ENDPOINT", num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub use_fips_endpoint: bool,
    /// Use the dual-stack (IPv4 and IPv6) variant of the AWS default endpoints.
    #[arg(long, env = "AWS_USE_DUALSTACK_ENDPOINT", num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub use_dualstack_endpoint: bool,
    /// Extra trust roots (PEM) for every AWS connection, e.g. a TLS-inspecting proxy's CA.
    #[arg(long, env = "AWS_CA_BUNDLE", value_name = "FILE")]
    pub ca_bundle: Option<CaBundle>,
    /// Resolve HOST to these addresses instead of asking DNS (like curl's --resolve, without the
    /// port). Repeatable; in the environment variable, separate entries with spaces.
    #[arg(long = "resolve", env = "CSI_PROVIDER_AWS_RESOLVE", value_name = "HOST=ADDR[,ADDR]", value_delimiter = ' ')]
    pub resolve: Vec<ResolveFlag>,
}
