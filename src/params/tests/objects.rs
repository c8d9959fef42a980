//! Tests of `params::objects` (a child module of it, so they see its private items).

use super::*;
use crate::codes::ErrorCode;
use crate::params::{Bulk, Encoding, SecretFilter};

const CTX: Context = Context {
    translation: Some('_'),
    default_mode: 0o644,
    has_failover_region: false,
    spc_name: Some("my-spc"),
    memo: None,
};

const FAILOVER: Context = Context { has_failover_region: true, ..CTX };

const SM_ARN: &str = "arn:aws:secretsmanager:us-west-2:123456789012:secret:MySecret-a1b2c3";

fn parse(yaml: &str) -> Vec<ObjectSpec> {
    parse_objects(yaml, &CTX).unwrap_or_else(|e| panic!("{yaml}: {e}")).to_vec()
}

fn error(yaml: &str, ctx: &Context) -> String {
    let err = parse_objects(yaml, ctx).expect_err(yaml);
    assert_eq!(err.code(), ErrorCode::InvalidParameters);
    err.to_string()
}

/// One object's (file, mode, type, version, label).
fn summary(o: &ObjectSpec) -> (&str, u32, ObjectType, Option<&str>, Option<&str>) {
    let v = (o.version_id.as_deref(), o.version_label.as_deref());
    (o.file_name.as_str(), o.mode, o.object_type, v.0, v.1)
}

#[test]
fn golden_rows() {
    use ObjectType::*;
    let cases = [
        ("- objectName: db/creds\n  objectType: secretsmanager", ("db_creds", 0o644, SecretsManager, None, None)),
        ("- {objectName: /app/config, objectType: ssmparameter}", ("_app_config", 0o644, Parameter, None, None)),
        (
            "- objectName: rot\n  objectType: secretsmanager\n  \
             objectVersionLabel: AWSPREVIOUS\n  objectAlias: rot-prev",
            ("rot-prev", 0o644, SecretsManager, None, Some("AWSPREVIOUS")),
        ),
        (
            "- objectName: p\n  objectType: ssmparameter\n  objectVersion: \"2\"",
            ("p", 0o644, Parameter, Some("2"), None),
        ),
        (
            "- objectName: p\n  objectType: ssmparameter\n  objectVersionLabel: prod",
            ("p", 0o644, Parameter, None, Some("prod")),
        ),
    ];
    for (yaml, want) in cases {
        let objects = parse(yaml);
        assert_eq!(objects.len(), 1);
        assert_eq!(summary(&objects[0]), want, "{yaml}");
        assert_eq!(objects[0].arn_region, None);
    }
}

#[test]
fn translation_variants() {
    let yaml = "- objectName: /app/config\n  objectType: ssmparameter";
    for (translation, want) in [(Some('-'), "-app-config"), (None, "app/config")] {
        let ctx = Context { translation, ..CTX };
        let objects = parse_objects(yaml, &ctx).unwrap();
        assert_eq!(objects[0].file_name, want);
    }
}

#[test]
fn arn_without_alias_names_the_file_by_the_whole_arn() {
    let objects = parse(&format!("- objectName: {SM_ARN}"));
    let o = &objects[0];
    assert_eq!(o.file_name, SM_ARN);
    assert_eq!(o.name, SM_ARN);
    assert_eq!(o.object_type, ObjectType::SecretsManager);
    assert_eq!(o.arn_region.as_deref(), Some("us-west-2"));
    assert_eq!(o.mode, 0o644);
}

#[test]
fn arn_with_alias_and_permission() {
    let yaml = format!("- objectName: {SM_ARN}\n  objectAlias: my.txt\n  filePermission: \"0600\"");
    let o = &parse(&yaml)[0];
    assert_eq!((o.file_name.as_str(), o.mode), ("my.txt", 0o600));
    let ssm = "- objectName: arn:aws:ssm:eu-west-1:123456789012:parameter/app/x\n  \
               objectType: SSMParameter";
    let o = &parse(ssm)[0];
    assert_eq!(o.object_type, ObjectType::Parameter);
    assert_eq!(o.arn_region.as_deref(), Some("eu-west-1"));
    assert_eq!(o.file_name, "arn:aws:ssm:eu-west-1:123456789012:parameter_app_x");
}

#[test]
fn jmes_path_with_capitalised_keys() {
    let yaml = "- objectName: rds\n  objectType: secretsmanager\n  jmesPath:\n    \
                - {path: username, objectAlias: user}\n    \
                - {Path: password, ObjectAlias: pass, filePermission: \"0400\"}";
    let o = &parse(yaml)[0];
    assert_eq!((o.file_name.as_str(), o.mode), ("rds", 0o644));
    let entry =
        |path: &str, file: &str, mode| JmesEntry { path: path.into(), file_name: file.into(), mode, encoding: None };
    let want = vec![entry("username", "user", 0o644), entry("password", "pass", 0o400)];
    assert_eq!(o.jmes, want);
}

#[test]
fn jmes_mode_defaults_to_the_object_then_the_request() {
    let yaml = "- objectName: rds\n  objectType: secretsmanager\n  filePermission: \"0640\"\n  \
                jmesPath: [{path: a, objectAlias: a/b}]";
    let o = &parse(yaml)[0];
    assert_eq!((o.mode, o.jmes[0].mode, o.jmes[0].file_name.as_str()), (0o640, 0o640, "a_b"));
    let ctx = Context { default_mode: 0o600, ..CTX };
    let plain = "- {objectName: rds, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: b}]}";
    let o = &parse_objects(plain, &ctx).unwrap()[0];
    assert_eq!((o.mode, o.jmes[0].mode), (0o600, 0o600));
}

#[test]
fn keys_match_case_insensitively_and_unknown_keys_are_ignored() {
    let yaml = "- ObjectName: x\n  OBJECTTYPE: SecretsManager\n  objectalias: y\n  \
                ObjectVersionLabel: L\n  FilePermission: \"0600\"\n  comment: [1, 2]\n  \
                objectTemplate: '{{ .x }}'";
    let o = &parse(yaml)[0];
    assert_eq!(summary(o), ("y", 0o600, ObjectType::SecretsManager, None, Some("L")));
}

/// serde_yaml_ng hands a string the scalar's original text: unquoted `0600` stays "0600"
/// (so it is accepted, where Go's YAML 1.1 reading makes it 384 and rejects it), `2` is
/// "2", `1.10` is "1.10" and `True` is "True". `~` and an empty value are absent.
#[test]
fn unquoted_scalars_keep_their_text() {
    let yaml = "- objectName: p\n  objectType: ssmparameter\n  objectVersion: 2\n  \
                filePermission: 0600\n  objectAlias: 1.10\n  objectVersionLabel: ~\n\
                - objectName: True\n  objectType: secretsmanager\n  objectVersionLabel: 0x1F\n  \
                objectVersion:\n  jmesPath: [{path: True, objectAlias: 007, filePermission: 0400}]";
    let objects = parse(yaml);
    assert_eq!(summary(&objects[0]), ("1.10", 0o600, ObjectType::Parameter, Some("2"), None));
    assert_eq!(objects[1].name, "True");
    assert_eq!(summary(&objects[1]), ("True", 0o644, ObjectType::SecretsManager, None, Some("0x1F")));
    let entry = &objects[1].jmes[0];
    assert_eq!((entry.path.as_str(), entry.file_name.as_str(), entry.mode), ("True", "007", 0o400));
}

#[test]
fn empty_values_count_as_absent() {
    let yaml = "- objectName: x\n  objectType: secretsmanager\n  objectAlias: \"\"\n  \
                filePermission: ''\n  objectVersion: \"\"";
    assert_eq!(summary(&parse(yaml)[0]), ("x", 0o644, ObjectType::SecretsManager, None, None));
}

#[test]
fn special_mode_bits_are_dropped() {
    let yaml = "- {objectName: x, objectType: secretsmanager, filePermission: \"4755\"}";
    assert_eq!(parse(yaml)[0].mode, 0o755);
}

#[test]
fn failover_object() {
    let yaml = "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  \
                objectVersion: v1\n  failoverObject:\n    ObjectName: \
                arn:aws:secretsmanager:us-east-1:1:secret:a-xyz\n    objectVersion: v1\n    \
                objectVersionLabel: AWSCURRENT";
    let objects = parse_objects(yaml, &FAILOVER).unwrap();
    let failover = objects[0].failover.as_ref().unwrap();
    let want = FailoverObject {
        name: "arn:aws:secretsmanager:us-east-1:1:secret:a-xyz".into(),
        version_id: Some("v1".into()),
        version_label: Some("AWSCURRENT".into()),
    };
    assert_eq!(*failover, want);
    assert_eq!(failover.arn_region(), Some("us-east-1"));
    let plain = FailoverObject { name: "a".into(), ..want };
    assert_eq!(plain.arn_region(), None);
}

#[test]
fn no_objects() {
    let want = "SecretProviderClass \"my-spc\" has no objects to mount";
    for yaml in ["", "  \n", "[]", "~", "# only a comment\n"] {
        assert_eq!(error(yaml, &CTX), want, "{yaml:?}");
    }
    let anonymous = Context { spc_name: None, ..CTX };
    let want = "the objects parameter is missing or empty: no objects to mount";
    assert_eq!(error("[]", &anonymous), want);
}

#[test]
fn rejections() {
    let cases = [
        (
            "- objectName: db/creds\n  objectType: ssm",
            "objects[0] (\"db/creds\"): objectType \"ssm\" is not valid (use secretsmanager \
             or ssmparameter)",
        ),
        (
            "- {objectName: a, objectType: secretsmanager}\n- {objectName: db/creds, objectType: vault}",
            "objects[1] (\"db/creds\"): objectType \"vault\" is not valid (use \
             secretsmanager or ssmparameter)",
        ),
        (
            "- objectName: db/creds",
            "objects[0] (\"db/creds\"): objectType is required unless objectName is an ARN \
             (use secretsmanager or ssmparameter)",
        ),
        ("- {objectType: secretsmanager, objectAlias: x}", "objects[0]: objectName is required"),
        ("- {objectName: '', objectType: secretsmanager}", "objects[0]: objectName is required"),
        (
            "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:s\n  objectType: ssmparameter",
            "objects[0] (\"arn:aws:secretsmanager:us-west-2:1:secret:s\"): objectType \
             \"ssmparameter\" does not match the ARN's service \"secretsmanager\"",
        ),
        (
            "- objectName: arn:aws:secretsmanager:us-west-2\n  objectType: secretsmanager",
            "objects[0] (\"arn:aws:secretsmanager:us-west-2\"): objectName is not a valid \
             ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)",
        ),
        (
            "- objectName: arn:aws::us-west-2:1:x",
            "objects[0] (\"arn:aws::us-west-2:1:x\"): objectName is not a valid ARN \
             (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)",
        ),
        (
            "- objectName: arn:aws:secretsmanager::1:secret:s",
            "objects[0] (\"arn:aws:secretsmanager::1:secret:s\"): objectName is not a \
             valid ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)",
        ),
        (
            "- objectName: 'arn:aws:secretsmanager:us-west-2:1:'",
            "objects[0] (\"arn:aws:secretsmanager:us-west-2:1:\"): objectName is not a \
             valid ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)",
        ),
        (
            "- objectName: arn:aws:secretsmanager:evil.com/x:1:secret:s",
            "objects[0] (\"arn:aws:secretsmanager:evil.com/x:1:secret:s\"): objectName has \
             an invalid region \"evil.com/x\" in its ARN",
        ),
        (
            "- objectName: arn:aws:kms:us-west-2:1:key/k",
            "objects[0] (\"arn:aws:kms:us-west-2:1:key/k\"): objectName has ARN service \
             \"kms\" which is not supported (use a secretsmanager or ssm ARN)",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, filePermission: \"600\"}",
            "objects[0] (\"x\"): filePermission \"600\" is not 4 octal digits (quote it in \
             YAML, e.g. \"0600\")",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, filePermission: \"0800\"}",
            "objects[0] (\"x\"): filePermission \"0800\" is not 4 octal digits (quote it in \
             YAML, e.g. \"0600\")",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, filePermission: rw}",
            "objects[0] (\"x\"): filePermission \"rw\" is not 4 octal digits (quote it in \
             YAML, e.g. \"0600\")",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, filePermission: \"00600\"}",
            "objects[0] (\"x\"): filePermission \"00600\" is not 4 octal digits (quote it \
             in YAML, e.g. \"0600\")",
        ),
        (
            "- {objectName: p, objectType: ssmparameter, objectVersion: \"2\", objectVersionLabel: l}",
            "objects[0] (\"p\"): objectVersionLabel cannot be used together with \
             objectVersion for an ssmparameter",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, jmesPath: [{objectAlias: u}]}",
            "objects[0] (\"x\"): jmesPath[0].path is required",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: b}, {path: u}]}",
            "objects[0] (\"x\"): jmesPath[1].objectAlias is required",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, jmesPath: [{path: u, objectAlias: u, filePermission: \"777\"}]}",
            "objects[0] (\"x\"): jmesPath[0].filePermission \"777\" is not 4 octal digits \
             (quote it in YAML, e.g. \"0600\")",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, jmesPath: [{path: u, objectAlias: ..data}]}",
            "objects[0] (\"x\"): jmesPath[0].objectAlias gives file name \"..data\" which \
             starts with \"..\" (reserved for the atomic writer's ..data layout)",
        ),
        (
            "- {objectName: ..data, objectType: secretsmanager}",
            "objects[0] (\"..data\"): objectName gives file name \"..data\" which starts \
             with \"..\" (reserved for the atomic writer's ..data layout)",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: ..}",
            "objects[0] (\"x\"): objectAlias gives file name \"..\" which starts with \"..\" \
             (reserved for the atomic writer's ..data layout)",
        ),
        (
            "- {objectName: c, objectType: secretsmanager, objectVersionLabel: AWSCURRENT}\n\
             - {objectName: c, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS}",
            "objects[0] (\"c\") and objects[1] (\"c\") both resolve to file \"c\"",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(error(yaml, &CTX), want, "{yaml}");
    }
}

#[test]
fn rejections_without_translation() {
    let off = Context { translation: None, ..CTX };
    let cases = [
        (
            "- {objectName: a/../../etc, objectType: secretsmanager}",
            "objects[0] (\"a/../../etc\"): objectName gives file name \"a/../../etc\" which \
             has a \"..\" element",
        ),
        (
            "- {objectName: /../x, objectType: secretsmanager}",
            "objects[0] (\"/../x\"): objectName gives file name \"../x\" which starts with \
             \"..\" (reserved for the atomic writer's ..data layout)",
        ),
        (
            "- {objectName: //x, objectType: secretsmanager}",
            "objects[0] (\"//x\"): objectName gives file name \"/x\" which is absolute",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: a/./b}",
            "objects[0] (\"x\"): objectAlias gives file name \"a/./b\" which has a \".\" \
             element",
        ),
        (
            "- {objectName: a, objectType: secretsmanager}\n- {objectName: /a/b, objectType: ssmparameter}",
            "objects[0] (\"a\") resolves to file \"a\", which objects[1] (\"/a/b\") needs as \
             a directory for \"a/b\"",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(error(yaml, &off), want, "{yaml}");
    }
}

#[test]
fn failover_rejections() {
    let base = "- objectName: a\n  objectType: ssmparameter\n  objectVersion: \"1\"\n";
    let cases = [
        (
            "  objectAlias: a\n  failoverObject: {objectName: b, objectVersion: \"1\"}",
            &CTX,
            "objects[0] (\"a\"): failoverObject is only allowed when the failoverRegion \
             parameter is set",
        ),
        (
            "  failoverObject: {objectName: b, objectVersion: \"1\"}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject requires the object to have an objectAlias",
        ),
        (
            "  objectAlias: a\n  failoverObject: {objectVersion: \"1\"}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject.objectName is required",
        ),
        (
            "  objectAlias: a\n  failoverObject: {objectName: b, objectVersion: \"2\"}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject.objectVersion \"2\" must equal the object's \
             objectVersion \"1\"",
        ),
        (
            "  objectAlias: a\n  failoverObject: {objectName: b}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject.objectVersion (none) must equal the \
             object's objectVersion \"1\"",
        ),
        (
            "  objectAlias: a\n  failoverObject: {objectName: b, objectVersion: \"1\", objectVersionLabel: x}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject.objectVersionLabel cannot be used together \
             with objectVersion for an ssmparameter",
        ),
        (
            "  objectAlias: a\n  failoverObject: {objectName: 'arn:aws:secretsmanager:us-east-1:1:secret:b', objectVersion: \"1\"}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject.objectName has ARN service \
             \"secretsmanager\" which does not match objectType \"ssmparameter\"",
        ),
        (
            "  objectAlias: a\n  failoverObject: {objectName: 'arn:aws:ssm', objectVersion: \"1\"}",
            &FAILOVER,
            "objects[0] (\"a\"): failoverObject.objectName is not a valid ARN \
             (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)",
        ),
    ];
    for (tail, ctx, want) in cases {
        assert_eq!(error(&format!("{base}{tail}"), ctx), want, "{tail}");
    }
}

#[test]
fn structure_errors_name_the_place() {
    let cases = [
        ("objectName: x", "invalid type: map, expected a sequence"),
        (
            "- just-a-name",
            "objects[0]: invalid type: string \"just-a-name\", expected a mapping (an \
             object descriptor with objectName, …) at line 1 column 3",
        ),
        (
            "- {objectName: x}\n- objectName: [a, b]",
            "objects[1].objectName: invalid type: sequence, expected a string at line 2 \
             column 15",
        ),
        (
            "- {objectName: x, jmesPath: {path: a}}",
            "objects[0].jmesPath: invalid type: map, expected a sequence at line 1 column 29",
        ),
        (
            "- {objectName: x, failoverObject: [a]}",
            "objects[0].failoverObject: invalid type: sequence, expected a mapping (a \
             failoverObject with objectName) at line 1 column 35",
        ),
        ("- a: [\n", "did not find expected node content at line 2 column 1, while parsing a flow node"),
    ];
    for (yaml, want) in cases {
        let prefix = "objects is not a valid YAML list of object descriptors: ";
        assert_eq!(error(yaml, &CTX), format!("{prefix}{want}"), "{yaml}");
    }
}

#[test]
fn arns_parse() {
    let arn = parse_arn("arn:aws-cn:ssm:cn-north-1::parameter/a:b").unwrap();
    let want = Arn { service: "ssm", object_type: ObjectType::Parameter, region: "cn-north-1" };
    assert_eq!(arn, want);
}

#[test]
fn file_permissions() {
    let cases = [
        ("0600", Some(0o600)),
        ("0644", Some(0o644)),
        ("0000", Some(0)),
        ("0777", Some(0o777)),
        ("7777", Some(0o777)),
        ("600", None),
        ("0800", None),
        ("rw", None),
        ("+600", None),
        ("06000", None),
        ("0x60", None),
        ("٠٦٠٠", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_file_permission(text), want, "{text}");
    }
}

/// Regression (issue #11): a deep jmesPath aborted the process when the secret was rendered,
/// after the AWS calls; now it is refused with the object's other parameters.
#[test]
fn jmes_paths_are_compiled_when_objects_are_parsed() {
    let deep = format!("{}a", "!".repeat(20_000));
    let yaml = format!(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - {{path: '{deep}', objectAlias: u}}"
    );
    let err = error(&yaml, &CTX);
    assert!(err.starts_with("objects[0] (\"db\"): jmesPath[0].path jmesPath of 20001 bytes is too long"), "{err}");
    let yaml = "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - {path: '[[', objectAlias: u}";
    assert!(error(yaml, &CTX).contains("jmesPath[0].path"), "an invalid expression is refused at parse time");
}

/// Regression (issue #11): names had no bound and no alphabet; a newline in one forged a
/// log line, and 3 MiB names grew the process.
#[test]
fn names_and_fields_are_bounded() {
    let object =
        |name: &str, kind: &str, extra: &str| format!("- objectName: \"{name}\"\n  objectType: {kind}\n{extra}");
    let cases = [
        (
            object("db\\naudit service=sm", "secretsmanager", ""),
            "objectName contains '\\n', which no secretsmanager name can hold",
        ),
        (object(&"a".repeat(513), "secretsmanager", ""), "objectName is 513 bytes long; AWS allows at most 512"),
        (object(&"a".repeat(2049), "ssmparameter", ""), "objectName is 2049 bytes long; AWS allows at most 2048"),
        (
            object("p", "ssmparameter", "  objectVersion: \"1\\u001b[2J\"\n"),
            "objectVersion contains a control character",
        ),
        (
            object("s", "secretsmanager", &format!("  objectVersionLabel: {}\n", "L".repeat(257))),
            "objectVersionLabel is 257 bytes long (at most 256)",
        ),
    ];
    for (yaml, want) in cases {
        let err = error(&yaml, &CTX);
        assert!(err.ends_with(want), "{err}\nwanted …{want}");
    }
    let longest = object(&"a".repeat(512), "secretsmanager", "  objectAlias: a\n");
    assert_eq!(parse(&longest).len(), 1, "AWS's own limit is accepted");
    let failover =
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  failoverObject: {objectName: \"b c\"}";
    assert!(error(failover, &FAILOVER).contains("failoverObject.objectName contains ' '"));
}

#[test]
fn the_objects_text_is_bounded() {
    let yaml = format!("# {}\n- objectName: db\n  objectType: secretsmanager\n", "x".repeat(limits::MAX_OBJECTS_TEXT));
    assert!(error(&yaml, &CTX).starts_with("objects is 1572"), "{}", error(&yaml, &CTX));
    let fits =
        format!("# {}\n- objectName: db\n  objectType: secretsmanager\n", "x".repeat(limits::MAX_OBJECTS_TEXT - 100));
    assert_eq!(parse(&fits).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Issue #17: objectEncoding, jsonKeys, objectPath/recursive, filters, maxObjects

#[test]
fn object_encoding_on_objects_and_entries() {
    let yaml = "- objectName: s\n  objectType: secretsmanager\n  objectEncoding: BASE64\n  \
                jmesPath:\n    - {path: k, objectAlias: k, objectEncoding: hex}\n    - {path: u, objectAlias: u, objectEncoding: utf-8}";
    let o = &parse(yaml)[0];
    assert_eq!(o.encoding, Some(Encoding::Base64));
    let entries: Vec<_> = o.jmes.iter().map(|e| e.encoding).collect();
    assert_eq!(entries, [Some(Encoding::Hex), Some(Encoding::Utf8)]);
    assert_eq!(parse("- {objectName: s, objectType: secretsmanager}")[0].encoding, None, "absent: bytes as they are");
}

#[test]
fn json_keys_makes_the_alias_a_directory_prefix() {
    let o = &parse("- {objectName: db/creds, objectType: secretsmanager, jsonKeys: true}")[0];
    assert!(o.json_keys && o.expands());
    assert_eq!((o.file_name.as_str(), o.max_objects_set), ("", None));
    let o =
        &parse("- {objectName: db/creds, objectType: secretsmanager, jsonKeys: True, objectAlias: db, maxObjects: 7}")
            [0];
    assert_eq!((o.file_name.as_str(), o.max_objects_set), ("db", Some(7)));
    let o = &parse("- {objectName: p, objectType: ssmparameter, jsonKeys: true}")[0];
    assert!(o.json_keys, "a Parameter Store String holding JSON can be split too");
    // Its own file is not written, so another object may use that name.
    let both = parse(
        "- {objectName: a, objectType: secretsmanager, jsonKeys: true}\n- {objectName: a, objectType: ssmparameter}",
    );
    assert_eq!(both.len(), 2);
}

#[test]
fn bulk_descriptors() {
    let o = &parse("- {objectPath: /app/prod, recursive: true, objectAlias: prod, maxObjects: 500}")[0];
    assert_eq!(o.bulk, Some(Bulk::Path { path: "/app/prod".into(), recursive: true }));
    assert_eq!(
        (o.name.as_str(), o.object_type, o.file_name.as_str(), o.max_objects_set),
        ("/app/prod", ObjectType::Parameter, "prod", Some(500))
    );
    let o = &parse("- {objectPath: /app, objectType: ssmparameter}")[0];
    assert_eq!(
        (o.bulk.clone(), o.file_name.as_str()),
        (Some(Bulk::Path { path: "/app".into(), recursive: false }), "")
    );
    let yaml = "- objectType: secretsmanager\n  filters:\n    - {key: name, values: [app/]}\n    - {key: tag-key, values: [team, owner]}";
    let o = &parse(yaml)[0];
    let want = vec![
        SecretFilter { key: "name".into(), values: vec!["app/".into()] },
        SecretFilter { key: "tag-key".into(), values: vec!["team".into(), "owner".into()] },
    ];
    assert_eq!(o.bulk, Some(Bulk::Filters(want)));
    assert_eq!((o.name.as_str(), o.object_type), ("filters[name=app/,tag-key=team]", ObjectType::SecretsManager));
}

#[test]
fn new_fields_reject_bad_input_before_any_read() {
    let cases = [
        (
            "- {objectName: s, objectType: secretsmanager, objectEncoding: base32}",
            r#"objects[0] ("s"): objectEncoding "base32" is not valid (use base64, hex or utf-8)"#,
        ),
        (
            "- objectName: s\n  objectType: secretsmanager\n  jmesPath: [{path: a, objectAlias: a, objectEncoding: rot13}]",
            r#"objects[0] ("s"): jmesPath[0].objectEncoding "rot13" is not valid (use base64, hex or utf-8)"#,
        ),
        (
            "- {objectName: s, objectType: secretsmanager, jsonKeys: yes}",
            r#"objects[0] ("s"): jsonKeys "yes" is not true or false"#,
        ),
        (
            "- {objectName: s, objectType: secretsmanager, maxObjects: 5}",
            r#"objects[0] ("s"): maxObjects only applies with jsonKeys, objectPath or filters"#,
        ),
        (
            "- {objectName: s, objectType: secretsmanager, jsonKeys: true, maxObjects: 0}",
            r#"objects[0] ("s"): maxObjects "0" is not a whole number from 1 to 10000"#,
        ),
        (
            "- {objectPath: /a, maxObjects: 10001}",
            r#"objects[0] ("/a"): maxObjects "10001" is not a whole number from 1 to 10000"#,
        ),
        (
            "- {objectPath: /a, maxObjects: -1}",
            r#"objects[0] ("/a"): maxObjects "-1" is not a whole number from 1 to 10000"#,
        ),
        (
            "- {objectName: s, objectType: ssmparameter, recursive: true}",
            r#"objects[0] ("s"): recursive is only allowed with objectPath"#,
        ),
        ("- {objectPath: a/b}", r#"objects[0] ("a/b"): objectPath "a/b" must start with "/""#),
        (
            "- {objectPath: '/a b'}",
            r#"objects[0] ("/a b"): objectPath contains ' ', which no ssmparameter name can hold"#,
        ),
        (
            "- {objectPath: /a, objectName: x}",
            r#"objects[0] ("/a"): objectName cannot be used on a bulk descriptor (objectPath or filters lists what is mounted)"#,
        ),
        (
            "- {objectPath: /a, objectType: secretsmanager}",
            r#"objects[0] ("/a"): objectType "secretsmanager" does not fit objectPath, which lists "ssmparameter""#,
        ),
        (
            "- {objectPath: /a, jsonKeys: true}",
            r#"objects[0] ("/a"): jsonKeys is not allowed here: applies to one secret, not to a bulk descriptor"#,
        ),
        (
            "- {objectPath: /a, objectVersion: '2'}",
            r#"objects[0] ("/a"): objectVersion is not allowed here: bulk descriptors read each item's current version"#,
        ),
        (
            "- objectPath: /a\n  jmesPath: [{path: a, objectAlias: a}]",
            r#"objects[0] ("/a"): jmesPath is not allowed here: applies to one secret, not to a bulk descriptor"#,
        ),
        (
            "- {objectPath: /a, filters: [{key: name, values: [a]}]}",
            r#"objects[0] ("/a"): filters cannot be used together with objectPath (one bulk descriptor reads one store)"#,
        ),
        ("- {filters: []}", r#"objects[0] ("filters[]"): filters has 0 entries (1 to 10 allowed)"#),
        (
            "- {filters: [{key: owner, values: [a]}]}",
            r#"objects[0] ("filters[owner=a]"): filters[0].key "owner" is not a filter key (use one of name, tag-key, tag-value, description, primary-region, owning-service, all)"#,
        ),
        ("- {filters: [{values: [a]}]}", r#"objects[0] ("filters[?=a]"): filters[0].key is required"#),
        (
            "- {filters: [{key: name, values: []}]}",
            r#"objects[0] ("filters[name=]"): filters[0].values has 0 non-empty values (1 to 10 allowed)"#,
        ),
        (
            "- {filters: [{key: name, values: [a]}], objectType: ssmparameter}",
            r#"objects[0] ("filters[name=a]"): objectType "ssmparameter" does not fit filters, which lists "secretsmanager""#,
        ),
        (
            "- {filters: [{key: name, values: [\"a\\nb\"]}]}",
            "objects[0] (\"filters[name=a\\nb]\"): filters[0].values contains a control character",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(error(yaml, &CTX), want, "{yaml}");
    }
    let eleven = format!("- filters: [{}]", ["{key: all, values: [x]}"; 11].join(", "));
    assert!(error(&eleven, &CTX).ends_with("filters has 11 entries (1 to 10 allowed)"));
    let values = format!("- filters: [{{key: all, values: [{}]}}]", ["x"; 11].join(", "));
    assert!(error(&values, &CTX).ends_with("filters[0].values has 11 non-empty values (1 to 10 allowed)"));
    let long = format!("- filters: [{{key: name, values: [{}]}}]", "x".repeat(513));
    assert!(error(&long, &CTX).ends_with("filters[0].values is 513 bytes long (at most 512)"));
}

#[test]
fn bulk_descriptors_have_no_failover() {
    let yaml = "- objectPath: /a\n  objectAlias: a\n  failoverObject: {objectName: /b}";
    assert_eq!(
        error(yaml, &FAILOVER),
        r#"objects[0] ("/a"): failoverObject is not allowed here: bulk descriptors have no failover"#
    );
}
