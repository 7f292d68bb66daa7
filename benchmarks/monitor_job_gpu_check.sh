#!/usr/bin/env bash
# `rigbench monitor -- CMD` and the GDDR VRAM reader on a real GPU, in about 3 minutes on one
# H100/H200 (GPU 0 only):
#   1. a bf16 8192^3 GEMM loop (benchmarks/monitor_job_check.py loop: 3 s warm-up, then 15 s
#      of one-second CUDA-event-timed blocks), alternately bare and wrapped in
#      `rigbench monitor --rate 100 --json --metric 'gemm: (...)' -- python ...loop`, 3 times
#      each; the wrapped median should be within 1 % of the bare one
#   2. the GDDR reader's answer for every GPU (on HBM GPUs: "not a GDDR6/GDDR6X device", with
#      no open of resource0 and no mmap, checked by a Python audit hook) and where the
#      telemetry source takes the memory temperature from (NVML_FI_DEV_MEMORY_TEMP on HBM)
#   3. a job that fails (exit 3) and one killed by a signal: monitor must exit 3 and 143
# It changes no GPU setting. Nothing is fatal: a failing step is logged and the next one runs.
#
# Usage, from anywhere: benchmarks/monitor_job_gpu_check.sh OUTDIR
# OUTDIR gets: summary.txt (read first), log.txt, loop_{bare,wrapped}_N.json,
# monitor_N.json (monitor --json of each wrapped run), gddr.json, exit_codes.txt
set -uo pipefail
out=${1:?usage: benchmarks/monitor_job_gpu_check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$out/log.txt"
: > "$log"
step() { printf '\n=== %s (%s) ===\n' "$1" "$(date -u +%H:%M:%S)" | tee -a "$log"; }

step "environment"
{
  date -u
  nvidia-smi --query-gpu=index,name,pci.bus_id,pci.device_id,driver_version,power.limit,temperature.gpu,temperature.memory --format=csv
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  cat /sys/kernel/security/lockdown 2>/dev/null || echo "no lockdown file"
  id -u
  git log -1 --format='rigbench commit %h %s' 2>/dev/null
} >> "$log" 2>&1

step "1. GEMM loop bare vs under monitor --rate 100 (3 x 2 runs, alternating)"
for i in 1 2 3; do
  timeout 60 python3 benchmarks/monitor_job_check.py loop "$out/loop_bare_$i.json" 15 >> "$log" 2>&1
  echo "bare $i: exit $?" | tee -a "$log"
  timeout 60 python3 -m rigbench monitor --rate 100 --json --db "$work/rigbench.db" \
    --metric 'gemm: ([0-9.]+ TFLOP/s)' -- \
    python3 benchmarks/monitor_job_check.py loop "$out/loop_wrapped_$i.json" 15 \
    > "$out/monitor_$i.json" 2>> "$log"
  echo "wrapped $i: exit $?" | tee -a "$log"
done
# the summary a user sees, once (not timed)
timeout 30 python3 -m rigbench monitor --rate 100 --db "$work/rigbench.db" -- \
  python3 -c 'import time; time.sleep(2); print("eval rate:            13.33 tokens/s")' >> "$log" 2>&1

step "2. the GDDR reader on this GPU"
timeout 60 python3 benchmarks/monitor_job_check.py gddr "$out/gddr.json" >> "$log" 2>&1
echo "exit $?" | tee -a "$log"

step "3. exit codes passed through"
timeout 30 python3 -m rigbench monitor --json --db "$work/rigbench.db" -- python3 -c 'raise SystemExit(3)' > /dev/null 2>> "$log"
rc3=$?
timeout 30 python3 -m rigbench monitor --json --db "$work/rigbench.db" -- sh -c 'kill -TERM $$' > /dev/null 2>> "$log"
rc143=$?
echo "exit 3 job -> $rc3 (want 3); SIGTERM job -> $rc143 (want 143)" | tee -a "$log" "$out/exit_codes.txt"

step "summary"
python3 benchmarks/monitor_job_check.py summary "$out" 2>> "$log" | tee -a "$log"
cat "$out/exit_codes.txt" >> "$out/summary.txt"
