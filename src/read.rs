//! The vocabulary of a read, shared by everything that speaks about one without knowing how it
//! is done: what is read ([`ReadItem`]), from which store ([`ObjectType`]) through which service
//! ([`Service`]) and where ([`Route`]), in what context ([`ReadScope`]: credentials, the identity
//! that scopes the cache, route, pod, requesters), and what came back ([`Answers`]: a value
//! ([`Fetched`]) or a failure ([`FetchError`]) per item). The `aws` area implements reading;
//! `fetch`, `cache`, `render`, `mount` and `metrics` speak this vocabulary.
//!
//! An answer carries the item it answers, so nothing depends on the order results come back in,
//! and an item without an answer is an error naming it, never a silent drop.

use crate::codes::ErrorCode;
use crate::params::{Bulk, ObjectType};
use crate::secret::SecretBytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The AWS services the provider calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    SecretsManager,
    Ssm,
    Sts,
}

impl Service {
    /// Every service the provider calls.
    pub const ALL: [Service; 3] = [Service::Sts, Service::SecretsManager, Service::Ssm];

    /// The name used in `--endpoint` flags, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "ssm",
            Service::Sts => "sts",
        }
    }

    /// The service-specific endpoint variable every AWS SDK reads.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::SecretsManager => "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            Service::Ssm => "AWS_ENDPOINT_URL_SSM",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
        }
    }

    /// The service an `--endpoint` flag names.
    pub fn from_flag(name: &str) -> Option<Service> {
        [Service::SecretsManager, Service::Ssm, Service::Sts].into_iter().find(|s| s.as_str() == name)
    }
}

/// A SecretProviderClass's admitted endpoint overrides for one region, per service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUrls {
    pub secrets_manager: Option<String>,
    pub ssm: Option<String>,
    pub sts: Option<String>,
}

impl ServiceUrls {
    /// The admitted override for `service`, if any.
    pub fn get(&self, service: Service) -> Option<&str> {
        match service {
            Service::SecretsManager => self.secrets_manager.as_deref(),
            Service::Ssm => self.ssm.as_deref(),
            Service::Sts => self.sts.as_deref(),
        }
    }
}

/// A region to call, with the SecretProviderClass's admitted endpoints for it.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub region: &'a str,
    pub spc: &'a ServiceUrls,
}

impl<'a> Route<'a> {
    /// `region`, with the SecretProviderClass's admitted endpoints `spc`.
    pub fn new(region: &'a str, spc: &'a ServiceUrls) -> Self {
        Route { region, spc }
    }
}

/// One object to read: what and which version; or, with a listing, every item a bulk
/// descriptor lists (then `name` is the descriptor's name in messages).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadItem {
    pub name: String,
    pub object_type: ObjectType,
    pub version_id: Option<String>,
    pub version_label: Option<String>,
    pub listing: Option<Listing>,
}

/// A bulk read: what to list, and the most items to accept (reading stops, and fails, past it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listing {
    pub bulk: Bulk,
    pub max: usize,
}

/// A value read from AWS with its version (Secrets Manager VersionId, Parameter Store number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: SecretBytes,
    pub version: String,
}

/// One item a bulk descriptor listed: its full name and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub value: Fetched,
}

impl Listed {
    /// The items of a bulk read as one value, so the answer travels through the same cache and
    /// in-flight coalescing as any other read: each item framed as name, version and value, each
    /// behind its length (4 bytes, big-endian). The buffer is sized up front, so no partial copy
    /// of a value is left behind unzeroed by a reallocation.
    pub fn pack(items: &[Listed]) -> Fetched {
        let size: usize = items.iter().map(|i| 12 + i.name.len() + i.value.version.len() + i.value.value.len()).sum();
        let mut out = Vec::with_capacity(size);
        for item in items {
            for part in [item.name.as_bytes(), item.value.version.as_bytes(), item.value.value.expose()] {
                out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        Fetched { value: SecretBytes::new(out), version: format!("{} items", items.len()) }
    }

    /// The items [`Listed::pack`] framed, or `None` when `packed` is not such a value.
    pub fn unpack(packed: &Fetched) -> Option<Vec<Listed>> {
        let mut rest = packed.value.expose();
        let mut take = || -> Option<&[u8]> {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let part = rest.get(4..4 + len)?;
            rest = &rest[4 + len..];
            Some(part)
        };
        let mut items = Vec::new();
        while let Some(name) = take() {
            let name = String::from_utf8(name.to_vec()).ok()?;
            let version = String::from_utf8(take()?.to_vec()).ok()?;
            let value = SecretBytes::new(take()?.to_vec());
            items.push(Listed { name, value: Fetched { value, version } });
        }
        rest.is_empty().then_some(items)
    }
}

/// What one descriptor read: one value, or every item a bulk descriptor listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    One(Fetched),
    Many(Vec<Listed>),
}

/// A failed read of one object, with the context the pod owner needs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("object {object:?} ({store}, {region}): {reason}")]
pub struct FetchError {
    pub code: ErrorCode,
    pub object: String,
    pub store: &'static str,
    pub region: String,
    pub aws_code: Option<String>,
    pub reason: String,
}

impl FetchError {
    /// A failure of `item` in `region`.
    pub fn new(item: &ReadItem, region: &str, code: ErrorCode, aws_code: Option<String>, reason: String) -> Self {
        FetchError {
            code,
            object: item.name.clone(),
            store: item.object_type.as_str(),
            region: region.to_string(),
            aws_code,
            reason,
        }
    }

    /// No answer was produced for `item`: a fault of the reader, never of the pod.
    pub fn unanswered(item: &ReadItem, region: &str) -> Self {
        let reason = "no result was produced for this object".to_string();
        FetchError::new(item, region, ErrorCode::Internal, None, reason)
    }
}

/// The result of reading one item.
pub type ReadResult = Result<Fetched, FetchError>;

/// The results of a read, each under the item it answers.
#[derive(Debug, Default)]
pub struct Answers(HashMap<ReadItem, ReadResult>);

impl Answers {
    /// Records the answer to `item` (a later answer to the same item replaces it).
    pub fn insert(&mut self, item: ReadItem, result: ReadResult) {
        self.0.insert(item, result);
    }

    /// The answer to `item`, read in `region`; an item without one is an error naming it.
    pub fn get(&self, item: &ReadItem, region: &str) -> ReadResult {
        self.0.get(item).cloned().unwrap_or_else(|| Err(FetchError::unanswered(item, region)))
    }

    /// Whether `item` has an answer.
    pub fn contains(&self, item: &ReadItem) -> bool {
        self.0.contains_key(item)
    }
}

impl FromIterator<(ReadItem, ReadResult)> for Answers {
    fn from_iter<I: IntoIterator<Item = (ReadItem, ReadResult)>>(iter: I) -> Self {
        Answers(iter.into_iter().collect())
    }
}

impl IntoIterator for Answers {
    type Item = (ReadItem, ReadResult);
    type IntoIter = std::collections::hash_map::IntoIter<ReadItem, ReadResult>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Extend<(ReadItem, ReadResult)> for Answers {
    fn extend<I: IntoIterator<Item = (ReadItem, ReadResult)>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// The pods a read serves, per object name. Followers of an in-flight read add themselves, so
/// the audit line written when the request completes names them.
#[derive(Debug, Clone, Default)]
pub struct Requesters(Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>);

impl Requesters {
    /// Records that `pod` waits on `object`.
    pub fn add(&self, object: &str, pod: &str) {
        let mut map = crate::sync::lock(&self.0);
        map.entry(object.to_string()).or_default().insert(pod.to_string());
    }

    /// The pods waiting on any of `objects`.
    pub fn pods_for<'a>(&self, objects: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let map = crate::sync::lock(&self.0);
        objects.into_iter().filter_map(|o| map.get(o)).flatten().cloned().collect()
    }
}

/// The context of a mount's reads, built once per mount: the credentials to read with (`C`,
/// opaque here: the reader's own type), the identity they proved (it scopes the value cache and
/// the batch policy), the route, the pod (`namespace/name`) and the pods each object is read
/// for (audit).
#[derive(Debug)]
pub struct ReadScope<'a, C> {
    pub credentials: &'a C,
    pub identity: &'a str,
    pub route: Route<'a>,
    pub pod: &'a str,
    pub requesters: Requesters,
}

impl<'a, C> ReadScope<'a, C> {
    /// A scope for `pod`'s reads along `route`, with no requesters yet.
    pub fn new(credentials: &'a C, identity: &'a str, route: Route<'a>, pod: &'a str) -> Self {
        ReadScope { credentials, identity, route, pod, requesters: Requesters::default() }
    }

    /// The same reader along `route` (the failover region), with requesters of its own.
    pub fn along(&self, route: Route<'a>) -> Self {
        ReadScope::new(self.credentials, self.identity, route, self.pod)
    }

    /// The same read made alone (a follower whose leader went away), with requesters of its own.
    pub fn alone(&self) -> Self {
        self.along(self.route)
    }
}

/// One counted class of AWS calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// `secretsmanager`, `ssm`, `sts`.
    pub service: String,
    /// `GetSecretValue`, `BatchGetSecretValue`, `GetParameters`, `AssumeRoleWithWebIdentity`.
    pub operation: String,
    /// `success`, an AWS error type (`ThrottlingException`), `http_4xx`/`http_5xx`, or `transport`.
    pub outcome: String,
}

/// Receives every counted call with its latency (metrics implement it).
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// One call of class `key` took `seconds`.
    fn observe(&self, key: &CallKey, seconds: f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str) -> ReadItem {
        ReadItem {
            name: name.into(),
            object_type: ObjectType::SecretsManager,
            version_id: None,
            version_label: None,
            listing: None,
        }
    }

    #[test]
    fn listed_items_pack_into_one_value_and_back() {
        let listed = |name: &str, version: &str, value: &[u8]| Listed {
            name: name.into(),
            value: Fetched { value: SecretBytes::new(value.to_vec()), version: version.into() },
        };
        let items = vec![listed("/app/a", "1", b"x"), listed("/app/b/c", "7", &[0, 0xff, 0]), listed("", "", b"")];
        let packed = Listed::pack(&items);
        assert_eq!(packed.version, "3 items");
        assert_eq!(Listed::unpack(&packed), Some(items));
        assert_eq!(Listed::unpack(&Listed::pack(&[])), Some(vec![]));
        let truncated = Fetched { value: SecretBytes::new(packed.value.expose()[..5].to_vec()), version: "x".into() };
        assert_eq!(Listed::unpack(&truncated), None);
    }

    #[test]
    fn answers_are_found_by_item_and_a_missing_one_is_an_error_naming_it() {
        let value = Fetched { value: SecretBytes::from("v"), version: "1".into() };
        let answers: Answers = [(item("b"), Ok(value.clone()))].into_iter().collect();
        assert_eq!(answers.get(&item("b"), "us-west-2").ok(), Some(value));
        let missing = answers.get(&item("a"), "us-west-2").expect_err("no answer for a");
        assert_eq!((missing.code, missing.object.as_str()), (ErrorCode::Internal, "a"));
    }
}
