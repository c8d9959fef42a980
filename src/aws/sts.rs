//! STS `AssumeRoleWithWebIdentity` (IRSA): the pod's token for the role's credentials, on the
//! STS endpoint of the region being read (endpoint precedence as for every service), unsigned.

use super::{AwsCredentials, AwsReader, Service, errors};
use crate::secret::SecretString;
use aws_config::BehaviorVersion;
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

impl AwsReader {
    /// Exchanges `token` for credentials of `role_arn` in `region`.
    pub async fn assume_role_with_web_identity(
        &self,
        region: &str,
        role_arn: &str,
        session_name: &str,
        token: &SecretString,
    ) -> Result<WebIdentityGrant, errors::Failure> {
        let output = self
            .sts_client(region)
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .web_identity_token(token.expose())
            .send()
            .await
            .map_err(|e| errors::classify(&e))?;
        let creds = output.credentials.ok_or_else(|| bad("the response carries no credentials"))?;
        let assumed = output.assumed_role_user.map(|u| u.arn).unwrap_or_else(|| role_arn.to_string());
        let expires = SystemTime::try_from(creds.expiration).ok();
        let credentials =
            AwsCredentials::fixed(&creds.access_key_id, &creds.secret_access_key, Some(&creds.session_token), &assumed);
        Ok(WebIdentityGrant { credentials, assumed_role_arn: assumed, expires })
    }

    /// An STS client with no credentials: the web-identity call is unsigned.
    fn sts_client(&self, region: &str) -> sts::Client {
        let parts = self.parts(Service::Sts, region);
        let mut builder = sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(parts.region.clone())
            .http_client(parts.http.clone())
            .retry_config(parts.retry.clone())
            .timeout_config(parts.timeouts.clone())
            .interceptor(parts.user_agent.clone())
            .interceptor(parts.calls.clone());
        if let Some(url) = &parts.endpoint {
            builder = builder.endpoint_url(url.clone());
        }
        sts::Client::from_conf(builder.build())
    }
}

fn bad(reason: &str) -> errors::Failure {
    errors::Failure { code: crate::codes::ErrorCode::IdentityFailed, aws_code: None, reason: reason.to_string() }
}
