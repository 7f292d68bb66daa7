#!/usr/bin/env bash
# Stop 14 (about 1.5 minutes on one GPU): stop 13's second check (the burn-in under torchrun
# with --timeout, rigbench cluster's quieted logs) and `rigbench cluster --hosts` naming a
# node that never joins. Changes no GPU setting.
# Usage: benchmarks/session14_gpu_check.sh OUTDIR
set -u
here=$(dirname "$0")
bash "$here/session13b_gpu_check.sh" "$1/s13b"
. "$here/gpu_check_env.sh" "$1"
w=$(mktemp -d)
start=$(date +%s.%N)
timeout 60 python3 -m rigbench cluster --nnodes 2 --rdzv-endpoint 127.0.0.1:29643 \
  --join-timeout 5 --hosts localhost,node-b.invalid -- bench --only collectives \
  --db "$w/n.db" > /dev/null 2> "$out/never-joins.err"
code=$?
echo "cluster --hosts, node-b never started: exit $code after $(python3 -c "import time,sys; print(round(time.time()-float(sys.argv[1]),1))" "$start") s" | tee "$out/never-joins.txt"
cat "$out/never-joins.err" >> "$out/never-joins.txt"
