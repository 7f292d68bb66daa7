#!/usr/bin/env bash
# One batch of GPU measurements for benchmarks/: rigbench bench (quick and full) and the
# bare reference loops, in the same session, on the same GPUs. Writes everything to $1.
# Usage (on the GPU machine, repo root, rigbench importable): benchmarks/device_session.sh OUTDIR
set -uo pipefail
out=${1:?output folder}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=index,name,driver_version,pcie.link.gen.max,pcie.link.width.max,power.limit --format=csv
  nvidia-smi topo -m
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

python3 -m rigbench info > "$out/info.txt" 2>&1; cat "$out/info.txt"

t0=$(date +%s%N)
python3 -m rigbench bench --quick --json --db "$out/rigbench.db" > "$out/quick.json" 2> "$out/quick.err"
echo "quick exit $? wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee "$out/quick.time"

python3 benchmarks/reference_loops.py > "$out/reference.json" 2> "$out/reference.err"
cat "$out/reference.json" "$out/reference.err"

if [ "${FULL:-1}" = 1 ]; then
  t0=$(date +%s%N)
  python3 -m rigbench bench --full --json --db "$out/rigbench.db" > "$out/full.json" 2> "$out/full.err"
  echo "full exit $? wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee "$out/full.time"
fi
python3 benchmarks/summarize_session.py "$out" | tee "$out/summary.md"
