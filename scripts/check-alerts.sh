#!/usr/bin/env bash
# Checks the chart's PrometheusRule (charts/csi-provider-aws/templates/prometheusrule.yaml):
# renders it with helm, checks each alert's shape, runbook link (docs/runbook.md), the metrics it
# names and that a unit test expects it to fire (scripts/check_alerts.py); then, with promtool,
# `promtool check rules` on the rendered rules and `promtool test rules` on tests/alerts/.
#
#   scripts/check-alerts.sh               # promtool when it is installed (.tools/bin/promtool)
#   PROMTOOL_BUILD=1 scripts/check-alerts.sh   # build promtool first when missing (go install)
#
# promtool is built from the Prometheus Go module (cmd/promtool only); cold, that build is far
# longer than the five minutes CI allows this step, so CI runs the promtool part only when
# promtool is already in .tools/bin, and says SKIP for it otherwise. Used by scripts/test.sh
# (step alerts).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/tools.sh
source "${REPO_ROOT}/scripts/tools.sh"
cd "$REPO_ROOT"

ensure_venv
ensure_helm || exit

OUT="$(mktemp -d "${TMPDIR:-/tmp}/alerts-check.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

log "helm template: the PrometheusRule (release csi-provider-aws in kube-system)"
"$HELM" template csi-provider-aws charts/csi-provider-aws --namespace kube-system \
  --set prometheusRule.enabled=true --show-only templates/prometheusrule.yaml >"${OUT}/prometheusrule.yaml"
"$VENV_PYTHON" scripts/check_alerts.py "${OUT}/prometheusrule.yaml" "${OUT}/rules.yaml"

if [[ "${PROMTOOL_BUILD:-0}" == 1 ]]; then
  ensure_promtool || exit
elif [[ -x "${TOOLS_DIR}/bin/promtool" ]]; then
  export PROMTOOL="${TOOLS_DIR}/bin/promtool"
fi
if [[ -z "${PROMTOOL:-}" ]]; then
  warn "SKIP: promtool check/test rules not run: no .tools/bin/promtool (PROMTOOL_BUILD=1 builds it)"
  exit 0
fi
cp tests/alerts/*.test.yaml "$OUT"/
log "promtool check rules"
"$PROMTOOL" check rules "${OUT}/rules.yaml"
log "promtool test rules (tests/alerts/*.test.yaml)"
"$PROMTOOL" test rules "$OUT"/*.test.yaml
