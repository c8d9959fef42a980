//! The gRPC service: protobuf ⇄ domain types, and the one place errors become gRPC statuses.
//! Nothing else here: the work is in [`crate::mount`].

use crate::codes::ErrorCode;
use crate::metrics::Metrics;
use crate::mount::{Delivery, MountError, MountInput, MountOutput, Mounter};
use crate::pb::csi_driver_provider_server::CsiDriverProvider;
use crate::pb::{File, MountRequest, MountResponse, ObjectVersion, VersionRequest, VersionResponse};
use crate::render::FileVersion;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

/// The provider API on top of a [`Mounter`].
#[derive(Debug, Clone)]
pub struct ProviderService {
    mounter: Arc<Mounter>,
    metrics: Arc<Metrics>,
}

impl ProviderService {
    pub fn new(mounter: Arc<Mounter>, metrics: Arc<Metrics>) -> Self {
        ProviderService { mounter, metrics }
    }

    /// Records a finished mount in the metrics.
    fn record(&self, kind: &str, result: &Result<MountOutput, MountError>, seconds: f64) {
        match result {
            Ok(output) => {
                self.metrics.mount_done(kind, None, seconds);
                if let Delivery::Written { changed, bytes } = &output.delivery {
                    self.metrics.bytes_written.inc_by(*bytes);
                    if kind == "resync" {
                        self.metrics.objects_rotated.inc_by(changed.len() as u64);
                    }
                }
            }
            Err(err) => {
                self.metrics.mount_done(kind, Some(err.code().as_str()), seconds);
                if let Some(object) = err.object() {
                    self.metrics.object_failed(err.code().as_str(), object);
                }
            }
        }
    }
}

/// Decrements the in-flight gauge however the mount ends (cancellation included).
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn start(metrics: &Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(&self, _request: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "v1alpha1".into(),
            runtime_name: crate::RUNTIME_NAME.into(),
            runtime_version: crate::RUNTIME_VERSION.into(),
        }))
    }

    async fn mount(&self, request: Request<MountRequest>) -> Result<Response<MountResponse>, Status> {
        let started = Instant::now();
        let _in_flight = InFlight::start(&self.metrics);
        let input = input_from(request.into_inner());
        let kind = self.mounter.kind(&input);
        // One span per mount; the mounter records who mounts once it has read the attributes.
        let span = tracing::info_span!(
            "mount",
            namespace = tracing::field::Empty,
            pod = tracing::field::Empty,
            spc = tracing::field::Empty,
            target = %input.target_path,
            kind,
        );
        let result = self.mounter.mount(input, kind).instrument(span.clone()).await;
        let elapsed = started.elapsed().as_secs_f64();
        self.record(kind, &result, elapsed);
        let duration_ms = crate::telemetry::rounded_ms(elapsed);
        let _entered = span.enter();
        match result {
            Ok(output) => {
                log_success(&output, duration_ms);
                Ok(Response::new(response_from(output)))
            }
            Err(err) => {
                let code = err.code();
                tracing::warn!(outcome = "error", code = %code, error = %err, duration_ms, "mount failed");
                Err(status_from(&err))
            }
        }
    }
}

fn input_from(request: MountRequest) -> MountInput {
    MountInput {
        attributes: request.attributes,
        secrets: request.secrets,
        target_path: request.target_path,
        permission: request.permission,
        current_versions: request
            .current_object_version
            .into_iter()
            .map(|v| FileVersion { id: v.id, version: v.version })
            .collect(),
    }
}

fn response_from(output: MountOutput) -> MountResponse {
    MountResponse {
        object_version: output.versions.into_iter().map(|v| ObjectVersion { id: v.id, version: v.version }).collect(),
        error: None,
        files: output
            .files
            .into_iter()
            .map(|f| File { path: f.path.clone(), mode: f.mode as i32, contents: f.contents.expose().to_vec() })
            .collect(),
    }
}

/// One `info` line per mount that wrote or returned files; an unchanged re-sync (every pod, every
/// rotation poll) only at `debug`, where the metrics count it.
fn log_success(output: &MountOutput, duration_ms: f64) {
    let (objects, files) = (output.objects, output.versions.len());
    let (delivery, changed) = match &output.delivery {
        Delivery::Written { changed, .. } => ("written", changed.len()),
        Delivery::Unchanged => {
            tracing::debug!(
                outcome = "success",
                code = "",
                objects,
                files,
                delivery = "unchanged",
                duration_ms,
                "mount succeeded"
            );
            return;
        }
        Delivery::Returned => ("returned", output.files.len()),
    };
    tracing::info!(outcome = "success", code = "", objects, files, delivery, changed, duration_ms, "mount succeeded");
}

/// The gRPC status for a failed mount: the message starts with the stable code; only
/// transient failures are `UNAVAILABLE` (the one code the driver retries).
pub fn status_from(err: &MountError) -> Status {
    let code = err.code();
    Status::new(grpc_code(code), format!("{code}: {err}"))
}

fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidParameters | ErrorCode::JmesPathFailed | ErrorCode::InvalidTarget => Code::InvalidArgument,
        ErrorCode::TokenMissing => Code::Unauthenticated,
        ErrorCode::IdentityFailed | ErrorCode::AccessDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Throttled | ErrorCode::EndpointUnreachable => Code::Unavailable,
        ErrorCode::AwsError | ErrorCode::PublicEndpointRefused => Code::FailedPrecondition,
        ErrorCode::WriteFailed | ErrorCode::Internal => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two codes a request cannot cause from outside (tests/integration/error_text.rs
    /// induces the others on the real binary): their status messages are text for people too.
    #[tokio::test]
    async fn write_and_internal_failures_read_as_text() {
        let full = std::io::Error::from_raw_os_error(28);
        let write =
            MountError::Write(crate::write::WriteError::Io { op: "rename", path: "..data".into(), error: full });
        let panicked = tokio::spawn(async { panic!("a bug") }).await.expect_err("the task panics");
        let internal = MountError::Internal(format!("the write task failed: {panicked}"));
        for (err, code) in [(write, "WriteFailed: "), (internal, "Internal: ")] {
            let status = status_from(&err);
            let message = status.message();
            assert!(message.starts_with(code), "{message}");
            for marker in ["Os {", "kind: ", "Some(", "JoinError", "::"] {
                assert!(!message.contains(marker), "{marker:?} in {message}");
            }
        }
    }

    #[test]
    fn only_transient_codes_are_unavailable() {
        for code in ErrorCode::ALL {
            assert_eq!(grpc_code(code) == Code::Unavailable, code.is_transient(), "{code}");
        }
    }
}
