# Sourced by the GPU check scripts, first thing: `. "$(dirname "$0")/gpu_check_env.sh" "$@"`.
# Makes OUTDIR (the script's first argument) and sets $out to its absolute path, moves to the
# repository root, and runs rigbench from src/ with NVLink multicast off and Python unbuffered.
set -uo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
