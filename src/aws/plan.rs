//! The calls a read will make, said before it is made (for the budget): the same split the
//! readers use, from the same functions: Secrets Manager's current versions in
//! `BatchGetSecretValue` calls of [`batch::BATCH`] when batching is allowed (two or more), the
//! rest one `GetSecretValue` each; Parameter Store names, deduplicated, in `GetParameters` calls
//! of [`parameter_store::BATCH`] without a repeated base name; a bulk listing as one call of its
//! API (`GetParametersByPath` for an `objectPath`, `BatchGetSecretValue` for `filters`): its first
//! page is admitted, later pages follow it unplanned (a listing's pages are bounded by its
//! `maxObjects`).

use super::{AwsReader, batch, parameter_store};
use crate::budget::{Api, PlannedCall};
use crate::params::{Bulk, ObjectType};
use crate::read::ReadItem;
use std::collections::BTreeMap;

impl AwsReader {
    /// The calls reading `items` as `identity` will make now.
    pub fn plan(&self, identity: &str, items: &[ReadItem]) -> Vec<PlannedCall> {
        plan_calls(items, self.batching_enabled() && self.batch.allowed(identity))
    }
}

/// The calls reading `items` makes, batching current secrets when `batch_allowed`.
pub fn plan_calls(items: &[ReadItem], batch_allowed: bool) -> Vec<PlannedCall> {
    let (listings, singles): (Vec<&ReadItem>, Vec<&ReadItem>) = items.iter().partition(|i| i.listing.is_some());
    let (secrets, params): (Vec<&ReadItem>, Vec<&ReadItem>) =
        singles.into_iter().partition(|i| i.object_type == ObjectType::SecretsManager);
    let mut calls = secret_calls(&secrets, batch_allowed);
    calls.extend(parameter_calls(&params));
    calls.extend(listings.into_iter().map(listing_call));
    calls
}

/// A bulk listing: one call of the API it lists with.
fn listing_call(item: &ReadItem) -> PlannedCall {
    let api = match item.listing.as_ref().map(|l| &l.bulk) {
        Some(Bulk::Filters(_)) => Api::BatchGetSecretValue,
        _ => Api::GetParametersByPath,
    };
    PlannedCall { api, items: vec![item.clone()] }
}

fn secret_calls(items: &[&ReadItem], batch_allowed: bool) -> Vec<PlannedCall> {
    let (current, pinned): (Vec<&ReadItem>, Vec<&ReadItem>) = items.iter().copied().partition(|i| batch::is_current(i));
    let (batched, singles) =
        if current.len() >= 2 && batch_allowed { (current, pinned) } else { (Vec::new(), items.to_vec()) };
    let mut by_id: BTreeMap<&str, Vec<ReadItem>> = BTreeMap::new();
    for item in batched {
        by_id.entry(item.name.as_str()).or_default().push(item.clone());
    }
    let ids: Vec<Vec<ReadItem>> = by_id.into_values().collect();
    let mut calls: Vec<PlannedCall> = ids
        .chunks(batch::BATCH)
        .map(|chunk| PlannedCall { api: Api::BatchGetSecretValue, items: chunk.concat() })
        .collect();
    calls.extend(singles.into_iter().map(|i| PlannedCall { api: Api::GetSecretValue, items: vec![i.clone()] }));
    calls
}

fn parameter_calls(items: &[&ReadItem]) -> Vec<PlannedCall> {
    let mut by_name: BTreeMap<parameter_store::Wanted, Vec<ReadItem>> = BTreeMap::new();
    for item in items {
        by_name.entry(parameter_store::wanted(item)).or_default().push((*item).clone());
    }
    let wanted: Vec<parameter_store::Wanted> = by_name.keys().cloned().collect();
    parameter_store::batches(&wanted)
        .into_iter()
        .map(|b| PlannedCall { api: Api::GetParameters, items: b.iter().flat_map(|w| by_name[w].clone()).collect() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, object_type: ObjectType, version: Option<&str>) -> ReadItem {
        ReadItem {
            name: name.into(),
            object_type,
            version_id: version.map(Into::into),
            version_label: None,
            listing: None,
        }
    }

    #[test]
    fn the_plan_batches_as_the_readers_do() {
        let mut items: Vec<ReadItem> =
            (0..25).map(|i| item(&format!("s{i}"), ObjectType::SecretsManager, None)).collect();
        items.push(item("s0", ObjectType::SecretsManager, Some("v1")));
        items.extend((0..12).map(|i| item(&format!("p{i}"), ObjectType::Parameter, None)));
        items.push(item("p0", ObjectType::Parameter, Some("3")));
        let count = |calls: &[PlannedCall], api| calls.iter().filter(|c| c.api == api).count();
        let batched = plan_calls(&items, true);
        assert_eq!(count(&batched, Api::BatchGetSecretValue), 2, "25 current secrets: 20 + 5");
        assert_eq!(count(&batched, Api::GetSecretValue), 1, "the pinned version alone");
        assert_eq!(count(&batched, Api::GetParameters), 2, "13 names, no base name twice in one call");
        assert_eq!(batched.iter().map(|c| c.items.len()).sum::<usize>(), items.len(), "every item in one call");
        let single = plan_calls(&items, false);
        assert_eq!((count(&single, Api::BatchGetSecretValue), count(&single, Api::GetSecretValue)), (0, 26));
    }

    #[test]
    fn a_listing_is_one_call_of_the_api_it_lists_with() {
        let listing = |bulk| ReadItem {
            listing: Some(crate::read::Listing { bulk, max: 100 }),
            ..item("bulk", ObjectType::Parameter, None)
        };
        let path = listing(Bulk::Path { path: "/app".into(), recursive: true });
        let mut filtered = listing(Bulk::Filters(Vec::new()));
        filtered.object_type = ObjectType::SecretsManager;
        let calls = plan_calls(&[path, filtered, item("p", ObjectType::Parameter, None)], true);
        let apis: Vec<Api> = calls.iter().map(|c| c.api).collect();
        assert_eq!(apis, [Api::GetParameters, Api::GetParametersByPath, Api::BatchGetSecretValue]);
    }
}
