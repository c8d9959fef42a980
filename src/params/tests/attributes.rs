//! Tests of `params::attributes` (a child module of it, so they see its private items).

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

#[test]
fn assume_role_parameters_are_read_and_validated() {
    let role = "arn:aws:iam::210987654321:role/team/reader";
    assert_eq!(parse(&[]).assume_role, None);
    let params =
        parse(&[(ASSUME_ROLE_ARN, role), (ASSUME_ROLE_EXTERNAL_ID, "tenant-7:a/b"), (ASSUME_ROLE_DURATION, "900")]);
    let assumed = params.assume_role.expect("assumeRoleArn");
    assert_eq!(assumed.role_arn, role);
    assert_eq!(assumed.external_id.as_deref(), Some("tenant-7:a/b"));
    assert_eq!(assumed.duration_seconds, Some(900));
    assert!(!format!("{assumed:?}").contains("tenant-7"), "the external id stays out of Debug");
    let bare = parse(&[(ASSUME_ROLE_ARN, "arn:aws-us-gov:iam::210987654321:role/r")]).assume_role.expect("arn");
    assert_eq!((bare.external_id, bare.duration_seconds), (None, None));

    for bad_arn in [
        "reader",
        "arn:aws:iam::21098765432:role/r",
        "arn:aws:iam:us-east-1:210987654321:role/r",
        "arn:aws:sts::210987654321:assumed-role/r/s",
        "arn:aws:iam::210987654321:user/r",
        "arn:aws:iam::210987654321:role/",
        "arn:aws:iam::210987654321:role/r*",
    ] {
        let message = error(&[(ASSUME_ROLE_ARN, bad_arn)]);
        assert!(message.starts_with("assumeRoleArn "), "{bad_arn}: {message}");
    }
    let long_name = format!("arn:aws:iam::210987654321:role/{}", "r".repeat(65));
    assert!(error(&[(ASSUME_ROLE_ARN, &long_name)]).contains("1–64"));
    let huge = format!("arn:aws:iam::210987654321:role/{}/r", "p".repeat(2048));
    assert!(error(&[(ASSUME_ROLE_ARN, &huge)]).contains("at most 2048"));

    let secret_like = "x".repeat(1225);
    for (external_id, expect) in
        [("x", "(1 characters; AWS takes 2–1224)"), (&secret_like[..], "1225"), ("ab cd", "position 3")]
    {
        let message = error(&[(ASSUME_ROLE_ARN, role), (ASSUME_ROLE_EXTERNAL_ID, external_id)]);
        assert!(message.starts_with("assumeRoleExternalId ") && message.contains(expect), "{message}");
        assert!(!message.contains("ab cd"), "the external id is never quoted: {message}");
    }
    for duration in ["899", "3601", "1h", "-900", "43200"] {
        let message = error(&[(ASSUME_ROLE_ARN, role), (ASSUME_ROLE_DURATION, duration)]);
        assert!(message.starts_with("assumeRoleDurationSeconds ") && message.contains("900 to 3600"), "{message}");
    }
    assert_eq!(
        parse(&[(ASSUME_ROLE_ARN, role), (ASSUME_ROLE_DURATION, "3600")]).assume_role.unwrap().duration_seconds,
        Some(3600)
    );
    for companion in [(ASSUME_ROLE_EXTERNAL_ID, "tenant-7"), (ASSUME_ROLE_DURATION, "900")] {
        let message = error(&[companion]);
        assert!(message.ends_with("is set, but assumeRoleArn is not"), "{message}");
    }
}
