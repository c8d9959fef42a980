//! Turns fetched values into the files and object versions of one mount: one file per object,
//! one more per jmesPath entry, each carrying its object's version.

use crate::jmes::{self, JmesError};
use crate::params::ObjectSpec;
use crate::read::Fetched;
use crate::write::OutFile;

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
}

/// A jmesPath entry that could not be extracted, naming its object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("object {object:?} (objects[{index}]): {source}")]
pub struct RenderError {
    pub index: usize,
    pub object: String,
    pub source: JmesError,
}

/// Renders each object with the value read for it.
pub fn render(values: &[(&ObjectSpec, Fetched)]) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    for (object, value) in values {
        render_object(object, value, &mut out)?;
    }
    Ok(out)
}

fn render_object(object: &ObjectSpec, value: &Fetched, out: &mut Rendered) -> Result<(), RenderError> {
    push(out, &object.file_name, object.mode, value.value.clone(), &value.version);
    for entry in &object.jmes {
        let extracted = jmes::extract(value.value.expose(), &entry.path).map_err(|source| RenderError {
            index: object.index,
            object: object.name.clone(),
            source,
        })?;
        push(out, &entry.file_name, entry.mode, extracted, &value.version);
    }
    Ok(())
}

fn push(out: &mut Rendered, name: &str, mode: u32, contents: crate::secret::SecretBytes, version: &str) {
    out.files.push(OutFile { path: name.to_string(), mode, contents });
    out.versions.push(FileVersion { id: name.to_string(), version: version.to_string() });
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
        }
    }

    fn entry(path: &str, file: &str, mode: u32) -> JmesEntry {
        JmesEntry { path: path.into(), file_name: file.into(), mode }
    }

    #[test]
    fn jmes_files_carry_the_parent_version_and_their_modes() {
        let rds = object("rds", vec![entry("username", "user", 0o644), entry("password", "pass", 0o400)]);
        let value = Fetched { value: SecretBytes::from(r#"{"username":"u","password":"p"}"#), version: "v-1".into() };
        let out = render(&[(&rds, value)]).expect("renders");
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
        let err = render(&[(&rds, value)]).expect_err("missing key");
        assert_eq!(
            err.to_string(),
            r#"object "rds" (objects[0]): jmesPath "nope": no such key (the expression matched nothing)"#
        );
    }
}
