//! Tests of `params::error` (a child module of it, so they see its private items).

use super::*;

fn owner(index: usize, name: &str, jmes: Option<usize>) -> Box<FileOwner> {
    Box::new(FileOwner { index, name: name.to_string(), jmes })
}

#[test]
fn display_is_the_detail_with_context() {
    let cases: Vec<(ParamError, &str)> = vec![
        (
            ParamError::parameter("usePodIdentity", "\"yes\" is not a boolean"),
            "usePodIdentity \"yes\" is not a boolean",
        ),
        (ParamError::NotAString { key: "region".into() }, "attribute \"region\" is not a string"),
        (
            ParamError::Object {
                index: 1,
                name: Some("db/creds".into()),
                field: "objectType".into(),
                detail: "\"ssm\" is not valid (use secretsmanager or ssmparameter)".into(),
            },
            "objects[1] (\"db/creds\"): objectType \"ssm\" is not valid \
             (use secretsmanager or ssmparameter)",
        ),
        (
            ParamError::Object { index: 0, name: None, field: "objectName".into(), detail: "is required".into() },
            "objects[0]: objectName is required",
        ),
        (
            ParamError::Collision { file: "c".into(), first: owner(0, "c", None), second: owner(2, "x", Some(1)) },
            "objects[0] (\"c\") and objects[2] (\"x\") jmesPath[1] both resolve to file \"c\"",
        ),
        (
            ParamError::DirectoryCollision {
                file: "a".into(),
                owner: owner(0, "a", None),
                nested: "a/b".into(),
                nested_owner: owner(1, "/a/b", None),
            },
            "objects[0] (\"a\") resolves to file \"a\", which objects[1] (\"/a/b\") needs \
             as a directory for \"a/b\"",
        ),
        (
            ParamError::NoObjects { spc: Some("my-spc".into()) },
            "SecretProviderClass \"my-spc\" has no objects to mount",
        ),
        (ParamError::NoObjects { spc: None }, "the objects parameter is missing or empty: no objects to mount"),
    ];
    for (err, want) in cases {
        assert_eq!(err.to_string(), want);
        assert_eq!(err.code(), ErrorCode::InvalidParameters);
    }
}

#[test]
fn token_problems_have_their_own_code() {
    let err = ParamError::TokensMalformed { origin: "attribute", reason: "not valid JSON".into() };
    assert_eq!(err.code(), ErrorCode::TokenMissing);
    assert_eq!(
        err.to_string(),
        "the csi.storage.k8s.io/serviceAccount.tokens attribute is malformed (not valid \
         JSON); check the CSIDriver's tokenRequests"
    );
}

#[test]
fn quoted_escapes_and_truncates() {
    assert_eq!(quoted("a\nb\"c"), "\"a\\nb\\\"c\"");
    let long = "é".repeat(200);
    let shown = quoted(&long);
    assert_eq!(shown, format!("{:?}…", "é".repeat(MAX_QUOTED)));
    assert_eq!(quoted(&"x".repeat(MAX_QUOTED)), format!("\"{}\"", "x".repeat(128)));
}
