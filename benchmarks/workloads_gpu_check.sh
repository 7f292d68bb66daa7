#!/usr/bin/env bash
# The workloads (train, infer, nbody) on a real GPU machine, in under 180 s on one H100/H200:
#   1. train GPT-124M bf16, eager (one GPU: the plain model; more: DDP on 2, 4 ... N);
#      infer Llama-3-8B-shaped bf16 with the CUDA-graph engine (contexts 512 × batches 1,
#      16, 64 and 4096 × 1, 16; at batch 1 also the other decode attention, matmul);
#      nbody fp32 and fp64 (Triton kernel and plain PyTorch);
#   2. infer batch 1, contexts 512 and 4096, with the decode layer compiled (the GPU
#      default engine); 3. train GPT-124M with torch.compile (each is cut off by the time
#      limit if compilation is slow; the summary says what is missing).
# Usage (repo root, torch with CUDA importable): benchmarks/workloads_gpu_check.sh OUTDIR
# Writes 4 files to OUTDIR: log.txt (machine, versions, stderr), run1.json (`rigbench show
# --json` of 1), run2.json (the results of 2 and 3) and summary.txt (also printed last).
set -uo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
tmp=$(mktemp -d)
log=$out/log.txt
start=$SECONDS
# rigbench's dependencies the GPU image may lack (wheels from scripts/device_wheels.sh)
if ! python3 -c 'import platformdirs, pydantic, typer, rich' 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --find-links .whl platformdirs pydantic > "$tmp/pip.log" 2>&1
fi
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv
  python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
  python3 -c 'import triton; print("triton", triton.__version__)' || echo "triton: not importable"
  nproc
  cat "$tmp/pip.log" 2>/dev/null
} > "$log" 2>&1

run() {  # run NAME SECONDS ENV... -- bench args
  local name=$1 limit=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local t0=$SECONDS
  echo "== $name: limit ${limit}s: ${envs[*]} rigbench bench $*" >> "$log"
  env ${envs[@]+"${envs[@]}"} timeout -s INT -k 10 "$limit" python3 -m rigbench bench "$@" --json \
    --db "$tmp/$name.db" > "$tmp/$name.stdout" 2>> "$log"
  echo "== $name: exit $? after $((SECONDS - t0)) s" >> "$log"
  # From the database: results measured before a time-out are kept there.
  python3 -m rigbench show --json --db "$tmp/$name.db" > "$tmp/$name.json" 2>> "$log" \
    || echo '{"run": null, "results": []}' > "$tmp/$name.json"
}
left() { local l=$((160 - (SECONDS - start) - $1)); [ "$l" -lt 15 ] && l=15; echo "$l"; }

# 1. everything at its defaults but no compilation (infer: the CUDA-graph engine)
run run1 95 -- --only train,infer,nbody --set train.compile=0 --set infer.engine=graph
cp "$tmp/run1.json" "$out/run1.json"
# 2. batch-1 decode with the decode layer compiled, the step captured in a CUDA graph
run infer_compiled "$(left 25)" -- --only infer --set infer.engine=compile \
  --set infer.batches=1 --set infer.contexts=512,4096
# 3. training compiled (inductor's first compile of GPT-124M forward and backward)
run train_compiled "$(left 0)" -- --only train --set train.compile=1
python3 - "$tmp/infer_compiled.json" "$tmp/train_compiled.json" > "$out/run2.json" <<'PY'
import json, sys
docs = [json.load(open(p)) for p in sys.argv[1:]]
print(json.dumps({"runs": [d["run"] for d in docs], "results": [r for d in docs for r in d["results"]]}))
PY
echo "== total $((SECONDS - start)) s" >> "$log"
python3 benchmarks/workloads_summary.py "$out/run1.json" "$out/run2.json" > "$out/summary.txt" 2>> "$log"
grep '^== ' "$log"
cat "$out/summary.txt"
rm -rf "$tmp"
