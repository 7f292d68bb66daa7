#!/usr/bin/env bash
# Every GPU path of `rigbench monitor` / `rigbench burnin` on a real GPU machine, in about
# two minutes on one H100/H200 (more GPUs: the same steps over all of them):
#   1. monitor at 100 Hz for 5 s with --record (NVML field values, events, SQLite batches)
#   2. the sampler's overhead on a running bf16 8192^3 matmul, CUDA-event timed, with a
#      100 Hz sampler thread in the same process and in a separate process
#   3. burnin for 60 s on all GPUs with --json (load workers, checksums, all_reduce when
#      there are 2+ GPUs, idle->full steps, telemetry at 100 Hz, verdict, plot)
# It changes no GPU setting (no power limits, no clocks). Nothing is fatal: a failing step
# is reported and the next one runs.
#
# Usage, from anywhere (it runs from the repo root): benchmarks/telemetry_gpu_check.sh OUTDIR
# OUTDIR gets at most 6 files:
#   summary.txt          what happened, in words and numbers: read this first
#   log.txt              environment, every command's stderr, the monitor/burnin tables
#   monitor.json         rigbench monitor --json
#   overhead.json        the overhead measurement (per block, per round)
#   burnin.json          rigbench burnin --json
#   burnin.png           the burn-in's plot (when matplotlib is installed)
# plus telemetry_stats.json and exit_codes.json are folded into summary.txt (not kept).
. "$(dirname "$0")/gpu_check_env.sh" "$@"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$out/log.txt"
: > "$log"
step() { printf '\n=== %s (%s) ===\n' "$1" "$(date -u +%H:%M:%S)" | tee -a "$log"; }
t_start=$(date +%s)

step "environment"
{
  date -u
  nvidia-smi --query-gpu=index,name,driver_version,power.limit,power.default_limit,clocks.max.sm,temperature.gpu --format=csv
  python3 -c 'import sys, torch, pynvml; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(), "nvidia-ml-py", getattr(pynvml, "__version__", "?"))'
  git log -1 --format='rigbench commit %h %s' 2>/dev/null
} >> "$log" 2>&1
# matplotlib draws the burn-in plot; install it from the repo's wheel folder if missing
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --find-links .whl matplotlib >> "$log" 2>&1 \
      && echo "installed matplotlib from .whl" | tee -a "$log" \
      || echo "matplotlib not installed: burnin will run without a plot" | tee -a "$log"
  else
    echo "matplotlib missing and no .whl folder: burnin will run without a plot" | tee -a "$log"
  fi
fi

step "1. monitor --rate 100 --seconds 5 --record --json"
timeout 40 python3 -m rigbench monitor --rate 100 --seconds 5 --record --json \
  --db "$work/rigbench.db" > "$out/monitor.json" 2>> "$log"
rc_monitor=$?
echo "exit $rc_monitor" | tee -a "$log"
# the same for the eye: the table a user sees (not recorded)
timeout 20 python3 -m rigbench monitor --rate 100 --seconds 2 >> "$log" 2>&1

step "2. sampler overhead on bf16 8192^3 matmuls"
timeout 60 python3 benchmarks/telemetry_check.py overhead "$out/overhead.json" >> "$log" 2>&1
rc_overhead=$?
echo "exit $rc_overhead" | tee -a "$log"

minutes=${BURNIN_MINUTES:-1}
step "3. burnin --minutes $minutes --json on all GPUs"
timeout $(( 70 + ${minutes%.*} * 60 )) python3 -m rigbench burnin --minutes "$minutes" --json --db "$work/rigbench.db" \
  > "$out/burnin.json" 2>> "$log"
rc_burnin=$?
echo "exit $rc_burnin" | tee -a "$log"
plot=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("plot") or "")' "$out/burnin.json" 2>/dev/null)
if [ -n "$plot" ] && [ -f "$plot" ]; then cp "$plot" "$out/burnin.png"; fi
# the verdict as a user reads it, from the stored run (rigbench show)
timeout 20 python3 -m rigbench show --db "$work/rigbench.db" >> "$log" 2>&1

step "summary"
python3 benchmarks/telemetry_check.py stats "$work/rigbench.db" "$work/telemetry_stats.json" >> "$log" 2>&1
cp "$work/telemetry_stats.json" "$out/telemetry_stats.json" 2>/dev/null
printf '{"monitor": %s, "overhead": %s, "burnin": %s}\n' "$rc_monitor" "$rc_overhead" "$rc_burnin" \
  > "$out/exit_codes.json"
{
  echo "rigbench telemetry GPU check, $(date -u), $(( $(date +%s) - t_start )) s"
  nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader 2>/dev/null
  python3 benchmarks/telemetry_check.py summary "$out" 2>&1
} > "$out/summary.txt"
rm -f "$out/telemetry_stats.json" "$out/exit_codes.json"
cat "$out/summary.txt"
ls -la "$out"
