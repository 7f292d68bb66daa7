#!/usr/bin/env bash
# Stop 13, one GPU, one call (about 7 minutes): every GPU path changed since the last GPU run
# (stop 11: ranks from rigbench's fork server, gc.freeze, torch-free planning; stop 12: every
# rank exits with rank 0's code under torchrun), and the paths of issues 17 and 18 that never
# ran on a GPU (the live PSU-trip finder).
#   a/ benchmarks/burnin_profiles_gpu_check.sh with the sweep and the soak left out (the sweep
#      ran at stop 10 as an unprivileged user; as root here it would call an NVML setter)
#   b/ benchmarks/multinode_gpu_check.sh: bench plain vs torchrun --nnodes 1, doctor and burnin
#      under torchrun, bad input under torchrun (every rank's exit code)
#   c/ bench --quick and doctor, plain
# Changes no GPU setting. Usage: benchmarks/session13_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
t0=$(date +%s)
SWEEP_AS_ROOT=0 SOAK_MIN=0 NVML_REPEATS=50 timeout 330 bash benchmarks/burnin_profiles_gpu_check.sh "$out/a" > /dev/null 2>&1
echo "a exit $? at $(( $(date +%s) - t0 )) s" | tee "$out/codes.txt"
BURNIN_MIN=0.2 timeout 200 bash benchmarks/multinode_gpu_check.sh "$out/b" 1 > /dev/null 2>&1
echo "b exit $? at $(( $(date +%s) - t0 )) s" | tee -a "$out/codes.txt"
w=$(mktemp -d)
timeout 100 python3 -m rigbench bench --quick --json --db "$w/q.db" > "$out/quick.json" 2> "$w/quick.err"
echo "quick exit $? at $(( $(date +%s) - t0 )) s" | tee -a "$out/codes.txt"
timeout 60 python3 -m rigbench doctor --json --db "$w/d.db" > "$out/doctor.json" 2> "$w/doctor.err"
echo "doctor exit $? at $(( $(date +%s) - t0 )) s" | tee -a "$out/codes.txt"
{ echo "== quick.err"; tail -c 1500 "$w/quick.err"; echo "== doctor.err"; tail -c 1500 "$w/doctor.err"; } > "$out/c-logs.txt"
# what comes back is at most 8 files: the summaries beside one archive of everything
cp "$out/a/summary.txt" "$out/summary-a.txt" 2>/dev/null
cp "$out/b/summary.txt" "$out/summary-b.txt" 2>/dev/null
tar czf "$w/all.tgz" -C "$out" a b quick.json doctor.json c-logs.txt 2>/dev/null
rm -rf "$out/a" "$out/b" "$out/c-logs.txt"
mv "$w/all.tgz" "$out/all.tgz"
