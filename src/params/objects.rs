//! The `objects` parameter: a YAML list of object descriptors.
//!
//! Parsing happens in two steps. First the YAML becomes raw descriptors whose keys are matched
//! case-insensitively (as the Go provider's `sigs.k8s.io/yaml` → `encoding/json` path does) and
//! whose scalars keep their original text (`filePermission: 0600` unquoted stays `"0600"`,
//! `objectVersion: 2` becomes `"2"`). Then each descriptor is validated into an [`ObjectSpec`]
//! with errors naming the object (index and name) and the field.

use super::error::{ParamError, quoted};
use super::{Bulk, Encoding, FailoverObject, JmesEntry, ObjectSpec, ObjectType, SecretFilter, limits, memo, naming};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// What the rest of the request says that descriptors depend on.
pub(super) struct Context<'a> {
    /// `pathTranslation`: the character `/` becomes, or `None` when turned off.
    pub translation: Option<char>,
    /// The request's `permission`.
    pub default_mode: u32,
    /// Whether `failoverRegion` is set.
    pub has_failover_region: bool,
    /// The SecretProviderClass, for the "no objects" error.
    pub spc_name: Option<&'a str>,
    /// Texts parsed earlier, when the caller keeps a memo.
    pub memo: Option<&'a memo::ObjectsMemo>,
}

/// Parses and validates `objects` (empty when the parameter is absent), file names included;
/// a text already parsed in the same context comes from the memo, when there is one.
pub(super) fn parse_objects(yaml: &str, ctx: &Context) -> Result<Arc<[ObjectSpec]>, ParamError> {
    if yaml.len() > limits::MAX_OBJECTS_TEXT {
        let detail = format!("is {} bytes long (at most {})", yaml.len(), limits::MAX_OBJECTS_TEXT);
        return Err(ParamError::parameter("objects", detail));
    }
    let key = memo::Context {
        translation: ctx.translation,
        default_mode: ctx.default_mode,
        has_failover_region: ctx.has_failover_region,
    };
    if let Some(objects) = ctx.memo.and_then(|memo| memo.get(yaml, key)) {
        return Ok(objects);
    }
    let objects: Arc<[ObjectSpec]> = parse_fresh(yaml, ctx)?.into();
    if let Some(memo) = ctx.memo {
        memo.put(yaml, key, &objects);
    }
    Ok(objects)
}

fn parse_fresh(yaml: &str, ctx: &Context) -> Result<Vec<ObjectSpec>, ParamError> {
    let raw = parse_raw(yaml)?;
    if raw.is_empty() {
        let spc = ctx.spc_name.map(str::to_string);
        return Err(ParamError::NoObjects { spc });
    }
    let objects = (raw.into_iter().enumerate())
        .map(|(index, Raw(raw))| build_object(index, raw, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    naming::check_collisions(&objects)?;
    Ok(objects)
}

/// Step one: the YAML text into raw descriptors (a missing or null document is no objects).
fn parse_raw(yaml: &str) -> Result<Vec<Raw<RawObject>>, ParamError> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Option<Vec<Raw<RawObject>>> = serde_yaml_ng::from_str(yaml)
        .map_err(|err| ParamError::ObjectsSyntax { detail: syntax_detail(&err.to_string()) })?;
    Ok(list.unwrap_or_default())
}

/// serde_yaml_ng names the place as `.[1].objectName: …`; say `objects[1].objectName: …`.
fn syntax_detail(message: &str) -> String {
    match message.strip_prefix(".[") {
        Some(rest) => format!("objects[{rest}"),
        None => message.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw descriptors

/// A descriptor as written. Scalars are `Option<String>`: serde_yaml_ng hands a scalar's
/// original text to a string, and treats `~`, `null` and an empty value as `None`.
#[derive(Debug, Default)]
struct RawObject {
    name: Option<String>,
    object_type: Option<String>,
    alias: Option<String>,
    version: Option<String>,
    label: Option<String>,
    permission: Option<String>,
    jmes: Option<Vec<Raw<RawJmes>>>,
    failover: Option<Raw<RawFailover>>,
    encoding: Option<String>,
    json_keys: Option<String>,
    object_path: Option<String>,
    recursive: Option<String>,
    max_objects: Option<String>,
    filters: Option<Vec<Raw<RawFilter>>>,
}

#[derive(Debug, Default)]
struct RawJmes {
    path: Option<String>,
    alias: Option<String>,
    permission: Option<String>,
    encoding: Option<String>,
}

#[derive(Debug, Default)]
struct RawFilter {
    key: Option<String>,
    values: Option<Vec<Option<String>>>,
}

#[derive(Debug, Default)]
struct RawFailover {
    name: Option<String>,
    version: Option<String>,
    label: Option<String>,
}

/// Where the value of one key goes.
enum Slot<'a> {
    Text(&'a mut Option<String>),
    Jmes(&'a mut Option<Vec<Raw<RawJmes>>>),
    Failover(&'a mut Option<Raw<RawFailover>>),
    Filters(&'a mut Option<Vec<Raw<RawFilter>>>),
    Texts(&'a mut Option<Vec<Option<String>>>),
    Ignore,
}

/// A mapping read key by key; `key` is already lowercased.
trait RawMapping: Default {
    const EXPECTING: &'static str;
    fn slot(&mut self, key: &str) -> Slot<'_>;
}

impl RawMapping for RawObject {
    const EXPECTING: &'static str = "a mapping (an object descriptor with objectName, …)";
    fn slot(&mut self, key: &str) -> Slot<'_> {
        match key {
            "objectname" => Slot::Text(&mut self.name),
            "objecttype" => Slot::Text(&mut self.object_type),
            "objectalias" => Slot::Text(&mut self.alias),
            "objectversion" => Slot::Text(&mut self.version),
            "objectversionlabel" => Slot::Text(&mut self.label),
            "filepermission" => Slot::Text(&mut self.permission),
            "jmespath" => Slot::Jmes(&mut self.jmes),
            "failoverobject" => Slot::Failover(&mut self.failover),
            "objectencoding" => Slot::Text(&mut self.encoding),
            "jsonkeys" => Slot::Text(&mut self.json_keys),
            "objectpath" => Slot::Text(&mut self.object_path),
            "recursive" => Slot::Text(&mut self.recursive),
            "maxobjects" => Slot::Text(&mut self.max_objects),
            "filters" => Slot::Filters(&mut self.filters),
            _ => Slot::Ignore,
        }
    }
}

impl RawMapping for RawJmes {
    const EXPECTING: &'static str = "a mapping (a jmesPath entry with path and objectAlias)";
    fn slot(&mut self, key: &str) -> Slot<'_> {
        match key {
            "path" => Slot::Text(&mut self.path),
            "objectalias" => Slot::Text(&mut self.alias),
            "filepermission" => Slot::Text(&mut self.permission),
            "objectencoding" => Slot::Text(&mut self.encoding),
            _ => Slot::Ignore,
        }
    }
}

impl RawMapping for RawFilter {
    const EXPECTING: &'static str = "a mapping (a filter with key and values)";
    fn slot(&mut self, key: &str) -> Slot<'_> {
        match key {
            "key" => Slot::Text(&mut self.key),
            "values" => Slot::Texts(&mut self.values),
            _ => Slot::Ignore,
        }
    }
}

impl RawMapping for RawFailover {
    const EXPECTING: &'static str = "a mapping (a failoverObject with objectName)";
    fn slot(&mut self, key: &str) -> Slot<'_> {
        match key {
            "objectname" => Slot::Text(&mut self.name),
            "objectversion" => Slot::Text(&mut self.version),
            "objectversionlabel" => Slot::Text(&mut self.label),
            _ => Slot::Ignore,
        }
    }
}

/// A raw mapping, deserialized with case-insensitive keys (a later duplicate wins, as in Go).
#[derive(Debug, Default)]
struct Raw<T>(T);

impl<'de, T: RawMapping> Deserialize<'de> for Raw<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawVisitor(PhantomData))
    }
}

struct RawVisitor<T>(PhantomData<T>);

impl<'de, T: RawMapping> Visitor<'de> for RawVisitor<T> {
    type Value = Raw<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = T::default();
        while let Some(key) = map.next_key::<String>()? {
            match raw.slot(&key.to_lowercase()) {
                Slot::Text(slot) => *slot = map.next_value()?,
                Slot::Jmes(slot) => *slot = map.next_value()?,
                Slot::Failover(slot) => *slot = map.next_value()?,
                Slot::Filters(slot) => *slot = map.next_value()?,
                Slot::Texts(slot) => *slot = map.next_value()?,
                Slot::Ignore => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Raw(raw))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// The object errors are about.
struct At<'a> {
    index: usize,
    name: Option<&'a str>,
}

impl At<'_> {
    fn err(&self, field: &str, detail: impl Into<String>) -> ParamError {
        ParamError::Object {
            index: self.index,
            name: self.name.map(str::to_string),
            field: field.to_string(),
            detail: detail.into(),
        }
    }
}

/// An empty value counts as absent (as in Go, where the field stays "").
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn build_object(index: usize, mut raw: RawObject, ctx: &Context) -> Result<ObjectSpec, ParamError> {
    let bulk_name = bulk_name(index, &raw)?;
    let Some(name) = bulk_name.clone().or_else(|| present(raw.name.take())) else {
        return Err(At { index, name: None }.err("objectName", "is required"));
    };
    let at = At { index, name: Some(&name) };
    let bulk = build_bulk(&at, &mut raw)?;
    let (object_type, arn_region) = match &bulk {
        Some(bulk) => (bulk_type(&at, bulk, present(raw.object_type.take()))?, None),
        None => resolve_type(&at, &name, present(raw.object_type.take()))?,
    };
    if bulk.is_none() {
        check_name(&at, "objectName", &name, object_type)?;
    }
    let (version_id, version_label) = (present(raw.version), present(raw.label));
    check_versions(&at, "", object_type, &version_id, &version_label)?;
    let mode = mode_or(&at, "filePermission", present(raw.permission), ctx.default_mode)?;
    let encoding = encoding(&at, "objectEncoding", present(raw.encoding))?;
    let json_keys = flag(&at, "jsonKeys", present(raw.json_keys))?;
    let alias = present(raw.alias);
    let expands = json_keys || bulk.is_some();
    let max_objects_set = max_objects(&at, present(raw.max_objects), expands)?;
    let field = if alias.is_some() { "objectAlias" } else { "objectName" };
    let file_name = match (expands, alias.as_deref()) {
        (true, None) => String::new(),
        (_, base) => resolve_file(&at, field, base.unwrap_or(&name), ctx)?,
    };
    let entries = raw.jmes.unwrap_or_default().into_iter().enumerate();
    let jmes = (entries.map(|(j, Raw(entry))| build_jmes(&at, j, entry, mode, ctx))).collect::<Result<Vec<_>, _>>()?;
    if bulk.is_some() && raw.failover.is_some() {
        return Err(at.err("failoverObject", "is not allowed here: bulk descriptors have no failover"));
    }
    let failover = (raw.failover)
        .map(|Raw(f)| build_failover(&at, f, object_type, alias.is_some(), &version_id, ctx))
        .transpose()?;
    let spec = ObjectSpec {
        index,
        name: name.clone(),
        arn_region,
        object_type,
        version_id,
        version_label,
        file_name,
        mode,
        jmes,
        failover,
        encoding,
        json_keys,
        bulk,
        max_objects_set,
        translation: ctx.translation,
    };
    check_bulk_fields(&at, &spec)?;
    Ok(spec)
}

/// The name a bulk descriptor goes by in messages (its `objectPath`, or its `filters`), or
/// `None` for a single object. A bulk descriptor cannot also name one object.
fn bulk_name(index: usize, raw: &RawObject) -> Result<Option<String>, ParamError> {
    let path = present(raw.object_path.clone());
    let described = match (&path, &raw.filters) {
        (Some(_), Some(_)) => {
            let at = At { index, name: path.as_deref() };
            return Err(
                at.err("filters", "cannot be used together with objectPath (one bulk descriptor reads one store)")
            );
        }
        (Some(path), None) => path.clone(),
        (None, Some(filters)) => describe_filters(filters),
        (None, None) => return Ok(None),
    };
    if present(raw.name.clone()).is_some() {
        let at = At { index, name: Some(&described) };
        let detail = "cannot be used on a bulk descriptor (objectPath or filters lists what is mounted)";
        return Err(at.err("objectName", detail));
    }
    Ok(Some(described))
}

/// `filters[name=a,tag-key=b]`, bounded, for messages.
fn describe_filters(filters: &[Raw<RawFilter>]) -> String {
    let shown: Vec<String> = (filters.iter().take(limits::MAX_FILTERS))
        .map(|Raw(f)| {
            let key: String = f.key.as_deref().unwrap_or("?").chars().take(32).collect();
            let values = f.values.as_deref().unwrap_or_default();
            let first: String = values.iter().flatten().next().map_or("", String::as_str).chars().take(64).collect();
            format!("{key}={first}")
        })
        .collect();
    format!("filters[{}]", shown.join(","))
}

/// The bulk part of a descriptor, validated.
fn build_bulk(at: &At, raw: &mut RawObject) -> Result<Option<Bulk>, ParamError> {
    let recursive = flag(at, "recursive", present(raw.recursive.take()))?;
    if let Some(path) = present(raw.object_path.take()) {
        check_object_path(at, &path)?;
        return Ok(Some(Bulk::Path { path, recursive }));
    }
    if recursive {
        return Err(at.err("recursive", "is only allowed with objectPath"));
    }
    let Some(filters) = raw.filters.take() else { return Ok(None) };
    if filters.is_empty() || filters.len() > limits::MAX_FILTERS {
        let detail = format!("has {} entries (1 to {} allowed)", filters.len(), limits::MAX_FILTERS);
        return Err(at.err("filters", detail));
    }
    let built = filters.into_iter().enumerate().map(|(i, Raw(f))| build_filter(at, i, f));
    Ok(Some(Bulk::Filters(built.collect::<Result<_, _>>()?)))
}

/// A Parameter Store path: `/`-rooted, of parameter-name characters, within AWS's length.
fn check_object_path(at: &At, path: &str) -> Result<(), ParamError> {
    if !path.starts_with('/') {
        return Err(at.err("objectPath", format!("{} must start with \"/\"", quoted(path))));
    }
    if path.contains(':') {
        return Err(at.err("objectPath", format!("{} is a path, not an ARN or a selector", quoted(path))));
    }
    check_name(at, "objectPath", path, ObjectType::Parameter)
}

fn build_filter(at: &At, i: usize, raw: RawFilter) -> Result<SecretFilter, ParamError> {
    let field = |name: &str| format!("filters[{i}].{name}");
    let key = present(raw.key).ok_or_else(|| at.err(&field("key"), "is required"))?;
    if !limits::FILTER_KEYS.contains(&key.as_str()) {
        let detail = format!("{} is not a filter key (use one of {})", quoted(&key), limits::FILTER_KEYS.join(", "));
        return Err(at.err(&field("key"), detail));
    }
    let values: Vec<String> = raw.values.unwrap_or_default().into_iter().flatten().filter(|v| !v.is_empty()).collect();
    if values.is_empty() || values.len() > limits::MAX_FILTER_VALUES {
        let detail = format!("has {} non-empty values (1 to {} allowed)", values.len(), limits::MAX_FILTER_VALUES);
        return Err(at.err(&field("values"), detail));
    }
    for value in &values {
        check_text(at, &field("values"), Some(value), limits::MAX_FILTER_VALUE)?;
    }
    Ok(SecretFilter { key, values })
}

/// The store of a bulk descriptor: `objectPath` lists Parameter Store, `filters` Secrets
/// Manager; an `objectType`, when given, must agree.
fn bulk_type(at: &At, bulk: &Bulk, declared: Option<String>) -> Result<ObjectType, ParamError> {
    let (implied, field) = match bulk {
        Bulk::Path { .. } => (ObjectType::Parameter, "objectPath"),
        Bulk::Filters(_) => (ObjectType::SecretsManager, "filters"),
    };
    match declared {
        Some(text) if parse_object_type(&text) != Some(implied) => Err(at.err(
            "objectType",
            format!("{} does not fit {field}, which lists {}", quoted(&text), quoted(implied.as_str())),
        )),
        _ => Ok(implied),
    }
}

/// What a bulk descriptor cannot have, and what only expanding descriptors can.
fn check_bulk_fields(at: &At, spec: &ObjectSpec) -> Result<(), ParamError> {
    if spec.bulk.is_none() {
        return Ok(());
    }
    let refused = [
        ("jsonKeys", spec.json_keys, "applies to one secret, not to a bulk descriptor"),
        ("jmesPath", !spec.jmes.is_empty(), "applies to one secret, not to a bulk descriptor"),
        ("objectVersion", spec.version_id.is_some(), "bulk descriptors read each item's current version"),
        ("objectVersionLabel", spec.version_label.is_some(), "bulk descriptors read each item's current version"),
    ];
    match refused.into_iter().find(|(_, set, _)| *set) {
        Some((field, _, why)) => Err(at.err(field, format!("is not allowed here: {why}"))),
        None => Ok(()),
    }
}

/// `objectEncoding`: `base64`, `hex` or `utf-8` (any case).
fn encoding(at: &At, field: &str, text: Option<String>) -> Result<Option<Encoding>, ParamError> {
    let Some(text) = text else { return Ok(None) };
    match text.to_ascii_lowercase().as_str() {
        "base64" => Ok(Some(Encoding::Base64)),
        "hex" => Ok(Some(Encoding::Hex)),
        "utf-8" | "utf8" => Ok(Some(Encoding::Utf8)),
        _ => Err(at.err(field, format!("{} is not valid (use base64, hex or utf-8)", quoted(&text)))),
    }
}

/// A boolean field: `true` or `false` (any case); absent is false.
fn flag(at: &At, field: &str, text: Option<String>) -> Result<bool, ParamError> {
    match text.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(at.err(field, format!("{} is not true or false", quoted(text.as_deref().unwrap_or_default())))),
    }
}

/// `maxObjects`: 1 to [`limits::MAX_OBJECTS_CEILING`] (the mount then holds it to
/// `--max-objects-per-mount`), only where an object gives many files.
fn max_objects(at: &At, text: Option<String>, expands: bool) -> Result<Option<usize>, ParamError> {
    let Some(text) = text else { return Ok(None) };
    if !expands {
        return Err(at.err("maxObjects", "only applies with jsonKeys, objectPath or filters"));
    }
    let ceiling = limits::MAX_OBJECTS_CEILING;
    match text.parse::<usize>() {
        Ok(n) if (1..=ceiling).contains(&n) => Ok(Some(n)),
        _ => Err(at.err("maxObjects", format!("{} is not a whole number from 1 to {ceiling}", quoted(&text)))),
    }
}

/// `objectType`, any case. `ssm` is the ARN service name, not an objectType (as in Go).
fn parse_object_type(text: &str) -> Option<ObjectType> {
    match text.to_ascii_lowercase().as_str() {
        "secretsmanager" => Some(ObjectType::SecretsManager),
        "ssmparameter" => Some(ObjectType::Parameter),
        _ => None,
    }
}

/// The type of an object (from `objectType` and/or its ARN) and its ARN's region.
fn resolve_type(at: &At, name: &str, declared: Option<String>) -> Result<(ObjectType, Option<String>), ParamError> {
    let declared = match declared {
        Some(text) => Some(parse_object_type(&text).ok_or_else(|| {
            let hint = "is not valid (use secretsmanager or ssmparameter)";
            at.err("objectType", format!("{} {hint}", quoted(&text)))
        })?),
        None => None,
    };
    if !name.starts_with("arn:") {
        let missing = "is required unless objectName is an ARN (use secretsmanager or ssmparameter)";
        return declared.map(|t| (t, None)).ok_or_else(|| at.err("objectType", missing));
    }
    let arn = parse_arn(name).map_err(|problem| at.err("objectName", problem))?;
    match declared {
        Some(declared) if declared != arn.object_type => Err(at.err(
            "objectType",
            format!("{} does not match the ARN's service {}", quoted(declared.as_str()), quoted(arn.service)),
        )),
        _ => Ok((arn.object_type, Some(arn.region.to_string()))),
    }
}

/// The parts of an ARN that matter here.
#[derive(Debug, PartialEq)]
struct Arn<'a> {
    service: &'a str,
    object_type: ObjectType,
    region: &'a str,
}

/// Parses `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`; the error completes a sentence
/// about the objectName.
fn parse_arn(name: &str) -> Result<Arn<'_>, String> {
    let form = "is not a valid ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)";
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    let [_, _, service, region, _, resource] = parts[..] else {
        return Err(form.to_string());
    };
    if service.is_empty() || region.is_empty() || resource.is_empty() {
        return Err(form.to_string());
    }
    if !limits::is_valid_region(region) {
        return Err(format!("has an invalid region {} in its ARN", quoted(region)));
    }
    let object_type = match service {
        "secretsmanager" => ObjectType::SecretsManager,
        "ssm" => ObjectType::Parameter,
        _ => {
            let problem = "is not supported (use a secretsmanager or ssm ARN)";
            return Err(format!("has ARN service {} which {problem}", quoted(service)));
        }
    };
    Ok(Arn { service, object_type, region })
}

/// A name AWS could hold for `object_type`, within AWS's length limit.
fn check_name(at: &At, field: &str, name: &str, object_type: ObjectType) -> Result<(), ParamError> {
    limits::name_problem(name, object_type).map_or(Ok(()), |problem| Err(at.err(field, problem)))
}

/// A free-text field within `max` bytes and without control characters.
fn check_text(at: &At, field: &str, text: Option<&str>, max: usize) -> Result<(), ParamError> {
    match text.and_then(|text| limits::text_problem(text, max)) {
        Some(problem) => Err(at.err(field, problem)),
        None => Ok(()),
    }
}

/// Parameter Store takes a version or a label, not both. `prefix` is `""` or `failoverObject.`.
fn check_versions(
    at: &At,
    prefix: &str,
    object_type: ObjectType,
    version: &Option<String>,
    label: &Option<String>,
) -> Result<(), ParamError> {
    check_text(at, &format!("{prefix}objectVersion"), version.as_deref(), limits::MAX_VERSION)?;
    check_text(at, &format!("{prefix}objectVersionLabel"), label.as_deref(), limits::MAX_LABEL)?;
    if object_type == ObjectType::Parameter && version.is_some() && label.is_some() {
        let detail = "cannot be used together with objectVersion for an ssmparameter";
        return Err(at.err(&format!("{prefix}objectVersionLabel"), detail));
    }
    Ok(())
}

/// Parses a `filePermission`: exactly four octal digits, e.g. `0600`. The special bits
/// (setuid, setgid, sticky) are dropped, as Go's `os.WriteFile` does with them.
fn parse_file_permission(text: &str) -> Option<u32> {
    let octal = text.len() == 4 && text.bytes().all(|b| matches!(b, b'0'..=b'7'));
    octal.then(|| u32::from_str_radix(text, 8).ok()).flatten().map(|mode| mode & 0o777)
}

/// The mode of a file: its `filePermission` if set, else `default`.
fn mode_or(at: &At, field: &str, text: Option<String>, default: u32) -> Result<u32, ParamError> {
    let Some(text) = text else {
        return Ok(default);
    };
    parse_file_permission(&text).ok_or_else(|| {
        let hint = "is not 4 octal digits (quote it in YAML, e.g. \"0600\")";
        at.err(field, format!("{} {hint}", quoted(&text)))
    })
}

/// The validated file name for `base`.
fn resolve_file(at: &At, field: &str, base: &str, ctx: &Context) -> Result<String, ParamError> {
    let file = naming::file_name(base, ctx.translation);
    naming::validate_relative_path(&file)
        .map_err(|problem| at.err(field, format!("gives file name {} which {problem}", quoted(&file))))?;
    Ok(file)
}

fn build_jmes(at: &At, j: usize, raw: RawJmes, parent_mode: u32, ctx: &Context) -> Result<JmesEntry, ParamError> {
    let field = |name: &str| format!("jmesPath[{j}].{name}");
    let path = present(raw.path).ok_or_else(|| at.err(&field("path"), "is required"))?;
    crate::jmes::check(&path).map_err(|e| at.err(&field("path"), e.to_string()))?;
    let alias = present(raw.alias).ok_or_else(|| at.err(&field("objectAlias"), "is required"))?;
    let mode = mode_or(at, &field("filePermission"), present(raw.permission), parent_mode)?;
    let file_name = resolve_file(at, &field("objectAlias"), &alias, ctx)?;
    let encoding = encoding(at, &field("objectEncoding"), present(raw.encoding))?;
    Ok(JmesEntry { path, file_name, mode, encoding })
}

fn build_failover(
    at: &At,
    raw: RawFailover,
    object_type: ObjectType,
    has_alias: bool,
    parent_version: &Option<String>,
    ctx: &Context,
) -> Result<FailoverObject, ParamError> {
    if !ctx.has_failover_region {
        let detail = "is only allowed when the failoverRegion parameter is set";
        return Err(at.err("failoverObject", detail));
    }
    if !has_alias {
        return Err(at.err("failoverObject", "requires the object to have an objectAlias"));
    }
    let name = (present(raw.name)).ok_or_else(|| at.err("failoverObject.objectName", "is required"))?;
    check_failover_arn(at, &name, object_type)?;
    check_name(at, "failoverObject.objectName", &name, object_type)?;
    let (version_id, version_label) = (present(raw.version), present(raw.label));
    check_versions(at, "failoverObject.", object_type, &version_id, &version_label)?;
    if version_id != *parent_version {
        let shown = |v: &Option<String>| v.as_deref().map_or("(none)".to_string(), quoted);
        let detail = format!("{} must equal the object's objectVersion {}", shown(&version_id), shown(parent_version));
        return Err(at.err("failoverObject.objectVersion", detail));
    }
    Ok(FailoverObject { name, version_id, version_label })
}

/// A failover ARN must be valid and of the object's type.
fn check_failover_arn(at: &At, name: &str, object_type: ObjectType) -> Result<(), ParamError> {
    if !name.starts_with("arn:") {
        return Ok(());
    }
    let field = "failoverObject.objectName";
    let arn = parse_arn(name).map_err(|problem| at.err(field, problem))?;
    if arn.object_type != object_type {
        let detail = format!(
            "has ARN service {} which does not match objectType {}",
            quoted(arn.service),
            quoted(object_type.as_str())
        );
        return Err(at.err(field, detail));
    }
    Ok(())
}

impl FailoverObject {
    /// The region of an ARN `name` (checked against `failoverRegion` once it is known).
    pub fn arn_region(&self) -> Option<&str> {
        (self.name.starts_with("arn:")).then(|| parse_arn(&self.name).ok().map(|arn| arn.region)).flatten()
    }
}

#[cfg(test)]
#[path = "tests/objects.rs"]
mod tests;
