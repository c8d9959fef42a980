//! SecretProviderClass parameters: the `attributes` JSON the driver sends, the `objects`
//! descriptors inside it, and the file names they resolve to. Everything here is pure: no I/O.
//!
//! Input is lenient where existing manifests rely on it (descriptor keys match
//! case-insensitively, unknown keys are ignored) and strict where a mistake would mount the
//! wrong thing (collisions, bad paths, bad modes).

mod attributes;
mod error;
pub(crate) mod limits;
mod memo;
mod naming;
mod objects;

pub use attributes::{parse_mount_request, parse_mount_request_with, parse_permission};
pub use error::{FileOwner, ParamError};
pub use memo::ObjectsMemo;
pub use naming::{file_name, validate_relative_path};

use crate::secret::SecretString;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The two AWS stores an object can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    SecretsManager,
    Parameter,
}

impl ObjectType {
    /// The name used in errors and logs (`secretsmanager`, `ssmparameter`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::SecretsManager => "secretsmanager",
            ObjectType::Parameter => "ssmparameter",
        }
    }
}

/// Pod Identity agent address family preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressType {
    Ipv4,
    Ipv6,
    #[default]
    Auto,
}

/// `objectEncoding`: how a value's bytes are decoded before they are written. Absent, bytes are
/// written as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The standard alphabet, padding optional.
    Base64,
    /// Hex digits, either case.
    Hex,
    /// Bytes kept as they are once checked to be valid UTF-8.
    Utf8,
}

impl Encoding {
    /// The name written in `objectEncoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Utf8 => "utf-8",
        }
    }
}

/// One `jmesPath` entry of an object: one extra file extracted from a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JmesEntry {
    /// The JMESPath expression as written.
    pub path: String,
    /// The resolved file name (translation applied, validated).
    pub file_name: String,
    /// Mode bits for the file.
    pub mode: u32,
    /// `objectEncoding` of the entry: applied to the extracted text.
    pub encoding: Option<Encoding>,
}

/// The default `maxObjects`: how many files one `jsonKeys` object or bulk descriptor may give.
pub const DEFAULT_MAX_OBJECTS: usize = 100;

/// A descriptor that mounts many items: every parameter under a path, or every secret that
/// matches filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bulk {
    /// `objectPath` (`GetParametersByPath`), with `recursive`.
    Path { path: String, recursive: bool },
    /// `filters` (`BatchGetSecretValue` with `Filters`).
    Filters(Vec<SecretFilter>),
}

/// One `filters` entry, exactly as `BatchGetSecretValue` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretFilter {
    /// `name`, `tag-key`, `tag-value`, `description`, `primary-region`, `owning-service`, `all`.
    pub key: String,
    pub values: Vec<String>,
}

/// The object to read in the failover region instead of the primary one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverObject {
    pub name: String,
    pub version_id: Option<String>,
    pub version_label: Option<String>,
}

/// One entry of `objects`, validated and with its file name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Position in the `objects` list (0-based), for error messages.
    pub index: usize,
    /// `objectName` as written (a name or a full ARN).
    pub name: String,
    /// The region of an ARN `objectName` (checked against the mount's region once it is known).
    pub arn_region: Option<String>,
    pub object_type: ObjectType,
    /// `objectVersion`: Secrets Manager VersionId, or Parameter Store version number.
    pub version_id: Option<String>,
    /// `objectVersionLabel`: Secrets Manager staging label, or Parameter Store label.
    pub version_label: Option<String>,
    /// The resolved file name (alias or name, translation applied, validated).
    pub file_name: String,
    /// Mode bits for the file (`filePermission`, else the request's `permission`).
    pub mode: u32,
    pub jmes: Vec<JmesEntry>,
    pub failover: Option<FailoverObject>,
    /// `objectEncoding`: applied to the value before its file and its jmesPath entries see it.
    pub encoding: Option<Encoding>,
    /// `jsonKeys: true`: one file per top-level key instead of the object's own file; then
    /// `file_name` is the directory prefix (the objectAlias), empty without one.
    pub json_keys: bool,
    /// A bulk descriptor (`objectPath` or `filters`); then `file_name` is the directory prefix
    /// (the objectAlias), empty without one, and `name` says what is listed.
    pub bulk: Option<Bulk>,
    /// `maxObjects` as written: the most files a `jsonKeys` object or a bulk descriptor may give
    /// ([`DEFAULT_MAX_OBJECTS`] when absent; see [`ObjectSpec::max_objects`]).
    pub max_objects_set: Option<usize>,
    /// `pathTranslation`, for the names of the files a `jsonKeys` object or bulk descriptor gives.
    pub translation: Option<char>,
}

impl ObjectSpec {
    /// Whether this object gives many files (named after keys or items) instead of its own.
    pub fn expands(&self) -> bool {
        self.json_keys || self.bulk.is_some()
    }

    /// The most files this object may give: its `maxObjects`, else [`DEFAULT_MAX_OBJECTS`].
    pub fn max_objects(&self) -> usize {
        self.max_objects_set.unwrap_or(DEFAULT_MAX_OBJECTS)
    }
}

/// Who is mounting: the `csi.storage.k8s.io/*` keys kubelet adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub service_account: String,
}

/// One service-account token the driver passed, for one audience.
#[derive(Debug, Clone)]
pub struct ServiceAccountToken {
    pub token: SecretString,
    /// RFC 3339 as sent; empty when absent.
    pub expiration: String,
}

/// Endpoint overrides a SecretProviderClass asks for (admitted only when allowlisted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointParams {
    pub secrets_manager: Option<String>,
    pub ssm: Option<String>,
    pub sts: Option<String>,
    pub failover_secrets_manager: Option<String>,
    pub failover_ssm: Option<String>,
    pub failover_sts: Option<String>,
}

/// `assumeRoleArn` and its companions: the role to read with, assumed from the pod's own
/// credentials through `sts:AssumeRole` (role chaining). Admitted only when an admin's
/// `--allowed-assume-role` pattern matches [`AssumeRole::role_arn`].
#[derive(Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// `assumeRoleArn`: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, validated.
    pub role_arn: String,
    /// `assumeRoleExternalId`, validated (2–1224 characters of `[\w+=,.@:/-]`).
    pub external_id: Option<String>,
    /// `assumeRoleDurationSeconds`: 900–3600 (role chaining caps sessions at one hour).
    pub duration_seconds: Option<u32>,
}

/// The external id is not a credential, but a confused-deputy guard the role's owner may treat
/// as one: `Debug` says only whether there is one.
impl std::fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "<set>"))
            .field("duration_seconds", &self.duration_seconds)
            .finish()
    }
}

/// Everything one `Mount` asks for, parsed and validated.
#[derive(Debug, Clone)]
pub struct MountParams {
    /// `secretProviderClass` attribute when present (absent on v1.5 rotation calls).
    pub spc_name: Option<String>,
    pub pod: PodInfo,
    /// Shared with every request that sent the same `objects` text (see [`ObjectsMemo`]).
    pub objects: Arc<[ObjectSpec]>,
    /// `region` parameter, when set.
    pub region: Option<String>,
    /// `failoverRegion` parameter, when set.
    pub failover_region: Option<String>,
    pub use_pod_identity: bool,
    pub preferred_address_type: AddressType,
    pub endpoints: EndpointParams,
    /// Tokens keyed by audience (from attributes, else from `secrets`). Empty when none.
    pub tokens: BTreeMap<String, ServiceAccountToken>,
    /// The request's default mode (`permission`).
    pub default_mode: u32,
    /// `assumeRoleArn` (with its external id and duration), when set.
    pub assume_role: Option<AssumeRole>,
}

impl MountParams {
    /// How to name this mount in messages: the SecretProviderClass, else the pod.
    pub fn describe(&self) -> String {
        match &self.spc_name {
            Some(spc) => format!("SecretProviderClass {}/{}", self.pod.namespace, spc),
            None => format!("pod {}/{}", self.pod.namespace, self.pod.name),
        }
    }
}
