#!/usr/bin/env bash
# Stop 16 (about 2 minutes on one GPU): rigbench's exit after it began freezing what is alive
# at exit (rigbench.__main__, the fork server's rigbench.forkserver_signals). On the GPU:
# bench --quick, doctor, a short burn-in and a one-node `rigbench cluster` each exit as
# before, leave no write-ahead log beside their database, and no process behind them; then
# the exit's CPU cost of a process that imported torch and made a CUDA context, with and
# without the freeze (five each). Changes no GPU setting.
# Usage: benchmarks/session16_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
nvidia-smi --query-gpu=name,power.limit,driver_version --format=csv,noheader > "$out/gpu.txt"

run() {  # NAME CMD...: exit code, wall, CPU of it and its children, files beside the db
  local name=$1; shift
  /usr/bin/time -f "%e s wall, %U+%S CPU-s" -o "$out/$name.time" timeout 300 "$@" \
    > "$out/$name.out" 2> "$out/$name.err"
  local rc=$?
  sleep 2  # the fork server ends once rigbench has
  local left; left=$(pgrep -f "forkserver import main" | wc -l)
  echo "$name: exit $rc, $(cat "$out/$name.time"), files: $(ls "$w/$name" | tr '\n' ' '), fork servers left: $left" \
    | tee -a "$out/summary.txt"
}
for n in bench doctor burnin cluster; do mkdir -p "$w/$n"; done
run bench python3 -m rigbench bench --quick --db "$w/bench/r.db"
run doctor python3 -m rigbench doctor --db "$w/doctor/r.db"
run burnin python3 -m rigbench burnin --minutes 0.5 --db "$w/burnin/r.db"
run cluster python3 -m rigbench cluster --nnodes 1 --hosts localhost \
  --rdzv-endpoint 127.0.0.1:29671 -- bench --only collectives,train --db "$w/cluster/r.db"
grep -hE "tokens_per_s|TFLOP|GB/s" "$out/bench.out" | head -12 >> "$out/summary.txt"
grep -hE "tokens_per_s|mfu" "$out/cluster.out" | head -6 >> "$out/summary.txt"
grep -h "^error\|Traceback\|terminate" "$out"/*.err | head -20 >> "$out/summary.txt"

cuda='import torch; torch.ones(1, device="cuda").sum().item()'
for i in 1 2 3 4 5; do
  for mode in plain frozen; do
    pre=""; [ $mode = frozen ] && pre="import atexit, gc; atexit.register(gc.freeze); "
    /usr/bin/time -f "$mode %U+%S CPU-s %e s" python3 -c "$pre$cuda" 2>> "$out/exit-cost.txt"
    /usr/bin/time -f "$mode-os_exit %U+%S CPU-s %e s" python3 -c "$pre$cuda; import os; os._exit(0)" 2>> "$out/exit-cost.txt"
  done
done
cat "$out/exit-cost.txt" >> "$out/summary.txt"
