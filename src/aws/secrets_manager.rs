//! Secrets Manager reads: `GetSecretValue` by name or ARN, VersionId or staging label.

use super::clients::build_client;
use super::{AwsCredentials, AwsReader, FetchError, Fetched, ReadItem, Service, batch, errors};
use crate::secret::SecretBytes;
use aws_sdk_secretsmanager as sm;
use futures::future::join_all;
use std::collections::BTreeSet;

/// Reads every item: current versions of two or more secrets through `BatchGetSecretValue`
/// (when this identity may), everything else through concurrent `GetSecretValue` calls.
pub(super) async fn read_all(
    reader: &AwsReader,
    credentials: &AwsCredentials,
    identity: &str,
    region: &str,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let client = build_client!(sm, reader.parts(Service::SecretsManager, region), credentials);
    let (current, pinned): (Vec<_>, Vec<_>) = items.iter().copied().partition(|(_, item)| batch::is_current(item));
    let (batched, singles) = if current.len() >= 2 && reader.batch.allowed(identity) {
        (current, pinned)
    } else {
        (Vec::new(), items.to_vec())
    };
    let (mut out, singles) = tokio::join!(
        read_batched(&client, reader, identity, region, &batched),
        read_singles(&client, region, &singles)
    );
    out.extend(singles);
    out
}

async fn read_singles(
    client: &sm::Client,
    region: &str,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    join_all(items.iter().map(|(index, item)| async move { (*index, read_one(client, region, item).await) })).await
}

/// Batches of [`batch::BATCH`] ids in flight together; a batch that fails because batching is
/// denied or throttled is read again with single calls.
async fn read_batched(
    client: &sm::Client,
    reader: &AwsReader,
    identity: &str,
    region: &str,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    let ids: Vec<String> = items.iter().map(|(_, i)| i.name.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let chunks: Vec<&[String]> = ids.chunks(batch::BATCH).collect();
    let results = join_all(chunks.iter().map(|chunk| batch::read_batch(client, chunk))).await;
    let mut answers = batch::BatchAnswers::new();
    let mut retry_singly = BTreeSet::new();
    for (chunk, result) in chunks.iter().zip(results) {
        match result {
            Ok(found) => answers.extend(found),
            Err(failure) if reader.batch.learn(identity, &failure) => retry_singly.extend(chunk.iter().cloned()),
            Err(failure) => answers.extend(chunk.iter().map(|id| (id.clone(), Err(failure.clone())))),
        }
    }
    let (again, done): (Vec<_>, Vec<_>) = items.iter().copied().partition(|(_, i)| retry_singly.contains(&i.name));
    let mut out: Vec<_> = done
        .into_iter()
        .map(|(index, item)| (index, batch::result_for(item, region, answers.get(&item.name))))
        .collect();
    out.extend(read_singles(client, region, &again).await);
    out
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
