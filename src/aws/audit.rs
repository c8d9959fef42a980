//! `--audit-log`: one info line (target `audit`) per AWS request, after its retries: service,
//! operation, region, the endpoint dialled, the pods (`namespace/name`) and object names it
//! served, the HTTP status, the AWS error code and the AWS request id, so a security team can
//! join it with CloudTrail (whose records carry the same request id and the `vpcEndpointId`).
//! Never a value. A batched read lists every object in the batch; a read other pods joined while
//! it was in flight (coalescing) lists those pods too.

use super::counting::{response_outcome, service_and_operation};
use crate::read::Requesters;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::collections::BTreeSet;

/// What an audit line needs from a read: whether auditing is on, the region and who waits.
#[derive(Debug, Clone, Copy)]
pub(super) struct AuditScope<'a> {
    pub enabled: bool,
    pub region: &'a str,
    pub requesters: &'a Requesters,
}

impl AuditScope<'_> {
    /// The interceptor for one request reading `objects`, when auditing is on.
    pub fn record(&self, objects: &[String]) -> Option<AuditRecord> {
        let served = Served::Objects { requesters: self.requesters.clone(), objects: objects.to_vec() };
        self.enabled.then(|| AuditRecord::new(self.region, served))
    }
}

/// Sends a fluent request, with the audit interceptor when there is one.
macro_rules! send_audited {
    ($fluent:expr, $record:expr) => {{
        let operation = $fluent.customize();
        match $record {
            Some(record) => operation.interceptor(record).send().await,
            None => operation.send().await,
        }
    }};
}
pub(super) use send_audited;

/// Who one request is for.
#[derive(Debug, Clone)]
pub(super) enum Served {
    /// A read of these objects, for whoever waits on them.
    Objects { requesters: Requesters, objects: Vec<String> },
    /// A call for one pod (STS).
    Pod(String),
}

/// The per-request audit interceptor (attached with `customize()` to one operation).
#[derive(Debug, Clone)]
pub(super) struct AuditRecord {
    region: String,
    served: Served,
}

impl AuditRecord {
    pub fn new(region: &str, served: Served) -> Self {
        AuditRecord { region: region.to_string(), served }
    }

    fn pods_and_objects(&self) -> (String, String) {
        match &self.served {
            Served::Objects { requesters, objects } => {
                let pods = requesters.pods_for(objects.iter().map(String::as_str));
                (join(pods), join(objects.iter().cloned().collect()))
            }
            Served::Pod(pod) => (pod.clone(), String::new()),
        }
    }
}

fn join(items: BTreeSet<String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(",")
}

/// The endpoint the last attempt was sent to (`host:port`).
#[derive(Debug, Clone)]
struct Dialled(String);

impl Storable for Dialled {
    type Storer = StoreReplace<Self>;
}

impl Intercept for AuditRecord {
    fn name(&self) -> &'static str {
        "AuditRecord"
    }

    fn read_before_signing(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let endpoint = crate::net::UrlHost::parse(context.request().uri()).map(|h| h.to_string()).unwrap_or_default();
        cfg.interceptor_state().store_put(Dialled(endpoint));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = service_and_operation(cfg);
        let endpoint = cfg.load::<Dialled>().map(|d| d.0.clone()).unwrap_or_default();
        let response = context.response();
        let header = |name: &str| response.and_then(|r| r.headers().get(name)).unwrap_or("").to_string();
        let request_id =
            Some(header("x-amzn-requestid")).filter(|h| !h.is_empty()).unwrap_or_else(|| header("x-amz-request-id"));
        let status = response.map(|r| r.status().as_u16().to_string()).unwrap_or_else(|| "none".into());
        let error = response_outcome(response);
        let (pods, objects) = self.pods_and_objects();
        tracing::info!(
            target: "audit",
            service = %service,
            operation = %operation,
            region = %self.region,
            endpoint = %endpoint,
            pods = %pods,
            objects = %objects,
            status = %status,
            outcome = %error,
            request_id = %request_id,
            "aws request"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::counting::short_service;
    use super::*;

    #[test]
    fn followers_join_the_pods_of_the_objects_they_wait_on() {
        let requesters = Requesters::default();
        requesters.add("db", "shop/web-1");
        requesters.add("db", "shop/web-2");
        requesters.add("api-key", "shop/api");
        assert_eq!(join(requesters.pods_for(["db"])), "shop/web-1,shop/web-2");
        assert_eq!(join(requesters.pods_for(["db", "api-key"])), "shop/api,shop/web-1,shop/web-2");
        let record =
            AuditRecord::new("us-west-2", Served::Objects { requesters, objects: vec!["db".into(), "api-key".into()] });
        assert_eq!(record.pods_and_objects().1, "api-key,db");
        assert_eq!(short_service("Secrets Manager"), "secretsmanager");
    }
}
