//! Secrets Manager reads: `GetSecretValue` by name or ARN, VersionId or staging label.

use super::clients::build_client;
use super::{AwsCredentials, AwsReader, FetchError, Fetched, ReadItem, Service, errors};
use crate::secret::SecretBytes;
use aws_sdk_secretsmanager as sm;
use futures::future::join_all;

/// Reads each item concurrently; results keep the caller's indexes.
pub(super) async fn read_all(
    reader: &AwsReader,
    credentials: &AwsCredentials,
    region: &str,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let client = build_client!(sm, reader.parts(Service::SecretsManager, region), credentials);
    let reads = items.iter().map(|(index, item)| {
        let client = &client;
        async move { (*index, read_one(client, region, item).await) }
    });
    join_all(reads).await
}

async fn read_one(client: &sm::Client, region: &str, item: &ReadItem) -> Result<Fetched, FetchError> {
    let output = client
        .get_secret_value()
        .secret_id(&item.name)
        .set_version_id(item.version_id.clone())
        .set_version_stage(item.version_label.clone())
        .send()
        .await
        .map_err(|e| FetchError::new(item, region, errors::classify(&e)))?;
    let version = output
        .version_id()
        .map(str::to_string)
        .ok_or_else(|| FetchError::bad_response(item, region, "the response carries no VersionId"))?;
    let value = match (output.secret_string, output.secret_binary) {
        (Some(text), _) => SecretBytes::new(text.into_bytes()),
        (None, Some(blob)) => SecretBytes::new(blob.into_inner()),
        (None, None) => return Err(FetchError::bad_response(item, region, "the response carries no value")),
    };
    Ok(Fetched { value, version })
}
