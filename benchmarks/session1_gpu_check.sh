#!/usr/bin/env bash
# One device session, part 1 (about 8 minutes on one H100/H200): issue 11's verdict check
# (quick, full, workloads, bare burst loop, compare), then a 1-minute burn-in, doctor and a
# report of what was measured, all in one database. Everything ends up in OUTDIR.
# Usage (repo root): benchmarks/session1_gpu_check.sh OUTDIR
set -uo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
timeout -k 10 400 bash benchmarks/verdicts_gpu_check.sh "$out/verdicts"
echo "verdicts exit $?"
db=$out/verdicts/rigbench.db
timeout -k 5 60 bash benchmarks/doctor_gpu_check.sh "$out/doctor"
echo "doctor check exit $?"; grep -h "CHECK\|exit" "$out/doctor/doctor.txt" | tail -3
t0=$SECONDS
timeout -s INT -k 10 80 python3 -m rigbench burnin --minutes 0.5 --json --db "$db" > "$out/burnin.json" 2> "$out/burnin.err"
echo "burnin exit $? after $((SECONDS - t0)) s"
t0=$SECONDS
timeout -k 5 40 python3 -m rigbench doctor --json --db "$db" > "$out/doctor.json" 2> "$out/doctor.err"
echo "doctor exit $? after $((SECONDS - t0)) s"
ids=$(python3 -c 'import sqlite3,sys; print(" ".join(str(r[0]) for r in sqlite3.connect(sys.argv[1]).execute("select id from runs order by id")))' "$db")
timeout -k 5 60 python3 -m rigbench report $ids --db "$db" --out "$out/report.html" > "$out/report.log" 2>&1
echo "report exit $? ($(du -k "$out/report.html" 2>/dev/null | cut -f1) KiB)"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
try:
    b = json.load(open(f"{out}/burnin.json"))
    print("burnin verdict", b.get("verdict"), [ (g["label"], g["verdict"], [r["code"] for r in g["reasons"]]) for g in b.get("gpus", [])])
except Exception as e:
    print("burnin json:", e)
try:
    d = json.load(open(f"{out}/doctor.json"))
    print("doctor", d["summary"].get("exit_code"), [(f["id"], f["severity"]) for f in d["findings"] if f["severity"] in ("warning", "error")])
except Exception as e:
    print("doctor json:", e)
PY
