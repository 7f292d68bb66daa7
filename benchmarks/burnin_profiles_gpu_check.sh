#!/usr/bin/env bash
# Issue 18 on a real GPU machine, in about 5-6 minutes on one H100/H200:
#   1. what each NVML read costs here (benchmarks/nvml_read_costs.py): each query alone, the
#      instantaneous power field alone, and 1 vs 7 fields in one call (per call or per
#      field?) - the figure the simulated cost model (nvml_read_ms) stands for
#   2. monitor --rate 100 for 10 s, --json: the achieved rate with the fast/slow split and
#      the refresh rate of every figure (value changes per second of reads per second)
#   3. burnin --profile accept --minutes 0.5 on all GPUs, --json (its gate, the VRAM step after
#      the load: figures.vram and gate.vram), with monitor --rate 100 beside it for 10 s: the
#      changes/s of power and SM clock of a busy GPU
#   4. burnin --profile soak --minutes 0.5, --json: the same gate and VRAM step under the soak
#      profile (the quick profile runs the same code, so it is left out to keep the time)
#   5. burnin --sweep-power at the current limit, --json: GEMM TFLOP/s per W and training
#      tokens/s per W (GPT-124M on one GPU) and the curve's PNG. As a normal user it must say
#      in one line that setting a limit needs root and measure at the current limit. As root it
#      sweeps CUR:CUR:1, i.e. it sets the limit the GPU already has (no change) and puts it
#      back; a VM that refuses even root must say so in one line and measure at the current
#      limit. SWEEP_AS_ROOT=0 skips it as root.
#   6. burnin --find-trip on the real GPU(s) with a 1-GPU build
#      (examples/builds/checks/h100-sxm-1gpu.toml: one H100 SXM5 on one 3.3 kW unit),
#      --stagger 20, --gpus 0: the warning line, then 2 steps (staggered, together; with one GPU
#      both are the same ramp), each stored as measured. It ramps ONE GPU: no trip is possible
#      on a server supply sized for eight.
# It changes no GPU setting otherwise. Nothing is fatal.
#
# Usage: benchmarks/burnin_profiles_gpu_check.sh OUTDIR
# OUTDIR gets: summary.txt (read first), log.txt, nvml_read_costs.json, monitor_idle.json,
# monitor_load.json, burnin_accept.json, burnin_soak.json, sweep.json, find_trip.json,
# find_trip.txt (its stderr: the warning line), r.db and r.db.plots/ (the
# burn-ins' and the sweep's PNGs).
. "$(dirname "$0")/gpu_check_env.sh" "$@"
log="$out/log.txt"
: > "$log"
step() { printf '\n=== %s (%s) ===\n' "$1" "$(date -u +%H:%M:%S)" | tee -a "$log"; }
secs() { date +%s; }

step "environment"
{
  date -u
  id -u
  nvidia-smi --query-gpu=index,name,driver_version,power.limit,power.default_limit --format=csv
  git log -1 --format='rigbench commit %h %s' 2>/dev/null
} >> "$log" 2>&1

step "1. NVML read costs (GPU 0)"
timeout 120 python3 benchmarks/nvml_read_costs.py "${NVML_REPEATS:-100}" > "$out/nvml_read_costs.json" 2>> "$log"
echo "exit $?" >> "$log"

step "2. monitor --rate 100, idle, 10 s"
timeout 60 python3 -m rigbench monitor --rate 100 --seconds 10 --json \
  > "$out/monitor_idle.json" 2>> "$log"
echo "exit $?" >> "$log"

step "3. burnin --profile accept --minutes 0.5 (VRAM step after), monitor --rate 100 beside it"
t=$(secs)
timeout 300 python3 -m rigbench burnin --profile accept --minutes "${ACCEPT_MIN:-0.3}" --json --db "$out/r.db" \
  > "$out/burnin_accept.json" 2>> "$log" &
bpid=$!
sleep 15  # the load is up after the burn-in's start-up
timeout 60 python3 -m rigbench monitor --rate 100 --seconds 10 --json \
  > "$out/monitor_load.json" 2>> "$log"
echo "monitor exit $?" >> "$log"
wait "$bpid"
echo "burnin exit $? after $(( $(secs) - t )) s" | tee -a "$log"

step "4. burnin --profile soak --minutes 0.5 (SOAK_MIN=0 skips it)"
t=$(secs)
if [ "${SOAK_MIN:-0.25}" != 0 ]; then
  timeout 300 python3 -m rigbench burnin --profile soak --minutes "${SOAK_MIN:-0.25}" --json --db "$out/r.db" \
    > "$out/burnin_soak.json" 2>> "$log"
  echo "exit $? after $(( $(secs) - t )) s" | tee -a "$log"
fi

step "5. burnin --sweep-power at the current limit (GEMM and training per W, the plot)"
t=$(secs)
if [ "$(id -u)" = 0 ] && [ "${SWEEP_AS_ROOT:-1}" = 0 ]; then
  echo "skipped: SWEEP_AS_ROOT=0" | tee -a "$log"
  echo '{"skipped": "root"}' > "$out/sweep.json"
else
  spec="300:700:200"  # not root: one line, then the current limit only
  if [ "$(id -u)" = 0 ]; then
    cur=$(nvidia-smi -i 0 --query-gpu=power.limit --format=csv,noheader,nounits 2>/dev/null | head -1)
    cur=${cur%%.*}
    [ -n "$cur" ] && spec="${cur}:${cur}:1"  # the limit it already has: no change, put back after
  fi
  echo "sweep spec $spec as uid $(id -u)" | tee -a "$log"
  timeout 300 python3 -m rigbench burnin --sweep-power "$spec" --gpus 0 --json --db "$out/r.db" \
    > "$out/sweep.json" 2>> "$log"
  echo "exit $? after $(( $(secs) - t )) s" | tee -a "$log"
fi

step "6. burnin --find-trip on GPU 0 with a 1-GPU build, --stagger 20"
t=$(secs)
timeout 240 python3 -m rigbench burnin --find-trip --build examples/builds/checks/h100-sxm-1gpu.toml \
  --stagger 20 --gpus 0 --json --db "$out/r.db" > "$out/find_trip.json" 2> "$out/find_trip.txt"
echo "exit $? after $(( $(secs) - t )) s" | tee -a "$log"
cat "$out/find_trip.txt" >> "$log"

step "summary"
python3 - "$out" > "$out/summary.txt" 2>> "$log" <<'PY'
import json, sqlite3, sys
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
for name in ("burnin_accept.json", "burnin_soak.json"):
    doc = load(name)
    if not doc:
        continue
    g = doc.get("gate", {})
    print(f"{name}: verdict {g.get('verdict')}, pass {g.get('pass')}, profile {g.get('profile')}, "
          f"full_length {g.get('full_length')}, failed {g.get('failed')}, warnings {g.get('warnings')}, "
          f"plot {doc.get('plot')}")
    for label, v in (g.get("vram") or {}).items():
        print(f"  VRAM {label}: {v.get('status')}, {v.get('bad_words')} bad words, "
              f"{(v.get('bytes_tested') or 0) / 2**30:.1f} GiB, ranges {v.get('bad_ranges')}")
    for gpu in doc.get("gpus", []):
        vr = gpu.get("figures", {}).get("vram") or {}
        print(f"  {gpu.get('label')}: {gpu.get('verdict')}, VRAM test {vr.get('seconds')} s; "
              + "; ".join(r["message"] for r in gpu.get("reasons", []))[:400])
doc = load("sweep.json")
if doc:
    print(f"sweep: limits_set {doc.get('limits_set')}, notes {doc.get('notes')}, plot {doc.get('plot')}, "
          f"best {doc.get('best_per_watt')}")
    for p in doc.get("points", []):
        print(f"  GPU {p['gpu']} at {p['enforced_limit_w']} W (set {p['limit_w']}): "
              f"{p['tflops']} TFLOP/s {p['dtype']} at {p['power_mean_w']} W = {p['tflops_per_w']}/W; "
              f"train {p['train_size']} {p['tokens_per_s']} tokens/s at {p['train_power_mean_w']} W "
              f"= {p['tokens_per_s_per_w']}/W; problems {p['problems']}")
text = (out / "find_trip.txt").read_text() if (out / "find_trip.txt").exists() else ""
print("find-trip: " + ("warning line printed" if "warning: --find-trip" in text else "NO warning line")
      + f"; stderr: {text.strip()[-300:]!r}")
doc = load("find_trip.json")
if doc:
    print(f"find-trip (json): measured {doc.get('measured')}, stopped {doc.get('stopped')}, "
          f"first_trip {doc.get('first_trip')}, findings {[f['id'] for f in doc.get('findings', [])]}")
    for r in doc.get("ramps", []):
        print(f"  GPU {r['gpu']}: idle {r['idle_w']} W, highest {r['peak_w']} W, settled {r['sustained_w']} W")
    for s in (doc.get("staggered") or []) + doc.get("simultaneous", []):
        print(f"  step {s['ramping']} GPU(s), stagger {s['stagger_ms']} ms: peak {s['gpus_peak_w']} W "
              f"({s['samples']} samples), {s['outcome']}, observed {s['observed']}, "
              f"groups {[(g['label'], round(g['load_w']), g['spike_capacity_w']) for g in s['groups']]}")
try:
    con = sqlite3.connect(out / "r.db")
    rows = con.execute("SELECT run_id, json_extract(params, '$.state'), json_extract(params, '$.ramping'),"
                       " value FROM results WHERE benchmark = 'burnin.find_trip' ORDER BY id").fetchall()
    print(f"find-trip records in r.db (run, state, ramping, W): {rows}")
    plots = sorted(p.name for p in (out / "r.db.plots").glob("*.png"))
    print(f"plots: {plots}")
except Exception as exc:
    print(f"r.db: {exc}")
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
