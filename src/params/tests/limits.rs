//! Tests of `params::limits` (a child module of it, so they see its private items).

use super::*;

#[test]
fn names_follow_aws() {
    use ObjectType::*;
    for (name, kind) in [
        ("db/creds", SecretsManager),
        ("prod/app+x=y@z.io_1-2", SecretsManager),
        ("arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf", SecretsManager),
        ("/app/config", Parameter),
        ("app.config_1-2", Parameter),
        ("/app/config:3", Parameter),
        ("arn:aws:ssm:us-west-2:123456789012:parameter/app/config", Parameter),
    ] {
        assert_eq!(name_problem(name, kind), None, "{name}");
    }
    let forged = "db\naudit service=secretsmanager outcome=ok";
    assert!(name_problem(forged, SecretsManager).is_some_and(|p| p.contains("'\\n'")));
    assert!(name_problem("a b", Parameter).is_some());
    assert!(name_problem("a@b", Parameter).is_some(), "@ is a secret-name character only");
    assert!(name_problem("db:x", SecretsManager).is_some(), ": only in an ARN");
    assert!(name_problem(&"a".repeat(MAX_SECRET_NAME + 1), SecretsManager).is_some());
    assert_eq!(name_problem(&"a".repeat(MAX_SECRET_NAME), SecretsManager), None);
    assert!(name_problem(&"a".repeat(MAX_PARAMETER_NAME + 1), Parameter).is_some());
    assert_eq!(name_problem(&"a".repeat(MAX_PARAMETER_NAME), Parameter), None);
}

#[test]
fn kubernetes_names() {
    for ok in ["default", "kube-system", "a", "a1", &"a".repeat(63)] {
        assert!(is_dns_label(ok), "{ok}");
    }
    for bad in ["", "-a", "a-", "A", "a.b", "../../nodes", "sa?watch=true", "a/b", &"a".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad}");
    }
    for ok in ["web-0", "app.v1", "a.b.c"] {
        assert!(is_dns_subdomain(ok), "{ok}");
    }
    for bad in ["", "a..b", ".a", "a.", "sa/token", "Web", &format!("{}.b", "a".repeat(253))] {
        assert!(!is_dns_subdomain(bad), "{bad}");
    }
    assert!(is_uid("0b7f9a2c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"));
    assert!(!is_uid("../x") && !is_uid(""));
}

#[test]
fn text_fields() {
    assert_eq!(text_problem("AWSCURRENT", MAX_LABEL), None);
    assert!(text_problem("a\u{1b}[31m", MAX_LABEL).is_some());
    assert!(text_problem(&"v".repeat(MAX_VERSION + 1), MAX_VERSION).is_some());
}
