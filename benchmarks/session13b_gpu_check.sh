#!/usr/bin/env bash
# Stop 13, second call (about 1 minute on one GPU): the burn-in under torchrun after its
# rank first reaches the store within --timeout (bench/cluster._reach_store), and
# `rigbench cluster` with torchrun's warnings quieted. Changes no GPU setting.
# Usage: benchmarks/session13b_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')
timeout 120 python3 -m torch.distributed.run --nnodes 1 --nproc-per-node "$gpus" --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29641 -m rigbench burnin --minutes 0.1 --timeout 30 --json \
  --db "$w/b.db" > "$out/burnin.json" 2> "$w/burnin.err"
echo "torchrun burnin --timeout 30 exit $?" | tee "$out/codes.txt"
tail -c 600 "$w/burnin.err" >> "$out/codes.txt"
timeout 60 python3 -m rigbench cluster --nnodes 1 --nproc-per-node $((gpus + 1)) \
  --rdzv-endpoint 127.0.0.1:29642 -- bench --only collectives --db "$w/x.db" > /dev/null 2> "$w/bad.err"
echo "cluster bad input exit $?" | tee -a "$out/codes.txt"
cat "$w/bad.err" >> "$out/codes.txt"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("burnin:", d.get("verdict"), [(g["label"], g["verdict"]) for g in d.get("gpus", [])])' "$out/burnin.json" | tee -a "$out/codes.txt"
