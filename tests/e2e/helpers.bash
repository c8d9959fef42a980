# shellcheck shell=bash
# Helpers of e2e.bats. run.sh exports KUBECONFIG, E2E_DIR, E2E_CLUSTER.

# eventually SECONDS CMD...: retries CMD every 2 s until it succeeds or SECONDS pass.
eventually() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "timed out: $*" >&2
      return 1
    fi
    sleep 2
  done
}

# file_in POD PATH: the content of PATH in the pod's app container.
file_in() { kubectl -n e2e exec "$1" -c app -- cat "$2"; }

# mode_in POD PATH: the octal mode of the file PATH resolves to.
mode_in() { kubectl -n e2e exec "$1" -c app -- stat -L -c %a "$2"; }

# file_is POD PATH EXPECTED: does the file hold exactly EXPECTED?
file_is() { [[ "$(file_in "$1" "$2" 2>/dev/null)" == "$3" ]]; }

# synced KEY: a key of the Secret the driver syncs from the app SecretProviderClass.
synced() {
  kubectl -n e2e get secret app-synced -o "jsonpath={.data.$1}" | base64 -d
}
synced_is() { [[ "$(synced "$1" 2>/dev/null)" == "$2" ]]; }

# moto ARGS...: runs tests/e2e/seed.py in the moto pod.
moto() { kubectl -n moto exec -i deploy/moto -- python - "$@" <"${E2E_DIR}/seed.py"; }

# provider_pod RELEASE: the name of one provider pod of the release.
provider_pod() {
  kubectl -n kube-system get pods -l "app.kubernetes.io/instance=$1" -o jsonpath='{.items[0].metadata.name}'
}

# admin RELEASE PATH: GET PATH on the provider's admin port, through the API server's pod proxy.
admin() { kubectl get --raw "/api/v1/namespaces/kube-system/pods/$(provider_pod "$1"):8989/proxy$2"; }

failed_mount_events() {
  kubectl -n e2e get events --field-selector involvedObject.name=bad,reason=FailedMount \
    -o jsonpath='{range .items[*]}{.message}{"\n"}{end}'
}
bad_mount_refused() { failed_mount_events | grep -q InvalidParameters; }

no_provider_pods() {
  [[ -z "$(kubectl -n kube-system get pods -l app.kubernetes.io/name=csi-provider-aws -o name)" ]]
}

# Objects of either provider release still in the cluster (namespaced and cluster-scoped).
leftovers() {
  local selector=app.kubernetes.io/name=csi-provider-aws
  kubectl get all,serviceaccount,configmap,secret,service -n kube-system -l "$selector" -o name 2>/dev/null
  kubectl get clusterrole,clusterrolebinding -l "$selector" -o name 2>/dev/null
}
