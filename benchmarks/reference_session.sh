#!/usr/bin/env bash
# Healthy-hardware reference figures on one GPU: the bare burst/sustained loops
# (benchmarks/burst_sustained.py), rigbench bench --full, the train and infer workloads, and
# doctor, each timed, all logs under OUTDIR.
# Usage (repo root, on the GPU machine, rigbench importable): benchmarks/reference_session.sh OUTDIR
set -uo pipefail
out=${1:?usage: benchmarks/reference_session.sh OUTDIR}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,power.limit,power.default_limit,clocks.max.sm,pcie.link.gen.max,pcie.link.width.max --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
python3 benchmarks/burst_sustained.py "${SUSTAIN_S:-10}" > "$out/burst_sustained.json" 2> "$out/burst_sustained.err"
tail -12 "$out/burst_sustained.err"
for step in "bench --full" "bench --only train,infer" "doctor"; do
  name=${step// /_}; name=${name//,/_}
  t0=$(date +%s%N)
  python3 -m rigbench $step --json --db "$out/rigbench.db" > "$out/$name.json" 2> "$out/$name.err"
  echo "$step: exit $? wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
