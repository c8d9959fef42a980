//! Secrets Manager reads: `GetSecretValue` by name or ARN, VersionId or staging label.

use super::audit::{AuditScope, send_audited};
use super::clients::build_client;
use super::{AwsCredentials, AwsReader, Service, bad_response, batch, errors};
use crate::read::{Fetched, ReadItem, ReadResult, ReadScope};
use crate::secret::SecretBytes;
use aws_sdk_secretsmanager as sm;
use futures::future::join_all;
use std::collections::BTreeSet;

/// Answers, each under the item it answers.
type Answered = Vec<(ReadItem, ReadResult)>;

/// Reads every item: current versions of two or more secrets through `BatchGetSecretValue`
/// (when this identity may), everything else through concurrent `GetSecretValue` calls.
pub(super) async fn read_all(
    reader: &AwsReader,
    scope: &ReadScope<'_, AwsCredentials>,
    items: &[&ReadItem],
) -> Answered {
    if items.is_empty() {
        return Vec::new();
    }
    let route = scope.route;
    let parts = reader.parts(Service::SecretsManager, route.region, route.spc.get(Service::SecretsManager));
    let client = build_client!(sm, parts, scope.credentials);
    let audit = reader.audit_scope(route.region, &scope.requesters);
    let identity = scope.identity;
    let (current, pinned): (Vec<&ReadItem>, Vec<&ReadItem>) =
        items.iter().copied().partition(|item| batch::is_current(item));
    let (batched, singles) = if current.len() >= 2 && reader.batching_enabled() && reader.batch.allowed(identity) {
        (current, pinned)
    } else {
        (Vec::new(), items.to_vec())
    };
    let (mut out, singles) =
        tokio::join!(read_batched(&client, reader, identity, audit, &batched), read_singles(&client, audit, &singles));
    out.extend(singles);
    out
}

async fn read_singles(client: &sm::Client, scope: AuditScope<'_>, items: &[&ReadItem]) -> Answered {
    join_all(items.iter().map(|item| async move { ((*item).clone(), read_one(client, scope, item).await) })).await
}

/// Batches of [`batch::BATCH`] ids in flight together; a batch that fails because batching is
/// denied or throttled is read again with single calls.
async fn read_batched(
    client: &sm::Client,
    reader: &AwsReader,
    identity: &str,
    scope: AuditScope<'_>,
    items: &[&ReadItem],
) -> Answered {
    let region = scope.region;
    let ids: Vec<String> = items.iter().map(|i| i.name.clone()).collect::<BTreeSet<_>>().into_iter().collect();
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
    let (again, done): (Vec<&ReadItem>, Vec<&ReadItem>) =
        items.iter().copied().partition(|i| retry_singly.contains(&i.name));
    let mut out: Answered =
        done.into_iter().map(|item| (item.clone(), batch::result_for(item, region, answers.get(&item.name)))).collect();
    out.extend(read_singles(client, scope, &again).await);
    out
}

async fn read_one(client: &sm::Client, scope: AuditScope<'_>, item: &ReadItem) -> ReadResult {
    let region = scope.region;
    let request = client
        .get_secret_value()
        .secret_id(&item.name)
        .set_version_id(item.version_id.clone())
        .set_version_stage(item.version_label.clone());
    let output = send_audited!(request, scope.record(std::slice::from_ref(&item.name)))
        .map_err(|e| errors::classify(&e).for_item(item, region))?;
    let version = output
        .version_id()
        .map(str::to_string)
        .ok_or_else(|| bad_response(item, region, "the response carries no VersionId"))?;
    let value = match (output.secret_string, output.secret_binary) {
        (Some(text), _) => SecretBytes::new(text.into_bytes()),
        (None, Some(blob)) => SecretBytes::new(blob.into_inner()),
        (None, None) => return Err(bad_response(item, region, "the response carries no value")),
    };
    Ok(Fetched { value, version })
}
