#!/usr/bin/env bash
# Offline checks of what deploys resticpilot (CI runs this from .ci/run; 2-3 s on an idle machine here):
# - the plain manifests (deploy/kustomize) rendered by `kubectl kustomize` (where kubectl is
#   installed, else by deploy/render_kustomize.py) and validated
#   against the Kubernetes schemas (kubernetes-validate, strict), then the CronJob rules the
#   schemas cannot state (deploy/check_manifests.py), and their config.yaml by
#   `resticpilot validate`;
# - the Helm chart (deploy/helm/resticpilot) the same way when `helm` is installed (Debian has
#   no helm package: without it the chart is not rendered here, and this says so; then only
#   its values are checked against what the templates read: deploy/check_chart_values.py);
# - the systemd units (systemd-analyze verify, when systemd-analyze exists);
# - the release workflow against GitHub's workflow schema (check-jsonschema).
#   deploy/check.sh [RESTICPILOT_BINARY]   (default target/debug/resticpilot, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
# The oldest Kubernetes the manifests support (the chart's kubeVersion) and a recent one.
k8s_versions=(1.29.0 1.33.0)
binary=${1:-target/debug/resticpilot}
[[ -x "$binary" ]] || cargo build --locked -q
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for tool in kubernetes-validate check-jsonschema; do
  command -v "$tool" >/dev/null || { echo "deploy/check.sh: $tool is missing: scripts/install-deps.sh --deploy installs it" >&2; exit 1; }
done

check_rendered() { # NAME FILE
  for v in "${k8s_versions[@]}"; do
    kubernetes-validate --strict --quiet -k "$v" "$2"
  done
  python3 deploy/check_manifests.py "$2" > "$tmp/config.yaml"
  # The config as the pods read it; the secrets it expands come from the Secret at run time.
  AWS_ACCESS_KEY_ID=check AWS_SECRET_ACCESS_KEY=check "$binary" -c "$tmp/config.yaml" validate >/dev/null
  echo "deploy/check.sh: $1: $(grep -c '^kind:' "$2") objects valid (Kubernetes ${k8s_versions[*]}, strict), CronJob rules and config.yaml OK"
}

if command -v kubectl >/dev/null && kubectl kustomize deploy/kustomize > "$tmp/kustomize.yaml" 2>"$tmp/kustomize.err"; then
  check_rendered "kubectl kustomize" "$tmp/kustomize.yaml"
else
  # Debian's kubernetes-client (1.20) is too old for this kustomization, and kubectl is not
  # in Debian otherwise: the same objects rendered by a small script instead (no name hash).
  if command -v kubectl >/dev/null; then cat "$tmp/kustomize.err" >&2; fi
  echo "deploy/check.sh: kubectl kustomize unavailable: rendering with deploy/render_kustomize.py"
  python3 deploy/render_kustomize.py deploy/kustomize > "$tmp/kustomize.yaml"
  check_rendered "deploy/render_kustomize.py" "$tmp/kustomize.yaml"
fi

if command -v helm >/dev/null; then
  helm lint --strict deploy/helm/resticpilot >/dev/null
  helm template resticpilot deploy/helm/resticpilot > "$tmp/helm.yaml"
  check_rendered helm "$tmp/helm.yaml"
else
  echo "deploy/check.sh: SKIPPED rendering the Helm chart: helm is not installed (Debian has no package)"
  python3 deploy/check_chart_values.py deploy/helm/resticpilot
fi

if command -v systemd-analyze >/dev/null; then
  # verify needs instance names and an executable that exists: the built binary stands in.
  mkdir "$tmp/systemd"
  units=()
  for f in deploy/systemd/*@.*; do
    base=$(basename "$f")
    unit="$tmp/systemd/${base/@./@check.}"
    sed "s#/usr/local/bin/resticpilot#$(realpath "$binary")#" "$f" > "$unit"
    units+=("$unit")
  done
  systemd-analyze verify --man=no "${units[@]}"
  echo "deploy/check.sh: systemd units OK (systemd-analyze verify)"
else
  echo "deploy/check.sh: SKIPPED systemd-analyze verify: not installed"
fi

check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
