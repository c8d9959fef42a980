//! Logging set-up: `tracing` with an EnvFilter, plain or JSON lines on stderr.

use crate::cli::{LogArgs, LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid --log-level {level:?}: {reason}")]
    Filter { level: String, reason: String },
    #[error("logging was already initialised")]
    AlreadySet,
}

/// The filter for a `--log-level` value: a bare level applies to this crate and keeps the AWS
/// and HTTP stacks at `warn` unless the level is `trace`; anything else is an EnvFilter directive.
/// Audit lines (target `audit`, only written with `--audit-log`) pass at any level unless the
/// directive names `audit` itself.
pub fn filter_for(level: &str) -> Result<EnvFilter, TelemetryError> {
    let directive = match level.trim() {
        "error" | "warn" => level.trim().to_string(),
        "info" | "debug" => format!("warn,csi_provider_aws={0},csi_provider_aws::server={0}", level.trim()),
        "trace" => "trace".to_string(),
        other => other.to_string(),
    };
    let directive = if directive.contains("audit") { directive } else { format!("{directive},audit=info") };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|e| TelemetryError::Filter { level: level.to_string(), reason: e.to_string() })
}

/// Installs the global subscriber.
pub fn init(args: &LogArgs) -> Result<(), TelemetryError> {
    let filter = filter_for(&args.log_level)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives() {
        assert!(filter_for("debug").is_ok());
        assert!(filter_for("csi_provider_aws=trace,aws_smithy_runtime=debug").is_ok());
        assert!(filter_for("csi_provider_aws=loud").is_err());
        assert!(filter_for("warn").unwrap().to_string().contains("audit=info"));
        assert!(!filter_for("audit=off").unwrap().to_string().contains("audit=info"));
    }
}
