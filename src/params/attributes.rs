//! The `MountRequest` fields as the driver sends them: `attributes` (a JSON object of strings:
//! the SecretProviderClass parameters overlaid by the pod's volume attributes, plus kubelet's
//! `csi.storage.k8s.io/*` keys), `secrets` (JSON, or the string `null`) and `permission` (a
//! decimal JSON number). Keys are read exactly (case-sensitive), unknown keys are ignored and
//! empty values count as absent. Token material is wiped from memory once parsed and never
//! appears in an error.

use super::error::{ParamError, quoted};
use super::limits::{self, is_valid_region};
use super::memo::ObjectsMemo;
use super::objects::{self, Context};
use super::{AddressType, AssumeRole, EndpointParams, MountParams, PodInfo, ServiceAccountToken};
use crate::secret::SecretString;
use serde_json::Value;
use std::collections::BTreeMap;
use std::mem;
use zeroize::{Zeroize, Zeroizing};

const OBJECTS: &str = "objects";
const REGION: &str = "region";
const FAILOVER_REGION: &str = "failoverRegion";
const PATH_TRANSLATION: &str = "pathTranslation";
const USE_POD_IDENTITY: &str = "usePodIdentity";
const PREFERRED_ADDRESS_TYPE: &str = "preferredAddressType";
const SPC: &str = "secretProviderClass";
const ASSUME_ROLE_ARN: &str = "assumeRoleArn";
const ASSUME_ROLE_EXTERNAL_ID: &str = "assumeRoleExternalId";
const ASSUME_ROLE_DURATION: &str = "assumeRoleDurationSeconds";
const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";
const TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// The default file mode when `permission` is empty.
const DEFAULT_MODE: u32 = 0o644;

/// Parses and validates everything one `Mount` asks for, every text afresh.
pub fn parse_mount_request(attributes: &str, secrets: &str, permission: &str) -> Result<MountParams, ParamError> {
    parse_request(None, attributes, secrets, permission)
}

/// Parses and validates everything one `Mount` asks for; an `objects` text `memo` holds (in
/// the same context) is not parsed again.
pub fn parse_mount_request_with(
    memo: &ObjectsMemo,
    attributes: &str,
    secrets: &str,
    permission: &str,
) -> Result<MountParams, ParamError> {
    parse_request(Some(memo), attributes, secrets, permission)
}

fn parse_request(
    memo: Option<&ObjectsMemo>,
    attributes: &str,
    secrets: &str,
    permission: &str,
) -> Result<MountParams, ParamError> {
    let attrs = Attributes::parse(attributes)?;
    let secrets_tokens = tokens_in_secrets(secrets)?;
    let default_mode = parse_permission(permission)?;
    let (region, failover_region) = regions(&attrs)?;
    let use_pod_identity = parse_use_pod_identity(attrs.get(USE_POD_IDENTITY))?;
    let preferred_address_type = parse_address_type(attrs.get(PREFERRED_ADDRESS_TYPE))?;
    let translation = parse_translation(attrs.get(PATH_TRANSLATION))?;
    let tokens = match (attrs.get(TOKENS), secrets_tokens) {
        (Some(raw), _) => parse_tokens(raw, "attribute")?,
        (None, Some(raw)) => parse_tokens(&raw, "entry of secrets")?,
        (None, None) => BTreeMap::new(),
    };
    let spc_name = attrs.owned(SPC);
    check_names(&attrs)?;
    let endpoints = attrs.endpoints()?;
    let assume_role = parse_assume_role(&attrs)?;
    let ctx = Context {
        translation,
        default_mode,
        has_failover_region: failover_region.is_some(),
        spc_name: spc_name.as_deref(),
        memo,
    };
    let objects = objects::parse_objects(attrs.get(OBJECTS).unwrap_or(""), &ctx)?;
    Ok(MountParams {
        pod: attrs.pod(),
        endpoints,
        spc_name,
        objects,
        region,
        failover_region,
        use_pod_identity,
        preferred_address_type,
        tokens,
        default_mode,
        assume_role,
    })
}

/// Parses `permission`: the decimal JSON number of the mode bits (`"420"` is 0644). Empty
/// means 0644; more than 0777 is refused.
pub fn parse_permission(s: &str) -> Result<u32, ParamError> {
    if s.trim().is_empty() {
        return Ok(DEFAULT_MODE);
    }
    match serde_json::from_str::<u32>(s) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(ParamError::parameter(
            "permission",
            format!("{} is not a file mode (a decimal number from 0 to 511)", quoted(s)),
        )),
    }
}

/// The attributes with non-empty string values, wiped from memory when dropped.
struct Attributes(BTreeMap<String, Zeroizing<String>>);

impl Attributes {
    fn parse(json: &str) -> Result<Self, ParamError> {
        let value = serde_json::from_str(json).map_err(|e| not_json("attributes", &e))?;
        let Value::Object(map) = value else {
            return Err(ParamError::parameter("attributes", "is not a JSON object"));
        };
        let (mut strings, mut not_string) = (BTreeMap::new(), None);
        for (key, value) in map {
            match value {
                Value::String(text) if text.is_empty() => {}
                Value::String(text) => _ = strings.insert(key, Zeroizing::new(text)),
                _ => _ = not_string.get_or_insert(key),
            }
        }
        match not_string {
            Some(key) => Err(ParamError::NotAString { key }),
            None => Ok(Attributes(strings)),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn owned(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }

    fn text(&self, key: &str) -> String {
        self.owned(key).unwrap_or_default()
    }

    fn pod(&self) -> PodInfo {
        PodInfo {
            name: self.text(POD_NAME),
            namespace: self.text(POD_NAMESPACE),
            uid: self.text(POD_UID),
            service_account: self.text(SERVICE_ACCOUNT),
        }
    }

    fn endpoints(&self) -> Result<EndpointParams, ParamError> {
        let url = |key: &str| match self.get(key) {
            Some(url) => match limits::text_problem(url, limits::MAX_URL) {
                Some(problem) => Err(ParamError::parameter(key, problem)),
                None => Ok(Some(url.to_string())),
            },
            None => Ok(None),
        };
        Ok(EndpointParams {
            secrets_manager: url("secretsManagerEndpoint")?,
            ssm: url("ssmEndpoint")?,
            sts: url("stsEndpoint")?,
            failover_secrets_manager: url("failoverSecretsManagerEndpoint")?,
            failover_ssm: url("failoverSsmEndpoint")?,
            failover_sts: url("failoverStsEndpoint")?,
        })
    }
}

/// The Kubernetes names kubelet passes go into API paths and log lines: each must be what
/// Kubernetes itself allows (`../../nodes/x`, `sa/token` or `sa?watch=true` never are).
fn check_names(attrs: &Attributes) -> Result<(), ParamError> {
    type Rule = (&'static str, fn(&str) -> bool, &'static str);
    let rules: [Rule; 5] = [
        (POD_NAMESPACE, limits::is_dns_label, "a DNS-1123 label (a namespace name)"),
        (POD_NAME, limits::is_dns_subdomain, "a DNS-1123 subdomain (a pod name)"),
        (SERVICE_ACCOUNT, limits::is_dns_subdomain, "a DNS-1123 subdomain (a service account name)"),
        (SPC, limits::is_dns_subdomain, "a DNS-1123 subdomain (a SecretProviderClass name)"),
        (POD_UID, limits::is_uid, "a pod UID (letters, digits and -, at most 128)"),
    ];
    for (key, valid, what) in rules {
        if let Some(value) = attrs.get(key).filter(|value| !valid(value)) {
            return Err(ParamError::parameter(key, format!("{} is not {what}", quoted(value))));
        }
    }
    Ok(())
}

/// "is not valid JSON (line 1, column 2)": the position only, never the content.
fn not_json(key: &str, err: &serde_json::Error) -> ParamError {
    let detail = format!("is not valid JSON (line {}, column {})", err.line(), err.column());
    ParamError::parameter(key, detail)
}

/// Overwrites every string of a parsed JSON value.
fn wipe(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

/// Parses `secrets` (its contents are ignored and wiped) and takes the tokens from it, if any.
fn tokens_in_secrets(secrets: &str) -> Result<Option<Zeroizing<String>>, ParamError> {
    if secrets.trim().is_empty() || secrets.trim() == "null" {
        return Ok(None);
    }
    let mut value = serde_json::from_str(secrets).map_err(|e| not_json("secrets", &e))?;
    let tokens = match &mut value {
        Value::Null => Ok(None),
        Value::Object(map) => match map.get_mut(TOKENS) {
            None => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(Zeroizing::new(mem::take(text)))),
            Some(_) => Err(malformed("entry of secrets", "it is not a string".into())),
        },
        _ => Err(ParamError::parameter("secrets", "is not a JSON object")),
    };
    wipe(&mut value);
    tokens
}

fn malformed(origin: &'static str, reason: String) -> ParamError {
    ParamError::TokensMalformed { origin, reason }
}

/// Parses the tokens JSON: `{"<audience>": {"token": "<JWT>", "expirationTimestamp": "…"}}`.
/// Entries with an empty token are skipped.
fn parse_tokens(raw: &str, origin: &'static str) -> Result<BTreeMap<String, ServiceAccountToken>, ParamError> {
    if raw.len() > limits::MAX_TOKENS_TEXT {
        let reason = format!("it is {} bytes long (at most {})", raw.len(), limits::MAX_TOKENS_TEXT);
        return Err(malformed(origin, reason));
    }
    let mut value: Value = serde_json::from_str(raw).map_err(|_| malformed(origin, "it is not valid JSON".into()))?;
    let tokens = take_tokens(&mut value, origin);
    wipe(&mut value);
    tokens
}

fn take_tokens(value: &mut Value, origin: &'static str) -> Result<BTreeMap<String, ServiceAccountToken>, ParamError> {
    let Value::Object(map) = value else {
        return Err(malformed(origin, "it is not a JSON object".into()));
    };
    if map.len() > limits::MAX_AUDIENCES {
        let reason = format!("it has {} audiences (at most {})", map.len(), limits::MAX_AUDIENCES);
        return Err(malformed(origin, reason));
    }
    let mut tokens = BTreeMap::new();
    for (audience, entry) in map.iter_mut() {
        if let Some(token) = take_token(audience, entry, origin)? {
            tokens.insert(audience.clone(), token);
        }
    }
    Ok(tokens)
}

/// Takes one audience's token out of the parsed JSON; `None` when the token is empty.
fn take_token(
    audience: &str,
    entry: &mut Value,
    origin: &'static str,
) -> Result<Option<ServiceAccountToken>, ParamError> {
    let bad = |problem: &str| {
        let reason = format!("the entry for audience {} {problem}", quoted(audience));
        malformed(origin, reason)
    };
    let Value::Object(fields) = entry else {
        return Err(bad("is not an object"));
    };
    let expiration = match fields.get("expirationTimestamp") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(_) => return Err(bad("has an expirationTimestamp that is not a string")),
    };
    let token = match fields.get_mut("token") {
        None => return Err(bad("has no token")),
        Some(Value::String(token)) => mem::take(token),
        Some(_) => return Err(bad("has a token that is not a string")),
    };
    let token = (!token.is_empty()).then(|| SecretString::new(token));
    Ok(token.map(|token| ServiceAccountToken { token, expiration }))
}

fn region(attrs: &Attributes, key: &str) -> Result<Option<String>, ParamError> {
    match attrs.get(key) {
        Some(region) if !is_valid_region(region) => {
            let hint = "is not a valid AWS region (lowercase letters, digits and -, e.g. us-west-2)";
            Err(ParamError::parameter(key, format!("{} {hint}", quoted(region))))
        }
        region => Ok(region.map(str::to_string)),
    }
}

/// `region` and `failoverRegion`, which must differ.
fn regions(attrs: &Attributes) -> Result<(Option<String>, Option<String>), ParamError> {
    let (primary, failover) = (region(attrs, REGION)?, region(attrs, FAILOVER_REGION)?);
    if failover.is_some() && failover == primary {
        return Err(ParamError::parameter(FAILOVER_REGION, "must differ from region"));
    }
    Ok((primary, failover))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_use_pod_identity(text: Option<&str>) -> Result<bool, ParamError> {
    let Some(text) = text else {
        return Ok(false);
    };
    parse_go_bool(text).ok_or_else(|| {
        let detail = format!("{} is not a boolean (use true or false)", quoted(text));
        ParamError::parameter(USE_POD_IDENTITY, detail)
    })
}

fn parse_address_type(text: Option<&str>) -> Result<AddressType, ParamError> {
    let Some(text) = text else {
        return Ok(AddressType::Auto);
    };
    let types = [("ipv4", AddressType::Ipv4), ("ipv6", AddressType::Ipv6), ("auto", AddressType::Auto)];
    let found = types.into_iter().find(|(name, _)| text.eq_ignore_ascii_case(name));
    found.map(|(_, kind)| kind).ok_or_else(|| {
        let detail = format!("{} is not valid (use ipv4, ipv6 or auto)", quoted(text));
        ParamError::parameter(PREFERRED_ADDRESS_TYPE, detail)
    })
}

/// `pathTranslation`: absent → `_`; `False` (any case) → off; else exactly one character.
fn parse_translation(text: Option<&str>) -> Result<Option<char>, ParamError> {
    let Some(text) = text else {
        return Ok(Some('_'));
    };
    if text.eq_ignore_ascii_case("false") {
        return Ok(None);
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(Some(c)),
        _ => Err(ParamError::parameter(
            PATH_TRANSLATION,
            format!("{} must be False or a single character", quoted(text)),
        )),
    }
}

/// `assumeRoleArn`, `assumeRoleExternalId` and `assumeRoleDurationSeconds`; the last two only
/// with the first.
fn parse_assume_role(attrs: &Attributes) -> Result<Option<AssumeRole>, ParamError> {
    let (arn, external_id, duration) =
        (attrs.get(ASSUME_ROLE_ARN), attrs.get(ASSUME_ROLE_EXTERNAL_ID), attrs.get(ASSUME_ROLE_DURATION));
    let Some(arn) = arn else {
        return match [(ASSUME_ROLE_EXTERNAL_ID, external_id), (ASSUME_ROLE_DURATION, duration)]
            .into_iter()
            .find(|(_, value)| value.is_some())
        {
            Some((key, _)) => Err(ParamError::parameter(key, format!("is set, but {ASSUME_ROLE_ARN} is not"))),
            None => Ok(None),
        };
    };
    if let Some(problem) = limits::role_arn_problem(arn) {
        return Err(ParamError::parameter(ASSUME_ROLE_ARN, format!("{} {problem}", quoted(arn))));
    }
    let external_id = external_id.map(check_external_id).transpose()?;
    let duration_seconds = duration.map(parse_duration_seconds).transpose()?;
    Ok(Some(AssumeRole { role_arn: arn.to_string(), external_id, duration_seconds }))
}

/// AWS's rule for `ExternalId`: 2–1224 characters of `[\w+=,.@:/-]`. The value is not quoted in
/// the error.
fn check_external_id(text: &str) -> Result<String, ParamError> {
    let len = text.chars().count();
    if !(limits::MIN_EXTERNAL_ID..=limits::MAX_EXTERNAL_ID).contains(&len) {
        let detail = format!(
            "has a length AWS does not take ({len} characters; AWS takes {}–{})",
            limits::MIN_EXTERNAL_ID,
            limits::MAX_EXTERNAL_ID
        );
        return Err(ParamError::parameter(ASSUME_ROLE_EXTERNAL_ID, detail));
    }
    if let Some(position) = text.chars().position(|c| !limits::sts_id_char(c) && c != ':' && c != '/') {
        let detail = format!(
            "has a character AWS does not allow at position {} (letters, digits and _+=,.@:/- only)",
            position + 1
        );
        return Err(ParamError::parameter(ASSUME_ROLE_EXTERNAL_ID, detail));
    }
    Ok(text.to_string())
}

/// Seconds from 900 to 3600: AWS caps a chained role session at one hour.
fn parse_duration_seconds(text: &str) -> Result<u32, ParamError> {
    match text.parse::<u32>() {
        Ok(seconds) if (limits::MIN_ASSUME_SECONDS..=limits::MAX_ASSUME_SECONDS).contains(&seconds) => Ok(seconds),
        _ => Err(ParamError::parameter(
            ASSUME_ROLE_DURATION,
            format!(
                "{} is not a number of seconds from {} to {} (AWS caps a chained role session at one hour)",
                quoted(text),
                limits::MIN_ASSUME_SECONDS,
                limits::MAX_ASSUME_SECONDS
            ),
        )),
    }
}

#[cfg(test)]
#[path = "tests/attributes.rs"]
mod tests;
