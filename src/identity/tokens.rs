//! Picks the service-account token for an audience from what the driver passed.

use super::IdentityError;
use crate::params::{MountParams, ServiceAccountToken};

/// The token for `audience`, or an error that says to configure `tokenRequests`.
pub fn token_for<'a>(
    params: &'a MountParams,
    audience: &'static str,
) -> Result<&'a ServiceAccountToken, IdentityError> {
    params.tokens.get(audience).filter(|t| !t.token.expose().is_empty()).ok_or(IdentityError::TokenMissing { audience })
}
