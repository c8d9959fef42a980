//! Bounds on what a SecretProviderClass and a pod's attributes may say, checked before any
//! work is done with a value: AWS's own limits for names, the Kubernetes rules for object
//! names, and a size for everything else. Every check names the field; none shows more of a
//! rejected value than `quoted` does.

use super::ObjectType;

/// The largest `objects` text accepted (bytes): what one SecretProviderClass stored in etcd can
/// hold (etcd's default request limit is 1.5 MiB), so no SecretProviderClass that can exist is
/// refused.
pub const MAX_OBJECTS_TEXT: usize = 1536 * 1024;
/// The longest Secrets Manager secret name (AWS: 512 characters).
pub const MAX_SECRET_NAME: usize = 512;
/// The longest Parameter Store name or ARN, and the longest ARN of either store (AWS: 2048).
pub const MAX_PARAMETER_NAME: usize = 2048;
/// The longest `objectVersion`: a Secrets Manager VersionId is 32–64 characters; a Parameter
/// Store version is a number.
pub const MAX_VERSION: usize = 64;
/// The longest `objectVersionLabel`: a Secrets Manager staging label (AWS: 256).
pub const MAX_LABEL: usize = 256;
/// The longest service-account tokens JSON (kubelet sends one JWT of ~1–2 KiB per audience).
pub const MAX_TOKENS_TEXT: usize = 64 * 1024;
/// The most token audiences accepted in one request.
pub const MAX_AUDIENCES: usize = 16;
/// The longest endpoint URL parameter.
pub const MAX_URL: usize = 2048;
/// The longest pod UID (Kubernetes UIDs are 36-character UUIDs).
pub const MAX_UID: usize = 128;
/// A Kubernetes namespace: a DNS-1123 label.
pub const MAX_DNS_LABEL: usize = 63;
/// A pod, service account or SecretProviderClass name: a DNS-1123 subdomain.
pub const MAX_SUBDOMAIN: usize = 253;

/// The largest `maxObjects` and `--max-objects-per-mount` accepted: the most files one mount
/// can be asked to expand into.
pub const MAX_OBJECTS_CEILING: usize = 10_000;
/// The most `filters` entries (AWS: 10).
pub const MAX_FILTERS: usize = 10;
/// The most values in one filter (AWS: 10).
pub const MAX_FILTER_VALUES: usize = 10;
/// The longest filter value (AWS: 512).
pub const MAX_FILTER_VALUE: usize = 512;
/// The filter keys `BatchGetSecretValue` takes.
pub const FILTER_KEYS: [&str; 7] =
    ["name", "tag-key", "tag-value", "description", "primary-region", "owning-service", "all"];
/// The shortest and longest `assumeRoleExternalId` (AWS: 2–1224).
pub const MIN_EXTERNAL_ID: usize = 2;
pub const MAX_EXTERNAL_ID: usize = 1224;
/// The shortest `assumeRoleDurationSeconds` (AWS: 900) and the longest a chained role session
/// may last (AWS: one hour).
pub const MIN_ASSUME_SECONDS: u32 = 900;
pub const MAX_ASSUME_SECONDS: u32 = 3600;
/// The longest IAM role ARN (AWS: 2048) and role name (AWS: 64).
const MAX_ROLE_ARN: usize = 2048;
const MAX_ROLE_NAME: usize = 64;

/// STS's identifier alphabet (`[\w+=,.@-]`), as in session names.
pub fn sts_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// What is wrong with an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`), if
/// anything; completes a sentence about it.
pub fn role_arn_problem(arn: &str) -> Option<String> {
    const SHAPE: &str = "is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)";
    if arn.len() > MAX_ROLE_ARN {
        return Some(format!("is {} bytes long; AWS allows at most {MAX_ROLE_ARN}", arn.len()));
    }
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = fields.as_slice() else {
        return Some(SHAPE.to_string());
    };
    let partition_ok = !partition.is_empty() && partition.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    if *prefix != "arn" || !partition_ok || *service != "iam" || !region.is_empty() || !account_ok {
        return Some(SHAPE.to_string());
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Some(SHAPE.to_string());
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name.len() > MAX_ROLE_NAME {
        return Some(format!("has a role name of {} characters (AWS: 1–{MAX_ROLE_NAME})", name.len()));
    }
    let bad = path_and_name.chars().find(|c| !sts_id_char(*c) && *c != '/')?;
    Some(format!("contains {bad:?}, which no IAM role name or path can hold"))
}

/// Whether `text` holds a control character (newlines, escapes, …): such text could forge log
/// lines or terminal output, and no AWS or Kubernetes name can hold one.
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// What is wrong with an `objectName` (or `failoverObject.objectName`) of `object_type`, if
/// anything; completes a sentence about the name.
pub fn name_problem(name: &str, object_type: ObjectType) -> Option<String> {
    let arn = name.starts_with("arn:");
    let (max, allowed): (usize, fn(char) -> bool) = match (object_type, arn) {
        (ObjectType::SecretsManager, false) => (MAX_SECRET_NAME, secret_name_char),
        (ObjectType::SecretsManager, true) => (MAX_PARAMETER_NAME, |c| secret_name_char(c) || c == ':'),
        (ObjectType::Parameter, _) => (MAX_PARAMETER_NAME, parameter_name_char),
    };
    if name.len() > max {
        return Some(format!("is {} bytes long; AWS allows at most {max}", name.len()));
    }
    let bad = name.chars().find(|c| !allowed(*c))?;
    let what = if arn { "ARN" } else { object_type.as_str() };
    Some(format!("contains {bad:?}, which no {what} name can hold"))
}

/// Secrets Manager: ASCII letters and digits and `/_+=.@-`.
fn secret_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// Parameter Store: ASCII letters and digits and `_.-/`, plus `:` for ARNs and the
/// `name:version` / `name:label` selectors `GetParameters` takes.
fn parameter_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-/:".contains(c)
}

/// What is wrong with a free-text field bounded at `max` bytes, if anything.
pub fn text_problem(text: &str, max: usize) -> Option<String> {
    if text.len() > max {
        Some(format!("is {} bytes long (at most {max})", text.len()))
    } else if has_control(text) {
        Some("contains a control character".to_string())
    } else {
        None
    }
}

/// Whether `s` looks like an AWS region (`us-west-2`): it goes into host names. The same rule
/// holds for the `region` parameter, an ARN's region and a node's region label.
pub fn is_valid_region(s: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    (1..=32).contains(&s.len()) && s.starts_with(|c: char| c.is_ascii_lowercase()) && s.bytes().all(allowed)
}

/// Whether `s` is a DNS-1123 label (a namespace): 1–63 of `[a-z0-9-]`, alphanumeric at both
/// ends.
pub fn is_dns_label(s: &str) -> bool {
    let inner = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let bytes = s.as_bytes();
    (1..=MAX_DNS_LABEL).contains(&s.len())
        && bytes.iter().all(|b| inner(*b))
        && edge(bytes.first())
        && edge(bytes.last())
}

/// Whether `s` is a DNS-1123 subdomain (a pod, service account or SecretProviderClass name):
/// at most 253 characters of dot-separated DNS-1123 labels.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= MAX_SUBDOMAIN && s.split('.').all(is_dns_label)
}

/// Whether `s` can be a pod UID: 1–128 ASCII letters, digits and `-`.
pub fn is_uid(s: &str) -> bool {
    (1..=MAX_UID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
#[path = "tests/limits.rs"]
mod tests;
