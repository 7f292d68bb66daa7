#!/usr/bin/env bash
# Stop 15 (about 1 minute on one GPU): `rigbench cluster` after the roll-call watcher was
# made to end with the launch. A one-node job on the GPU (its rows and exit code, as at
# stop 14), then a 3-node job whose third node never starts, the endpoint's host giving up
# first (4 s) under a second node (8 s): both must name the missing node. Repeated five
# times, while the GPU's bench keeps the host's CPUs busy, to catch an abort at exit.
# Changes no GPU setting.
# Usage: benchmarks/session15_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
secs() { python3 -c "import time,sys; print(round(time.time()-float(sys.argv[1]),1))" "$1"; }

start=$(date +%s.%N)
timeout 300 python3 -m rigbench cluster --nnodes 1 --hosts localhost \
  --rdzv-endpoint 127.0.0.1:29651 -- bench --only collectives,train --db "$w/one.db" \
  > "$out/one-node.out" 2> "$out/one-node.err" &
bench=$!

for i in 1 2 3 4 5; do
  port=$((29660 + i))
  t0=$(date +%s.%N)
  timeout 60 python3 -m rigbench cluster --nnodes 3 --rdzv-endpoint 127.0.0.1:$port \
    --nproc-per-node 1 --join-timeout 4 --hosts localhost,127.0.0.1,node-c.invalid -- info \
    > /dev/null 2> "$out/host$i.err" &
  host=$!
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" $port 2>/dev/null; do sleep 0.1; done
  timeout 60 python3 -m rigbench cluster --nnodes 3 --rdzv-endpoint 127.0.0.1:$port \
    --nproc-per-node 1 --join-timeout 8 --hosts localhost,127.0.0.1,node-c.invalid -- info \
    > /dev/null 2> "$out/second$i.err"
  second=$?
  wait $host
  echo "try $i: host exit $?, second exit $second, after $(secs "$t0") s" | tee -a "$out/never-joins.txt"
  grep -h "^error:\|terminate\|Traceback" "$out/host$i.err" "$out/second$i.err" | tee -a "$out/never-joins.txt"
done

wait $bench
echo "one node under rigbench cluster: exit $? after $(secs "$start") s" | tee "$out/one-node.txt"
grep -E "tokens_per_s|mfu|busbw|error|terminate" "$out/one-node.out" "$out/one-node.err" | head -20 | tee -a "$out/one-node.txt"
