//! Turns fetched values into the files and object versions of one mount: one file per object
//! (or, for `jsonKeys`, one per top-level key; for a bulk descriptor, one per item listed), one
//! more per jmesPath entry, each carrying its version. `objectEncoding` is applied here, and the
//! files an object expands into are bounded, named and checked for collisions here, before
//! anything is written.

use crate::decode::{self, DecodeError};
use crate::jmes::{self, JmesError, KeysError};
use crate::params::{self, Bulk, ObjectSpec};
use crate::read::{Fetched, Got, Listed};
use crate::secret::SecretBytes;
use crate::write::OutFile;
use std::collections::BTreeMap;

/// The version of one mounted file, as reported to the driver (`ObjectVersion`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileVersion {
    /// The file name (after translation).
    pub id: String,
    /// Secrets Manager VersionId, or Parameter Store version number.
    pub version: String,
}

/// Everything one mount produces.
#[derive(Debug, Default)]
pub struct Rendered {
    pub files: Vec<OutFile>,
    pub versions: Vec<FileVersion>,
    /// Who each file comes from (same order as `files`), for collision messages.
    owners: Vec<Owner>,
}

impl Rendered {
    /// Each file's version with the name of the object it comes from (for a bulk descriptor,
    /// the descriptor's name; the item is the file).
    pub fn sources(&self) -> impl Iterator<Item = (&FileVersion, &str)> {
        self.versions.iter().zip(self.owners.iter().map(|o| o.object.as_str()))
    }
}

/// The object (and part of it) a file comes from.
#[derive(Debug, Clone)]
struct Owner {
    index: usize,
    object: String,
    part: Option<String>,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "objects[{}] ({:?})", self.index, self.object)?;
        self.part.as_ref().map_or(Ok(()), |p| write!(f, " {p}"))
    }
}

/// An object whose value could not become files, naming the object (and entry or key).
#[derive(Debug, Clone, thiserror::Error)]
#[error("object {object:?} (objects[{index}]){}: {problem}", .part.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
pub struct RenderError {
    pub index: usize,
    pub object: String,
    /// `jmesPath[1]`, `key "user"`, `item "/app/db"`, when the problem is about one part.
    pub part: Option<String>,
    pub problem: RenderProblem,
}

/// What went wrong turning a value into files.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderProblem {
    #[error(transparent)]
    Jmes(#[from] JmesError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("gives {count} files, more than its maxObjects {max} (raise maxObjects, or narrow what it lists)")]
    TooMany { count: usize, max: usize },
    #[error("the mount's jsonKeys and bulk objects give {count} files, more than --max-objects-per-mount {ceiling}")]
    OverCeiling { count: usize, ceiling: usize },
    #[error("gives file name {file:?} which {problem}")]
    BadName { file: String, problem: String },
    #[error("resolves to file {file:?}, which {other} {how}")]
    Collision { file: String, other: String, how: &'static str },
}

impl RenderError {
    /// Whether the problem is about extracting JSON (`JmesPathFailed`) rather than about what
    /// the descriptor asks of the value (`InvalidParameters`).
    pub fn is_json(&self) -> bool {
        matches!(self.problem, RenderProblem::Jmes(_) | RenderProblem::Keys(_))
    }
}

/// Renders each object with what was read for it; `ceiling` (`--max-objects-per-mount`)
/// bounds the files all `jsonKeys` objects and bulk descriptors give together.
pub fn render(values: &[(&ObjectSpec, Got)], ceiling: usize) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    let mut expanded = 0;
    for (object, got) in values {
        let before = out.files.len();
        match got {
            Got::One(value) => render_object(object, value, &mut out)?,
            Got::Many(items) => render_bulk(object, items, &mut out)?,
        }
        if object.expands() {
            expanded += out.files.len() - before - object.jmes.len();
        }
    }
    if expanded > ceiling {
        let (index, object) =
            values.iter().find(|(o, _)| o.expands()).map_or((0, String::new()), |(o, _)| (o.index, o.name.clone()));
        return Err(RenderError {
            index,
            object,
            part: None,
            problem: RenderProblem::OverCeiling { count: expanded, ceiling },
        });
    }
    check_collisions(&out)?;
    Ok(out)
}

fn fail(object: &ObjectSpec, part: Option<String>, problem: impl Into<RenderProblem>) -> RenderError {
    RenderError { index: object.index, object: object.name.clone(), part, problem: problem.into() }
}

fn owner(object: &ObjectSpec, part: Option<&str>) -> Owner {
    Owner { index: object.index, object: object.name.clone(), part: part.map(str::to_string) }
}

fn render_object(object: &ObjectSpec, value: &Fetched, out: &mut Rendered) -> Result<(), RenderError> {
    let decoded = decode::decode(&value.value, object.encoding).map_err(|e| fail(object, None, e))?;
    if object.json_keys {
        render_keys(object, &decoded, &value.version, out)?;
    } else {
        push(out, &object.file_name, object.mode, decoded.clone(), &value.version, owner(object, None));
    }
    for (j, entry) in object.jmes.iter().enumerate() {
        let part = || Some(format!("jmesPath[{j}]"));
        let extracted = jmes::extract(decoded.expose(), &entry.path).map_err(|e| fail(object, None, e))?;
        let contents = decode::decode(&extracted, entry.encoding).map_err(|e| fail(object, part(), e))?;
        push(out, &entry.file_name, entry.mode, contents, &value.version, owner(object, part().as_deref()));
    }
    Ok(())
}

/// `jsonKeys`: one file per top-level key, named by the key (under the objectAlias).
fn render_keys(object: &ObjectSpec, value: &SecretBytes, version: &str, out: &mut Rendered) -> Result<(), RenderError> {
    let keys = jmes::top_level(value.expose()).map_err(|e| fail(object, None, e))?;
    if keys.len() > object.max_objects() {
        return Err(fail(object, None, RenderProblem::TooMany { count: keys.len(), max: object.max_objects() }));
    }
    for (key, contents) in keys {
        let part = format!("key {}", shown(&key));
        let file = expanded_name(object, &key).map_err(|p| fail(object, Some(part.clone()), p))?;
        push(out, &file, object.mode, contents, version, owner(object, Some(&part)));
    }
    Ok(())
}

/// A bulk descriptor: one file per item, named relative to the objectPath (or the single name
/// filter), under the objectAlias; each with its own version.
fn render_bulk(object: &ObjectSpec, items: &[Listed], out: &mut Rendered) -> Result<(), RenderError> {
    if items.len() > object.max_objects() {
        return Err(fail(object, None, RenderProblem::TooMany { count: items.len(), max: object.max_objects() }));
    }
    for item in items {
        let part = format!("item {}", shown(&item.name));
        let contents =
            decode::decode(&item.value.value, object.encoding).map_err(|e| fail(object, Some(part.clone()), e))?;
        let file = expanded_name(object, relative_name(object, &item.name))
            .map_err(|p| fail(object, Some(part.clone()), p))?;
        push(out, &file, object.mode, contents, &item.value.version, owner(object, Some(&part)));
    }
    Ok(())
}

/// An item's name relative to the objectPath, or to the single `name` filter value; else the
/// full name.
pub fn relative_name<'a>(object: &ObjectSpec, name: &'a str) -> &'a str {
    let relative = match &object.bulk {
        Some(Bulk::Path { path, .. }) => name.strip_prefix(path.as_str()),
        // Secrets Manager's name filter is a prefix match that ignores case.
        Some(Bulk::Filters(filters)) => match filters.as_slice() {
            [only] if only.key == "name" && only.values.len() == 1 => strip_prefix_ignoring_case(name, &only.values[0]),
            _ => None,
        },
        None => None,
    };
    relative.map(|r| r.trim_start_matches('/')).filter(|r| !r.is_empty()).unwrap_or(name)
}

fn strip_prefix_ignoring_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &name[prefix.len()..])
}

/// A key or item name shown in messages: quoted, escaped, cut.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(128).collect();
    if cut.len() < name.len() { format!("{cut:?}…") } else { format!("{cut:?}") }
}

/// The file an expanding object gives for `name`: path translation applied, under the
/// objectAlias, validated like every file name (and free of control characters).
fn expanded_name(object: &ObjectSpec, name: &str) -> Result<String, RenderProblem> {
    let base = params::file_name(name, object.translation);
    let file = if object.file_name.is_empty() { base } else { format!("{}/{base}", object.file_name) };
    let problem = if params::limits::has_control(&file) {
        Some("contains a control character".to_string())
    } else {
        params::validate_relative_path(&file).err()
    };
    match problem {
        Some(problem) => Err(RenderProblem::BadName { file: shown(&file).trim_matches('"').to_string(), problem }),
        None => Ok(file),
    }
}

fn push(out: &mut Rendered, name: &str, mode: u32, contents: SecretBytes, version: &str, owner: Owner) {
    out.files.push(OutFile { path: name.to_string(), mode, contents });
    out.versions.push(FileVersion { id: name.to_string(), version: version.to_string() });
    out.owners.push(owner);
}

/// Two files with one name, or a file another needs as its directory, are refused (as when
/// `objects` is parsed; here the names keys and listed items give are known).
fn check_collisions(out: &Rendered) -> Result<(), RenderError> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, file) in out.files.iter().enumerate() {
        if let Some(&first) = seen.get(file.path.as_str()) {
            return Err(collision(out, i, first, "also resolves to"));
        }
        seen.insert(&file.path, i);
    }
    for (path, &i) in &seen {
        let dirs = path.match_indices('/').map(|(at, _)| &path[..at]);
        if let Some(&dir_owner) = dirs.filter_map(|d| seen.get(d)).next() {
            return Err(collision(out, dir_owner, i, "needs as a directory"));
        }
    }
    Ok(())
}

fn collision(out: &Rendered, at: usize, other: usize, how: &'static str) -> RenderError {
    let Owner { index, object, part } = out.owners[at].clone();
    let file = out.files[at].path.clone();
    RenderError {
        index,
        object,
        part,
        problem: RenderProblem::Collision { file, other: out.owners[other].to_string(), how },
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{JmesEntry, ObjectType};
    use crate::secret::SecretBytes;

    fn object(name: &str, jmes: Vec<JmesEntry>) -> ObjectSpec {
        ObjectSpec {
            index: 0,
            name: name.into(),
            arn_region: None,
            object_type: ObjectType::SecretsManager,
            version_id: None,
            version_label: None,
            file_name: name.into(),
            mode: 0o644,
            jmes,
            failover: None,
            encoding: None,
            json_keys: false,
            bulk: None,
            max_objects_set: None,
            translation: Some('_'),
        }
    }

    fn entry(path: &str, file: &str, mode: u32) -> JmesEntry {
        JmesEntry { path: path.into(), file_name: file.into(), mode, encoding: None }
    }

    #[test]
    fn jmes_files_carry_the_parent_version_and_their_modes() {
        let rds = object("rds", vec![entry("username", "user", 0o644), entry("password", "pass", 0o400)]);
        let value = Fetched { value: SecretBytes::from(r#"{"username":"u","password":"p"}"#), version: "v-1".into() };
        let out = render(&[(&rds, Got::One(value))], 1000).expect("renders");
        let files: Vec<_> = out.files.iter().map(|f| (f.path.as_str(), f.mode, f.contents.expose())).collect();
        assert_eq!(files[1..], [("user", 0o644, &b"u"[..]), ("pass", 0o400, &b"p"[..])]);
        assert_eq!(files[0].0, "rds");
        assert!(out.versions.iter().all(|v| v.version == "v-1"));
        assert_eq!(out.versions.len(), 3);
    }

    #[test]
    fn a_missing_key_names_the_object_and_path() {
        let rds = object("rds", vec![entry("nope", "x", 0o644)]);
        let value = Fetched { value: SecretBytes::from(r#"{"a":"b"}"#), version: "1".into() };
        let err = render(&[(&rds, Got::One(value))], 1000).expect_err("missing key");
        assert_eq!(
            err.to_string(),
            r#"object "rds" (objects[0]): jmesPath "nope": no such key (the expression matched nothing)"#
        );
    }

    fn keys_object(alias: &str) -> ObjectSpec {
        ObjectSpec { json_keys: true, file_name: alias.into(), ..object("db/creds", vec![]) }
    }

    fn one(value: &str, version: &str) -> Got {
        Got::One(Fetched { value: SecretBytes::from(value), version: version.into() })
    }

    fn files(out: &Rendered) -> Vec<(&str, &str)> {
        out.files.iter().map(|f| (f.path.as_str(), std::str::from_utf8(f.contents.expose()).expect("utf-8"))).collect()
    }

    #[test]
    fn json_keys_give_one_file_per_key_with_non_strings_as_json() {
        let value = r#"{"user":"u","port":5432,"tls":{"on":true},"a/b":"x"}"#;
        let out = render(&[(&keys_object(""), one(value, "v1"))], 1000).expect("renders");
        assert_eq!(files(&out), [("a_b", "x"), ("port", "5432"), ("tls", r#"{"on":true}"#), ("user", "u")]);
        assert!(out.versions.iter().all(|v| v.version == "v1"));
        let out = render(&[(&keys_object("db"), one(value, "v1"))], 1000).expect("renders");
        assert_eq!(
            out.versions.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            ["db/a_b", "db/port", "db/tls", "db/user"]
        );
    }

    #[test]
    fn json_keys_combine_with_jmes_entries_and_collisions_are_refused() {
        let o = ObjectSpec { jmes: vec![entry("user", "login", 0o600)], ..keys_object("") };
        let out = render(&[(&o, one(r#"{"user":"u"}"#, "1"))], 1000).expect("renders");
        assert_eq!(files(&out), [("user", "u"), ("login", "u")]);
        let clash = ObjectSpec { jmes: vec![entry("user", "user", 0o600)], ..keys_object("") };
        let err = render(&[(&clash, one(r#"{"user":"u"}"#, "1"))], 1000).expect_err("collision");
        assert_eq!(
            err.to_string(),
            r#"object "db/creds" (objects[0]) jmesPath[0]: resolves to file "user", which objects[0] ("db/creds") key "user" also resolves to"#
        );
        let other = object("user", vec![]);
        let err = render(&[(&other, one("x", "1")), (&keys_object(""), one(r#"{"user":{"a":1}}"#, "1"))], 1000)
            .expect_err("collision with another object");
        assert!(err.to_string().contains(r#"which objects[0] ("user") also resolves to"#), "{err}");
        let dir = object("db", vec![]);
        let err =
            render(&[(&dir, one("x", "1")), (&keys_object("db"), one(r#"{"k":"v"}"#, "1"))], 1000).expect_err("dir");
        assert!(
            err.to_string()
                .ends_with(r#"resolves to file "db", which objects[0] ("db/creds") key "k" needs as a directory"#),
            "{err}"
        );
    }

    #[test]
    fn json_keys_are_bounded_validated_and_need_an_object() {
        let many = format!("{{{}}}", (0..101).map(|i| format!("\"k{i}\":1")).collect::<Vec<_>>().join(","));
        let err = render(&[(&keys_object(""), one(&many, "1"))], 1000).expect_err("too many");
        assert_eq!(
            err.to_string(),
            r#"object "db/creds" (objects[0]): gives 101 files, more than its maxObjects 100 (raise maxObjects, or narrow what it lists)"#
        );
        assert!(!err.is_json());
        let err = render(&[(&keys_object(""), one(r#"{"a":1,"b":2}"#, "1"))], 1).expect_err("ceiling");
        assert!(err.to_string().ends_with("give 2 files, more than --max-objects-per-mount 1"), "{err}");
        for (key, problem) in
            [("..data", "starts with \"..\""), ("", "is empty"), ("a\\u000ab", "contains a control character")]
        {
            let value = format!("{{\"{key}\":\"secret-value\"}}");
            let err = render(&[(&keys_object(""), one(&value, "1"))], 1000).expect_err(key);
            assert!(err.to_string().contains(problem), "{err}");
            assert!(!err.to_string().contains("secret-value"), "{err}");
        }
        let err = render(&[(&keys_object(""), one("[1,2]", "1"))], 1000).expect_err("not an object");
        assert_eq!(
            err.to_string(),
            r#"object "db/creds" (objects[0]): jsonKeys: the value is JSON but not an object (a list)"#
        );
        assert!(err.is_json());
    }

    #[test]
    fn object_encoding_applies_before_the_entries_and_entry_encoding_after_extraction() {
        use crate::params::Encoding;
        // {"k":"6869"} in base64; the entry's hex turns "6869" into "hi".
        let o = ObjectSpec {
            encoding: Some(Encoding::Base64),
            jmes: vec![JmesEntry { encoding: Some(Encoding::Hex), ..entry("k", "k", 0o644) }],
            ..object("enc", vec![])
        };
        let out = render(&[(&o, one("eyJrIjoiNjg2OSJ9", "1"))], 1000).expect("renders");
        assert_eq!(files(&out), [("enc", r#"{"k":"6869"}"#), ("k", "hi")]);
        let err = render(&[(&o, one("not base64!", "1"))], 1000).expect_err("bad base64");
        assert_eq!(
            err.to_string(),
            r#"object "enc" (objects[0]): the value is not valid base64 (a character outside the standard alphabet) as objectEncoding says"#
        );
        let err = render(&[(&o, one("eyJrIjoienoifQ", "1"))], 1000).expect_err("bad hex in the entry");
        assert!(
            err.to_string().starts_with(r#"object "enc" (objects[0]) jmesPath[0]: the value is not valid hex"#),
            "{err}"
        );
    }

    #[test]
    fn bulk_items_are_named_relative_to_the_path_or_the_single_name_filter() {
        use crate::params::SecretFilter;
        let path = ObjectSpec {
            bulk: Some(Bulk::Path { path: "/app/prod".into(), recursive: true }),
            ..object("/app/prod", vec![])
        };
        assert_eq!(relative_name(&path, "/app/prod/db/pass"), "db/pass");
        let filter =
            |filters: Vec<SecretFilter>| ObjectSpec { bulk: Some(Bulk::Filters(filters)), ..object("f", vec![]) };
        let name = |v: &str| SecretFilter { key: "name".into(), values: vec![v.into()] };
        assert_eq!(relative_name(&filter(vec![name("team/")]), "team/a"), "a");
        assert_eq!(relative_name(&filter(vec![name("team")]), "Team/sub/b"), "sub/b", "the name filter ignores case");
        assert_eq!(relative_name(&filter(vec![name("team/a")]), "team/a"), "team/a", "nothing left: the full name");
        let tag = SecretFilter { key: "tag-key".into(), values: vec!["owner".into()] };
        assert_eq!(relative_name(&filter(vec![name("team/"), tag]), "team/a"), "team/a", "more filters: the full name");
        let items = vec![Listed {
            name: "/app/prod/x/y".into(),
            value: Fetched { value: SecretBytes::from("v"), version: "3".into() },
        }];
        let aliased = ObjectSpec { file_name: "p".into(), ..path };
        let out = render(&[(&aliased, Got::Many(items))], 1000).expect("renders");
        assert_eq!((files(&out), out.versions[0].version.as_str()), (vec![("p/x_y", "v")], "3"));
    }
}
