#!/usr/bin/env bash
# Every area's GPU check in one batch (doctor, telemetry/burnin, workloads), for a machine
# lent for a few minutes. Folders under OUTDIR, and everything packed in OUTDIR/all.tgz.
# Usage (repo root, on the GPU machine): benchmarks/gpu_checks.sh OUTDIR
set -uo pipefail
out=${1:?usage: benchmarks/gpu_checks.sh OUTDIR}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
for area in doctor telemetry workloads; do
  echo "######## $area ($(date -u +%T))"
  timeout -k 10 "${LIMIT:-240}" bash "benchmarks/${area}_gpu_check.sh" "$out/work/$area"
  echo "######## $area exit $?"
done
(cd "$out/work" && tar czf "$out/all.tgz" .)
for f in "$out"/work/doctor/doctor.txt "$out"/work/telemetry/summary.txt "$out"/work/workloads/summary.txt; do
  echo "======== $f"; tail -40 "$f" 2>/dev/null
done
rm -rf "$out/work"
