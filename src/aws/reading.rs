//! Reading a mount's items: Secrets Manager, Parameter Store and bulk listings concurrently, each answer under
//! the item it answers, and an answer for every item. A failure to reach an endpoint names it.

use super::clients::concerns_the_network;
use super::{AwsCredentials, AwsReader};
use crate::params::ObjectType;
use crate::read::{Answers, FetchError, ReadItem, ReadScope, Service};

impl AwsReader {
    /// Reads every item along the scope's route, as its identity, for its requesters (audit).
    /// Secrets Manager and Parameter Store reads run concurrently; every item has an answer.
    pub async fn read(&self, scope: &ReadScope<'_, AwsCredentials>, items: &[ReadItem]) -> Answers {
        let (listings, singles): (Vec<&ReadItem>, Vec<&ReadItem>) = items.iter().partition(|i| i.listing.is_some());
        let (secrets, params): (Vec<&ReadItem>, Vec<&ReadItem>) =
            singles.into_iter().partition(|i| i.object_type == ObjectType::SecretsManager);
        let sm = super::secrets_manager::read_all(self, scope, &secrets);
        let ssm = super::parameter_store::read_all(self, scope, &params);
        let listed = super::listing::list_all(self, scope, &listings);
        let (sm, ssm, listed) = tokio::join!(sm, ssm, listed);
        let mut answered = sm;
        answered.extend(ssm);
        answered.extend(listed);
        for (item, result) in &mut answered {
            let Err(err) = result else { continue };
            if concerns_the_network(err.code) {
                let service = match item.object_type {
                    ObjectType::SecretsManager => Service::SecretsManager,
                    ObjectType::Parameter => Service::Ssm,
                };
                err.reason.push_str(&self.endpoint_note(service, scope.route).await);
            }
        }
        let mut answers: Answers = answered.into_iter().collect();
        let region = scope.route.region;
        let unanswered: Vec<&ReadItem> = items.iter().filter(|item| !answers.contains(item)).collect();
        for item in unanswered {
            answers.insert(item.clone(), Err(FetchError::unanswered(item, region)));
        }
        answers
    }
}
