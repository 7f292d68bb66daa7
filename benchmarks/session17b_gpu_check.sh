#!/usr/bin/env bash
# Stop 17 (about 1 minute on one GPU): bench.hostlink with its host buffers made on the GPU's
# NUMA node (e3b712a): each row's params.numa and verdict, three runs, and the same under
# a taskset that leaves the process one CPU. Changes no GPU setting.
# Usage: benchmarks/session17b_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
show='import json, sys
d = json.load(sys.stdin)
for r in d["results"]:
    j = r.get("judgement") or {}
    p = r["params"]
    print(r["metric"], p.get("host_memory"), r["status"], round(r["value"] or 0, 1), p.get("numa"),
          p.get("gpu_numa_nodes"), p.get("process_numa_nodes"), j.get("verdict"), j.get("cause"))
print("findings:", [f["id"] for f in d["findings"]])'
for i in 1 2 3; do
  timeout 120 python3 -m rigbench bench --only hostlink --json --db "$w/h.db" 2> "$out/err$i.txt" \
    | python3 -c "$show" >> "$out/hostlink.txt" 2>&1
  echo "exit ${PIPESTATUS[0]}" >> "$out/hostlink.txt"
done
echo "taskset -c 3" >> "$out/hostlink.txt"
timeout 120 taskset -c 3 python3 -m rigbench bench --only hostlink --json --db "$w/t.db" 2> "$out/err4.txt" \
  | python3 -c "$show" >> "$out/hostlink.txt" 2>&1
echo "exit ${PIPESTATUS[0]}" >> "$out/hostlink.txt"
python3 -m rigbench info --json | python3 -c 'import json, sys; s = json.load(sys.stdin)["system"]; print("system numa:", s.get("numa_nodes"), s.get("process_numa_nodes"))' >> "$out/hostlink.txt" 2>&1
cat "$out"/err*.txt | grep -E "error|Traceback" | head >> "$out/hostlink.txt"
