"""Helpers of benchmarks/monitor_job_gpu_check.sh (GPU machine only).

    python benchmarks/monitor_job_check.py loop OUT.json [SECONDS]   # a timed bf16 GEMM loop
    python benchmarks/monitor_job_check.py gddr OUT.json             # the GDDR reader's answer
    python benchmarks/monitor_job_check.py summary OUTDIR            # summary.txt from the runs

`loop`: 8192^3 bf16 matmuls, 3 s untimed warm-up, then one-second blocks timed with CUDA
events; writes {"tflops_median", "blocks"} and prints "gemm: N TFLOP/s" (the line
`monitor --metric` reads).
`gddr`: for every GPU NVML lists, what hw.gddr.open_gddr_reader answers, with every file the
process opened and every mmap it made while asking (a Python audit hook), and where the
telemetry source takes the memory temperature from.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def loop(out: str, seconds: float = 15.0) -> None:
    import torch

    n = 8192
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        torch.matmul(a, b, out=c)
        torch.cuda.synchronize()
    # calls per block: about one second each
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        torch.matmul(a, b, out=c)
    end.record()
    torch.cuda.synchronize()
    per_call = start.elapsed_time(end) / 1e3 / 10
    calls = max(1, int(1.0 / per_call))
    blocks = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        start.record()
        for _ in range(calls):
            torch.matmul(a, b, out=c)
        end.record()
        torch.cuda.synchronize()
        blocks.append(2 * n**3 * calls / (start.elapsed_time(end) / 1e3) / 1e12)
    med = statistics.median(blocks)
    Path(out).write_text(json.dumps({"tflops_median": med, "blocks": blocks, "calls": calls}))
    print(f"gemm: {med:.2f} TFLOP/s", flush=True)


def gddr(out: str) -> None:
    touched: list[str] = []

    def hook(event: str, args: tuple) -> None:  # type: ignore[type-arg]
        if event == "open":
            touched.append(f"open {args[0]}")
        elif event == "mmap.__new__":
            touched.append(f"mmap fd={args[0]} length={args[1]} offset={args[3]}")

    from rigbench.hw.gddr import SYSFS, GddrReader, open_gddr_reader, sysfs_bdf
    from rigbench.hw.nvml import NvmlBackend
    from rigbench.hw.nvml_telemetry import NvmlTelemetry

    gpus = []
    for info in NvmlBackend().rig().gpus:
        bus = info.bus_id or ""
        dev = SYSFS / "bus" / "pci" / "devices" / sysfs_bdf(bus) / "device" if bus else None
        device_id = dev.read_text().strip() if dev is not None and dev.exists() else "?"
        gpus.append({"gpu": info.index, "name": info.name, "bus_id": bus, "device_id": device_id})
    sys.addaudithook(hook)
    for g in gpus:
        touched.clear()
        got = open_gddr_reader(g["bus_id"])
        if isinstance(got, GddrReader):
            g["reader"] = {"source": got.source, "temp_c": got.read_c()}
            got.close()
        else:
            g["reader"] = {"why": got.why}
        g["touched"] = list(touched)
        g["resource0_touched"] = any("resource0" in t or t.startswith("mmap") for t in touched)
    source = NvmlTelemetry()
    try:
        source.start(time.monotonic())
        samples = {s.gpu: s for s in source.read(0.0)}
        for ch in source.channels():
            g = gpus[ch.gpu]
            g["temp_mem_source"] = ch.temp_mem_source
            g["temp_mem_unavailable"] = ch.unavailable.get("temp_mem_c")
            s = samples.get(ch.gpu)
            g["temp_mem_c"] = s.temp_mem_c if s is not None else None
    finally:
        source.close()
    Path(out).write_text(json.dumps(gpus, indent=2))
    print(json.dumps(gpus, indent=2))


def summary(outdir: str) -> None:
    d = Path(outdir)
    lines = []
    bare, wrapped = [], []
    for f in sorted(d.glob("loop_*.json")):
        v = json.loads(f.read_text())["tflops_median"]
        (wrapped if "wrapped" in f.name else bare).append(v)
        lines.append(f"{f.name}: {v:.2f} TFLOP/s")
    if bare and wrapped:
        b, w = statistics.median(bare), statistics.median(wrapped)
        ratio = w / b
        verdict = "PASS" if abs(1 - ratio) <= 0.01 else "FAIL"
        lines.append(
            f"GEMM bf16 8192^3: bare median {b:.2f}, under monitor --rate 100 median {w:.2f} "
            f"TFLOP/s: ratio {ratio:.4f} ({100 * (ratio - 1):+.2f} %) -> {verdict} (within 1 %)"
        )
    for f in sorted(d.glob("monitor_*.json")):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            lines.append(f"{f.name}: not JSON")
            continue
        m = doc.get("metric") or {}
        s = doc.get("sampler") or {}
        lines.append(
            f"{f.name}: exit {doc.get('exit_code')}, {doc.get('duration_s', 0):.1f} s, "
            f"sampler {s.get('achieved_hz') or 0:.1f} Hz ({s.get('missed')} missed), energy "
            f"{(doc.get('total') or {}).get('energy_j') or 0:.0f} J, metric {m.get('value')} "
            f"{m.get('unit')} -> {m.get('per_joule')} per J, samples {doc.get('samples_written')}, "
            f"findings {[x['id'] for x in doc.get('findings', [])]}"
        )
    g = d / "gddr.json"
    if g.exists():
        for gpu in json.loads(g.read_text()):
            why = gpu["reader"].get("why") or gpu["reader"]
            lines.append(
                f"GDDR reader, GPU {gpu['gpu']} {gpu['name']} ({gpu['device_id']}): {why}; "
                f"resource0 touched: {gpu['resource0_touched']}; memory temperature from "
                f"{gpu.get('temp_mem_source')} = {gpu.get('temp_mem_c')}"
            )
    text = "\n".join(lines) + "\n"
    (d / "summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "loop":
        loop(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 15.0)
    elif cmd == "gddr":
        gddr(sys.argv[2])
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        raise SystemExit(f"unknown step {cmd!r}")
