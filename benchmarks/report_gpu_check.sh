#!/usr/bin/env bash
# `rigbench report` and `export`/`import` on a real GPU machine, in about 3 minutes:
# bench --quick, doctor, a 1-minute burn-in (100 Hz telemetry), then the report (HTML and
# Markdown), an export and its import into a fresh database, and a second report from it.
# Usage (repo root, torch with CUDA importable, jinja2 installed): benchmarks/report_gpu_check.sh OUTDIR
# Writes to OUTDIR: log.txt (versions, each step's exit code and wall time), report.html,
# report.md + report_files/, runs.json (the export), reimported.html, summary.txt. Look for:
# every section filled (GPUs, benchmarks with expected/peak, burn-in plot with real power),
# report.html under 5 MB, both reports' tables equal (summary.txt says "same numbers").
set -uo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
db=$out/rigbench.db
log=$out/log.txt
: > "$log"
step() {
  local t0=$SECONDS
  "$@" >> "$log" 2>&1
  echo "exit $? after $((SECONDS - t0)) s: $*" >> "$log"
}
python3 -c 'import torch, jinja2; print("torch", torch.__version__, "jinja2", jinja2.__version__)' >> "$log" 2>&1
step python3 -m rigbench bench --quick --db "$db"
step python3 -m rigbench doctor --db "$db"
step python3 -m rigbench burnin --minutes 1 --db "$db"
step python3 -m rigbench report --db "$db" --out "$out/report.html" --markdown "$out/report.md"
ids=$(python3 -c "import sqlite3,sys; print(' '.join(str(r[0]) for r in sqlite3.connect(sys.argv[1]).execute('select id from runs order by id')))" "$db")
step python3 -m rigbench export $ids --db "$db" --out "$out/runs.json"
step python3 -m rigbench import "$out/runs.json" --db "$out/fresh.db"
step python3 -m rigbench report --db "$out/fresh.db" --out "$out/reimported.html"
python3 - "$db" "$out/fresh.db" > "$out/summary.txt" 2>&1 <<'PY'
import sys
from rigbench.report.build import build_document
from rigbench.report.collect import load_report_input
from rigbench.store import Store

def cells(path):
    doc = build_document(load_report_input(Store.open(path), []))
    return {s.id: [[c.text for c in row] for b in s.blocks if b.kind == "table" for row in b.rows]
            for s in doc.sections if s.id != "provenance"}, [c.name for c in doc.charts()]

a, charts = cells(sys.argv[1])
b, _ = cells(sys.argv[2])
print("charts:", ", ".join(charts))
print("same numbers" if a == b else f"DIFFERENT: {[k for k in a if a[k] != b.get(k)]}")
PY
ls -la "$out"/report.html "$out"/runs.json >> "$out/summary.txt"
cat "$out/summary.txt"
