//! Parameter Store reads: `GetParameters` with decryption, at most 10 names per call, the
//! batches of one mount in flight together. Selectors are `name:version` / `name:label`.

use super::clients::build_client;
use super::{AwsCredentials, AwsReader, FetchError, Fetched, ReadItem, Service, errors};
use crate::codes::ErrorCode;
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

/// Reads every item, deduplicating names, in concurrent batches of [`BATCH`].
pub(super) async fn read_all(
    reader: &AwsReader,
    credentials: &AwsCredentials,
    region: &str,
    items: &[(usize, &ReadItem)],
) -> Vec<(usize, Result<Fetched, FetchError>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let client = build_client!(ssm, reader.parts(Service::Ssm, region, credentials));
    let mut by_name: BTreeMap<String, Vec<(usize, &ReadItem)>> = BTreeMap::new();
    for (index, item) in items {
        by_name.entry(request_name(item)).or_default().push((*index, item));
    }
    let names: Vec<String> = by_name.keys().cloned().collect();
    let batches = names.chunks(BATCH).map(|chunk| read_batch(&client, chunk));
    let mut answers = BTreeMap::new();
    for answer in join_all(batches).await {
        answers.extend(answer);
    }
    by_name
        .into_iter()
        .flat_map(|(name, wanted)| {
            let answer = answers.get(&name).cloned().unwrap_or(Err(Answer::Missing));
            wanted.into_iter().map(move |(index, item)| (index, answer.clone().map_err(|a| a.into_error(item, region))))
        })
        .collect()
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
        FetchError::new(item, region, failure)
    }
}

type BatchAnswers = BTreeMap<String, Result<Fetched, Answer>>;

async fn read_batch(client: &ssm::Client, names: &[String]) -> BatchAnswers {
    let sent = client.get_parameters().set_names(Some(names.to_vec())).with_decryption(true).send().await;
    match sent {
        Err(e) => {
            let failure = errors::classify(&e);
            names.iter().map(|n| (n.clone(), Err(Answer::Failed(failure.clone())))).collect()
        }
        Ok(output) => match_answers(names, output),
    }
}

/// Maps the response back to the names sent: by name or ARN, plus the selector.
fn match_answers(names: &[String], output: ssm::operation::get_parameters::GetParametersOutput) -> BatchAnswers {
    let mut found: BTreeMap<String, Result<Fetched, Answer>> = BTreeMap::new();
    for param in output.parameters.unwrap_or_default() {
        let selector = param.selector.clone().unwrap_or_default();
        let keys: Vec<String> = [param.name.as_deref(), param.arn.as_deref()]
            .into_iter()
            .flatten()
            .map(|n| format!("{n}{selector}"))
            .collect();
        let fetched = Fetched { value: SecretBytes::new(param.value.unwrap_or_default().into_bytes()), version: param.version.to_string() };
        for key in keys {
            found.insert(key, Ok(fetched.clone()));
        }
    }
    for invalid in output.invalid_parameters.unwrap_or_default() {
        found.entry(invalid).or_insert(Err(Answer::Invalid));
    }
    names.iter().map(|n| (n.clone(), found.get(n).cloned().unwrap_or(Err(Answer::Missing)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ObjectType;

    fn item(name: &str, version: Option<&str>, label: Option<&str>) -> ReadItem {
        ReadItem { name: name.into(), object_type: ObjectType::Parameter, version_id: version.map(Into::into), version_label: label.map(Into::into) }
    }

    #[test]
    fn selectors_follow_the_go_provider() {
        assert_eq!(request_name(&item("/app/x", None, None)), "/app/x");
        assert_eq!(request_name(&item("/app/x", Some("2"), None)), "/app/x:2");
        assert_eq!(request_name(&item("p", None, Some("prod"))), "p:prod");
    }

    #[test]
    fn answers_match_by_name_arn_and_selector() {
        let arn = "arn:aws:ssm:us-west-2:111122223333:parameter/shared";
        let output = ssm::operation::get_parameters::GetParametersOutput::builder()
            .parameters(ssm::types::Parameter::builder().name("/app/x").selector(":2").value("v2").version(2).build())
            .parameters(ssm::types::Parameter::builder().name(arn).arn(arn).value("s").version(7).build())
            .invalid_parameters("gone")
            .build();
        let names = ["/app/x:2".to_string(), arn.to_string(), "gone".to_string(), "other".to_string()];
        let got = match_answers(&names, output);
        let ok = |n: &str| got[n].as_ref().ok().map(|f| (f.value.expose().to_vec(), f.version.clone()));
        assert_eq!(ok("/app/x:2"), Some((b"v2".to_vec(), "2".into())));
        assert_eq!(ok(arn), Some((b"s".to_vec(), "7".into())));
        assert!(matches!(got["gone"], Err(Answer::Invalid)));
        assert!(matches!(got["other"], Err(Answer::Missing)));
    }
}
