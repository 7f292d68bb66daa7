#!/usr/bin/env bash
# The least of issues 17 and 18 on one real GPU, in about 2 minutes (device time short):
#   1. monitor --rate 100 for 8 s, --json: achieved rate, fast/slow split, refresh of each field
#   2. burnin --profile quick --minutes 0.1 --json (the VRAM step after it, the gate)
#   3. bench --only collectives,train with and without torchrun --nnodes 1 (the same rows)
#   4. burnin --minutes 0.1 under torchrun --nnodes 1
# Changes no GPU setting. Usage: benchmarks/session9_min_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
{ nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__)'; } > "$out/env.txt" 2>&1
t0=$(date +%s)
timeout 40 python3 -m rigbench monitor --rate 100 --seconds 8 --json > "$out/monitor.json" 2> "$out/monitor.err"
echo "monitor exit $? at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
timeout 90 python3 -m rigbench burnin --profile quick --minutes 0.1 --json --db "$out/r.db" \
  > "$out/quick.json" 2> "$out/quick.err"
echo "quick exit $? at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
timeout 120 python3 -m rigbench bench --only collectives,train --json --db "$out/plain.db" \
  > "$out/plain.json" 2> "$out/plain.err"
echo "plain exit $? at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
timeout 120 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node 1 --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29531 -m rigbench bench --only collectives,train --json \
  --db "$out/tr.db" > "$out/torchrun.json" 2> "$out/torchrun.err"
echo "torchrun exit $? at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
timeout 60 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node 1 --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29532 -m rigbench burnin --minutes 0.1 --json \
  --db "$out/trb.db" > "$out/torchrun_burnin.json" 2> "$out/torchrun_burnin.err"
echo "torchrun burnin exit $? at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
