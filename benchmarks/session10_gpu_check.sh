#!/usr/bin/env bash
# Issues 17 and 18 on one real GPU in about 4 minutes (device time short). Changes no GPU
# setting: the power sweep runs as an unprivileged user, so it cannot set a limit and
# measures at the limit the GPU has (its "not root" path).
#   1. benchmarks/session9_min_gpu_check.sh: monitor --rate 100, burnin --profile quick
#      (VRAM step), bench --only collectives plain vs torchrun --nnodes 1, burnin under torchrun
#   2. burnin --profile accept and --profile soak, shortened by --minutes, --json
#   3. burnin --sweep-power 300:700:200 as nobody, --json
# Usage: benchmarks/session10_gpu_check.sh OUTDIR
set -uo pipefail
out=${1:?usage: benchmarks/session10_gpu_check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.." || exit 2
bash benchmarks/session9_min_gpu_check.sh "$out/min"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
t0=$(date +%s)
for profile in accept soak; do
  timeout 90 python3 -m rigbench burnin --profile "$profile" --minutes "${PROFILE_MIN:-0.15}" \
    --json --db "$out/profiles.db" > "$out/$profile.json" 2> "$out/$profile.err"
  echo "$profile exit $? at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
done
sw=/tmp/rigbench_sweep  # written by the unprivileged user, copied to $out/sweep after
rm -rf "$sw" && mkdir -p "$sw" "$out/sweep" && chmod 777 "$sw"
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
  # the repository may sit where that user cannot read: a world-readable copy of src/
  rm -rf /tmp/rigbench_src && cp -r src /tmp/rigbench_src && chmod -R a+rX /tmp/rigbench_src
  as=(setpriv --reuid 65534 --regid 65534 --clear-groups env HOME=/tmp
      "PYTHONPATH=/tmp/rigbench_src${PYTHONPATH#src}")
else
  as=()
fi
[ "$(id -u)" = 0 ] && [ ${#as[@]} = 0 ] && echo "sweep skipped: root and no setpriv" >> "$out/env.txt"
if [ "$(id -u)" != 0 ] || [ ${#as[@]} != 0 ]; then
  (cd /tmp && timeout 120 "${as[@]}" python3 -m rigbench burnin --sweep-power 300:700:200 \
    --gpus 0 --json --db "$sw/r.db" > "$sw/sweep.json" 2> "$sw/sweep.err")
  echo "sweep exit $? (uid $("${as[@]}" id -u)) at $(( $(date +%s) - t0 )) s" >> "$out/env.txt"
  cp -r "$sw"/. "$out/sweep/"
fi
python3 - "$out" <<'PY' > "$out/summary.txt" 2>&1
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(p):
    try:
        text = p.read_text()
        return json.loads(text[text.index("{"):])
    except Exception as e:
        return {"_error": f"{type(e).__name__}: {e}"}
m = load(out / "min" / "monitor.json")
print("monitor:", json.dumps(m)[:1500])
for name in ("min/quick", "accept", "soak"):
    d = load(out / f"{name}.json")
    g = d.get("gate", {})
    print(f"{name}: verdict {d.get('verdict')}, gate pass {g.get('pass')} profile {g.get('profile')} "
          f"minutes {g.get('minutes')} failed {g.get('failed')} warnings {g.get('warnings')} vram {g.get('vram')}")
    for gpu in d.get("gpus", []):
        f = gpu.get("figures", {})
        print("   ", gpu.get("label"), gpu.get("verdict"), {k: f.get(k) for k in (
            "gemm_tflops_median", "gemm_dtype", "gemm_n", "memory_gbps_median", "checks",
            "load_status", "vram", "temp_gpu_peak_c", "power_w_peak")})
    print("    totals", json.dumps(d.get("totals"))[:600])
s = load(out / "sweep" / "sweep.json")
print("sweep:", json.dumps(s)[:2500])
keys = {}
for name in ("plain", "torchrun"):
    d = load(out / "min" / f"{name}.json")
    rows = d.get("results", [])
    keys[name] = {(r["benchmark"], r["metric"], r["status"], r["params"].get("op"), r["params"].get("bytes"),
                   r["params"].get("world_size")) for r in rows}
    print(name, len(rows), "rows")
    for r in rows:
        print("   ", r["benchmark"], r["metric"], r["status"], r["params"].get("op"), r["params"].get("bytes"),
              r["params"].get("world_size"), r.get("value"), r.get("unit"), (r.get("judgement") or {}).get("verdict"))
print("same rows with and without torchrun:", keys["plain"] == keys["torchrun"],
      "only plain:", sorted(map(str, keys["plain"] - keys["torchrun"]))[:5],
      "only torchrun:", sorted(map(str, keys["torchrun"] - keys["plain"]))[:5])
tb = load(out / "min" / "torchrun_burnin.json")
print("torchrun burnin:", tb.get("verdict"), [(g.get("label"), g.get("verdict")) for g in tb.get("gpus", [])])
PY
cat "$out/env.txt" "$out/min/env.txt" 2>/dev/null
