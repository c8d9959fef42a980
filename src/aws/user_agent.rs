//! Tags every outbound AWS call with `csi-provider-aws/<version>` (and the EKS add-on version
//! when set), so CloudTrail shows who fetched.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Appends our product token to the `user-agent` header (excluded from SigV4 signing).
#[derive(Debug, Clone)]
pub struct UserAgentTag {
    suffix: String,
}

impl UserAgentTag {
    pub fn new(eks_addon_version: &str) -> Self {
        let mut suffix = format!("{}/{}", crate::RUNTIME_NAME, crate::RUNTIME_VERSION);
        let addon: String =
            eks_addon_version.chars().filter(|c| c.is_ascii_alphanumeric() || "._-+".contains(*c)).collect();
        if !addon.is_empty() {
            suffix.push_str(&format!(" eks-addon/{addon}"));
        }
        Self { suffix }
    }

    /// The text appended to the user agent.
    #[cfg(test)]
    pub fn suffix(&self) -> &str {
        &self.suffix
    }
}

impl Intercept for UserAgentTag {
    fn name(&self) -> &'static str {
        "UserAgentTag"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        let value = match headers.get("user-agent") {
            Some(current) => format!("{current} {}", self.suffix),
            None => self.suffix.clone(),
        };
        headers.insert("user-agent", value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_names_us_and_a_sanitised_addon_version() {
        assert_eq!(UserAgentTag::new("").suffix(), format!("csi-provider-aws/{}", crate::RUNTIME_VERSION));
        assert!(UserAgentTag::new("v1.2.3-eksbuild.1\r\nX: y").suffix().ends_with(" eks-addon/v1.2.3-eksbuild.1Xy"));
    }
}
