//! `BatchGetSecretValue`: up to 20 current secrets per call. A role that may not batch (policies
//! written for the Go provider grant only `GetSecretValue`) is remembered and read with single
//! calls; a throttled batch API (its quota is 100/s account-wide) is left alone for a while.

use super::audit::{AuditScope, send_audited};
use super::{FetchError, Fetched, ReadItem, errors};
use crate::clock::SharedClock;
use crate::codes::ErrorCode;
use crate::secret::SecretBytes;
use aws_sdk_secretsmanager as sm;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most secrets one `BatchGetSecretValue` may name.
pub const BATCH: usize = 20;
/// How long the batch API is avoided after it was throttled.
const THROTTLE_COOLDOWN: Duration = Duration::from_secs(60);

/// What the provider learned about batching.
#[derive(Debug)]
pub struct BatchPolicy {
    denied: Mutex<HashSet<String>>,
    throttled_at: Mutex<Option<Instant>>,
    clock: SharedClock,
}

impl BatchPolicy {
    /// Nothing learned yet; time read from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        BatchPolicy { denied: Mutex::default(), throttled_at: Mutex::default(), clock }
    }

    /// Whether `identity` may try the batch API now.
    pub fn allowed(&self, identity: &str) -> bool {
        let denied = crate::sync::lock(&self.denied).contains(identity);
        let now = self.clock.now();
        let throttled = crate::sync::lock(&self.throttled_at)
            .is_some_and(|at| now.saturating_duration_since(at) < THROTTLE_COOLDOWN);
        !denied && !throttled
    }

    /// Learns from a failed batch call; returns whether to fall back to single reads.
    pub fn learn(&self, identity: &str, failure: &errors::Failure) -> bool {
        match failure.code {
            ErrorCode::AccessDenied => {
                tracing::info!(
                    identity,
                    "BatchGetSecretValue is not allowed for this identity; using GetSecretValue from now on"
                );
                crate::sync::lock(&self.denied).insert(identity.to_string());
                true
            }
            ErrorCode::Throttled => {
                tracing::warn!("BatchGetSecretValue is throttled; using GetSecretValue for a while");
                *crate::sync::lock(&self.throttled_at) = Some(self.clock.now());
                true
            }
            _ => false,
        }
    }
}

/// Whether an item asks for the current version (the only reads a batch can serve).
pub fn is_current(item: &ReadItem) -> bool {
    item.version_id.is_none() && item.version_label.as_deref().is_none_or(|l| l == "AWSCURRENT")
}

/// One batch's answers, keyed by the id sent.
pub type BatchAnswers = BTreeMap<String, Result<Fetched, errors::Failure>>;

/// Reads up to [`BATCH`] secret ids in one call (following `NextToken` if AWS pages).
pub async fn read_batch(
    client: &sm::Client,
    ids: &[String],
    scope: AuditScope<'_>,
) -> Result<BatchAnswers, errors::Failure> {
    let mut answers = BatchAnswers::new();
    let mut next: Option<String> = None;
    // Every page answers at least one id, so more pages than ids means AWS (or something
    // posing as it) keeps paging without progress: stop there.
    for _ in 0..=ids.len() {
        let request =
            client.batch_get_secret_value().set_secret_id_list(Some(ids.to_vec())).set_next_token(next.clone());
        let output = send_audited!(request, scope.record(ids)).map_err(|e| errors::classify(&e))?;
        next = output.next_token.clone().filter(|t| !t.is_empty());
        collect(ids, output, &mut answers);
        if next.is_none() || answers.len() == ids.len() {
            return Ok(answers);
        }
    }
    Ok(answers)
}

fn collect(
    ids: &[String],
    output: sm::operation::batch_get_secret_value::BatchGetSecretValueOutput,
    answers: &mut BatchAnswers,
) {
    let entries = output.secret_values.unwrap_or_default();
    for id in ids {
        // The same secret may come back once per id that names it: only distinct ARNs compete.
        let first = entries.iter().find(|entry| names_entry(id, entry));
        let other = first.and_then(|first| entries.iter().find(|e| names_entry(id, e) && e.arn != first.arn));
        match (first, other) {
            (Some(entry), None) => _ = answers.insert(id.clone(), entry_value(entry.clone())),
            (Some(_), Some(_)) => _ = answers.insert(id.clone(), Err(ambiguous())),
            (None, _) => {}
        }
    }
    for error in output.errors.unwrap_or_default() {
        let Some(id) = error.secret_id.clone() else { continue };
        let code = error.error_code.clone();
        let message = error.message.clone().unwrap_or_default();
        let failure = errors::Failure {
            code: errors::code_for(code.as_deref(), 400),
            reason: format!("{}: {message}", code.as_deref().unwrap_or("error")),
            aws_code: code,
        };
        answers.entry(id).or_insert(Err(failure));
    }
}

/// Whether `id` (a name, a full ARN or a partial ARN) names this entry. A partial ARN (the
/// full ARN without Secrets Manager's `-` and six random characters) names only the secret
/// whose ARN is exactly that plus `-XXXXXX`: `…:secret:db` is not `…:secret:db-prod-AbCdEf`.
fn names_entry(id: &str, entry: &sm::types::SecretValueEntry) -> bool {
    let arn = entry.arn.as_deref().unwrap_or_default();
    entry.name.as_deref() == Some(id) || (!arn.is_empty() && (arn == id || is_partial_arn_of(id, arn)))
}

/// Whether `partial` is `arn` without its `-` and six-character suffix.
fn is_partial_arn_of(partial: &str, arn: &str) -> bool {
    let Some(suffix) = arn.strip_prefix(partial).and_then(|rest| rest.strip_prefix('-')) else {
        return false;
    };
    partial.starts_with("arn:") && suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Two secrets in one answer both fit an id: refuse rather than pick one.
fn ambiguous() -> errors::Failure {
    let reason = "BatchGetSecretValue returned two secrets that both match this partial ARN; use the full ARN";
    errors::Failure { code: ErrorCode::AwsError, aws_code: None, reason: reason.into() }
}

pub(super) fn entry_value(entry: sm::types::SecretValueEntry) -> Result<Fetched, errors::Failure> {
    let bad = |reason: &str| errors::Failure { code: ErrorCode::AwsError, aws_code: None, reason: reason.into() };
    let version = entry.version_id.ok_or_else(|| bad("the batch entry carries no VersionId"))?;
    let value = match (entry.secret_string, entry.secret_binary) {
        (Some(text), _) => SecretBytes::new(text.into_bytes()),
        (None, Some(blob)) => SecretBytes::new(blob.into_inner()),
        (None, None) => return Err(bad("the batch entry carries no value")),
    };
    Ok(Fetched { value, version })
}

/// Turns a batch answer into the result for one item.
pub fn result_for(
    item: &ReadItem,
    region: &str,
    answer: Option<&Result<Fetched, errors::Failure>>,
) -> Result<Fetched, FetchError> {
    match answer {
        Some(Ok(fetched)) => Ok(fetched.clone()),
        Some(Err(failure)) => Err(failure.clone().for_item(item, region)),
        None => Err(super::bad_response(item, region, "BatchGetSecretValue returned no entry for this secret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ObjectType;

    fn item(label: Option<&str>, version: Option<&str>) -> ReadItem {
        ReadItem {
            name: "s".into(),
            object_type: ObjectType::SecretsManager,
            version_id: version.map(Into::into),
            version_label: label.map(Into::into),
            listing: None,
        }
    }

    #[test]
    fn only_current_reads_are_batched() {
        assert!(is_current(&item(None, None)));
        assert!(is_current(&item(Some("AWSCURRENT"), None)));
        assert!(!is_current(&item(Some("AWSPREVIOUS"), None)));
        assert!(!is_current(&item(None, Some("v1"))));
    }

    #[test]
    fn entries_match_by_name_full_or_partial_arn_and_errors_by_id() {
        let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf";
        let output = sm::operation::batch_get_secret_value::BatchGetSecretValueOutput::builder()
            .secret_values(
                sm::types::SecretValueEntry::builder().name("db").arn(arn).version_id("v1").secret_string("x").build(),
            )
            .errors(
                sm::types::ApiErrorType::builder()
                    .secret_id("gone")
                    .error_code("ResourceNotFoundException")
                    .message("no")
                    .build(),
            )
            .build();
        let ids = [
            "db".to_string(),
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:db".to_string(),
            "gone".to_string(),
        ];
        let mut answers = BatchAnswers::new();
        collect(&ids, output, &mut answers);
        assert_eq!(answers["db"].as_ref().map(|f| f.version.clone()).ok(), Some("v1".into()));
        assert!(answers[&ids[1]].is_ok(), "a partial ARN matches");
        assert_eq!(answers["gone"].as_ref().err().map(|f| f.code), Some(ErrorCode::NotFound));
    }

    fn entry(arn: &str, value: &str) -> sm::types::SecretValueEntry {
        let name = arn.rsplit_once(":secret:").map_or(arn, |(_, n)| n);
        sm::types::SecretValueEntry::builder().name(name).arn(arn).version_id("v1").secret_string(value).build()
    }

    #[test]
    fn a_partial_arn_matches_only_its_own_six_character_suffix() {
        let prefix = "arn:aws:secretsmanager:us-west-2:123456789012:secret:";
        let output = sm::operation::batch_get_secret_value::BatchGetSecretValueOutput::builder()
            .secret_values(entry(&format!("{prefix}db-prod-AbCdEf"), "prod-value"))
            .build();
        let partial = format!("{prefix}db");
        let mut answers = BatchAnswers::new();
        collect(std::slice::from_ref(&partial), output, &mut answers);
        assert!(!answers.contains_key(&partial), "db must not receive db-prod's value");
        assert!(is_partial_arn_of(&partial, &format!("{prefix}db-AbCdEf")));
        assert!(!is_partial_arn_of(&partial, &format!("{prefix}db-AbCdE")));
        assert!(!is_partial_arn_of(&partial, &format!("{prefix}db-AbC/Ef")));
        assert!(!is_partial_arn_of("db", "db-AbCdEf"), "only ARNs are partial ARNs");
    }

    #[test]
    fn one_secret_named_twice_is_not_ambiguous() {
        let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf";
        let output = sm::operation::batch_get_secret_value::BatchGetSecretValueOutput::builder()
            .secret_values(entry(arn, "v"))
            .secret_values(entry(arn, "v"))
            .build();
        let ids = ["db-AbCdEf".to_string(), arn.to_string()];
        let mut answers = BatchAnswers::new();
        collect(&ids, output, &mut answers);
        assert!(answers.values().all(Result::is_ok), "{:?}", answers.values().map(Result::is_ok).collect::<Vec<_>>());
    }

    #[test]
    fn two_candidates_for_one_partial_arn_are_an_error() {
        let prefix = "arn:aws:secretsmanager:us-west-2:123456789012:secret:";
        let output = sm::operation::batch_get_secret_value::BatchGetSecretValueOutput::builder()
            .secret_values(entry(&format!("{prefix}db-AbCdEf"), "one"))
            .secret_values(entry(&format!("{prefix}db-ZyXwVu"), "two"))
            .build();
        let partial = format!("{prefix}db");
        let mut answers = BatchAnswers::new();
        collect(std::slice::from_ref(&partial), output, &mut answers);
        let failure = answers[&partial].as_ref().expect_err("ambiguous");
        assert!(failure.reason.contains("two secrets"), "{}", failure.reason);
    }

    #[test]
    fn denial_is_remembered_per_identity_and_throttling_pauses_everyone() {
        let policy = BatchPolicy::new(crate::clock::system());
        let denied = errors::Failure { code: ErrorCode::AccessDenied, aws_code: None, reason: String::new() };
        assert!(policy.learn("role-a", &denied));
        assert!(!policy.allowed("role-a") && policy.allowed("role-b"));
        let throttled = errors::Failure { code: ErrorCode::Throttled, aws_code: None, reason: String::new() };
        assert!(policy.learn("role-b", &throttled));
        assert!(!policy.allowed("role-b"));
        let other = errors::Failure { code: ErrorCode::EndpointUnreachable, aws_code: None, reason: String::new() };
        assert!(!policy.learn("role-c", &other), "a transient failure is not a reason to stop batching");
    }

    #[test]
    fn the_throttling_pause_ends_on_the_injected_clock() {
        let clock = crate::clock::ManualClock::new();
        let policy = BatchPolicy::new(clock.clone());
        let throttled = errors::Failure { code: ErrorCode::Throttled, aws_code: None, reason: String::new() };
        assert!(policy.learn("role-a", &throttled));
        clock.advance(THROTTLE_COOLDOWN - Duration::from_secs(1));
        assert!(!policy.allowed("role-a"), "still cooling down");
        clock.advance(Duration::from_secs(1));
        assert!(policy.allowed("role-a"), "the cooldown is over");
    }
}
