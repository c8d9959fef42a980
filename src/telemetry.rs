//! Logging set-up: `tracing` with an EnvFilter, plain or JSON lines on stderr. Plain lines are
//! coloured only when stderr is a terminal and `NO_COLOR` is unset (`kubectl logs` shows no escape
//! codes); JSON lines carry the current span once (`span`), not the span list as well.
//!
//! Names in log lines come from SecretProviderClasses, pods and AWS answers. JSON lines escape
//! them by construction; plain lines go through `escaped_fields`, which escapes every control
//! character (a newline in a value cannot start a forged line, an escape sequence cannot drive
//! a terminal).

use clap::Args;
use std::fmt::{self, Write as _};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Logging flags, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// `error`, `warn`, `info`, `debug`, `trace`, or an EnvFilter directive.
    #[arg(long, env = "CSI_PROVIDER_AWS_LOG_LEVEL", default_value = "info")]
    pub log_level: LogLevel,
    /// Log line format.
    #[arg(long, env = "CSI_PROVIDER_AWS_LOG_FORMAT", default_value = "plain")]
    pub log_format: LogFormat,
}

/// The log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `message name=value ...`, control characters escaped.
    Plain,
    /// One JSON object per line.
    Json,
}

/// A `--log-level` value, checked when parsed: a bare level or an EnvFilter directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl std::str::FromStr for LogLevel {
    type Err = TelemetryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        filter_for(s)?;
        Ok(LogLevel(s.to_string()))
    }
}

impl LogLevel {
    /// The filter this level stands for.
    pub fn filter(&self) -> EnvFilter {
        filter_for(&self.0).unwrap_or_else(|_| EnvFilter::new("info"))
    }
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-level` is neither a level nor a valid directive.
    #[error("invalid --log-level {level:?}: {reason}")]
    Filter {
        /// The value given.
        level: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// The filter for a `--log-level` value: a bare level applies to this crate and keeps the AWS
/// and HTTP stacks at `warn` unless the level is `trace`; anything else is an EnvFilter directive.
/// Audit lines (target `audit`, only written with `--audit-log`) pass at any level unless the
/// directive names `audit` itself.
pub(crate) fn filter_for(level: &str) -> Result<EnvFilter, TelemetryError> {
    let directive = match level.trim() {
        "error" | "warn" => level.trim().to_string(),
        "info" | "debug" => format!("warn,csi_provider_aws={0},csi_provider_aws::server={0}", level.trim()),
        "trace" => "trace".to_string(),
        other => other.to_string(),
    };
    let directive = if directive.contains("audit") { directive } else { format!("{directive},audit=info") };
    // The SDK's IMDS region probe (only reached without a region, with --local-credentials) warns
    // with a Debug dump of its HTTP response on every start off EC2.
    let directive =
        if directive.contains("aws_config") { directive } else { format!("{directive},aws_config::imds=error") };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|e| TelemetryError::Filter { level: level.to_string(), reason: e.to_string() })
}

/// Installs the global subscriber.
pub fn init(args: &LogArgs) -> Result<(), TelemetryError> {
    let filter = args.log_level.filter();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Plain => builder.with_ansi(use_colour()).fmt_fields(escaped_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadySet)
}

/// Colour only on a terminal, and never with `NO_COLOR` set (any value, as no-color.org asks).
fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Milliseconds rounded to a tenth, for log fields (`duration_ms=27.2`, not `27.192577999999997`).
pub fn rounded_ms(seconds: f64) -> f64 {
    (seconds * 10_000.0).round() / 10.0
}

/// The plain format's fields (`message` first, then `name=value`, spaces between), with every
/// control character in a name, a value or the message escaped (`\n`, `\u{1b}`).
pub(crate) fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
        let mut out = Escaping(w);
        match field.name() {
            "message" => write!(out, "{value:?}"),
            name => write!(out, "{name}={value:?}"),
        }
    })
    .delimited(" ")
}

/// A `fmt::Write` that escapes control characters on the way through.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Regression (issue #11): a newline in an objectName started a fake `audit` line in the
    /// plain log format.
    #[test]
    fn plain_lines_cannot_be_forged() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .fmt_fields(escaped_fields())
            .finish();
        let forged = "db\n2026-01-01T00:00:00Z  INFO audit: aws request outcome=ok\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("mount", target = %forged);
            let _entered = span.enter();
            tracing::info!(object = %forged, other = forged, "read {forged}");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "one event, one line: {text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_eq!(text.matches("db\\n2026").count(), 4, "message, span field and both event fields: {text}");
    }

    #[test]
    fn levels_and_directives() {
        assert!(filter_for("debug").is_ok());
        assert!(filter_for("csi_provider_aws=trace,aws_smithy_runtime=debug").is_ok());
        assert!(filter_for("csi_provider_aws=loud").is_err());
        assert!(filter_for("warn").unwrap().to_string().contains("audit=info"));
        assert!(!filter_for("audit=off").unwrap().to_string().contains("audit=info"));
    }
}
