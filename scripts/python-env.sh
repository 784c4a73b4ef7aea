#!/usr/bin/env bash
# Python environments for the examples and the Python interoperability tests, as virtual
# environments in the rankdistill cache (outside the clone, reused by CI and later runs).
#
#   scripts/python-env.sh small   # grpcio, grpcio-tools, protobuf, numpy, safetensors (~40 MB)
#   scripts/python-env.sh torch   # torch 2.13.0, full PyPI wheel set (~2.7 GB download), numpy
#   scripts/python-env.sh faiss   # faiss-cpu, numpy (the scale benchmark's baseline)
#
# Prints the venv's python on stdout (everything else goes to stderr). Idempotent: a venv whose
# stamp matches its pinned requirements file (examples/python/requirements*.txt) and the base
# interpreter is reused at once; otherwise it is rebuilt from scratch, under a lock so that
# concurrent callers (parallel tests) wait for one install instead of racing. The stamp is
# written last, after an import check, so an interrupted install is redone on the next call.
set -euo pipefail

usage() {
  echo "usage: $0 small|torch|faiss" >&2
  exit 2
}
[[ $# -eq 1 ]] || usage
flavour="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$flavour" in
  small)
    requirements="$here/examples/python/requirements.txt"
    check='import grpc, grpc_tools.protoc, google.protobuf, numpy, safetensors.numpy'
    what="grpcio, grpcio-tools, protobuf, numpy, safetensors (about 40 MB)"
    pip_flags=()
    ;;
  faiss)
    requirements="$here/examples/python/requirements-faiss.txt"
    check='import faiss, numpy; faiss.IndexHNSWFlat'
    what="faiss-cpu and numpy (about 30 MB)"
    pip_flags=()
    ;;
  torch)
    requirements="$here/examples/python/requirements-torch.txt"
    check='import torch, numpy; torch.jit.script'
    what="torch with its CUDA wheels and numpy (about 2.7 GB download, 5 GB on disk)"
    # The wheels are large: do not keep a second copy in pip's cache.
    pip_flags=(--no-cache-dir)
    ;;
  *) usage ;;
esac

cache="${RANKDISTILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rankdistill}"
venv="$cache/python-$flavour"
python="$venv/bin/python"
stamp="$venv/.rankdistill-stamp"
base="${PYTHON:-python3}"

base_exe="$(command -v "$base" || true)"
if [[ -z "$base_exe" ]]; then
  echo "python-env: '$base' not found: install Python 3.10 or newer (or set PYTHON)" >&2
  exit 1
fi
base_id="$("$base" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')"
if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "python-env: $base is Python $base_id; 3.10 or newer is needed (set PYTHON)" >&2
  exit 1
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1) $base_id"

if [[ -x "$python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
  echo "$python"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/python-$flavour.lock"
flock 9
# Another caller may have finished the install while this one waited for the lock.
if [[ -x "$python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
  echo "$python"
  exit 0
fi

echo "python-env: creating $venv: $what" >&2
rm -rf "$venv"
if ! "$base" -m venv "$venv" >&2; then
  echo "python-env: '$base -m venv' failed: install the venv module (Debian: python3-venv)" >&2
  exit 1
fi
if ! "$python" -m pip install --quiet --progress-bar off --disable-pip-version-check \
  "${pip_flags[@]}" -r "$requirements" >&2; then
  echo "python-env: pip could not install $requirements into $venv (see pip's error above)" >&2
  exit 1
fi
if ! "$python" -c "$check" >&2; then
  echo "python-env: the $flavour venv was installed but '$check' fails" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "python-env: $flavour ready" >&2
echo "$python"
