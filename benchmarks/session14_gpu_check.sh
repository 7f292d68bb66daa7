#!/usr/bin/env bash
# Stop 14 (about 2 minutes on one GPU): stop 13's second check (the burn-in under torchrun
# with --timeout, rigbench cluster's quieted logs) and `rigbench cluster --hosts` naming a
# node that never joins; doctor across two "nodes" on this host with --db-on-every-node.
# Changes no GPU setting.
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
# doctor across two torchrun "nodes" on this one host (gloo only: no GPU is shared), each
# node's first rank keeping the run (--db-on-every-node)
w2=$(mktemp -d)
for i in 0 1; do
  timeout 120 python3 -m torch.distributed.run --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d \
    --rdzv-endpoint 127.0.0.1:29644 --rdzv-id d14 --local-addr "$([ $i = 0 ] && echo 127.0.0.1 || echo localhost)" \
    -m rigbench doctor --db-on-every-node --db "$w2/d$i.db" > "$out/doctor$i.out" 2> "$out/doctor$i.err" &
done
wait
for i in 0 1; do
  python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(sys.argv[1].rsplit("/",1)[1], c.execute("select id,status from runs").fetchall(), c.execute("select finding,severity from findings").fetchall())' "$w2/d$i.db"
done | tee "$out/doctor-dbs.txt"
grep -h "^node \|kept as" "$out"/doctor*.err | tee -a "$out/doctor-dbs.txt"
