#!/usr/bin/env bash
# The one process supervisor (src/rigbench/supervisor.py) on a real GPU machine: bench,
# doctor's probes and burn-in start their workers from a fork server that imported torch,
# CUDA is initialised only in the workers, a kill -9 of rigbench leaves no worker holding
# a GPU, and the commands that run no kernel start without torch.
# Read only: changes no GPU or system setting. About 4 minutes on one GPU.
#
# Usage (repo root, on the GPU machine): benchmarks/supervisor_gpu_check.sh OUTDIR
# Writes OUTDIR/supervisor.log (the summary to read) and each command's output beside it.
# What proves it works, all in supervisor.log:
#   - "torch imported by info: 0" and info's wall time under 1 s
#   - bench, doctor, burnin: exit codes 0 (or 1 for warnings that are the rig's own), and
#     "results with a failure reason: none" / "hang findings: none"
#   - "GPU processes left 10 s after kill -9: none"
set -uo pipefail
out=${1:?usage: benchmarks/supervisor_gpu_check.sh OUTDIR}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1 COLUMNS=120 PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
log="$out/supervisor.log"
: > "$log"
section() { printf '\n===== %s =====\n' "$*" >> "$log"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
db="$out/results.db"

section "machine"
{
  echo "date: $(date -u +%FT%TZ)  git: $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=index,name,driver_version --format=csv 2>&1
} >> "$log"

section "start-up without torch"
for cmd in "--help" "info" "catalog gpus"; do
  t0=$(date +%s%N)
  python3 -m rigbench $cmd > /dev/null 2>> "$log"
  echo "rigbench $cmd: exit $?, wall $(ms "$t0") ms" >> "$log"
done
echo "torch imported by info: $(python3 -X importtime -m rigbench info 2>&1 >/dev/null | grep -c '| *torch$')" >> "$log"
python3 -m rigbench info --json > "$out/info.json" 2>> "$log"
python3 - "$out/info.json" >> "$log" 2>&1 <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["system"]
print("info versions:", {k: s.get(k) for k in ("torch_version", "torch_cuda_version", "nccl_version")})
EOF
python3 -c 'import torch; print("torch itself says:", torch.__version__, torch.version.cuda, torch.cuda.nccl.version())' >> "$log" 2>&1

reasons() {  # results of a bench --json file that failed with a reason code
  python3 - "$1" >> "$log" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
rs = d.get("results", d) if isinstance(d, dict) else d
bad = [(r["benchmark"], r["metric"], r.get("reason"), r.get("message")) for r in rs if r.get("reason")]
print("results:", len(rs), " results with a failure reason:", bad or "none")
EOF
}

section "bench --quick (every step in a supervised worker)"
t0=$(date +%s%N)
timeout -k 5 900 python3 -m rigbench bench --quick --json --db "$db" > "$out/bench.json" 2> "$out/bench.err"
echo "exit $?, wall $(ms "$t0") ms" >> "$log"
reasons "$out/bench.json"

section "bench --only train (a RankPool step: start-up timed apart)"
t0=$(date +%s%N)
timeout -k 5 900 python3 -m rigbench bench --only train --json --db "$db" > "$out/train.json" 2> "$out/train.err"
echo "exit $?, wall $(ms "$t0") ms" >> "$log"
reasons "$out/train.json"

section "doctor (probes under the supervisor)"
t0=$(date +%s%N)
timeout -k 5 300 python3 -m rigbench doctor --json > "$out/doctor.json" 2> "$out/doctor.err"
echo "exit $?, wall $(ms "$t0") ms" >> "$log"
python3 - "$out/doctor.json" >> "$log" 2>&1 <<'EOF'
import json, sys
fs = json.load(open(sys.argv[1]))["findings"]
print("hang findings:", [f["id"] for f in fs if f["id"].endswith(".hang")] or "none")
print("not ok:", [(f["id"], f["severity"]) for f in fs if f["severity"] not in ("ok", "info")])
EOF

section "burnin --minutes 1 (load workers and crew from the fork server)"
t0=$(date +%s%N)
timeout -k 5 400 python3 -m rigbench burnin --minutes 1 --json --db "$db" > "$out/burnin.json" 2> "$out/burnin.err"
echo "exit $?, wall $(ms "$t0") ms" >> "$log"

section "kill -9 of rigbench mid-benchmark"
python3 -m rigbench bench --only gemm --full --db "$db" > /dev/null 2>&1 &
pid=$!
sleep 40
echo "GPU processes while running: $(nvidia-smi --query-compute-apps=pid --format=csv,noheader | tr '\n' ' ')" >> "$log"
kill -9 "$pid"
sleep 10
left=$(nvidia-smi --query-compute-apps=pid --format=csv,noheader | tr '\n' ' ')
echo "GPU processes left 10 s after kill -9: ${left:-none}" >> "$log"
cat "$log"
