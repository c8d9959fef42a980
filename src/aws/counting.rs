//! Counts every AWS call attempt (what AWS bills and what quotas count) by service, operation
//! and outcome. Shared by every client; read by tests, the benchmark and metrics.

use crate::read::{CallKey, CallObserver};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The shared call counter (an SDK interceptor).
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<CallKey, u64>>>,
    observer: Option<Arc<dyn CallObserver>>,
}

/// When the current attempt started.
#[derive(Debug, Clone, Copy)]
struct AttemptStart(Instant);

impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

impl CallCounter {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter that also reports every call to `observer`.
    pub fn with_observer(observer: Arc<dyn CallObserver>) -> Self {
        CallCounter { counts: Arc::default(), observer: Some(observer) }
    }

    fn add(&self, key: CallKey, seconds: f64) {
        if let Some(observer) = &self.observer {
            observer.observe(&key, seconds);
        }
        *crate::sync::lock(&self.counts).entry(key).or_default() += 1;
    }
}

/// The short service name for the SDK's service name.
pub(super) fn short_service(sdk: &str) -> String {
    match sdk.to_ascii_lowercase().as_str() {
        "secrets manager" | "secretsmanager" => "secretsmanager".into(),
        "ssm" => "ssm".into(),
        "sts" => "sts".into(),
        other => other.replace(' ', "_"),
    }
}

/// The short service name (`secretsmanager`, `ssm`, `sts`) and the operation of the call `cfg`
/// belongs to.
pub(super) fn service_and_operation(cfg: &ConfigBag) -> (String, String) {
    match cfg.load::<Metadata>() {
        Some(m) => (short_service(m.service()), m.name().to_string()),
        None => ("unknown".into(), "unknown".into()),
    }
}

/// [`outcome`] of an HTTP response (or of its absence).
pub(super) fn response_outcome(response: Option<&HttpResponse>) -> String {
    outcome(response.map(|r| r.status().as_u16()), response.and_then(|r| r.headers().get("x-amzn-errortype")))
}

/// The outcome of one attempt from its HTTP response (or its absence).
pub fn outcome(status: Option<u16>, error_type: Option<&str>) -> String {
    match (status, error_type) {
        (None, _) => "transport".into(),
        (Some(s), _) if s < 300 => "success".into(),
        (Some(_), Some(t)) if !t.is_empty() => {
            let before_colon = t.split(':').next().unwrap_or(t);
            before_colon.rsplit('#').next().unwrap_or(before_colon).to_string()
        }
        (Some(s), _) if s < 500 => "http_4xx".into(),
        (Some(_), _) => "http_5xx".into(),
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(AttemptStart(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = service_and_operation(cfg);
        let seconds = cfg.load::<AttemptStart>().map(|s| s.0.elapsed().as_secs_f64()).unwrap_or_default();
        self.add(CallKey { service, operation, outcome: response_outcome(context.response()) }, seconds);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_classified() {
        assert_eq!(outcome(Some(200), None), "success");
        assert_eq!(
            outcome(Some(400), Some("ThrottlingException:http://internal.amazon.com/coral/")),
            "ThrottlingException"
        );
        assert_eq!(outcome(Some(400), Some("com.amazonaws#AccessDeniedException")), "AccessDeniedException");
        assert_eq!(outcome(Some(403), None), "http_4xx");
        assert_eq!(outcome(Some(503), None), "http_5xx");
        assert_eq!(outcome(None, None), "transport");
        assert_eq!(short_service("Secrets Manager"), "secretsmanager");
    }
}
