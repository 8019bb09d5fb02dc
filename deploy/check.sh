#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests (deploy/k8s/): no cluster, no download at run time.
#   1. render the base and the production overlay (deploy/render.py: the subset of kustomize they
#      use; PyPI has no kustomize for Python 3.11) and validate every object strictly: built-in kinds
#      against the Kubernetes schemas of a pinned version (kubernetes-validate), KEDA's against the
#      models generated from KEDA's CRDs (cloudcoil-models-keda). With a real kustomize or kubectl on
#      PATH, its rendering of the overlay is validated too.
#   2. checkov's Kubernetes policies on the rendered production overlay (accepted exceptions, with
#      their reasons: deploy/.checkov.yaml).
# Tools: kubernetes-validate from requirements/lint.txt (.venv/bin is searched first); checkov and
# cloudcoil-models-keda in a virtualenv of their own, .venv/deploy-tools, made here on first use
# from deploy/requirements-tools.txt (why they cannot share .venv: that file).
# Run from anywhere: bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
KUBERNETES_VERSION=1.33.0
MANIFESTS=(deploy/k8s/base deploy/k8s/production deploy/k8s/secret.example.yaml)

step() { printf '\n=== %s\n' "$*"; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

tools=.venv/deploy-tools
if [ ! -x "$tools/bin/checkov" ] || [ deploy/requirements-tools.txt -nt "$tools/.installed" ]; then
  step "installing $tools from deploy/requirements-tools.txt"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r deploy/requirements-tools.txt
  touch "$tools/.installed"
fi

step "kubernetes: render deploy/k8s, built-in kinds against Kubernetes $KUBERNETES_VERSION (kubernetes-validate)"
python deploy/render.py --only builtin --kubernetes-version "$KUBERNETES_VERSION" --out "$out" "${MANIFESTS[@]}"

step "kubernetes: KEDA's ScaledObject and TriggerAuthentication against KEDA 2.16's CRDs (cloudcoil-models-keda)"
"$tools/bin/python" deploy/render.py --only keda "${MANIFESTS[@]}"

real_kustomize=()
if command -v kustomize >/dev/null 2>&1; then
  real_kustomize=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then
  real_kustomize=(kubectl kustomize)
fi
if [ ${#real_kustomize[@]} -gt 0 ]; then
  step "kubernetes: ${real_kustomize[*]} deploy/k8s/production, validated"
  "${real_kustomize[@]}" deploy/k8s/production > "$out/kustomize.yaml"
  python deploy/render.py --only builtin --kubernetes-version "$KUBERNETES_VERSION" --stdin "${real_kustomize[*]}" < "$out/kustomize.yaml"
  "$tools/bin/python" deploy/render.py --only keda --stdin "${real_kustomize[*]}" < "$out/kustomize.yaml"
  python - "$out/kustomize.yaml" "$out/production.yaml" <<'PY'
import sys, yaml
real, ours = ([d for d in yaml.safe_load_all(open(f)) if d] for f in sys.argv[1:])
key = lambda o: (o["kind"], o["metadata"]["name"])
real, ours = ({key(o): o for o in docs} for docs in (real, ours))
differ = sorted(k for k in real.keys() | ours.keys() if real.get(k) != ours.get(k))
if differ:
    sys.exit(f"deploy/render.py renders these differently from kustomize: {differ}")
print(f"deploy/render.py renders the same {len(ours)} objects as kustomize")
PY
else
  echo "(no kustomize or kubectl on PATH: deploy/render.py's rendering stands in for it)"
fi

step "kubernetes: checkov (Kubernetes policies) on the rendered production overlay"
BC_SKIP_MAPPING=TRUE "$tools/bin/checkov" --config-file deploy/.checkov.yaml -f "$out/production.yaml"
