//! Bulk reads: every Parameter Store parameter under a path (`GetParametersByPath`, recursive
//! or not, SecureStrings decrypted) and every Secrets Manager secret matching filters
//! (`BatchGetSecretValue` with `Filters`). Both page until done, through the same clients (and so
//! the same call counting, endpoint rules and audit) as every other read. Reading stops, and the
//! read fails, past the listing's bound (`maxObjects`, capped by `--max-objects-per-mount`) or
//! past a page cap, so an answer that never ends costs a bounded number of calls.

use super::audit::{AuditScope, send_audited};
use super::clients::build_client;
use super::{AwsCredentials, AwsReader, Service, errors};
use crate::codes::ErrorCode;
use crate::params::{Bulk, SecretFilter};
use crate::read::{FetchError, Fetched, Listed, Listing, ReadItem, ReadResult, ReadScope};
use crate::secret::SecretBytes;
use aws_sdk_secretsmanager as sm;
use aws_sdk_ssm as ssm;
use futures::future::join_all;

/// The most items `GetParametersByPath` returns per page.
const SSM_PAGE: i32 = 10;
/// The most items `BatchGetSecretValue` returns per page with filters.
const SM_PAGE: i32 = 20;
/// Pages that may come back empty (AWS pages over items the caller may not see) beyond those
/// the bound needs.
const SPARE_PAGES: usize = 20;

/// The most bytes of values one listing may hold: `maxObjects` bounds the count, this the size
/// (a thousand 64 KiB secrets would otherwise be 64 MiB per mount).
pub const MAX_LISTING_BYTES: usize = 32 << 20;

/// Answers, each under the item it answers.
type Answered = Vec<(ReadItem, ReadResult)>;

/// The clients a mount's listings need (built only for the stores listed).
#[derive(Clone, Copy)]
struct Clients<'a> {
    ssm: Option<&'a ssm::Client>,
    sm: Option<&'a sm::Client>,
}

/// Lists every bulk item of a mount (concurrently).
pub(super) async fn list_all(
    reader: &AwsReader,
    scope: &ReadScope<'_, AwsCredentials>,
    items: &[&ReadItem],
) -> Answered {
    if items.is_empty() {
        return Vec::new();
    }
    let route = scope.route;
    let audit = reader.audit_scope(route.region, &scope.requesters);
    let lists_path = |path: bool| {
        items.iter().any(|i| i.listing.as_ref().is_some_and(|l| matches!(l.bulk, Bulk::Path { .. }) == path))
    };
    let ssm_client = lists_path(true).then(|| {
        build_client!(ssm, reader.parts(Service::Ssm, route.region, route.spc.get(Service::Ssm)), scope.credentials)
    });
    let sm_client = lists_path(false).then(|| {
        let parts = reader.parts(Service::SecretsManager, route.region, route.spc.get(Service::SecretsManager));
        build_client!(sm, parts, scope.credentials)
    });
    let clients = Clients { ssm: ssm_client.as_ref(), sm: sm_client.as_ref() };
    join_all(items.iter().map(|item| list_one(clients, audit, item))).await
}

/// One listing, its items packed into one value (see [`Listed::pack`]).
async fn list_one(clients: Clients<'_>, audit: AuditScope<'_>, item: &ReadItem) -> (ReadItem, ReadResult) {
    let result = match (&item.listing, clients.ssm, clients.sm) {
        (Some(Listing { bulk: Bulk::Path { path, recursive }, max }), Some(client), _) => {
            by_path(client, audit, item, path, *recursive, *max).await
        }
        (Some(Listing { bulk: Bulk::Filters(filters), max }), _, Some(client)) => {
            by_filters(client, audit, item, filters, *max).await
        }
        _ => Err(FetchError::unanswered(item, audit.region)),
    };
    (item.clone(), result.map(|items| Listed::pack(&items)))
}

/// The most pages a listing bounded at `max` items may take.
fn page_cap(max: usize, page: i32) -> usize {
    max.div_ceil(page.max(1) as usize) + SPARE_PAGES
}

fn too_many(item: &ReadItem, region: &str, max: usize) -> FetchError {
    let reason = format!(
        "lists more than {max} items (stopped reading): raise maxObjects (at most --max-objects-per-mount) or narrow what it lists"
    );
    FetchError::new(item, region, ErrorCode::InvalidParameters, None, reason)
}

fn too_large(item: &ReadItem, region: &str) -> FetchError {
    let reason =
        format!("lists more than {} MiB of values (stopped reading): narrow what it lists", MAX_LISTING_BYTES >> 20);
    FetchError::new(item, region, ErrorCode::InvalidParameters, None, reason)
}

/// The listing's bounds, checked after every page.
fn check_bounds(item: &ReadItem, region: &str, found: &[Listed], max: usize) -> Result<(), FetchError> {
    if found.len() > max {
        return Err(too_many(item, region, max));
    }
    let bytes: usize = found.iter().map(|l| l.name.len() + l.value.version.len() + l.value.value.len()).sum();
    if bytes > MAX_LISTING_BYTES {
        return Err(too_large(item, region));
    }
    Ok(())
}

fn endless(item: &ReadItem, region: &str, pages: usize) -> FetchError {
    let reason = format!("the listing was still paging after {pages} pages (stopped reading)");
    FetchError::new(item, region, ErrorCode::AwsError, None, reason)
}

/// `GetParametersByPath`, decrypted, page by page.
async fn by_path(
    client: &ssm::Client,
    audit: AuditScope<'_>,
    item: &ReadItem,
    path: &str,
    recursive: bool,
    max: usize,
) -> Result<Vec<Listed>, FetchError> {
    let region = audit.region;
    let (mut found, mut next) = (Vec::new(), None::<String>);
    let cap = page_cap(max, SSM_PAGE);
    for _ in 0..cap {
        let request = (client.get_parameters_by_path())
            .path(path)
            .recursive(recursive)
            .with_decryption(true)
            .max_results(SSM_PAGE)
            .set_next_token(next.take());
        let output = send_audited!(request, audit.record(std::slice::from_ref(&item.name)))
            .map_err(|e| errors::classify(&e).for_item(item, region))?;
        for param in output.parameters.unwrap_or_default() {
            let Some(name) = param.name else { continue };
            let value = SecretBytes::new(param.value.unwrap_or_default().into_bytes());
            found.push(Listed { name, value: Fetched { value, version: param.version.to_string() } });
        }
        check_bounds(item, region, &found, max)?;
        next = output.next_token.filter(|t| !t.is_empty());
        if next.is_none() {
            return Ok(found);
        }
    }
    Err(endless(item, region, cap))
}

/// `BatchGetSecretValue` with `Filters`, page by page. A secret the listing found but could not
/// read (its `Errors`) fails the read: a partial set is never mounted.
async fn by_filters(
    client: &sm::Client,
    audit: AuditScope<'_>,
    item: &ReadItem,
    filters: &[SecretFilter],
    max: usize,
) -> Result<Vec<Listed>, FetchError> {
    let region = audit.region;
    let filters: Vec<sm::types::Filter> = filters
        .iter()
        .map(|f| {
            let key = sm::types::FilterNameStringType::from(f.key.as_str());
            sm::types::Filter::builder().key(key).set_values(Some(f.values.clone())).build()
        })
        .collect();
    let (mut found, mut next) = (Vec::new(), None::<String>);
    let cap = page_cap(max, SM_PAGE);
    for _ in 0..cap {
        let request = (client.batch_get_secret_value())
            .set_filters(Some(filters.clone()))
            .max_results(SM_PAGE)
            .set_next_token(next.take());
        let output = send_audited!(request, audit.record(std::slice::from_ref(&item.name)))
            .map_err(|e| errors::classify(&e).for_item(item, region))?;
        if let Some(error) = output.errors.unwrap_or_default().into_iter().next() {
            let code = error.error_code.clone();
            let secret = error.secret_id.unwrap_or_default();
            let reason = format!(
                "{} reading {secret:?}: {}",
                code.as_deref().unwrap_or("error"),
                error.message.unwrap_or_default()
            );
            return Err(FetchError::new(item, region, errors::code_for(code.as_deref(), 400), code, reason));
        }
        for entry in output.secret_values.unwrap_or_default() {
            let name = entry.name.clone().unwrap_or_default();
            let value = super::batch::entry_value(entry).map_err(|f| f.for_item(item, region))?;
            found.push(Listed { name, value });
        }
        check_bounds(item, region, &found, max)?;
        next = output.next_token.filter(|t| !t.is_empty());
        if next.is_none() {
            return Ok(found);
        }
    }
    Err(endless(item, region, cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_cap_covers_the_bound_and_some_empty_pages() {
        assert_eq!(page_cap(100, SSM_PAGE), 30);
        assert_eq!(page_cap(1, SM_PAGE), 21);
        assert_eq!(page_cap(10_000, SSM_PAGE), 1020);
    }
}
