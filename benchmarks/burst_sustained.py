"""Bare PyTorch loops for the healthy-hardware reference set: per dtype, the burst rate
(5 warm-up matmuls, then 20 single matmuls each timed with CUDA events, median) and the
sustained rate (back-to-back matmuls for SUSTAIN_S seconds, the rate of the last half),
with the SM clock, power and throttle reasons NVML reported during each; the same for a
device-to-device copy. Prints one JSON object. Needs a CUDA GPU and nvidia-ml-py.

    python benchmarks/burst_sustained.py [SUSTAIN_S]
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time

import pynvml
import torch

SUSTAIN_S = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
N = 8192


class Sampler(threading.Thread):
    """SM clock (MHz), power (W, instantaneous where the driver has it) and throttle mask
    every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.rows: list[tuple[float, int, float, int]] = []
        self.stop = threading.Event()

    def power_w(self) -> float:
        try:
            fv = pynvml.nvmlDeviceGetFieldValues(self.h, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
            if fv.nvmlReturn == 0:
                return fv.value.uiVal / 1000.0
        except Exception:
            pass
        return pynvml.nvmlDeviceGetPowerUsage(self.h) / 1000.0

    def run(self) -> None:
        while not self.stop.is_set():
            clk = pynvml.nvmlDeviceGetClockInfo(self.h, pynvml.NVML_CLOCK_SM)
            thr = pynvml.nvmlDeviceGetCurrentClocksEventReasons(self.h)
            self.rows.append((time.perf_counter(), clk, self.power_w(), thr))
            time.sleep(0.02)

    def window(self, t0: float, t1: float) -> dict:
        rows = [r for r in self.rows if t0 <= r[0] <= t1]
        if not rows:
            return {}
        masks: dict[str, int] = {}
        for r in rows:
            masks[hex(r[3])] = masks.get(hex(r[3]), 0) + 1
        return {
            "sm_clock_median_mhz": statistics.median(r[1] for r in rows),
            "sm_clock_min_mhz": min(r[1] for r in rows),
            "power_mean_w": round(statistics.fmean(r[2] for r in rows), 1),
            "power_max_w": round(max(r[2] for r in rows), 1),
            "throttle_masks": {k: round(v / len(rows), 3) for k, v in masks.items()},
            "samples": len(rows),
        }


def operands(dtype: str):
    g = torch.Generator(device="cuda").manual_seed(0)
    if dtype == "int8":
        a = torch.randint(-8, 8, (N, N), device="cuda", dtype=torch.int8, generator=g)
        b = torch.randint(-8, 8, (N, N), device="cuda", dtype=torch.int8, generator=g).t()
        return lambda: torch._int_mm(a, b)
    if dtype == "fp8":
        a = torch.randn(N, N, device="cuda", generator=g).to(torch.float8_e4m3fn)
        b = torch.randn(N, N, device="cuda", generator=g).to(torch.float8_e4m3fn).t()
        one = torch.tensor(1.0, device="cuda")
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32,
           "fp32": torch.float32, "fp64": torch.float64}[dtype]
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    a = torch.randn(N, N, device="cuda", dtype=tdt, generator=g)
    b = torch.randn(N, N, device="cuda", dtype=tdt, generator=g)
    return lambda: a @ b


def burst(fn, work: float, sampler: Sampler) -> dict:
    torch.cuda.synchronize()
    time.sleep(1.0)  # let the clock recover from the previous load
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    t1 = time.perf_counter()
    med = statistics.median(times)
    return {"rate": work / med / 1e12, "median_s": med, "min_s": min(times),
            "max_s": max(times), "conditions": sampler.window(t0, t1)}


def sustained(fn, work: float, sampler: Sampler) -> dict:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    marks = []
    while time.perf_counter() - t0 < SUSTAIN_S:
        e = torch.cuda.Event(enable_timing=True)
        for _ in range(10):
            fn()
        e.record()
        marks.append(e)
        if len(marks) > 4:
            marks[-5].synchronize()  # keep the queue short without draining it
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    half = len(marks) // 2
    ms = marks[half].elapsed_time(marks[-1])
    calls = 10 * (len(marks) - 1 - half)
    tm = t0 + (t1 - t0) / 2
    return {"rate": work * calls / (ms / 1e3) / 1e12, "seconds": round(t1 - t0, 2),
            "conditions": sampler.window(tm, t1)}


def main() -> None:
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    out: dict = {
        "gpu": pynvml.nvmlDeviceGetName(h),
        "driver": pynvml.nvmlSystemGetDriverVersion(),
        "power_limit_w": pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000,
        "max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "size": f"{N}^3",
        "sustain_s": SUSTAIN_S,
        "gemm": {},
    }
    sampler = Sampler()
    sampler.start()
    for dtype in ("bf16", "fp16", "fp8", "int8", "tf32", "fp32", "fp64"):
        try:
            fn = operands(dtype)
            work = 2.0 * N**3
            out["gemm"][dtype] = {"burst": burst(fn, work, sampler),
                                  "sustained": sustained(fn, work, sampler)}
        except Exception as exc:  # a dtype this GPU/torch lacks
            out["gemm"][dtype] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        print(dtype, json.dumps(out["gemm"][dtype].get("burst", {}).get("rate")),
              json.dumps(out["gemm"][dtype].get("sustained", {}).get("rate")), file=sys.stderr)
    size = 1 << 30
    src = torch.randint(0, 255, (size,), device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    copy = lambda: dst.copy_(src)  # noqa: E731
    b = burst(copy, 2.0 * size * 1e3, sampler)  # work scaled so rate reads GB/s
    s = sustained(copy, 2.0 * size * 1e3, sampler)
    out["memory_copy_gbps"] = {"burst": b, "sustained": s}
    sampler.stop.set()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
