//! The bodies of the fuzz targets (`fuzz_targets/<name>.rs` calls `<name>(data)`), kept apart
//! so that `cargo test` runs the same code over the seed corpora and every saved regression
//! (`tests/integration/fuzz_regressions.rs` includes this file). Each target feeds one entry point of
//! `csi_provider_aws` and, beyond "no panic, no abort, no hang", asserts properties that code
//! documents. Input formats are in `fuzz/README.md`.

use csi_provider_aws::authority::FrameRewriter;
use csi_provider_aws::identity::parse_agent_answer;
use csi_provider_aws::jmes;
use csi_provider_aws::params::{MountParams, parse_mount_request, validate_relative_path};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// A target's body: one input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/` file and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("attributes", attributes),
    ("objects", objects),
    ("jmespath", jmespath),
    ("tokens", tokens),
    ("agent_answer", agent_answer),
    ("authority", authority),
];

const TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
const OBJECTS_YAML: &str = "- objectName: db/creds\n  objectType: secretsmanager\n";

/// A token, or a secret string, shorter than this is not looked for in error text: short strings
/// turn up in the fixed wording by chance ("expression" is 10 octets).
const MIN_SECRET_LEN: usize = 12;

// ---------------------------------------------------------------------------------------------
// Parameters

/// `attributes\0secrets\0permission`, each part as text (`secrets` defaults to `null` and
/// `permission` to `420`, as the driver sends them).
pub fn attributes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let attributes = parts.next().unwrap_or_default();
    let secrets = parts.next().unwrap_or("null");
    let permission = parts.next().unwrap_or("420");
    if let Ok(params) = parse_mount_request(attributes, secrets, permission) {
        check_params(&params);
    }
}

/// The `objects` YAML inside otherwise valid attributes. A NUL byte ends the YAML; the octet
/// after it picks `pathTranslation` (low three bits) and whether `failoverRegion` is set (bit 3).
pub fn objects(data: &[u8]) {
    let (yaml, option) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], data.get(at + 1).copied().unwrap_or(0)),
        None => (data, 0),
    };
    let mut attributes = pod_attributes();
    attributes["objects"] = json!(String::from_utf8_lossy(yaml));
    attributes["region"] = json!("us-west-2");
    let translations = [None, Some("False"), Some("_"), Some("-"), Some("/"), Some("."), Some("é"), Some("false")];
    if let Some(translation) = translations[usize::from(option & 7)] {
        attributes["pathTranslation"] = json!(translation);
    }
    if option & 8 != 0 {
        attributes["failoverRegion"] = json!("us-east-1");
    }
    if let Ok(params) = parse_mount_request(&attributes.to_string(), "null", "420") {
        check_params(&params);
    }
}

/// The service-account tokens JSON as text: once as the attribute, once inside `secrets` (where
/// the driver puts it when the attribute is absent). Token values never appear in an error or in
/// the parsed parameters' `Debug`; a parsed token is the value that was sent.
pub fn tokens(data: &[u8]) {
    // What a request without tokens shows: a "token" that is part of it proves nothing.
    static BASELINE: LazyLock<String> =
        LazyLock::new(|| format!("{:?}", parse_mount_request(&pod_attributes().to_string(), "null", "420")));
    let text = String::from_utf8_lossy(data);
    let secrets: Vec<String> = tokens_in(&text).into_iter().filter(|t| !BASELINE.contains(t.as_str())).collect();
    let mut in_attribute = pod_attributes();
    in_attribute[TOKENS] = json!(text);
    let in_secrets = json!({ TOKENS: text }).to_string();
    for (attributes, secrets_json) in [(in_attribute.to_string(), "null"), (pod_attributes().to_string(), &in_secrets)]
    {
        let shown = match parse_mount_request(&attributes, secrets_json, "420") {
            Ok(params) => {
                check_params(&params);
                check_tokens(&params, &text);
                format!("{params:?}")
            }
            Err(err) => format!("{err} {err:?}"),
        };
        for secret in &secrets {
            assert!(!shown.contains(secret.as_str()), "a token value is shown: {shown}");
        }
    }
}

/// The attributes kubelet adds for a pod, and one object.
fn pod_attributes() -> Value {
    json!({
        "objects": OBJECTS_YAML,
        "secretProviderClass": "spc",
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "shop",
        "csi.storage.k8s.io/pod.uid": "0b7f-uid",
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "csi.storage.k8s.io/ephemeral": "true",
    })
}

/// Properties of every accepted request: file names are relative, clean and distinct, none is
/// another's directory, modes are permission bits only, regions are host-name safe.
fn check_params(params: &MountParams) {
    let mut files = BTreeSet::new();
    for object in params.objects.iter() {
        // An object that expands (jsonKeys, objectPath, filters) writes no file of its own: its
        // file_name is the directory prefix of the files it gives (empty without an objectAlias),
        // which are named and checked only once read.
        if object.expands() && !object.file_name.is_empty() {
            assert_eq!(validate_relative_path(&object.file_name), Ok(()), "prefix {:?}", object.file_name);
        }
        let own = (!object.expands()).then_some((&object.file_name, object.mode)).into_iter();
        for (file, mode) in own.chain(object.jmes.iter().map(|entry| (&entry.file_name, entry.mode))) {
            assert_eq!(validate_relative_path(file), Ok(()), "accepted file name {file:?}");
            assert!(mode <= 0o777, "mode {mode:o} for {file:?}");
            assert!(files.insert(file.as_str()), "two objects write {file:?}");
        }
    }
    for file in &files {
        let dirs = file.match_indices('/').map(|(at, _)| &file[..at]);
        for dir in dirs {
            assert!(!files.contains(dir), "{dir:?} is both a file and the directory of {file:?}");
        }
    }
    assert!(params.default_mode <= 0o777);
    for region in [&params.region, &params.failover_region].into_iter().flatten() {
        let host_safe = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        assert!(!region.is_empty() && region.bytes().all(host_safe), "region {region:?}");
    }
}

/// The tokens `text` (a JSON object of `{"token": …}` entries) carries that are long enough to
/// look for, and appear nowhere else in it (not as a key, not in another value).
fn tokens_in(text: &str) -> Vec<String> {
    let Ok(document @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let entries = document.as_object().into_iter().flat_map(|map| map.values());
    let tokens: Vec<&str> =
        entries.filter_map(|entry| entry.get("token")?.as_str()).filter(|t| t.len() >= MIN_SECRET_LEN).collect();
    let mut others = Vec::new();
    strings(&document, &mut others);
    tokens
        .into_iter()
        .filter(|token| others.iter().filter(|s| s.contains(token)).count() == 1)
        .map(str::to_string)
        .collect()
}

/// Every string of `value`, keys included.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k);
            strings(v, out);
        }),
        _ => {}
    }
}

/// A parsed token is the one sent for its audience.
fn check_tokens(params: &MountParams, text: &str) {
    if params.tokens.is_empty() {
        return;
    }
    let sent: Value = serde_json::from_str(text).expect("tokens were parsed, so the text is JSON");
    for (audience, token) in &params.tokens {
        assert_eq!(sent[audience]["token"].as_str(), Some(token.token.expose()), "token for {audience:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// jmesPath

/// A JSON secret most test expressions select from.
const RDS: &[u8] =
    br#"{"username":"admin","password":"correct horse battery","port":5432,"nested":{"k":"v"},"list":["a","b"]}"#;

/// `expression\0document`; without a NUL the whole input is the expression, evaluated against a
/// fixed RDS-like secret. An error names the expression, never a value of the document.
pub fn jmespath(data: &[u8]) {
    let (path, document) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, RDS),
    };
    let path = String::from_utf8_lossy(path);
    let Err(err) = jmes::extract(document, &path) else {
        return;
    };
    // The expression is named in the error (as `{path:?}`); what is left must not hold a value.
    let shown = format!("{err} {err:?}").replace(&format!("{path:?}"), "");
    let Ok(value) = serde_json::from_slice::<Value>(document) else {
        return;
    };
    let mut values = Vec::new();
    strings(&value, &mut values);
    for secret in values.into_iter().filter(|s| s.len() >= MIN_SECRET_LEN && !path.contains(s)) {
        assert!(!shown.contains(secret), "a value of the document is shown: {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pod Identity agent

/// `NNN body`: a three-digit status (default 200 when the input does not start with one), one
/// optional space or newline, then the body. Only a 2xx answer holding JSON with string
/// `AccessKeyId` and `SecretAccessKey` is accepted.
pub fn agent_answer(data: &[u8]) {
    let (status, body) = match data {
        [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let status = [a, b, c].iter().fold(0u16, |n, &&d| n * 10 + u16::from(d - b'0'));
            (status, rest.strip_prefix(b" ").or_else(|| rest.strip_prefix(b"\n")).unwrap_or(rest))
        }
        _ => (200, data),
    };
    if !parse_agent_answer(status, body) {
        return;
    }
    assert!((200..300).contains(&status), "HTTP {status} accepted");
    // serde reads a struct from a JSON object or, positionally, from an array.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    assert!(matches!(first, Some(b'{' | b'[')), "accepted an answer that is neither object nor array");
    // Fields the provider does not read are skipped unchecked (serde ignores them, invalid
    // UTF-8 included), so only an answer that is JSON throughout can be checked further.
    if let Ok(answer) = serde_json::from_slice::<Value>(body) {
        for (at, key) in ["AccessKeyId", "SecretAccessKey"].into_iter().enumerate() {
            let value = if answer.is_array() { &answer[at] } else { &answer[key] };
            assert!(value.is_string(), "accepted without a string {key}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 :authority rewriter

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// At most this many output octets per input octet, see [`authority`].
const MAX_GROWTH: usize = 4_200;

/// The first octet picks how the rest, a client's byte stream, is chunked. Checks:
///
/// - the output does not depend on the chunking (`FrameRewriter` documents it), whether fed
///   chunk by chunk or read the way `AuthorityFix` reads (`verbatim_len` octets copied by the
///   caller and reported with `consume_verbatim`, at most 4096 octets parsed per read);
/// - rewriting the output again changes nothing (a rewritten connection starts with a block
///   whose `:authority` is usable, so it passes through);
/// - a stream that does not start with the client preface passes through unchanged;
/// - output growth is bounded: one input octet (an indexed field) can name a dynamic-table
///   entry of up to 4096 − 32 octets, re-encoded as a literal (≤ 11 octets of overhead), and a
///   Huffman string decodes to at most 8/5 of its size; frame headers add 9 octets per 16 KiB.
pub fn authority(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = rewrite(stream, &mut Chunks::new(u64::MAX, usize::MAX));
    let chunked = rewrite(stream, &mut Chunks::new(u64::from(seed), chunk_limit(seed)));
    assert!(whole == chunked, "chunking changed the output (chunk seed {seed})");
    let read = read_like_authority_fix(stream, &mut Chunks::new(u64::from(seed), chunk_limit(seed)));
    assert!(whole == read, "reading as AuthorityFix does changed the output (chunk seed {seed})");
    let again = rewrite(&whole, &mut Chunks::new(u64::MAX, usize::MAX));
    assert!(again == whole, "rewriting the output changed it");
    let preface_len = PREFACE.len().min(stream.len());
    if stream[..preface_len] != PREFACE[..preface_len] {
        assert!(whole == stream, "a stream without the preface was changed");
    }
    let bound = stream.len() * MAX_GROWTH + 64;
    assert!(whole.len() <= bound, "{} octets out of {} in", whole.len(), stream.len());
}

/// Chunk sizes from a small xorshift generator: 1 to `limit` octets.
struct Chunks {
    state: u64,
    limit: usize,
}

impl Chunks {
    fn new(seed: u64, limit: usize) -> Self {
        Self { state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, limit }
    }

    fn next(&mut self) -> usize {
        if self.limit == usize::MAX {
            return usize::MAX;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        1 + (self.state % self.limit as u64) as usize
    }
}

fn chunk_limit(seed: u8) -> usize {
    [1, 2, 9, 10, 100, 4096, 20_000, 100_000][usize::from(seed & 7)]
}

fn rewrite(mut input: &[u8], chunks: &mut Chunks) -> Vec<u8> {
    let (mut rewriter, mut out) = (FrameRewriter::new(), Vec::new());
    while !input.is_empty() {
        let (chunk, rest) = input.split_at(chunks.next().min(input.len()));
        rewriter.feed(chunk, &mut out);
        input = rest;
    }
    rewriter.finish(&mut out);
    out
}

/// What `AuthorityFix::poll_read` does with a socket that returns `chunks`-sized reads.
fn read_like_authority_fix(mut input: &[u8], chunks: &mut Chunks) -> Vec<u8> {
    let (mut rewriter, mut out) = (FrameRewriter::new(), Vec::new());
    while !input.is_empty() {
        let verbatim = rewriter.verbatim_len();
        let n = chunks.next().min(input.len());
        let n = if verbatim > 0 {
            let n = n.min(verbatim);
            out.extend_from_slice(&input[..n]);
            rewriter.consume_verbatim(n);
            n
        } else {
            let n = n.min(4096);
            rewriter.feed(&input[..n], &mut out);
            n
        };
        input = &input[n..];
    }
    rewriter.finish(&mut out);
    out
}
