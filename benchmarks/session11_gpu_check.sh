#!/usr/bin/env bash
# Stop 11, one GPU (about 3 minutes): the GPU paths this stop touched (benchmark modules
# import torch where they use it; workers and training ranks gc.freeze()) against the
# figures of the earlier calls. Changes no GPU setting. Usage: benchmarks/session11_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
timeout 300 python3 -m rigbench bench --quick --json --db "$w/q.db" > "$w/quick.json" 2> "$w/quick.err"
echo "quick exit $?"
timeout 200 python3 -m rigbench bench --only train --json --db "$w/t.db" > "$w/train.json" 2> "$w/train.err"
echo "train exit $?"
{ echo "== quick.err"; tail -c 1500 "$w/quick.err"; echo "== train.err"; tail -c 1500 "$w/train.err"; } > "$out/logs.txt"
python3 - "$w" > "$out/summary.txt" 2>&1 <<'PY'
import json, sys
from pathlib import Path
w = Path(sys.argv[1])
for name in ("quick", "train"):
    try:
        t = (w / f"{name}.json").read_text()
        d = json.loads(t[t.index("{"):])
    except Exception as e:
        print(name, "unreadable:", type(e).__name__, e)
        continue
    print(name, len(d.get("results", [])), "rows")
    for r in d.get("results", []):
        p = r["params"]
        keep = {k: p.get(k) for k in ("dtype", "op", "direction", "world_size", "bytes", "context") if k in p}
        j = r.get("judgement") or {}
        print("   ", r["benchmark"], r["metric"], r["status"], keep, r.get("value"), r.get("unit"),
              j.get("verdict"), (r.get("message") or "")[:70])
PY
cat "$out/summary.txt"
