#!/usr/bin/env bash
# The chart's default image is exactly what the release workflow publishes:
#   values.yaml image.repository == the IMAGE of .github/workflows/release.yml
#   values.yaml image.tag (or, when empty, Chart.yaml appVersion) == Cargo.toml version
#   Chart.yaml appVersion == Cargo.toml version; the chart is named csi-provider-aws and goes to
#   the CHART_REPOSITORY of release.yml
# and, given a VERSION (the release tag without its "v"), that it is the crate's version.
#
#   scripts/check-release.sh [VERSION]
#
# Run by scripts/test.sh (step workflows) and by the release workflow before it builds anything.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

python3 - "${1:-}" <<'EOF_PY'
import re, sys

def read(path):
    with open(path) as f:
        return f.read()

def field(text, pattern, what):
    m = re.search(pattern, text, re.M)
    if not m:
        sys.exit("check-release: cannot find %s" % what)
    return m.group(1).strip().strip('"\'')

tag_version = sys.argv[1]
cargo = field(read("Cargo.toml"), r'^version = "([^"]+)"', "version in Cargo.toml")
chart = read("charts/csi-provider-aws/Chart.yaml")
chart_name = field(chart, r"^name:\s*(\S+)", "name in Chart.yaml")
app_version = field(chart, r"^appVersion:\s*(\S+)", "appVersion in Chart.yaml")
values = read("charts/csi-provider-aws/values.yaml")
image_block = field(values, r"^image:\s*\n((?:[ \t]+.*\n|[ \t]*\n)+)", "image: in values.yaml")
repository = field(image_block, r"^\s+repository:\s*(\S+)", "image.repository in values.yaml")
tag = field(image_block + "\n", r"^\s+tag:\s*([^#\n]*)$", "image.tag in values.yaml")
workflow = read(".github/workflows/release.yml")
published = field(workflow, r"^  IMAGE:\s*(\S+)", "env IMAGE in release.yml")
chart_repo = field(workflow, r"^  CHART_REPOSITORY:\s*(\S+)", "env CHART_REPOSITORY in release.yml")

errors = []
if tag_version and tag_version != cargo:
    errors.append("the tag names version %s, Cargo.toml has %s" % (tag_version, cargo))
if app_version != cargo:
    errors.append("Chart.yaml appVersion %s != Cargo.toml version %s" % (app_version, cargo))
if repository != published:
    errors.append("values.yaml image.repository %s != the published image %s" % (repository, published))
default_tag = tag or app_version
if default_tag != cargo:
    errors.append("the chart's default image tag %s != the published tag %s" % (default_tag, cargo))
if chart_name != "csi-provider-aws" or chart_repo != "oci://ghcr.io/csi-provider-aws/charts":
    errors.append("the chart is published as %s/%s, expected oci://ghcr.io/csi-provider-aws/charts/csi-provider-aws"
                  % (chart_repo, chart_name))
for e in errors:
    print("check-release: " + e, file=sys.stderr)
if errors:
    sys.exit(1)
print("check-release: the chart's default image %s:%s is what release.yml publishes; chart %s/%s"
      % (repository, default_tag, chart_repo, chart_name))
EOF_PY
