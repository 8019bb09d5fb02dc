#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests (deploy/k8s/), no cluster and no download:
#   1. render the base and the production overlay (deploy/render.py: the kustomize subset they use)
#      and validate every object: built-in kinds against the Kubernetes schemas of a pinned version
#      (kubernetes-validate, strict), KEDA's against its CRDs' models (cloudcoil-models-keda, strict);
#      with a real kustomize or kubectl on PATH, its rendering of the overlay is validated too;
#   2. checkov's Kubernetes policies on the rendered production overlay (accepted exceptions and
#      their reasons: deploy/.checkov.yaml).
# Tools: kubernetes-validate and cloudcoil-models-keda from requirements/lint.txt (.venv/bin is
# searched first); checkov in its own virtualenv, .venv/checkov, made here from
# deploy/requirements-checkov.txt (its pins conflict with pytest's: see that file).
# Run from anywhere: bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
KUBERNETES_VERSION=1.33.0

step() { printf '\n=== %s\n' "$*"; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

step "kubernetes: render and validate deploy/k8s (Kubernetes $KUBERNETES_VERSION, KEDA CRDs)"
python deploy/render.py --kubernetes-version "$KUBERNETES_VERSION" --out "$out" \
  deploy/k8s/base deploy/k8s/production deploy/k8s/secret.example.yaml

if command -v kustomize >/dev/null 2>&1; then
  step "kubernetes: kustomize build deploy/k8s/production, validated"
  kustomize build deploy/k8s/production \
    | python deploy/render.py --kubernetes-version "$KUBERNETES_VERSION" --stdin "kustomize build"
elif command -v kubectl >/dev/null 2>&1; then
  step "kubernetes: kubectl kustomize deploy/k8s/production, validated"
  kubectl kustomize deploy/k8s/production \
    | python deploy/render.py --kubernetes-version "$KUBERNETES_VERSION" --stdin "kubectl kustomize"
else
  echo "(no kustomize or kubectl on PATH: the renderer above stands in for it; PyPI has none for Python 3.11)"
fi

step "kubernetes: checkov (policies) on the rendered production overlay"
venv=.venv/checkov
if [ ! -x "$venv/bin/checkov" ] || [ deploy/requirements-checkov.txt -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r deploy/requirements-checkov.txt
  touch "$venv/.installed"
fi
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --config-file deploy/.checkov.yaml -f "$out/production.yaml"
