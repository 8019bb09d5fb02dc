#!/usr/bin/env bash
# Checks of the deployment files that need no Docker engine:
#   docker/compose.yaml       against the Compose Specification's schema
#   .github/workflows/*.yml   against GitHub's workflow schema
#   docker/Dockerfile         hadolint
#   docker/prometheus.yml     promtool check config, when promtool is installed (skipped otherwise)
# Tools: requirements/lint.txt (.venv/bin is searched first). Run from anywhere: bash docker/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

step "compose: docker/compose.yaml (vendor.compose-spec)"
check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml

step "workflows: .github/workflows/*.yml (vendor.github-workflows)"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

step "Dockerfile: hadolint docker/Dockerfile"
hadolint docker/Dockerfile
echo "ok -- no findings"

step "Prometheus: promtool check config docker/prometheus.yml"
if command -v promtool >/dev/null 2>&1; then
  promtool check config docker/prometheus.yml
else
  echo "promtool not installed: skipped (tests/integration/test_deploy_files.py still checks the targets)"
fi
