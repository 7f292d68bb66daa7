#!/usr/bin/env bash
# Issue 11 on one real GPU (H100 or H200), in about 6 minutes:
#   1. a bare burst loop: 5 warm-up, then 20 single bf16 8192^3 matmuls each between two CUDA
#      events, median (run before and after the benches);
#   2. `rigbench bench --quick --json` with its wall time (target: under 35 s, process start
#      included);
#   3. `rigbench bench --full --json`: gemm burst and sustained (10 s) per dtype, memory,
#      hostlink, each with its conditions and verdict;
#   4. the workloads (train eager, infer CUDA-graph engine, nbody) with their verdicts and
#      energy per token;
#   5. `rigbench compare` of the full run with itself and against the references.
# Usage (repo root, torch with CUDA importable): benchmarks/verdicts_gpu_check.sh OUTDIR
# Writes to OUTDIR: log.txt (machine, versions, stderr, wall times), burst_loop.json,
# quick.json, full.json, workloads.json, compare_self.json, compare_ref.json and
# summary.txt (also printed last).
set -uo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
log=$out/log.txt
db=$out/rigbench.db
rm -f "$db"
start=$SECONDS
if ! python3 -c 'import platformdirs, pydantic, typer, rich' 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --find-links .whl platformdirs pydantic >> "$log" 2>&1
fi
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=index,name,driver_version,power.limit,power.default_limit,clocks.max.sm,pcie.link.gen.max,pcie.link.width.max --format=csv
  python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
} >> "$log" 2>&1

burst_loop() {  # the reference loop of issue 11, printed as one JSON line
  python3 - <<'PY'
import json, statistics, torch
n = 8192
g = torch.Generator(device="cuda").manual_seed(0)
a = torch.randn(n, n, device="cuda", generator=g).bfloat16()
b = torch.randn(n, n, device="cuda", generator=g).bfloat16()
for _ in range(5):
    torch.mm(a, b)
torch.cuda.synchronize()
times = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); torch.mm(a, b); e.record(); torch.cuda.synchronize()
    times.append(s.elapsed_time(e) / 1e3)
rates = [2 * n**3 / t / 1e12 for t in times]
print(json.dumps({"median_tflops": statistics.median(rates), "min": min(rates), "max": max(rates)}))
PY
}

bench() {  # bench NAME LIMIT ARGS...: bench --json into OUTDIR/NAME.json, wall time logged
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name: rigbench bench $*" >> "$log"
  timeout -s INT -k 10 "$limit" python3 -m rigbench bench "$@" --json --db "$db" \
    > "$out/$name.json" 2>> "$log"
  echo "== $name: exit $? after $((SECONDS - t0)) s" >> "$log"
}

{ burst_loop; } > "$out/burst_loop.json" 2>> "$log"
bench quick 90 --quick
bench full 200 --full
bench workloads 110 --only train,infer,nbody --set train.compile=0 --set infer.engine=graph
{ burst_loop; } >> "$out/burst_loop.json" 2>> "$log"
full_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"]["id"])' "$out/full.json" 2>> "$log")
if [ -n "$full_id" ]; then
  python3 -m rigbench compare "$full_id" "$full_id" --json --db "$db" > "$out/compare_self.json" 2>> "$log"
  echo "== compare self: exit $?" >> "$log"
  python3 -m rigbench compare "$full_id" --reference --json --db "$db" > "$out/compare_ref.json" 2>> "$log"
  echo "== compare reference: exit $?" >> "$log"
fi
echo "== total $((SECONDS - start)) s" >> "$log"

python3 - "$out" > "$out/summary.txt" 2>> "$log" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception as exc:
        print(f"{name}: not readable ({exc})")
        return {"results": []}
loops = [json.loads(l) for l in open(os.path.join(out, "burst_loop.json")) if l.strip()]
loop = statistics.median(l["median_tflops"] for l in loops) if loops else None
print("bare burst loop bf16 8192^3:", ", ".join(f"{l['median_tflops']:.1f}" for l in loops), "TFLOP/s")
for name in ("quick", "full", "workloads"):
    doc = load(f"{name}.json")
    print(f"\n== {name}")
    bad = 0
    for r in doc["results"]:
        if r["status"] == "skipped":
            continue
        j = r.get("judgement") or {}
        c = ((r.get("conditions") or {}).get("gpus") or [{}])[0]
        thr = " ".join(f"{k} {100*v:.0f}%" for k, v in (c.get("throttle") or {}).items())
        v = r["value"]
        line = (f"{r['benchmark']:<9} {r['metric']:<22} {','.join(r['devices']):<6} "
                f"{v if v is None else round(v, 4)!s:>10} {r['unit']:<9} "
                f"{j.get('verdict', '-'):<13} {j.get('cause') or '':<14} "
                f"range {j.get('low')}-{j.get('high')}  clock {c.get('sm_clock_mean_mhz') and round(c['sm_clock_mean_mhz'])} MHz"
                f" power {c.get('power_mean_w') and round(c['power_mean_w'])} W {thr}")
        extra = {k: r["params"][k] for k in ("peak_at_clock", "of_peak_at_clock", "joules_per_tflop",
                                              "joules_per_token", "tokens_per_kwh") if k in r["params"]}
        print(line, extra or "")
        if j.get("verdict") not in ("normal", "no_reference"):
            bad += 1
        if name == "full" and r["metric"] == "bf16.burst" and loop and v:
            print(f"   -> bf16 burst {v:.1f} against the bare loop {loop:.1f}: {100 * (v / loop - 1):+.1f} % (target within 3 %)")
    print(f"{name}: {bad} result(s) neither normal nor no_reference")
for name in ("compare_self.json", "compare_ref.json"):
    doc = load(name)
    if "rows" in doc:
        print(f"{name}: {doc['differing']} figure(s) beyond noise of {len(doc['rows'])}; warnings: {doc['warnings']}")
PY
grep '^== ' "$log"
cat "$out/summary.txt"
