//! Parameter Store reads: `GetParameters` with decryption, at most 10 names per call, the
//! batches of one mount in flight together. Selectors are `name:version` / `name:label`.

use super::audit::{AuditScope, send_audited};
use super::clients::build_client;
use super::{AwsCredentials, AwsReader, Service, errors};
use crate::codes::ErrorCode;
use crate::read::{FetchError, Fetched, ReadItem, ReadResult, ReadScope};
use crate::secret::SecretBytes;
use aws_sdk_ssm as ssm;
use futures::future::join_all;
use std::collections::BTreeMap;

/// The most names `GetParameters` accepts.
pub const BATCH: usize = 10;

/// The name as sent to `GetParameters`, selector included.
fn request_name(item: &ReadItem) -> String {
    match (&item.version_id, &item.version_label) {
        (Some(version), _) => format!("{}:{version}", item.name),
        (None, Some(label)) => format!("{}:{label}", item.name),
        (None, None) => item.name.clone(),
    }
}

/// One name to send, with the base name (selector stripped) it answers for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Wanted {
    request: String,
    base: String,
}

/// The name to send for `item`, with its base name.
pub(super) fn wanted(item: &ReadItem) -> Wanted {
    Wanted { request: request_name(item), base: item.name.clone() }
}

/// Reads every item, deduplicating names, in concurrent batches of at most [`BATCH`]. Each
/// answer is under the item it answers.
pub(super) async fn read_all(
    reader: &AwsReader,
    scope: &ReadScope<'_, AwsCredentials>,
    items: &[&ReadItem],
) -> Vec<(ReadItem, ReadResult)> {
    if items.is_empty() {
        return Vec::new();
    }
    let route = scope.route;
    let region = route.region;
    let client = build_client!(ssm, reader.parts(Service::Ssm, region, route.spc.get(Service::Ssm)), scope.credentials);
    let audit = reader.audit_scope(region, &scope.requesters);
    let mut by_name: BTreeMap<Wanted, Vec<&ReadItem>> = BTreeMap::new();
    for item in items {
        by_name.entry(wanted(item)).or_default().push(item);
    }
    let wanted: Vec<Wanted> = by_name.keys().cloned().collect();
    let batches = batches(&wanted);
    let mut answers = BTreeMap::new();
    for answer in join_all(batches.iter().map(|b| read_batch(&client, b, audit))).await {
        answers.extend(answer);
    }
    by_name
        .into_iter()
        .flat_map(|(wanted, items)| {
            let answer = answers.get(&wanted.request).cloned().unwrap_or(Err(Answer::Missing));
            items.into_iter().map(move |item| (item.clone(), answer.clone().map_err(|a| a.into_error(item, region))))
        })
        .collect()
}

/// Splits names into batches of at most [`BATCH`] in which no base name repeats, so an answer
/// can be matched by its name even when the response omits the selector.
pub(super) fn batches(wanted: &[Wanted]) -> Vec<Vec<Wanted>> {
    let mut batches: Vec<Vec<Wanted>> = Vec::new();
    for w in wanted {
        let fits = |b: &&mut Vec<Wanted>| b.len() < BATCH && b.iter().all(|o| o.base != w.base);
        match batches.iter_mut().find(|b| fits(b)) {
            Some(batch) => batch.push(w.clone()),
            None => batches.push(vec![w.clone()]),
        }
    }
    batches
}

/// What one batch said about one requested name.
#[derive(Debug, Clone)]
enum Answer {
    Failed(errors::Failure),
    Invalid,
    Missing,
}

impl Answer {
    fn into_error(self, item: &ReadItem, region: &str) -> FetchError {
        let failure = match self {
            Answer::Failed(failure) => failure,
            Answer::Invalid => errors::Failure {
                code: ErrorCode::NotFound,
                aws_code: Some("InvalidParameters".into()),
                reason: "ParameterNotFound: the parameter (or the version or label asked for) does not exist".into(),
            },
            Answer::Missing => errors::Failure {
                code: ErrorCode::AwsError,
                aws_code: None,
                reason: "GetParameters returned no entry for this parameter".into(),
            },
        };
        failure.for_item(item, region)
    }
}

type BatchAnswers = BTreeMap<String, Result<Fetched, Answer>>;

async fn read_batch(client: &ssm::Client, wanted: &[Wanted], scope: AuditScope<'_>) -> BatchAnswers {
    let names: Vec<String> = wanted.iter().map(|w| w.request.clone()).collect();
    let bases: Vec<String> = wanted.iter().map(|w| w.base.clone()).collect();
    let request = client.get_parameters().set_names(Some(names)).with_decryption(true);
    let sent = send_audited!(request, scope.record(&bases));
    match sent {
        Err(e) => {
            let failure = errors::classify(&e);
            wanted.iter().map(|w| (w.request.clone(), Err(Answer::Failed(failure.clone())))).collect()
        }
        Ok(output) => match_answers(wanted, output),
    }
}

/// Maps the response back to the names sent: by name or ARN plus the selector, else (when the
/// response omits the selector, as some endpoints do) by the base name, unique in a batch.
fn match_answers(wanted: &[Wanted], output: ssm::operation::get_parameters::GetParametersOutput) -> BatchAnswers {
    let mut exact: BTreeMap<String, Fetched> = BTreeMap::new();
    let mut by_base: BTreeMap<String, Fetched> = BTreeMap::new();
    for param in output.parameters.unwrap_or_default() {
        let selector = param.selector.clone().unwrap_or_default();
        let fetched = Fetched {
            value: SecretBytes::new(param.value.unwrap_or_default().into_bytes()),
            version: param.version.to_string(),
        };
        for name in [param.name.as_deref(), param.arn.as_deref()].into_iter().flatten() {
            exact.insert(format!("{name}{selector}"), fetched.clone());
            by_base.insert(name.to_string(), fetched.clone());
        }
    }
    let invalid: Vec<String> = output.invalid_parameters.unwrap_or_default();
    wanted
        .iter()
        .map(|w| {
            let answer = if invalid.contains(&w.request) {
                Err(Answer::Invalid)
            } else {
                exact.get(&w.request).or_else(|| by_base.get(&w.base)).cloned().ok_or(Answer::Missing)
            };
            (w.request.clone(), answer)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ObjectType;

    fn item(name: &str, version: Option<&str>, label: Option<&str>) -> ReadItem {
        ReadItem {
            name: name.into(),
            object_type: ObjectType::Parameter,
            version_id: version.map(Into::into),
            version_label: label.map(Into::into),
            listing: None,
        }
    }

    #[test]
    fn selectors_follow_the_go_provider() {
        assert_eq!(request_name(&item("/app/x", None, None)), "/app/x");
        assert_eq!(request_name(&item("/app/x", Some("2"), None)), "/app/x:2");
        assert_eq!(request_name(&item("p", None, Some("prod"))), "p:prod");
    }

    fn w(request: &str, base: &str) -> Wanted {
        Wanted { request: request.into(), base: base.into() }
    }

    #[test]
    fn a_batch_never_holds_two_selectors_of_one_name() {
        let mut wanted: Vec<Wanted> = (0..25).map(|i| w(&format!("p{i}"), &format!("p{i}"))).collect();
        wanted.push(w("p0:1", "p0"));
        wanted.push(w("p0:2", "p0"));
        let batches = batches(&wanted);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 27);
        assert!(batches.iter().all(|b| b.len() <= BATCH));
        for b in &batches {
            let bases: std::collections::BTreeSet<_> = b.iter().map(|w| &w.base).collect();
            assert_eq!(bases.len(), b.len(), "a base name repeats in {b:?}");
        }
    }

    #[test]
    fn answers_without_a_selector_match_by_base_name() {
        let output = ssm::operation::get_parameters::GetParametersOutput::builder()
            .parameters(ssm::types::Parameter::builder().name("/app/x").value("v1").version(1).build())
            .build();
        let got = match_answers(&[w("/app/x:1", "/app/x")], output);
        assert_eq!(got["/app/x:1"].as_ref().map(|f| f.version.clone()).ok(), Some("1".into()));
    }

    #[test]
    fn answers_match_by_name_arn_and_selector() {
        let arn = "arn:aws:ssm:us-west-2:111122223333:parameter/shared";
        let output = ssm::operation::get_parameters::GetParametersOutput::builder()
            .parameters(ssm::types::Parameter::builder().name("/app/x").selector(":2").value("v2").version(2).build())
            .parameters(ssm::types::Parameter::builder().name(arn).arn(arn).value("s").version(7).build())
            .invalid_parameters("gone")
            .build();
        let wanted = [w("/app/x:2", "/app/x"), w(arn, arn), w("gone", "gone"), w("other", "other")];
        let got = match_answers(&wanted, output);
        let ok = |n: &str| got[n].as_ref().ok().map(|f| (f.value.expose().to_vec(), f.version.clone()));
        assert_eq!(ok("/app/x:2"), Some((b"v2".to_vec(), "2".into())));
        assert_eq!(ok(arn), Some((b"s".to_vec(), "7".into())));
        assert!(matches!(got["gone"], Err(Answer::Invalid)));
        assert!(matches!(got["other"], Err(Answer::Missing)));
    }
}
