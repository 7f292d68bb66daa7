#!/usr/bin/env bash
# One GPU-machine call (a few minutes on one H100/H200) for the GPU paths issue 16's last
# round touched; changes no GPU setting.
#   1. bench --only memory,hostlink --json: every figure still carries its expected (host
#      link) or peak (memory) and basis, now built by Result.checked_rate
#                                                  -> OUTDIR/bench.json, OUTDIR/bench.txt
#   2. burnin --minutes 1 --json: `reasons` (code, fail/warn/info, message), `findings`
#      (Finding fields; a GPU's with gpus=[index]) and `gate` read off the burn-in's
#      findings, which are rigbench.records.Finding inside now
#                                                  -> OUTDIR/burnin.json, OUTDIR/burnin.txt
# Look for: exit 0 (or 1 with the reason named); in bench.txt no "missing" line; in
# burnin.txt "reasons == findings: yes" and "gate failed codes == fail reasons: yes".
# Usage: benchmarks/issue16_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
nvidia-smi > "$out/env.txt" 2>&1
timeout 240 python3 -m rigbench bench --only memory,hostlink --json --db "$out/r.db" \
  > "$out/bench.json" 2> "$out/bench.err"
echo "bench exit $?" >> "$out/env.txt"
python3 - "$out/bench.json" > "$out/bench.txt" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for r in doc["results"]:
    ref = r["expected"] if r["benchmark"] == "hostlink" else r["peak"]
    line = f'{r["benchmark"]} {r["metric"]} {r["devices"]} {r["value"]} {r["unit"]} status={r["status"]} ref={ref} basis={r["basis"]!r}'
    if r["status"] == "ok" and (ref is None or not r["basis"]):
        line += "  <- missing reference"
    print(line)
PY
timeout 180 python3 -m rigbench burnin --minutes 1 --json --db "$out/r.db" \
  > "$out/burnin.json" 2> "$out/burnin.err"
echo "burnin exit $?" >> "$out/env.txt"
python3 - "$out/burnin.json" > "$out/burnin.txt" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
sev = {"fail": "error", "warn": "warning", "info": "info"}
reasons = [(r["code"], sev[r["severity"]], r["message"]) for r in doc["reasons"]]
reasons += [(r["code"], sev[r["severity"]], r["message"]) for g in doc["gpus"] for r in g["reasons"]]
findings = [(f["id"].split(".", 1)[1], f["severity"], f["title"]) for f in doc["findings"]]
print("verdict", doc["verdict"], "gate", doc.get("gate", {}).get("pass"))
print("reasons == findings:", "yes" if sorted(reasons) == sorted(findings) else f"NO {reasons} {findings}")
fails = sorted({c for c, s, _ in reasons if s == "error"})
print("gate failed codes == fail reasons:", "yes" if doc.get("gate", {}).get("failed", fails) == fails else "NO")
for g in doc["gpus"]:
    print(g["label"], g["verdict"], [(f["id"], f["gpus"]) for f in g["findings"]])
PY
