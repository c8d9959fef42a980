//! Exercises the shared test harness itself (tests/integration/support): moto starts, answers, and its
//! seeding clients work. Provider behaviour is tested elsewhere.

use crate::support::{Moto, REGION, attrs, mount_request, pod_uid};

#[test]
fn moto_starts_and_answers() {
    let Some(moto) = Moto::start() else { return };
    let response = moto.post("/moto-api/reset", "");
    assert!(response.starts_with("HTTP/1."), "unexpected answer: {response}");
    assert!(moto.url().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn seeding_clients_reach_moto() {
    let Some(moto) = Moto::start() else { return };
    let sm = moto.sm(REGION);
    sm.create_secret().name("harness/s").secret_string("v1").send().await.expect("create secret");
    let got = sm.get_secret_value().secret_id("harness/s").send().await.expect("get secret");
    assert_eq!(got.secret_string(), Some("v1"));

    let ssm = moto.ssm(REGION);
    ssm.put_parameter()
        .name("/harness/p")
        .value("p1")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("put parameter");

    let who = moto.sts(REGION).get_caller_identity().send().await.expect("caller identity");
    assert_eq!(who.account(), Some(crate::support::ACCOUNT));

    moto.reset();
    assert!(sm.get_secret_value().secret_id("harness/s").send().await.is_err(), "reset wipes state");
}

#[test]
fn attrs_carry_driver_keys() {
    let json: serde_json::Value =
        serde_json::from_str(&attrs("web", "- objectName: x\n", &[("region", "eu-west-1")])).unwrap();
    assert_eq!(json["region"], "eu-west-1");
    assert_eq!(json["csi.storage.k8s.io/pod.uid"], pod_uid("web"));
    assert_eq!(json["secretProviderClass"], "test-spc");
    let req = mount_request("{}", std::path::Path::new("/t"));
    assert_eq!((req.secrets.as_str(), req.permission.as_str()), ("null", "420"));
}
