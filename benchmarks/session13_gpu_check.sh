#!/usr/bin/env bash
# Stop 13, one GPU, one call (about 3-4 minutes): the GPU paths changed since the last GPU run
# and those never run on a GPU. Changes no GPU setting (no power limit, no clocks).
#   1. burnin --find-trip on GPU 0 with a 1-GPU build, --stagger 20 (issue 18: the live
#      PSU-trip finder; one H100 on a 3.3 kW unit cannot trip: two steps, stored as measured)
#   2. monitor --rate 100 --seconds 5 --json (the sampler's tick 0 now read before the clock)
#   3. rigbench cluster --nnodes 1 -- bench --only collectives,train (torchrun in one process;
#      every rank exits with rank 0's code)
#   4. torchrun --nnodes 1 ... burnin --minutes 0.2, and ... doctor (issue 17)
#   5. rigbench cluster with one rank more than the GPUs: bad input, exit 2 from every rank
#   6. bench --quick (ranks from rigbench's fork server, gc.freeze: stop 11)
# Usage: benchmarks/session13_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
t0=$(date +%s)
# each step's JSON straight to $out (what comes back is at most 8 files, and a run cut at
# its limit still returns what it wrote); its stderr's tail to codes.txt
step() {
  echo "$1 exit $2 at $(( $(date +%s) - t0 )) s" | tee -a "$out/codes.txt"
  [ -n "${3:-}" ] && { tail -c 800 "$3" | sed 's/^/    /'; } >> "$out/codes.txt"
}
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader > "$out/codes.txt" 2>&1
gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')

timeout 150 python3 -m rigbench burnin --find-trip --build examples/builds/checks/h100-sxm-1gpu.toml \
  --stagger 20 --gpus 0 --json --db "$w/r.db" > "$out/find_trip.json" 2> "$w/find_trip.err"
step find-trip $? "$w/find_trip.err"
timeout 30 python3 -m rigbench monitor --rate 100 --seconds 5 --json > "$out/monitor.json" 2> "$w/monitor.err"
step monitor $? "$w/monitor.err"
timeout 150 python3 -m rigbench cluster --nnodes 1 --rdzv-endpoint 127.0.0.1:29631 -- \
  bench --only collectives,train --json --db "$w/c.db" > "$out/cluster.json" 2> "$w/cluster.err"
step "cluster bench" $? "$w/cluster.err"
timeout 120 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node "$gpus" --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29632 -m rigbench burnin --minutes 0.2 --json --db "$w/b.db" \
  > "$out/burnin.json" 2> "$w/burnin.err"
step "torchrun burnin" $? "$w/burnin.err"
timeout 60 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node "$gpus" --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29633 -m rigbench doctor --json --db "$w/d.db" \
  > "$out/doctor_tr.json" 2> "$w/doctor_tr.err"
step "torchrun doctor" $? "$w/doctor_tr.err"
timeout 60 python3 -m rigbench cluster --nnodes 1 --nproc-per-node $((gpus + 1)) \
  --rdzv-endpoint 127.0.0.1:29634 -- bench --only collectives --db "$w/x.db" > /dev/null 2> "$w/bad.err"
step "cluster bad input ($((gpus + 1)) ranks)" $? "$w/bad.err"
timeout 120 python3 -m rigbench bench --quick --json --db "$w/q.db" > "$out/quick.json" 2> "$w/quick.err"
step quick $? "$w/quick.err"

python3 - "$w" "$out" > "$out/summary.txt" 2>&1 <<'PY'
import json, sqlite3, sys
from pathlib import Path
w, out = Path(sys.argv[1]), Path(sys.argv[2])
def load(name):
    try:
        t = (out / name).read_text()
        return json.loads(t[t.index("{"):])
    except Exception as e:
        return {"_error": f"{type(e).__name__}: {e}"}
d = load("find_trip.json")
print("find-trip:", d.get("_error", ""), "measured", d.get("measured"), "stopped", d.get("stopped"),
      "findings", [(f.get("id"), f.get("severity")) for f in d.get("findings", [])])
for r in d.get("ramps", []):
    print(f"  GPU {r['gpu']}: idle {r['idle_w']} W, highest {r['peak_w']} W, settled {r['sustained_w']} W, {r.get('source')}")
for s in (d.get("staggered") or []) + d.get("simultaneous", []):
    print(f"  step {s['ramping']} stagger {s['stagger_ms']} ms: peak {s['gpus_peak_w']} W ({s['samples']} samples), "
          f"{s['outcome']}, observed {s['observed']}, groups {[(g['label'], round(g['load_w']), g['spike_capacity_w']) for g in s['groups']]}")
err = (w / "find_trip.err").read_text()
print("  warning line:", "warning: --find-trip" in err)
try:
    con = sqlite3.connect(w / "r.db")
    print("  stored:", con.execute("SELECT json_extract(params, '$.state'), json_extract(params, '$.ramping'), value "
          "FROM results WHERE benchmark = 'burnin.find_trip' ORDER BY id").fetchall())
except Exception as e:
    print("  r.db:", e)
m = load("monitor.json")
s = m.get("sampler", {})
print("monitor:", m.get("_error", ""), s.get("achieved_hz"), "Hz of", s.get("rate_hz"), "ticks", s.get("ticks"),
      "missed", s.get("missed"), "read ms", s.get("read_ms_mean"), s.get("read_ms_max"))
for f, r in m.get("fields", {}).items():
    print(f"  {f:20s} {r['cadence']:4s} read {r['read_hz']} Hz, changes {r['changes_hz']}/s")
for name in ("cluster", "quick"):
    d = load(f"{name}.json")
    print(name, d.get("_error", ""), len(d.get("results", [])), "rows")
    for r in d.get("results", []):
        p = r["params"]
        keep = {k: p.get(k) for k in ("op", "dtype", "world_size", "scope", "bytes", "direction") if k in p}
        print("   ", r["benchmark"], r["metric"], r["status"], keep, r.get("value"), r.get("unit"),
              (r.get("judgement") or {}).get("verdict"), (r.get("message") or "")[:60])
b = load("burnin.json")
print("torchrun burnin:", b.get("_error", ""), b.get("verdict"), [(g.get("label"), g.get("verdict")) for g in b.get("gpus", [])])
doc = load("doctor_tr.json")
print("torchrun doctor:", doc.get("_error", ""), [(f["id"], f["severity"]) for f in doc.get("findings", [])])
bad = (w / "bad.err").read_text()
print("bad input:", [l for l in bad.splitlines() if l.startswith("error:")][:3], "Traceback" in bad)
PY
cat "$out/summary.txt"
