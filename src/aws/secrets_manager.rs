//! Secrets Manager reads: `GetSecretValue` by name or ARN, VersionId or staging label.

use super::audit::{AuditScope, Requesters, send_audited};
use super::clients::build_client;
use super::{AwsCredentials, AwsReader, FetchError, Fetched, ReadItem, Route, Service, batch, errors};
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
    route: Route<'_>,
    items: &[(usize, &ReadItem)],
    requesters: &Requesters,
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let parts = reader.parts(Service::SecretsManager, route.region, route.spc.get(Service::SecretsManager));
    let client = build_client!(sm, parts, credentials);
    let scope = reader.audit_scope(route.region, requesters);
    let (current, pinned): (Vec<_>, Vec<_>) = items.iter().copied().partition(|(_, item)| batch::is_current(item));
    let (batched, singles) = if current.len() >= 2 && reader.batching_enabled() && reader.batch.allowed(identity) {
        (current, pinned)
    } else {
        (Vec::new(), items.to_vec())
    };
    let (mut out, singles) =
        tokio::join!(read_batched(&client, reader, identity, scope, &batched), read_singles(&client, scope, &singles));
    out.extend(singles);
    out
}

async fn read_singles(
    client: &sm::Client,
    scope: AuditScope<'_>,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    join_all(items.iter().map(|(index, item)| async move { (*index, read_one(client, scope, item).await) })).await
}

/// Batches of [`batch::BATCH`] ids in flight together; a batch that fails because batching is
/// denied or throttled is read again with single calls.
async fn read_batched(
    client: &sm::Client,
    reader: &AwsReader,
    identity: &str,
    scope: AuditScope<'_>,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    let region = scope.region;
    let ids: Vec<String> = items.iter().map(|(_, i)| i.name.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let chunks: Vec<&[String]> = ids.chunks(batch::BATCH).collect();
    let results = join_all(chunks.iter().map(|chunk| batch::read_batch(client, chunk, scope))).await;
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
    out.extend(read_singles(client, scope, &again).await);
    out
}

async fn read_one(client: &sm::Client, scope: AuditScope<'_>, item: &ReadItem) -> Result<Fetched, FetchError> {
    let region = scope.region;
    let request = client
        .get_secret_value()
        .secret_id(&item.name)
        .set_version_id(item.version_id.clone())
        .set_version_stage(item.version_label.clone());
    let output = send_audited!(request, scope.record(std::slice::from_ref(&item.name)))
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
