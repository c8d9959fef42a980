//! STS `AssumeRoleWithWebIdentity` (IRSA): the pod's token for the role's credentials, on the
//! STS endpoint of the region being read (endpoint precedence as for every service, the
//! SecretProviderClass's admitted `stsEndpoint` first; FIPS/dual-stack and
//! `--require-private-endpoints` apply), unsigned.

use super::audit::{AuditRecord, Served, send_audited};
use super::clients::configure;
use super::{AwsCredentials, AwsReader, Route, Service, errors};
use crate::secret::SecretString;
use aws_sdk_sts as sts;
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

impl AwsReader {
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
            Err(e) => {
                let mut failure = errors::classify(&e);
                if super::clients::concerns_the_network(failure.code) {
                    failure.reason.push_str(&self.endpoint_note(Service::Sts, request.route).await);
                }
                return Err(failure);
            }
        };
        let creds = output.credentials.ok_or_else(|| bad("the response carries no credentials"))?;
        let assumed = output.assumed_role_user.map(|u| u.arn).unwrap_or_else(|| request.role_arn.to_string());
        let expires = SystemTime::try_from(creds.expiration).ok();
        let credentials =
            AwsCredentials::fixed(&creds.access_key_id, &creds.secret_access_key, Some(&creds.session_token), &assumed);
        Ok(WebIdentityGrant { credentials, assumed_role_arn: assumed, expires })
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

fn bad(reason: &str) -> errors::Failure {
    errors::Failure { code: crate::codes::ErrorCode::IdentityFailed, aws_code: None, reason: reason.to_string() }
}
