//! Tests of `params::naming` (a child module of it, so they see its private items).

use super::*;
use crate::params::{JmesEntry, ObjectType};

#[test]
fn names_follow_the_go_provider() {
    let cases = [
        ("db/creds", Some('_'), "db_creds"),
        ("/app/db/pass", Some('_'), "_app_db_pass"),
        ("mypath/Secret1", Some('_'), "mypath_Secret1"),
        ("/app/config", Some('-'), "-app-config"),
        ("/app/config", Some('é'), "éappéconfig"),
        ("/app/config", None, "app/config"),
        ("app/config", None, "app/config"),
        ("//x", None, "/x"),
        ("plain", None, "plain"),
        (
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:MySecret-a1b2c3",
            Some('_'),
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:MySecret-a1b2c3",
        ),
    ];
    for (base, translation, want) in cases {
        assert_eq!(file_name(base, translation), want, "{base} {translation:?}");
    }
}

#[test]
fn accepts_clean_relative_paths() {
    let long_element = "x".repeat(255);
    let long_path = vec!["x".repeat(240); 17].join("/");
    assert_eq!(long_path.len(), MAX_PATH);
    for ok in [
        "a",
        "a/b/c",
        "db_creds",
        ".hidden",
        "a/..b",
        "a/.b",
        "x..",
        "arn:aws:secretsmanager:us-west-2:1:secret:s",
        long_element.as_str(),
        long_path.as_str(),
    ] {
        assert_eq!(validate_relative_path(ok), Ok(()), "{ok}");
    }
}

#[test]
fn rejects_what_the_driver_rejects() {
    let long_element = "x".repeat(256);
    let long_path = "a/".repeat(2048) + "b";
    let cases = [
        ("", "is empty"),
        ("/x", "is absolute"),
        ("/", "is absolute"),
        ("a\0b", "contains a NUL byte"),
        ("..", "starts with \"..\" (reserved for the atomic writer's ..data layout)"),
        ("..data", "starts with \"..\" (reserved for the atomic writer's ..data layout)"),
        ("..x/y", "starts with \"..\" (reserved for the atomic writer's ..data layout)"),
        ("a/../b", "has a \"..\" element"),
        ("a/..", "has a \"..\" element"),
        ("./a", "has a \".\" element"),
        ("a/./b", "has a \".\" element"),
        ("a//b", "has an empty element (a doubled or trailing \"/\")"),
        ("a/", "has an empty element (a doubled or trailing \"/\")"),
        (long_element.as_str(), "has an element longer than 255 bytes"),
        (long_path.as_str(), "is longer than 4096 bytes"),
    ];
    for (path, want) in cases {
        assert_eq!(validate_relative_path(path), Err(want.to_string()), "{path:?}");
    }
}

fn object(index: usize, name: &str, file: &str, jmes: &[&str]) -> ObjectSpec {
    ObjectSpec {
        index,
        name: name.to_string(),
        arn_region: None,
        object_type: ObjectType::SecretsManager,
        version_id: None,
        version_label: None,
        file_name: file.to_string(),
        mode: 0o644,
        jmes: (jmes.iter())
            .map(|f| JmesEntry { path: "k".to_string(), file_name: f.to_string(), mode: 0o644, encoding: None })
            .collect(),
        failover: None,
        encoding: None,
        json_keys: false,
        bulk: None,
        max_objects_set: None,
        translation: Some('_'),
    }
}

#[test]
fn distinct_names_coexist() {
    let objects = [
        object(0, "a", "a", &["user", "pass"]),
        object(1, "b/c", "b/c", &["b/d"]),
        object(2, "ab", "ab", &[]),
        object(3, "b.x", "b.x", &[]),
    ];
    assert!(check_collisions(&objects).is_ok());
}

#[test]
fn same_name_is_a_collision() {
    let objects = [object(0, "c", "c", &[]), object(1, "c", "c", &[])];
    assert_eq!(
        check_collisions(&objects).unwrap_err().to_string(),
        "objects[0] (\"c\") and objects[1] (\"c\") both resolve to file \"c\""
    );
}

#[test]
fn jmes_files_collide_too() {
    let objects = [object(0, "rds", "rds", &["user"]), object(1, "u", "x", &["y", "user"])];
    assert_eq!(
        check_collisions(&objects).unwrap_err().to_string(),
        "objects[0] (\"rds\") jmesPath[0] and objects[1] (\"u\") jmesPath[1] both resolve \
         to file \"user\""
    );
    let own = [object(0, "rds", "rds", &["rds"])];
    assert_eq!(
        check_collisions(&own).unwrap_err().to_string(),
        "objects[0] (\"rds\") and objects[0] (\"rds\") jmesPath[0] both resolve to file \
         \"rds\""
    );
}

#[test]
fn a_file_cannot_be_a_directory_of_another() {
    for objects in [
        [object(0, "a", "a", &[]), object(1, "/a/b", "a/b", &[])],
        [object(1, "/a/b", "a/b", &[]), object(0, "a", "a", &[])],
    ] {
        assert_eq!(
            check_collisions(&objects).unwrap_err().to_string(),
            "objects[0] (\"a\") resolves to file \"a\", which objects[1] (\"/a/b\") needs \
             as a directory for \"a/b\""
        );
    }
    let deep = [object(0, "x", "a/b", &[]), object(1, "y", "z", &["a/b/c/d"])];
    assert_eq!(
        check_collisions(&deep).unwrap_err().to_string(),
        "objects[0] (\"x\") resolves to file \"a/b\", which objects[1] (\"y\") jmesPath[0] \
         needs as a directory for \"a/b/c/d\""
    );
}
