#!/usr/bin/env bash
# Issue 18 on a real GPU machine, in about 3 minutes on one H100/H200:
#   1. what each NVML read costs here (benchmarks/nvml_read_costs.py): each query alone, the
#      instantaneous power field alone, and 1 vs 7 fields in one call (per call or per
#      field?) - the figure the simulated cost model (nvml_read_ms) stands for
#   2. monitor --rate 100 for 10 s, --json: the achieved rate with the fast/slow split and
#      the refresh rate of every figure (value changes per second of reads per second)
#   3. the same with a GEMM load running (burnin for 30 s on all GPUs, the monitor beside
#      it), so the changes/s of power and SM clock are those of a busy GPU
# It changes no GPU setting (no power limits, no clocks). Nothing is fatal.
#
# Usage: benchmarks/burnin_profiles_gpu_check.sh OUTDIR
# OUTDIR gets: summary.txt (read first), log.txt, nvml_read_costs.json, monitor_idle.json,
# monitor_load.json, burnin.json.
set -uo pipefail
out=${1:?usage: benchmarks/burnin_profiles_gpu_check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
log="$out/log.txt"
: > "$log"
step() { printf '\n=== %s (%s) ===\n' "$1" "$(date -u +%H:%M:%S)" | tee -a "$log"; }

step "environment"
{
  date -u
  nvidia-smi --query-gpu=index,name,driver_version,power.limit --format=csv
  git log -1 --format='rigbench commit %h %s' 2>/dev/null
} >> "$log" 2>&1

step "1. NVML read costs (GPU 0)"
timeout 120 python3 benchmarks/nvml_read_costs.py 300 > "$out/nvml_read_costs.json" 2>> "$log"
echo "exit $?" >> "$log"

step "2. monitor --rate 100, idle, 10 s"
timeout 60 python3 -m rigbench monitor --rate 100 --seconds 10 --json \
  > "$out/monitor_idle.json" 2>> "$log"
echo "exit $?" >> "$log"

step "3. monitor --rate 100 beside a 30 s burnin"
timeout 180 python3 -m rigbench burnin --minutes 0.5 --json > "$out/burnin.json" 2>> "$log" &
bpid=$!
sleep 12  # the load is up after the burn-in's start-up
timeout 60 python3 -m rigbench monitor --rate 100 --seconds 10 --json \
  > "$out/monitor_load.json" 2>> "$log"
echo "monitor exit $?" >> "$log"
wait "$bpid"
echo "burnin exit $?" >> "$log"

step "summary"
python3 - "$out" > "$out/summary.txt" 2>> "$log" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except Exception as exc:
        print(f"{name}: not readable ({exc})")
        return None
costs = load("nvml_read_costs.json")
if costs:
    print(f"NVML read costs on {costs['gpu']} (driver {costs['driver']}), median ms:")
    for k, v in costs["queries"].items():
        print(f"  {k:32s} {v.get('median_ms', v.get('error'))}")
for name in ("monitor_idle.json", "monitor_load.json"):
    doc = load(name)
    if not doc:
        continue
    s = doc["sampler"]
    print(f"{name}: {s['achieved_hz']} Hz of {s['rate_hz']} (missed {s['missed']}, "
          f"read of every GPU {s['read_ms_mean']} ms mean, {s['read_ms_max']} max)")
    for f, r in doc.get("fields", {}).items():
        print(f"  {f:20s} {r['cadence']:4s} read {r['read_hz']} Hz, changes {r['changes_hz']}/s")
PY
cat "$out/summary.txt"
