# Sourced by the other scripts: LibTorch from the shared cache and a cargo target folder
# outside the clone, so CI and later builds on this machine reuse both.
RANKDISTILL_CACHE="${RANKDISTILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rankdistill}"
export RANKDISTILL_CACHE
LIBTORCH="$("$(dirname "${BASH_SOURCE[0]}")/setup-libtorch.sh")"
export LIBTORCH
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RANKDISTILL_CACHE/target}"
export RD_SHARED_DATA="${RD_SHARED_DATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/data}"
