#!/usr/bin/env bash
# Issue 17 on one GPU machine (a few minutes): `bench --only collectives,train` under
# torchrun with --nnodes 1 against the same command without torchrun.
#   1. without torchrun (rigbench's own ranks)          -> plain.json
#   2. torchrun --nnodes 1 --nproc-per-node G (c10d)     -> torchrun.json
#   3. torchrun on 2 GPUs as two one-GPU "nodes" on localhost (NCCL across a process
#      boundary; inter-node and per-node rows, node scaling, params.nccl_transport)
#      -> two-nodes.json
#   4. doctor under torchrun: versions / interfaces / clock findings -> doctor.json
#   5. burnin --minutes 0.5 under torchrun --nnodes 1 (one rank a GPU; rank 0 writes one run
#      with host:GPUk labels)                         -> burnin.json
#   6. bad input under torchrun (bench --bogus, burnin --minutes 0, and one rank more than
#      the GPUs for burnin and bench): one "error:" line each and exit code 2 from every
#      rank, no rigbench traceback -> bad-input.txt
# What to look for in summary.txt: steps 1 and 2 give the same (metric, op, bytes,
# world_size) rows and busbw within run-to-run spread (a few %); step 2 exits 0 and one
# database only is written; step 3 has scope=inter-node rows; step 5 exits 0 with every GPU
# PASS under a host:GPUk label and the burn-in's telemetry in the run; step 6 prints one error
# line per case and "exitcodes: 2 ..." for every rank. No GPU setting is changed. About 2.5
# minutes on one H100.
#
# Usage, from anywhere: benchmarks/multinode_gpu_check.sh OUTDIR [GPUS]
# OUTDIR gets summary.txt (read this first), log.txt and each step's JSON.
. "$(dirname "$0")/gpu_check_env.sh" "$@"
gpus=${2:-$(python -c 'import torch; print(torch.cuda.device_count())')}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$out/log.txt"
sum="$out/summary.txt"
: > "$log"
: > "$sum"
note() { echo "$*" | tee -a "$sum"; }
json_of() { python - "$1" <<'PY'
import sys
t = open(sys.argv[1]).read()
print(t[t.find("{"):] if "{" in t else "{}")
PY
}
# one_node PORT NAME ARGS...: `rigbench ARGS --json` under torchrun --nnodes 1, one rank a
# GPU; its JSON to $out/NAME.json, its database $work/NAME.db
one_node() {
  local port=$1 name=$2
  shift 2
  python -m torch.distributed.run --nnodes 1 --nproc-per-node "$gpus" --rdzv-backend c10d \
    --rdzv-endpoint "127.0.0.1:$port" -m rigbench "$@" --json --db "$work/$name.db" \
    > "$work/$name.out" 2>> "$log"
  note "exit $?"
  json_of "$work/$name.out" > "$out/$name.json"
}

note "== GPUs: $gpus"
nvidia-smi --query-gpu=index,name,driver_version --format=csv >> "$log" 2>&1

note "== 1. bench without torchrun"
python -m rigbench bench --only "${BENCH_ONLY:-collectives,train}" --json --db "$work/plain.db" \
  > "$work/plain.out" 2>> "$log"
note "exit $?"
json_of "$work/plain.out" > "$out/plain.json"

note "== 2. torchrun --nnodes 1 --nproc-per-node $gpus"
one_node 29517 torchrun bench --only "${BENCH_ONLY:-collectives,train}"

note "== 3. two one-GPU nodes on localhost"
if [ "$gpus" -ge 2 ]; then
  for n in 0 1; do
    CUDA_VISIBLE_DEVICES=$n python -m torch.distributed.run --nnodes 2 --nproc-per-node 1 \
      --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:29518 --rdzv-id gpu2 \
      -m rigbench bench --only "${BENCH_ONLY:-collectives,train}" --json --db "$work/two$n.db" \
      > "$work/two$n.out" 2>> "$log" &
    [ "$n" = 0 ] && sleep 3  # node 0 hosts the rendezvous store
  done
  wait
  for n in 0 1; do [ -s "$work/two$n.db" ] && json_of "$work/two$n.out" > "$out/two-nodes.json"; done
else
  note "skipped: needs 2 GPUs"
fi

note "== 4. doctor under torchrun (cross-node checks on one node)"
one_node 29519 doctor doctor

note "== 5. burnin --minutes 0.5 under torchrun --nnodes 1 --nproc-per-node $gpus"
one_node 29520 burnin burnin --minutes "${BURNIN_MIN:-0.3}"
python - "$work/burnin.db" <<'PY' | tee -a "$sum"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
print("burnin run status:", con.execute("SELECT status FROM runs").fetchall())
print("burnin telemetry samples per rank:",
      con.execute("SELECT gpu, COUNT(*) FROM telemetry_samples GROUP BY gpu").fetchall())
PY

note "== 6. bad input under torchrun"
: > "$out/bad-input.txt"
more=$((gpus + 1))  # one rank more than the node has GPUs
for case in "$gpus|bench --bogus" "$gpus|burnin --minutes 0" \
            "$more|burnin --minutes 0.5" "$more|bench --only collectives"; do
  n=${case%%|*}
  args=${case#*|}
  # shellcheck disable=SC2086
  python -m torch.distributed.run --nnodes 1 --nproc-per-node "$n" --rdzv-backend c10d \
    --rdzv-endpoint 127.0.0.1:29521 -m rigbench $args --db "$work/bad.db" \
    > /dev/null 2> "$work/bad.err"
  rc=$?
  cat "$work/bad.err" >> "$out/bad-input.txt"
  note "$n ranks, $args: torchrun exit $rc; error lines: $(grep -c '^error:' "$work/bad.err");" \
    "exitcodes: $(grep -E '^ +exitcode +:' "$work/bad.err" | awk '{print $3}' | tr '\n' ' ');" \
    "rigbench frames: $(grep -c 'rigbench/' "$work/bad.err")"
done

python - "$out" <<'PY' | tee -a "$sum"
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text()).get("results", [])
    except (OSError, ValueError):
        return []
def rows(res):
    return {
        (r["benchmark"], r["metric"], r["params"].get("op"), r["params"].get("bytes"),
         r["params"].get("world_size")): r.get("value")
        for r in res
        if r["params"].get("scope", "cluster") in ("cluster", "node") or r["benchmark"] == "collectives"
    }
plain, tr = load("plain.json"), load("torchrun.json")
a, b = rows([r for r in plain if r["benchmark"] == "collectives"]), rows([r for r in tr if r["benchmark"] == "collectives"])
print(f"collectives rows: plain {len(a)}, torchrun {len(b)}, same keys: {set(a) == set(b)}")
for k in sorted(set(a) & set(b), key=str):
    if k[1] == "busbw" and a[k] and b[k]:
        print(f"  {k[2]:>15} {k[3]:>11} B  plain {a[k]:8.2f}  torchrun {b[k]:8.2f} GB/s  ({100*(b[k]/a[k]-1):+.1f}%)")
for name, res in (("plain", plain), ("torchrun", tr)):
    for r in res:
        if r["benchmark"] == "train" and r["metric"] in ("tokens_per_s", "scaling_efficiency"):
            print(f"  {name:8} train {r['metric']} world={r['params'].get('world_size')} "
                  f"scope={r['params'].get('scope', '-')}: {r.get('value')}")
two = load("two-nodes.json")
print("two nodes:", sorted({(r["params"].get("scope"), r["metric"]) for r in two if r["status"] == "ok"}))
print("two nodes, NCCL transport:", sorted({str(r["params"].get("nccl_transport")) for r in two}))
try:
    b = json.loads((out / "burnin.json").read_text())
    print("burnin:", b.get("verdict"), [(g["label"], g["verdict"]) for g in b.get("gpus", [])],
          "nodes:", b.get("nodes"), "lost:", b.get("lost_nodes"))
except (OSError, ValueError) as exc:
    print("burnin: no JSON", exc)
try:
    doc = json.loads((out / "doctor.json").read_text())
    print("doctor:", [(f["id"], f["severity"]) for f in doc.get("findings", [])])
except (OSError, ValueError) as exc:
    print("doctor: no JSON", exc)
PY
