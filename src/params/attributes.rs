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
use super::{AddressType, EndpointParams, MountParams, PodInfo, ServiceAccountToken};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;
    use crate::params::ObjectType;
    use serde_json::json;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl";
    const OBJECTS_YAML: &str = "- objectName: db/creds\n  objectType: secretsmanager\n";

    /// Attributes as the driver sends them, with `extra` keys added (or overriding).
    fn attributes(extra: &[(&str, &str)]) -> String {
        let mut map = serde_json::Map::new();
        let base = [
            (OBJECTS, OBJECTS_YAML),
            (SPC, "my-spc"),
            (POD_NAME, "web-0"),
            (POD_NAMESPACE, "shop"),
            (POD_UID, "0b7f-uid"),
            (SERVICE_ACCOUNT, "web"),
            ("csi.storage.k8s.io/ephemeral", "true"),
        ];
        for (key, value) in base.iter().chain(extra) {
            map.insert(key.to_string(), json!(value));
        }
        Value::Object(map).to_string()
    }

    fn tokens_json(token: &str) -> String {
        json!({"sts.amazonaws.com": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}).to_string()
    }

    fn parse(extra: &[(&str, &str)]) -> MountParams {
        parse_mount_request(&attributes(extra), "null", "420").unwrap()
    }

    fn error(extra: &[(&str, &str)]) -> String {
        let err = parse_mount_request(&attributes(extra), "null", "420").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidParameters);
        err.to_string()
    }

    #[test]
    fn a_typical_request() {
        let tokens = tokens_json(JWT);
        let extra = [(TOKENS, tokens.as_str()), (REGION, "us-west-2")];
        let params = parse_mount_request(&attributes(&extra), "null", "420").unwrap();
        assert_eq!(params.spc_name.as_deref(), Some("my-spc"));
        let pod = PodInfo {
            name: "web-0".into(),
            namespace: "shop".into(),
            uid: "0b7f-uid".into(),
            service_account: "web".into(),
        };
        assert_eq!(params.pod, pod);
        assert_eq!(params.region.as_deref(), Some("us-west-2"));
        assert_eq!(params.failover_region, None);
        assert!(!params.use_pod_identity);
        assert_eq!(params.preferred_address_type, AddressType::Auto);
        assert_eq!(params.endpoints, EndpointParams::default());
        assert_eq!(params.default_mode, 0o644);
        assert_eq!(params.objects.len(), 1);
        let object = &params.objects[0];
        assert_eq!((object.file_name.as_str(), object.mode), ("db_creds", 0o644));
        assert_eq!(object.object_type, ObjectType::SecretsManager);
        assert_eq!(params.tokens.len(), 1);
        let token = &params.tokens["sts.amazonaws.com"];
        assert_eq!(token.token.expose(), JWT);
        assert_eq!(token.expiration, "2030-01-01T00:00:00Z");
        assert!(!format!("{params:?}").contains("eyJ"));
        assert_eq!(params.describe(), "SecretProviderClass shop/my-spc");
    }

    #[test]
    fn every_parameter_is_read() {
        let extra = [
            (REGION, "us-west-2"),
            (FAILOVER_REGION, "us-east-1"),
            (USE_POD_IDENTITY, "True"),
            (PREFERRED_ADDRESS_TYPE, "IPv6"),
            (PATH_TRANSLATION, "-"),
            ("secretsManagerEndpoint", "https://sm.example"),
            ("ssmEndpoint", "https://ssm.example"),
            ("stsEndpoint", "https://sts.example"),
            ("failoverSecretsManagerEndpoint", "https://sm2.example"),
            ("failoverSsmEndpoint", "https://ssm2.example"),
            ("failoverStsEndpoint", "https://sts2.example"),
            (OBJECTS, "- {objectName: /app/config, objectType: ssmparameter}"),
            ("Region", "ignored: keys are case-sensitive"),
            ("unknownKey", "ignored"),
        ];
        let params = parse_mount_request(&attributes(&extra), "", "384").unwrap();
        assert_eq!(params.failover_region.as_deref(), Some("us-east-1"));
        assert!(params.use_pod_identity);
        assert_eq!(params.preferred_address_type, AddressType::Ipv6);
        assert_eq!(params.objects[0].file_name, "-app-config");
        assert_eq!((params.default_mode, params.objects[0].mode), (0o600, 0o600));
        let endpoints = EndpointParams {
            secrets_manager: Some("https://sm.example".into()),
            ssm: Some("https://ssm.example".into()),
            sts: Some("https://sts.example".into()),
            failover_secrets_manager: Some("https://sm2.example".into()),
            failover_ssm: Some("https://ssm2.example".into()),
            failover_sts: Some("https://sts2.example".into()),
        };
        assert_eq!(params.endpoints, endpoints);
        assert!(params.tokens.is_empty());
    }

    #[test]
    fn empty_values_count_as_absent() {
        let extra = [
            (REGION, ""),
            (USE_POD_IDENTITY, ""),
            (PREFERRED_ADDRESS_TYPE, ""),
            (PATH_TRANSLATION, ""),
            (SPC, ""),
            (TOKENS, ""),
            ("stsEndpoint", ""),
        ];
        let params = parse(&extra);
        assert_eq!(params.region, None);
        assert!(!params.use_pod_identity);
        assert_eq!(params.preferred_address_type, AddressType::Auto);
        assert_eq!(params.objects[0].file_name, "db_creds");
        assert_eq!(params.spc_name, None);
        assert_eq!(params.endpoints.sts, None);
        assert!(params.tokens.is_empty());
    }

    #[test]
    fn golden_translation_off_makes_a_subdirectory() {
        let objects = "- objectName: /app/config\n  objectType: ssmparameter";
        for off in ["False", "false", "FALSE"] {
            let params = parse(&[(PATH_TRANSLATION, off), (OBJECTS, objects)]);
            assert_eq!(params.objects[0].file_name, "app/config");
        }
    }

    #[test]
    fn go_parse_bool() {
        let cases = [
            ("1", true),
            ("t", true),
            ("T", true),
            ("TRUE", true),
            ("true", true),
            ("True", true),
            ("0", false),
            ("f", false),
            ("F", false),
            ("FALSE", false),
            ("false", false),
            ("False", false),
        ];
        for (text, want) in cases {
            assert_eq!(parse(&[(USE_POD_IDENTITY, text)]).use_pod_identity, want, "{text}");
        }
        for bad in ["yes", "tRUE", "2", " true"] {
            let want = format!("usePodIdentity {bad:?} is not a boolean (use true or false)");
            assert_eq!(error(&[(USE_POD_IDENTITY, bad)]), want);
        }
    }

    #[test]
    fn address_types() {
        let cases = [
            ("ipv4", AddressType::Ipv4),
            ("IPV4", AddressType::Ipv4),
            ("ipv6", AddressType::Ipv6),
            ("Auto", AddressType::Auto),
        ];
        for (text, want) in cases {
            let params = parse(&[(PREFERRED_ADDRESS_TYPE, text)]);
            assert_eq!(params.preferred_address_type, want, "{text}");
        }
        assert_eq!(
            error(&[(PREFERRED_ADDRESS_TYPE, "dual")]),
            "preferredAddressType \"dual\" is not valid (use ipv4, ipv6 or auto)"
        );
    }

    #[test]
    fn path_translation() {
        let cases = [
            (None, Some('_')),
            (Some("-"), Some('-')),
            (Some("é"), Some('é')),
            (Some("False"), None),
            (Some("fAlSe"), None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_translation(text).unwrap(), want, "{text:?}");
        }
        assert_eq!(error(&[(PATH_TRANSLATION, "ab")]), "pathTranslation \"ab\" must be False or a single character");
    }

    #[test]
    fn regions_are_validated() {
        let valid = ["us-west-2", "cn-north-1", "us-gov-west-1", "eu-isoe-west-1", "a"];
        for region in valid {
            assert!(is_valid_region(region), "{region}");
        }
        let long = "a".repeat(33);
        for region in ["", "evil.com/", "US-WEST-2", "1us", "-us", "us_west", long.as_str()] {
            assert!(!is_valid_region(region), "{region}");
        }
        assert_eq!(
            error(&[(REGION, "evil.com/")]),
            "region \"evil.com/\" is not a valid AWS region (lowercase letters, digits and -, \
             e.g. us-west-2)"
        );
        assert_eq!(
            error(&[(REGION, "us-west-2"), (FAILOVER_REGION, "evil.com:443")]),
            "failoverRegion \"evil.com:443\" is not a valid AWS region (lowercase letters, \
             digits and -, e.g. us-west-2)"
        );
        assert_eq!(
            error(&[(REGION, "us-west-2"), (FAILOVER_REGION, "us-west-2")]),
            "failoverRegion must differ from region"
        );
        let only_failover = parse(&[(FAILOVER_REGION, "us-east-1")]);
        assert_eq!(only_failover.region, None);
        assert_eq!(only_failover.failover_region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn failover_objects_need_a_failover_region() {
        let objects = "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  \
                       failoverObject: {objectName: b}";
        let extra = [(REGION, "us-west-2"), (OBJECTS, objects)];
        assert_eq!(
            error(&extra),
            "objects[0] (\"a\"): failoverObject is only allowed when the failoverRegion \
             parameter is set"
        );
        let params = parse(&[extra[0], extra[1], (FAILOVER_REGION, "us-east-1")]);
        assert_eq!(params.objects[0].failover.as_ref().unwrap().name, "b");
    }

    #[test]
    fn permissions() {
        let cases = [("420", 0o644), ("384", 0o600), ("", 0o644), ("511", 0o777), ("0", 0)];
        for (text, want) in cases {
            assert_eq!(parse_permission(text).unwrap(), want, "{text}");
        }
        for bad in ["512", "-1", "0644", "abc", "4.2e2", "\"420\""] {
            let err = parse_permission(bad).unwrap_err();
            let want = format!("permission {bad:?} is not a file mode (a decimal number from 0 to 511)");
            assert_eq!((err.to_string(), err.code()), (want, ErrorCode::InvalidParameters));
        }
    }

    #[test]
    fn no_objects_names_the_spc() {
        for objects in ["", "[]"] {
            assert_eq!(error(&[(OBJECTS, objects)]), "SecretProviderClass \"my-spc\" has no objects to mount");
        }
        let without_objects = json!({ SPC: "other" }).to_string();
        let err = parse_mount_request(&without_objects, "null", "420").unwrap_err();
        assert_eq!(err.to_string(), "SecretProviderClass \"other\" has no objects to mount");
    }

    #[test]
    fn attributes_must_be_a_json_object_of_strings() {
        let cases = [
            ("{\"region\": 5}", "attribute \"region\" is not a string"),
            ("{\"objects\": \"x\", \"weird\": {\"a\": \"b\"}}", "attribute \"weird\" is not a string"),
            ("[\"secret-ish\"]", "attributes is not a JSON object"),
            ("\"secret-ish\"", "attributes is not a JSON object"),
            ("{\"region\": \"secret-ish", "attributes is not valid JSON (line 1, column 22)"),
            ("", "attributes is not valid JSON (line 1, column 0)"),
        ];
        for (json, want) in cases {
            let err = parse_mount_request(json, "null", "420").unwrap_err();
            assert_eq!(err.to_string(), want, "{json}");
        }
        let bad = json!({ TOKENS: {"sts.amazonaws.com": {"token": JWT}} }).to_string();
        let err = parse_mount_request(&bad, "null", "420").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(JWT) && shown.contains("is not a string"), "{shown}");
    }

    #[test]
    fn malformed_tokens_never_leak() {
        let secret = "eyJSECRETPAYLOAD";
        let malformed = [
            (format!("{{\"sts.amazonaws.com\": {{\"token\": \"{secret}"), "it is not valid JSON"),
            (format!("[\"{secret}\"]"), "it is not a JSON object"),
            (
                json!({"sts.amazonaws.com": secret}).to_string(),
                "the entry for audience \"sts.amazonaws.com\" is not an object",
            ),
            (
                json!({"sts.amazonaws.com": {"token": [secret]}}).to_string(),
                "the entry for audience \"sts.amazonaws.com\" has a token that is not a string",
            ),
            (
                json!({"sts.amazonaws.com": {"jwt": secret}}).to_string(),
                "the entry for audience \"sts.amazonaws.com\" has no token",
            ),
            (
                json!({"a": {"token": secret, "expirationTimestamp": 5}}).to_string(),
                "the entry for audience \"a\" has an expirationTimestamp that is not a string",
            ),
        ];
        for (tokens, reason) in malformed {
            let err = parse_mount_request(&attributes(&[(TOKENS, &tokens)]), "null", "420").unwrap_err();
            let want = format!(
                "the csi.storage.k8s.io/serviceAccount.tokens attribute is malformed ({reason}); \
                 check the CSIDriver's tokenRequests"
            );
            assert_eq!(err.to_string(), want);
            assert_eq!(err.code(), ErrorCode::TokenMissing);
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
        }
    }

    #[test]
    fn empty_tokens_are_skipped() {
        let tokens = json!({
            "sts.amazonaws.com": {"token": "", "expirationTimestamp": "2030-01-01T00:00:00Z"},
            "pods.eks.amazonaws.com": {"token": JWT},
        })
        .to_string();
        let params = parse(&[(TOKENS, &tokens)]);
        assert_eq!(params.tokens.keys().collect::<Vec<_>>(), ["pods.eks.amazonaws.com"]);
        let token = &params.tokens["pods.eks.amazonaws.com"];
        assert_eq!((token.token.expose(), token.expiration.as_str()), (JWT, ""));
    }

    #[test]
    fn tokens_come_from_secrets_when_attributes_lack_them() {
        let secrets = json!({ TOKENS: tokens_json(JWT), "username": "nodeuser" }).to_string();
        let params = parse_mount_request(&attributes(&[]), &secrets, "420").unwrap();
        assert_eq!(params.tokens["sts.amazonaws.com"].token.expose(), JWT);
        let in_attributes = tokens_json("eyJfromAttributes");
        let params = parse_mount_request(&attributes(&[(TOKENS, &in_attributes)]), &secrets, "420").unwrap();
        let token = params.tokens["sts.amazonaws.com"].token.expose();
        assert_eq!(token, "eyJfromAttributes");
        let bad = json!({ TOKENS: {"sts.amazonaws.com": JWT} }).to_string();
        let err = parse_mount_request(&attributes(&[]), &bad, "420").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the csi.storage.k8s.io/serviceAccount.tokens entry of secrets is malformed (it is \
             not a string); check the CSIDriver's tokenRequests"
        );
        assert!(!format!("{err:?}").contains(JWT));
    }

    #[test]
    fn secrets_are_parsed_but_not_shown() {
        for none in ["null", "", " null ", "{}", "{\"username\": \"u\"}"] {
            let params = parse_mount_request(&attributes(&[]), none, "420").unwrap();
            assert!(params.tokens.is_empty(), "{none}");
        }
        let cases = [
            ("{\"password\": \"hunter2", "secrets is not valid JSON (line 1, column 21)"),
            ("\"hunter2\"", "secrets is not a JSON object"),
            ("[\"hunter2\"]", "secrets is not a JSON object"),
        ];
        for (secrets, want) in cases {
            let err = parse_mount_request(&attributes(&[]), secrets, "420").unwrap_err();
            assert_eq!(err.to_string(), want);
            assert!(!format!("{err:?}").contains("hunter2"));
        }
    }

    #[test]
    fn wipe_overwrites_every_string() {
        let mut value = json!({"a": "xy", "b": ["z", {"c": "w"}], "d": 1});
        wipe(&mut value);
        assert_eq!(value, json!({"a": "", "b": ["", {"c": ""}], "d": 1}));
    }

    #[test]
    fn describe_without_spc_names_the_pod() {
        let params = parse(&[(SPC, "")]);
        assert_eq!(params.describe(), "pod shop/web-0");
    }

    /// Regression (issue #11): namespace, pod and service-account attributes went unchecked into
    /// Kubernetes API paths.
    #[test]
    fn kubernetes_names_are_validated() {
        for (key, value) in [
            (POD_NAMESPACE, "../../../nodes/node-1"),
            (POD_NAMESPACE, "Shop"),
            (SERVICE_ACCOUNT, "sa/token"),
            (SERVICE_ACCOUNT, "sa?watch=true"),
            (POD_NAME, "web\n0"),
            (SPC, "my spc"),
            (POD_UID, "../../x"),
        ] {
            let err = error(&[(key, value)]);
            assert!(err.starts_with(&format!("{key} ")) && err.contains(" is not "), "{err}");
        }
        let ok = parse(&[(SERVICE_ACCOUNT, "app.v1"), (POD_NAME, "web-0.shard-1")]);
        assert_eq!((ok.pod.service_account.as_str(), ok.pod.name.as_str()), ("app.v1", "web-0.shard-1"));
    }

    #[test]
    fn tokens_and_endpoints_are_bounded() {
        let token_error = |tokens: &str| {
            let err = parse_mount_request(&attributes(&[(TOKENS, tokens)]), "null", "420").unwrap_err();
            assert_eq!(err.code(), ErrorCode::TokenMissing);
            err.to_string()
        };
        let big = tokens_json(&"t".repeat(limits::MAX_TOKENS_TEXT));
        assert!(token_error(&big).contains("bytes long (at most 65536)"));
        let many: serde_json::Map<String, Value> =
            (0..=limits::MAX_AUDIENCES).map(|i| (format!("aud-{i}"), json!({"token": "t"}))).collect();
        assert!(token_error(&Value::Object(many).to_string()).contains("17 audiences (at most 16)"));
        let url = format!("https://{}.example.com", "a".repeat(limits::MAX_URL));
        assert!(error(&[("ssmEndpoint", &url)]).starts_with("ssmEndpoint is "));
        assert!(error(&[("stsEndpoint", "https://x\n.example.com")]).starts_with("stsEndpoint contains a control"));
    }
}
