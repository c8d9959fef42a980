//! STS `AssumeRoleWithWebIdentity` (IRSA: the pod's token for the role's credentials, unsigned)
//! and `AssumeRole` (`assumeRoleArn`: role chaining, signed with the pod's own credentials), on
//! the STS endpoint of the region being read. Both use the one client construction every
//! service uses: endpoint precedence (the SecretProviderClass's admitted `stsEndpoint` first),
//! FIPS/dual-stack, `--require-private-endpoints`, the proxy, the CA bundle, our user agent and
//! call counting.

use super::audit::{AuditRecord, Served, send_audited};
use super::clients::{build_client, configure};
use super::{AwsCredentials, AwsReader, Route, Service, errors};
use crate::secret::SecretString;
use aws_sdk_sts as sts;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::SystemTime;

/// Credentials STS granted for a web-identity token.
#[derive(Debug, Clone)]
pub struct WebIdentityGrant {
    pub credentials: AwsCredentials,
    /// The `AssumedRoleUser` ARN STS returned (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub assumed_role_arn: String,
    pub expires: Option<SystemTime>,
}

/// One web-identity exchange.
#[derive(Debug, Clone, Copy)]
pub struct WebIdentityRequest<'a> {
    pub route: Route<'a>,
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub token: &'a SecretString,
    /// `namespace/name` of the pod, for the audit line.
    pub pod: &'a str,
}

/// One `AssumeRole` (role chaining) with a pod's own credentials.
#[derive(Debug, Clone, Copy)]
pub struct AssumeRoleRequest<'a> {
    pub route: Route<'a>,
    /// The pod's own credentials: they sign the call, so STS checks the pod's identity.
    pub credentials: &'a AwsCredentials,
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub external_id: Option<&'a str>,
    pub duration_seconds: Option<u32>,
    /// `namespace/name` of the pod, for the audit line.
    pub pod: &'a str,
}

impl AwsReader {
    /// Assumes the request's role with the pod's credentials (`sts:AssumeRole`).
    pub async fn assume_role(&self, request: AssumeRoleRequest<'_>) -> Result<WebIdentityGrant, errors::Failure> {
        let parts = self.parts(Service::Sts, request.route.region, request.route.spc.get(Service::Sts));
        let client = build_client!(sts, parts, request.credentials);
        let call = client
            .assume_role()
            .role_arn(request.role_arn)
            .role_session_name(request.session_name)
            .set_external_id(request.external_id.map(str::to_string))
            .set_duration_seconds(request.duration_seconds.and_then(|s| i32::try_from(s).ok()));
        let audit = self.sts_audit(request.route.region, request.pod);
        let output = match send_audited!(call, audit) {
            Ok(output) => output,
            Err(e) => return Err(self.sts_failure(&e, request.route).await),
        };
        grant(output.credentials, output.assumed_role_user, request.role_arn)
    }

    /// A failed STS call, classified, naming the endpoint when it could not be reached.
    async fn sts_failure<E>(&self, e: &SdkError<E, HttpResponse>, route: Route<'_>) -> errors::Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut failure = errors::classify(e);
        if super::clients::concerns_the_network(failure.code) {
            failure.reason.push_str(&self.endpoint_note(Service::Sts, route).await);
        }
        failure
    }

    /// Exchanges the request's token for credentials of its role.
    pub async fn assume_role_with_web_identity(
        &self,
        request: WebIdentityRequest<'_>,
    ) -> Result<WebIdentityGrant, errors::Failure> {
        let call = self
            .sts_client(request.route)
            .assume_role_with_web_identity()
            .role_arn(request.role_arn)
            .role_session_name(request.session_name)
            .web_identity_token(request.token.expose());
        let audit = self.sts_audit(request.route.region, request.pod);
        let output = match send_audited!(call, audit) {
            Ok(output) => output,
            Err(e) => return Err(self.sts_failure(&e, request.route).await),
        };
        grant(output.credentials, output.assumed_role_user, request.role_arn)
    }

    /// An STS client with no credentials: the web-identity call is unsigned.
    fn sts_client(&self, route: Route<'_>) -> sts::Client {
        let parts = self.parts(Service::Sts, route.region, route.spc.get(Service::Sts));
        sts::Client::from_conf(configure!(sts::Config::builder(), &parts).build())
    }

    fn sts_audit(&self, region: &str, pod: &str) -> Option<AuditRecord> {
        self.audit_enabled().then(|| AuditRecord::new(region, Served::Pod(pod.to_string())))
    }
}

/// The grant in an STS answer (either call): its credentials, named by the assumed-role ARN STS
/// returned (else the role asked for), and when they expire.
fn grant(
    creds: Option<sts::types::Credentials>,
    user: Option<sts::types::AssumedRoleUser>,
    role_arn: &str,
) -> Result<WebIdentityGrant, errors::Failure> {
    let creds = creds.ok_or_else(|| bad("the response carries no credentials"))?;
    let assumed = user.map(|u| u.arn).unwrap_or_else(|| role_arn.to_string());
    let expires = SystemTime::try_from(creds.expiration).ok();
    let credentials =
        AwsCredentials::fixed(&creds.access_key_id, &creds.secret_access_key, Some(&creds.session_token), &assumed);
    Ok(WebIdentityGrant { credentials, assumed_role_arn: assumed, expires })
}

fn bad(reason: &str) -> errors::Failure {
    errors::Failure { code: crate::codes::ErrorCode::IdentityFailed, aws_code: None, reason: reason.to_string() }
}
