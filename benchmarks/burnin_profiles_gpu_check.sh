#!/usr/bin/env bash
# Issue 18 on a real GPU machine, in about 3 minutes on one H100/H200:
#   1. what each NVML read costs here (benchmarks/nvml_read_costs.py): each query alone, the
#      instantaneous power field alone, and 1 vs 7 fields in one call (per call or per
#      field?) - the figure the simulated cost model (nvml_read_ms) stands for
#   2. monitor --rate 100 for 10 s, --json: the achieved rate with the fast/slow split and
#      the refresh rate of every figure (value changes per second of reads per second)
#   3. burnin --profile quick (2 min) on all GPUs, --json (its gate), with monitor --rate 100
#      beside it for 10 s: the changes/s of power and SM clock of a busy GPU
#   4. bench --only vram: the patterns over 90 % of free memory per GPU (expect 0 bad words)
#   5. burnin --sweep-power 300:700:200 as the user it runs as: without root it must say so in
#      one line and measure at the current limit only (it changes no setting then). Run as
#      root it WOULD set limits (and put them back): the script skips it as root unless
#      SWEEP_AS_ROOT=1.
# It changes no GPU setting otherwise. Nothing is fatal. About 4-5 minutes on one H100/H200.
#
# Usage: benchmarks/burnin_profiles_gpu_check.sh OUTDIR
# OUTDIR gets: summary.txt (read first), log.txt, nvml_read_costs.json, monitor_idle.json,
# monitor_load.json, burnin_quick.json, vram.json, sweep.json.
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

step "3. burnin --profile quick, monitor --rate 100 beside it"
timeout 300 python3 -m rigbench burnin --profile quick --json --db "$out/r.db" \
  > "$out/burnin_quick.json" 2>> "$log" &
bpid=$!
sleep 30  # the load is up after the burn-in's start-up
timeout 60 python3 -m rigbench monitor --rate 100 --seconds 10 --json \
  > "$out/monitor_load.json" 2>> "$log"
echo "monitor exit $?" >> "$log"
wait "$bpid"
echo "burnin exit $?" >> "$log"

step "4. bench --only vram"
timeout 300 python3 -m rigbench bench --only vram --json --db "$out/r.db" \
  > "$out/vram.json" 2>> "$log"
echo "exit $?" >> "$log"

step "5. burnin --sweep-power (no root: one line, current limit only)"
if [ "$(id -u)" = 0 ] && [ "${SWEEP_AS_ROOT:-0}" != 1 ]; then
  echo "skipped: running as root would set power limits (SWEEP_AS_ROOT=1 to allow)" | tee -a "$log"
  echo '{"skipped": "root"}' > "$out/sweep.json"
else
  timeout 300 python3 -m rigbench burnin --sweep-power 300:700:200 --json \
    > "$out/sweep.json" 2>> "$log"
  echo "exit $?" >> "$log"
fi

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
doc = load("burnin_quick.json")
if doc:
    g = doc.get("gate", {})
    print(f"burnin --profile quick: verdict {g.get('verdict')}, pass {g.get('pass')}, "
          f"full_length {g.get('full_length')}, failed {g.get('failed')}, warnings {g.get('warnings')}")
doc = load("vram.json")
if doc:
    for r in doc.get("results", []):
        if r.get("benchmark") == "vram":
            p = r.get("params", {})
            print(f"vram {r.get('devices')}: {r.get('status')} {r.get('value')} bad words, "
                  f"{p.get('bytes_tested', 0) / 2**30:.1f} GiB tested, ranges {p.get('bad_ranges')}")
doc = load("sweep.json")
if doc:
    print(f"sweep: notes {doc.get('notes')}, points {doc.get('points')}")
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
