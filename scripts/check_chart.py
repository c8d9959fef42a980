"""Asserts what the chart promises on its rendered manifests, and checks the custom resources
kubernetes-validate has no schema for (SecretProviderClass, ServiceMonitor).

    python scripts/check_chart.py RENDER_DIR EXAMPLE_OR_MANIFEST...

RENDER_DIR holds `default.yaml`, `full-values.yaml`, `go-provider-values.yaml`,
`go-chart-defaults-values.yaml` (the Go chart's own defaults) and `rbac-sa.yaml` (helm template
output of charts/csi-provider-aws with those values), and `notes/NAME.txt` (the NOTES each
printed). Every further file is checked for its SecretProviderClass and ServiceMonitor
documents. The chart's metadata (Chart.yaml, CHANGELOG.md, the default image) is checked
against the crate version. Run by scripts/check-chart.sh.
"""

import re
import sys
from pathlib import Path

import jsonschema
import yaml

STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                   "labels": STR_MAP, "annotations": STR_MAP},
}

# secrets-store.csi.x-k8s.io/v1 SecretProviderClass, the fields the driver reads.
SPC_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "secrets-store.csi.x-k8s.io/v1"},
        "kind": {"const": "SecretProviderClass"},
        "metadata": META,
        "spec": {
            "type": "object",
            "required": ["provider", "parameters"],
            "additionalProperties": False,
            "properties": {
                "provider": {"type": "string", "minLength": 1},
                "parameters": STR_MAP,
                "secretObjects": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["secretName", "type", "data"],
                        "additionalProperties": False,
                        "properties": {
                            "secretName": {"type": "string"},
                            "type": {"type": "string"},
                            "labels": STR_MAP,
                            "annotations": STR_MAP,
                            "data": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["objectName", "key"],
                                    "additionalProperties": False,
                                    "properties": {"objectName": {"type": "string"},
                                                   "key": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

def monitor_schema(kind, endpoints):
    """monitoring.coreos.com/v1 ServiceMonitor or PodMonitor, the fields the chart sets."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": META,
            "spec": {
                "type": "object",
                "required": ["selector", endpoints],
                "additionalProperties": False,
                "properties": {
                    "selector": {"type": "object", "properties": {"matchLabels": STR_MAP}},
                    "namespaceSelector": {"type": "object"},
                    endpoints: {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                           "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}},
                        },
                    },
                },
            },
        },
    }


SERVICE_MONITOR_SCHEMA = monitor_schema("ServiceMonitor", "endpoints")
POD_MONITOR_SCHEMA = monitor_schema("PodMonitor", "podMetricsEndpoints")

# monitoring.coreos.com/v1 PrometheusRule: groups of alerting rules.
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": META,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {"groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "rules": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["alert", "expr", "for", "labels", "annotations"],
                    "additionalProperties": False,
                    "properties": {"alert": {"type": "string"}, "expr": {"type": "string"},
                                   "for": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                   "labels": STR_MAP, "annotations": STR_MAP}}}}}}},
        },
    },
}

OBJECT_KEYS = {"objectname", "objecttype", "objectalias", "objectversion", "objectversionlabel",
               "filepermission", "jmespath", "failoverobject", "objectencoding", "jsonkeys",
               "objectpath", "recursive", "filters", "maxobjects"}

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)


def load(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_labels(docs):
    return one(docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]


def container(docs):
    return one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]


def args_of(docs):
    return container(docs)["args"]


def env_of(docs):
    return {e["name"]: e for e in container(docs).get("env", [])}


def check_default(docs):
    kinds = sorted(d["kind"] for d in docs)
    check(kinds == ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"],
          f"default kinds: {kinds}")
    role = one(docs, "ClusterRole")
    rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"])
    check(rules == [(("",), ("nodes",), ("get",)), (("",), ("serviceaccounts",), ("get",))],
          f"ClusterRole must allow get serviceaccounts and nodes, nothing else: {rules}")
    ds = one(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    check(ds["metadata"]["namespace"] == "kube-system", "namespace kube-system")
    check(pod.get("hostNetwork") is False, "hostNetwork false")
    check(pod["nodeSelector"].get("kubernetes.io/os") == "linux", "linux nodes only")
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    check(all({"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}
              in t["matchExpressions"] for t in terms), "every node term excludes Fargate")
    check({"operator": "Exists"} in pod["tolerations"], "tolerates every taint")
    c = container(docs)
    sc = c["securityContext"]
    check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check(sc.get("capabilities") == {"drop": ["ALL"]}, f"all capabilities dropped, none added: {sc.get('capabilities')}")
    check(sc.get("seccompProfile") == {"type": "RuntimeDefault"}, "seccomp RuntimeDefault")
    check(sc.get("runAsUser") == 0 and sc.get("privileged") is False, "root, not privileged")
    check(c["resources"] == {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
          f"resources (a CPU request, no CPU limit, a memory limit): {c['resources']}")
    check(c["image"] == f"ghcr.io/csi-provider-aws/csi-provider-aws:{app_version()}",
          f"default image is what the release publishes: {c['image']}")
    check(pod["serviceAccountName"] == "csi-provider-aws", "default ServiceAccount: the full name")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    check(mounts["kubelet-pods"]["mountPath"] == "/var/lib/kubelet/pods"
          and mounts["kubelet-pods"].get("mountPropagation") == "HostToContainer",
          "kubelet pods dir at the same path, HostToContainer")
    check(vols["kubelet-pods"]["hostPath"]["path"] == "/var/lib/kubelet/pods", "kubelet pods hostPath")
    check(vols["provider-volume"]["hostPath"]["path"] == "/var/run/secrets-store-csi-providers"
          and mounts["provider-volume"]["mountPath"] == "/var/run/secrets-store-csi-providers",
          "provider volume")
    check(env_of(docs)["NODE_NAME"] == {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
          "NODE_NAME from the downward API")
    check("AWS_REGION" not in env_of(docs), "no AWS_REGION unless awsRegion is set")
    check(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, "liveness /healthz")
    check(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, "readiness /readyz")
    check(c["ports"] == [{"name": "metrics", "containerPort": 8989, "protocol": "TCP"}], "admin port 8989")
    a = args_of(docs)
    for flag in ["--provider-volume=/var/run/secrets-store-csi-providers", "--kubelet-path=/var/lib/kubelet",
                 "--driver-writes-secrets=false", "--qps=5", "--burst=10", "--pod-identity-http-timeout=5s",
                 "--use-fips-endpoint=false", "--log-format=json", "--log-level=info",
                 "--metrics-addr=0.0.0.0:8989", "--cache-ttl=60s", "--cache-max-entries=10000",
                 "--require-private-endpoints=false", "--audit-log=false",
                 f"--cache-max-bytes={64 << 20}", "--batch-get-secret-value=true"]:
        check(flag in a, f"default args include {flag}")
    check(not any(x.startswith(("--eks-addon-version", "--endpoint", "--ca-bundle", "--allowed-endpoint-host"))
                  for x in a), "no unset optional flags")


def check_go_values(docs):
    a, env, c = args_of(docs), env_of(docs), container(docs)
    for flag in ["--provider-volume=/etc/kubernetes/secrets-store-csi-providers", "--qps=20", "--burst=40",
                 "--pod-identity-http-timeout=500ms", "--driver-writes-secrets=false", "--use-fips-endpoint=false"]:
        check(flag in a, f"Go values: args include {flag}")
    check(env["AWS_REGION"]["value"] == "eu-west-1", "Go values: awsRegion becomes AWS_REGION")
    check(c["resources"]["limits"] == {"cpu": "50m", "memory": "100Mi"}, "Go values: resources kept")
    sc = c["securityContext"]
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("capabilities") == {"drop": ["ALL"]},
          "Go values: their securityContext merges into the restrictive default")
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    check("affinity" in pod and "priorityClassName" not in pod, "Go values: affinity default kept, priority class off")
    check(len(pod["tolerations"]) == 2, "Go values: their tolerations")
    check(one(docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"].get("team") == "platform",
          "Go values: podLabels")


def check_go_chart_defaults(docs, notes):
    """The Go chart's own values.yaml: our image instead of the pinned Go image, said in NOTES."""
    c = container(docs)
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    check(c["image"] == f"ghcr.io/csi-provider-aws/csi-provider-aws:{app_version()}",
          f"Go defaults: the Go image is replaced by ours: {c['image']}")
    check(c["name"] == "provider", "Go defaults: container name")
    a = args_of(docs)
    for flag in ["--provider-volume=/var/run/secrets-store-csi-providers", "--kubelet-path=/var/lib/kubelet",
                 "--driver-writes-secrets=false", "--use-fips-endpoint=false", f"--cache-max-bytes={50 << 20}"]:
        check(flag in a, f"Go defaults: args include {flag}")
    check(c["resources"]["limits"] == {"cpu": "50m", "memory": "100Mi"}, "Go defaults: their resources kept")
    check(pod["serviceAccountName"] == "csi-provider-aws" and one(docs, "ServiceAccount")["metadata"]["name"]
          == "csi-provider-aws", "Go defaults: the chart creates the ServiceAccount the pods run as")
    check("runs csi-provider-aws's own image" in notes
          and "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:2.0.0" in notes,
          "Go defaults: NOTES says the Go image was replaced, and by what")
    check("this chart does\nNOT install the Secrets Store CSI driver" in notes
          and "helm install csi-secrets-store secrets-store-csi-driver/secrets-store-csi-driver" in notes,
          "Go defaults: NOTES says the driver is not installed, with the command that installs it")


def check_notes_quiet(notes, name):
    check("NOTE:" not in notes, f"{name}: NOTES has no Go-values note")


def check_rbac_service_account(docs):
    """rbac.serviceAccountName (the Go chart's value) wins over serviceAccount.name."""
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    check(pod["serviceAccountName"] == "go-named-sa", f"rbac.serviceAccountName names the pods' account: "
          f"{pod['serviceAccountName']}")
    check(one(docs, "ServiceAccount")["metadata"]["name"] == "go-named-sa", "the chart creates that account")
    subjects = one(docs, "ClusterRoleBinding")["subjects"]
    check([x["name"] for x in subjects] == ["go-named-sa"], f"the binding names it: {subjects}")


def app_version():
    cargo = Path("Cargo.toml").read_text()
    return re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)


def check_metadata(chart_dir):
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    check(chart["appVersion"] == app_version(), f"Chart.yaml appVersion {chart['appVersion']} == crate {app_version()}")
    check(str(values["image"]["tag"]) in ("", chart["appVersion"]), "values image.tag is the appVersion")
    check(values["image"]["repository"] == "ghcr.io/csi-provider-aws/csi-provider-aws", "values image.repository")
    check(chart.get("home") == "https://github.com/csi-provider-aws/csi-provider-aws", "Chart.yaml home")
    check("https://github.com/csi-provider-aws/csi-provider-aws" in chart.get("sources", []), "Chart.yaml sources")
    check(all(m.get("name") and (m.get("url") or m.get("email")) for m in chart.get("maintainers", [{}])),
          "Chart.yaml maintainers with a name and a url or email")
    ann = chart.get("annotations", {})
    for key in ["artifacthub.io/license", "artifacthub.io/links", "artifacthub.io/images", "artifacthub.io/changes"]:
        check(key in ann, f"Chart.yaml annotation {key}")
    images = yaml.safe_load(ann.get("artifacthub.io/images", "[]")) or []
    check([i.get("image") for i in images] == [f"ghcr.io/csi-provider-aws/csi-provider-aws:{chart['appVersion']}"],
          f"artifacthub.io/images names the default image: {images}")
    changelog = (chart_dir / "CHANGELOG.md").read_text()
    check(f"## {chart['version']} " in changelog or f"## {chart['version']}\n" in changelog,
          f"CHANGELOG.md has a section for chart {chart['version']}")


def check_full_values(docs):
    kinds = sorted(d["kind"] for d in docs)
    check(kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "PodMonitor", "PrometheusRule",
                    "Service", "ServiceAccount", "ServiceMonitor"], f"full kinds: {kinds}")
    a, env = args_of(docs), env_of(docs)
    for flag in ["--driver-writes-secrets=true", "--eks-addon-version=v3.1.1-eksbuild.1", "--use-fips-endpoint=true",
                 "--log-format=plain", "--metrics-addr=0.0.0.0:9090", "--cache-max-entries=1000000",
                 "--allowed-endpoint-host=*.vpce.amazonaws.com", "--require-private-endpoints=true",
                 "--ca-bundle=/etc/csi-provider-aws/ca/ca-bundle.pem", "--audit-log=true", "--provider-name=aws-rs",
                 "--metrics-secret-names=true",
                 "--allowed-assume-role=arn:aws:iam::111122223333:role/secrets-*", "--rotation-events=true",
                 "--rotation-events-qps=0.5", "--rotation-events-burst=20"]:
        check(flag in a, f"full values: args include {flag}")
    rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in one(docs, "ClusterRole")["rules"])
    check((("",), ("events",), ("create", "patch")) in rules,
          f"full values (rotationEvents.enabled): ClusterRole allows create and patch on events: {rules}")
    check(sum(x.startswith("--endpoint=") for x in a) == 3, "full values: three --endpoint flags")
    # fleet.nodes 5000: budgetHeadroom 0.8 × quota / nodes, GetSecretValue's share 0.9
    # (budgetHeadroomByApi), then awsBudget's entries.
    budget = [x for x in a if x.startswith("--aws-budget=")]
    check(budget == ["--aws-budget=BatchGetSecretValue=0.016000", "--aws-budget=GetParameters=0.006400",
                     "--aws-budget=GetParametersByPath=0.006400", "--aws-budget=GetSecretValue=1.800000",
                     "--aws-budget=GetParameters=0.005"],
          f"full values: each node's share of the quotas: {budget}")
    check(env["HTTPS_PROXY"]["value"].startswith("http://proxy") and "NO_PROXY" in env, "full values: proxy env")
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    ca = [v for v in pod["volumes"] if v["name"] == "ca-bundle"]
    check(ca and ca[0]["configMap"]["name"] == "corporate-ca", "full values: CA bundle from the ConfigMap")
    mount = [m for m in container(docs)["volumeMounts"] if m["name"] == "ca-bundle"]
    check(mount and mount[0].get("readOnly") is True, "full values: CA bundle mounted read-only")
    check(pod["nodeSelector"] == {"kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m7i.large"},
          "full values: nodeSelector merged without a duplicate key")
    svc = one(docs, "Service")
    sm = one(docs, "ServiceMonitor")
    check(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
          "ServiceMonitor selects the metrics Service")
    check(sm["metadata"]["labels"].get("release") == "kube-prometheus-stack", "ServiceMonitor labels")
    pm = one(docs, "PodMonitor")
    check(pm["spec"]["selector"]["matchLabels"].items() <= pod_labels(docs).items(), "PodMonitor selects the pods")
    check(pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics", "PodMonitor scrapes the metrics port")
    rule = one(docs, "PrometheusRule")
    check(rule["metadata"]["labels"].get("release") == "kube-prometheus-stack", "PrometheusRule labels")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    check(len(alerts) == 8 and alerts["CsiProviderAwsDown"]["for"] == "10m", "PrometheusRule: values reach the rules")
    check("> 0.2" in alerts["CsiProviderAwsMountErrors"]["expr"], "PrometheusRule: mountErrorRatio")
    dash = one(docs, "ConfigMap")
    check(dash["data"]["csi-provider-aws.json"].lstrip().startswith("{"), "dashboard JSON in the ConfigMap")


def check_custom_resources(path):
    for doc in load(path):
        kind = doc.get("kind")
        if kind == "SecretProviderClass":
            where = f"{path}: SecretProviderClass {doc.get('metadata', {}).get('name')}"
            try:
                jsonschema.validate(doc, SPC_SCHEMA)
            except jsonschema.ValidationError as e:
                FAILURES.append(f"{where}: {e.message} at {list(e.absolute_path)}")
                continue
            objects = yaml.safe_load(doc["spec"]["parameters"].get("objects", "")) or []
            check(isinstance(objects, list) and objects, f"{where}: objects is a non-empty YAML list")
            for i, o in enumerate(objects if isinstance(objects, list) else []):
                keys = {k.lower() for k in o}
                named = "objectname" in keys or "objectpath" in keys or "filters" in keys
                check(named and keys <= OBJECT_KEYS, f"{where}: objects[{i}] keys {sorted(o)}")
        elif kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
            schema = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PodMonitor": POD_MONITOR_SCHEMA,
                      "PrometheusRule": PROMETHEUS_RULE_SCHEMA}[kind]
            try:
                jsonschema.validate(doc, schema)
            except jsonschema.ValidationError as e:
                FAILURES.append(f"{path}: {kind}: {e.message} at {list(e.absolute_path)}")


def main():
    render = Path(sys.argv[1])
    check_default(load(render / "default.yaml"))
    check_go_values(load(render / "go-provider-values.yaml"))
    check_full_values(load(render / "full-values.yaml"))
    check_go_chart_defaults(load(render / "go-chart-defaults-values.yaml"),
                            (render / "notes" / "go-chart-defaults-values.txt").read_text())
    check_rbac_service_account(load(render / "rbac-sa.yaml"))
    for name in ["default", "full-values", "go-provider-values"]:
        check_notes_quiet((render / "notes" / f"{name}.txt").read_text(), name)
    check_metadata(Path("charts/csi-provider-aws"))
    for path in [*render.glob("*.yaml"), *map(Path, sys.argv[2:])]:
        check_custom_resources(path)
    if FAILURES:
        print("chart checks failed:", *FAILURES, sep="\n  ", file=sys.stderr)
        return 1
    print(f"chart checks passed ({len(sys.argv) - 2} extra files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
