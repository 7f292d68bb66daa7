#!/usr/bin/env bash
# One GPU-machine call (under 10 minutes on one H100/H200) running the checks of issues 17
# and 18 that had not yet run on a real GPU, then the decode workload whose bandwidth probe
# was changed after the last GPU run. Changes no GPU setting.
#   1. benchmarks/burnin_profiles_gpu_check.sh  -> OUTDIR/profiles/summary.txt
#   2. benchmarks/multinode_gpu_check.sh (1 GPU) -> OUTDIR/multinode/summary.txt
#   3. bench --only infer --json                -> OUTDIR/infer.json
# Usage: benchmarks/session9_gpu_check.sh OUTDIR
# Shorter (device time short): ACCEPT_MIN=0.2 SOAK_MIN=0.15 BENCH_ONLY=collectives BURNIN_MIN=0.2
# PROFILES_S=170 MULTINODE_S=100 benchmarks/session9_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
python3 -c 'import torch; print("torch", torch.__version__)' > "$out/env.txt" 2>&1
nvidia-smi >> "$out/env.txt" 2>&1
timeout "${PROFILES_S:-215}" bash benchmarks/burnin_profiles_gpu_check.sh "$out/profiles" > "$out/profiles.log" 2>&1
echo "profiles exit $?" >> "$out/env.txt"
timeout "${MULTINODE_S:-125}" bash benchmarks/multinode_gpu_check.sh "$out/multinode" 1 > "$out/multinode.log" 2>&1
echo "multinode exit $?" >> "$out/env.txt"
[ "${WITH_INFER:-0}" = 1 ] && timeout 50 python3 -m rigbench bench --only infer --json --db "$out/infer.db" \
  > "$out/infer.json" 2> "$out/infer.err"
echo "infer exit $?" >> "$out/env.txt"
