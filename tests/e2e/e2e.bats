#!/usr/bin/env bats
# Assertions of the kind e2e suite; run by tests/e2e/run.sh after it has installed the driver,
# moto, both provider releases and the workloads (manifests/app.yaml, manifests/bad.yaml). The
# tests run in order; the last one uninstalls.

load helpers

@test "both provider DaemonSets are ready and answer /readyz and /metrics" {
  kubectl -n kube-system rollout status ds/csi-provider-aws --timeout=120s
  kubectl -n kube-system rollout status ds/csi-provider-aws-dw --timeout=120s
  [[ "$(admin csi-provider-aws /readyz)" == *ok* ]]
  admin csi-provider-aws /metrics | grep -q '^csi_provider_aws_build_info'
}

@test "provider-writes pod: files and contents" {
  kubectl -n e2e wait --for=condition=Ready pod/app --timeout=180s
  run file_in app /mnt/secrets/db.json
  [[ "$output" == '{"username": "app", "password": "p4ss"}' ]]
  run file_in app /mnt/secrets/_e2e_config
  [[ "$output" == cfg-1 ]]
  run file_in app /mnt/secrets/rotating
  [[ "$output" == v1 ]]
  # The driver's atomic layout: visible names are symlinks into ..data.
  run kubectl -n e2e exec app -c app -- readlink /mnt/secrets/db.json
  [[ "$output" == ..data/db.json ]]
}

@test "provider-writes pod: jmesPath files" {
  run file_in app /mnt/secrets/db-user
  [[ "$output" == app ]]
  run file_in app /mnt/secrets/db-pass
  [[ "$output" == p4ss ]]
}

@test "provider-writes pod: file modes" {
  [[ "$(mode_in app /mnt/secrets/db.json)" == 644 ]]
  [[ "$(mode_in app /mnt/secrets/db-user)" == 644 ]]
  [[ "$(mode_in app /mnt/secrets/db-pass)" == 400 ]]
  [[ "$(mode_in app /mnt/secrets/_e2e_config)" == 644 ]]
  [[ "$(mode_in app /mnt/secrets/rotating)" == 640 ]]
}

@test "secretObjects: the driver syncs a Kubernetes Secret" {
  eventually 60 synced_is password p4ss
  [[ "$(synced rotating)" == v1 ]]
}

@test "rotation: a new value shows in the file and the synced Secret within 120 s" {
  local value="v2-${RANDOM}" start=$SECONDS
  moto rotate "$value"
  eventually 120 file_is app /mnt/secrets/rotating "$value"
  eventually $((120 - (SECONDS - start))) synced_is rotating "$value"
  echo "# rotation visible after $((SECONDS - start)) s" >&3
  # Unchanged objects are still there, unchanged.
  [[ "$(file_in app /mnt/secrets/db-user)" == app ]]
}

@test "driver-writes mode: the driver writes the files the provider returns" {
  kubectl -n e2e wait --for=condition=Ready pod/app-dw --timeout=180s
  [[ "$(file_in app-dw /mnt/secrets/db-user)" == app ]]
  [[ "$(file_in app-dw /mnt/secrets/_e2e_config)" == cfg-1 ]]
  [[ "$(mode_in app-dw /mnt/secrets/_e2e_config)" == 600 ]]
  [[ "$(mode_in app-dw /mnt/secrets/db.json)" == 644 ]]
  run kubectl -n kube-system logs -l app.kubernetes.io/instance=csi-provider-aws-dw --tail=-1
  [[ "$output" == *'"delivery":"returned"'* ]]
}

@test "a bad SecretProviderClass surfaces as a FailedMount event naming the object" {
  eventually 120 bad_mount_refused
  run failed_mount_events
  [[ "$output" == *e2e/not-a-parameter-type* ]]
  [[ "$(kubectl -n e2e get pod bad -o jsonpath='{.status.phase}')" == Pending ]]
}

@test "uninstall leaves nothing behind" {
  kubectl delete -f "${E2E_DIR}/manifests/bad.yaml" -f "${E2E_DIR}/manifests/app.yaml" --wait --timeout=120s
  "$HELM" uninstall csi-provider-aws csi-provider-aws-dw --namespace kube-system --wait --timeout 2m
  eventually 60 no_provider_pods
  [[ -z "$(leftovers)" ]]
  [[ -z "$("$HELM" list --namespace kube-system --short --filter '^csi-provider-aws')" ]]
  # The sockets are gone from the node (the provider unlinks its socket on SIGTERM).
  run docker exec "${E2E_CLUSTER}-control-plane" ls -A /var/run/secrets-store-csi-providers
  [[ "$output" != *aws.sock* && "$output" != *aws-dw.sock* ]]
}
