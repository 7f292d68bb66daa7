#!/usr/bin/env bash
# Issue 14 on a real GPU machine, about four minutes on one GPU: runs killed with SIGKILL
# read `crashed` and `show` still shows what they stored; an interrupted burn-in is judged
# on what ran, not blamed on the GPUs; a burn-in too short to test is refused; a short one
# tests something (not void) and its plot is named after its database.
#   1. bench --quick, kill -9 once results are stored; show --json
#   2. monitor --record at 100 Hz, kill -9 after 5 s; show --json
#   3. burnin --minutes 2, SIGINT after 45 s; --json
#   4. burnin --minutes 0.001 (must exit 2, one line) and --minutes 0.25 (must not be void)
# It changes no GPU setting. Nothing is fatal: a failing step is reported, the next one runs.
#
# Usage, from anywhere: benchmarks/crash_truth_gpu_check.sh OUTDIR
# OUTDIR gets summary.txt (read this first), log.txt and the JSON of each step.
. "$(dirname "$0")/gpu_check_env.sh" "$@"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$out/log.txt"
sum="$out/summary.txt"
: > "$log"
: > "$sum"
rb() { python -m rigbench "$@"; }
note() { echo "$*" | tee -a "$sum"; }
count() { python - "$1" "$2" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])
PY
}
descendants() { ps -o pid= --ppid "$1" | while read -r c; do echo "$c"; descendants "$c"; done; }

# 1. bench, kill -9 after the first stored results
db="$work/bench.db"
python -m rigbench bench --quick --db "$db" >> "$log" 2>&1 &  # $! is rigbench itself
pid=$!
for _ in $(seq 1 600); do
  n=$(count "$db" "SELECT count(*) FROM results" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.5
done
kids=$(descendants "$pid")
kill -9 "$pid"; wait "$pid" 2>/dev/null
for k in $kids; do kill -9 "$k" 2>/dev/null; done
stored=$(count "$db" "SELECT count(*) FROM results")
rb show --json --db "$db" > "$out/bench_show.json" 2>> "$log"
python - "$out/bench_show.json" "$stored" <<'PY' | tee -a "$sum"
import json, sys
d = json.load(open(sys.argv[1]))
ok = d["run"]["status"] == "crashed" and len(d["results"]) == int(sys.argv[2])
print(f"1. bench kill -9: status {d['run']['status']}, show {len(d['results'])} results of "
      f"{sys.argv[2]} stored -> {'OK' if ok else 'PROBLEM'}")
PY

# 2. monitor --record, kill -9 after 5 s
db="$work/monitor.db"
python -m rigbench monitor --record --rate 100 --db "$db" > /dev/null 2>> "$log" &
pid=$!
sleep 5
kill -9 "$pid"; wait "$pid" 2>/dev/null
stored=$(count "$db" "SELECT count(*) FROM telemetry_samples")
rb show --json --db "$db" > "$out/monitor_show.json" 2>> "$log"
python - "$out/monitor_show.json" "$stored" <<'PY' | tee -a "$sum"
import json, sys
d = json.load(open(sys.argv[1]))
shown = sum(t["samples"] for t in d.get("telemetry", []))
ok = d["run"]["status"] == "crashed" and shown == int(sys.argv[2]) > 0
print(f"2. monitor kill -9: status {d['run']['status']}, show {shown} samples of "
      f"{sys.argv[2]} stored -> {'OK' if ok else 'PROBLEM'}")
PY

# 3. burnin, Ctrl-C after 45 s of a 2-minute run
db="$work/burnin.db"
python -m rigbench burnin --minutes 2 --json --db "$db" > "$out/burnin_interrupted.json" \
  2>> "$log" &
pid=$!
sleep 45
kill -INT "$pid"; wait "$pid"; rc=$?
python - "$out/burnin_interrupted.json" "$rc" <<'PY' | tee -a "$sum"
import json, sys
d = json.load(open(sys.argv[1]))
t = d["totals"]
blamed = [r["message"] for g in d["gpus"] for r in g["reasons"] if r["code"] == "worker"]
ok = sys.argv[2] == "130" and t["duration_s"] < t["planned_s"] and not blamed
print(f"3. burnin Ctrl-C: exit {sys.argv[2]}, ran {t['duration_s']:.1f} s of {t['planned_s']:.0f} s,"
      f" verdict {d['verdict']}, workers blamed: {blamed or 'none'} -> {'OK' if ok else 'PROBLEM'}")
PY

# 4. too short to test, and short but real
rb burnin --minutes 0.001 --db "$work/short.db" > /dev/null 2> "$work/err"; rc=$?
lines=$(wc -l < "$work/err")
note "4a. burnin --minutes 0.001: exit $rc, $lines line(s): $(cat "$work/err") -> $([ "$rc" = 2 ] && [ "$lines" = 1 ] && echo OK || echo PROBLEM)"
rb burnin --minutes 0.25 --json --db "$work/short.db" > "$out/burnin_short.json" 2>> "$log"; rc=$?
python - "$out/burnin_short.json" "$rc" <<'PY' | tee -a "$sum"
import json, sys
d = json.load(open(sys.argv[1]))
plot = d.get("plot") or ""
ok = d["verdict"] != "void" and ("short.db.plots" in plot or not plot)
print(f"4b. burnin --minutes 0.25: exit {sys.argv[2]}, verdict {d['verdict']}, plot {plot or 'none'}"
      f" -> {'OK' if ok else 'PROBLEM'}")
for g in d["gpus"]:
    f = g["figures"]
    print(f"    {g['label']}: throttle_harmful_s {f.get('throttle_harmful_s')}, per reason "
          f"{f.get('throttle_s')}, gemm batches {f.get('gemm_batches')}")
PY
