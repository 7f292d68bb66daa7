#!/usr/bin/env bash
# Second call of stop 10 on one GPU (about 2.5 minutes): why `monitor --rate 100 --json`
# exited 1, `bench --only collectives,train` with and without `torchrun --nnodes 1` after the
# fix to the one-rank collectives row, and the decode workload's bandwidth probe.
# Changes no GPU setting. Usage: benchmarks/session10b_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
timeout 40 python3 -m rigbench monitor --rate 100 --seconds 8 --json > "$w/monitor.json" 2> "$w/monitor.err"
echo "monitor exit $?"
timeout 30 python3 -m rigbench monitor --rate 100 --seconds 5 > "$w/monitor_table.txt" 2>&1
echo "monitor (table) exit $?"
timeout 120 python3 -m rigbench bench --only collectives,train --json --db "$w/plain.db" \
  > "$w/plain.json" 2> "$w/plain.err"
echo "plain exit $?"
timeout 120 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node 1 --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29541 -m rigbench bench --only collectives,train --json \
  --db "$w/tr.db" > "$w/torchrun.json" 2> "$w/torchrun.err"
echo "torchrun exit $?"
timeout 90 python3 -m rigbench bench --only infer --json --db "$w/infer.db" \
  > "$w/infer.json" 2> "$w/infer.err"
echo "infer exit $?"
{
  echo "== monitor.err"; tail -c 3000 "$w/monitor.err"
  echo "== monitor.json"; head -c 4000 "$w/monitor.json"
  echo; echo "== monitor table"; tail -c 2500 "$w/monitor_table.txt"
  echo "== torchrun.err"; tail -c 1500 "$w/torchrun.err"
  echo "== plain.err"; tail -c 800 "$w/plain.err"
  echo "== infer.err"; tail -c 800 "$w/infer.err"
} > "$out/logs.txt" 2>&1
python3 - "$w" > "$out/summary.txt" 2>&1 <<'PY'
import json, sys
from pathlib import Path
w = Path(sys.argv[1])
def load(name):
    try:
        t = (w / name).read_text()
        return json.loads(t[t.index("{"):])
    except Exception as e:
        return {"_error": f"{type(e).__name__}: {e}"}
for name in ("plain", "torchrun", "infer"):
    d = load(f"{name}.json")
    print(name, d.get("_error", ""), len(d.get("results", [])), "rows")
    for r in d.get("results", []):
        p = r["params"]
        print("   ", r["benchmark"], r["metric"], r["status"], {k: p.get(k) for k in ("op", "world_size", "scope", "batch", "context", "model") if k in p},
              r.get("value"), r.get("unit"), (r.get("judgement") or {}).get("verdict"), (r.get("message") or "")[:80])
PY
cat "$out/summary.txt"
