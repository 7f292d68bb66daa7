#!/usr/bin/env bash
# Stop 12, one GPU (about 3 minutes): every rank exits with rank 0's code (share_exit_code
# over the gloo control group that exists only on GPUs), under `torchrun --nnodes 1`; then
# the stop-11 paths (benchmark modules import torch where they use it; workers and training
# ranks gc.freeze()) in `bench --quick`. Changes no GPU setting.
# Usage: benchmarks/session12_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
timeout 100 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node 1 -m rigbench \
  bench --only train --json --db "$w/t.db" > "$out/train.json" 2> "$w/train.err"
echo "torchrun train exit $?" | tee "$out/codes.txt"
tail -c 1500 "$w/train.err" > "$out/train.err"
timeout 130 python3 -m rigbench bench --quick --json --db "$w/q.db" > "$out/quick.json" 2> "$w/quick.err"
echo "quick exit $?" | tee -a "$out/codes.txt"
tail -c 1500 "$w/quick.err" > "$out/quick.err"
