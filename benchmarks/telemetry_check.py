"""Helpers of benchmarks/telemetry_gpu_check.sh (run from the repo root, PYTHONPATH=src).

    python3 benchmarks/telemetry_check.py overhead OUT.json
        The sampler's cost on a running GEMM: bf16 8192^3 matmuls back to back on cuda:0,
        every one timed with CUDA events, in interleaved blocks of three conditions:
          none     no sampler anywhere
          thread   rigbench's Sampler + NvmlTelemetry + Aggregator at 100 Hz in a thread of
                   THIS process (someone embedding the sampler in a training script)
          process  the same sampler at 100 Hz in a separate process (how `rigbench burnin`
                   and `rigbench monitor` run beside a workload)
        Overhead = 1 - median TFLOP/s with / median TFLOP/s without. The noise floor is the
        spread between the "none" blocks themselves: an overhead below it is not measurable.
    python3 benchmarks/telemetry_check.py stats DB OUT.json
        Per recorded run and GPU: samples, achieved rate, gaps, how often each figure really
        changes (NVML refreshes some readings slower than we sample them), peaks.
    python3 benchmarks/telemetry_check.py summary OUTDIR
        The human summary of everything in OUTDIR (printed; the script saves it).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# TELEMETRY_CHECK_DRY=1: a dry run of the orchestration on a machine without a GPU (CPU
# matmuls timed with perf_counter, a simulated rig's telemetry); its numbers mean nothing.
DRY = os.environ.get("TELEMETRY_CHECK_DRY") == "1"
N = 8192 if not DRY else 256
RATE_HZ = 100.0
WARM_S = 3.0 if not DRY else 0.5
BLOCK_S = 1.5
ROUNDS = 4
CONDITIONS = ("none", "thread", "process")


# --- overhead ----------------------------------------------------------------------------


def _source() -> Any:
    if DRY:
        from rigbench.hw.simulated import SimulatedBackend

        return SimulatedBackend.from_file(Path("examples/simulated/iva-2x3090.toml")).telemetry()
    from rigbench.hw.nvml_telemetry import NvmlTelemetry

    return NvmlTelemetry()


def _sampler_process(conn: Any) -> None:
    """A separate process that runs the sampler between "start" and "stop"."""
    from rigbench.telemetry.aggregate import Aggregator
    from rigbench.telemetry.sampler import Sampler

    probe = _source()
    conn.send(("ready", len(probe.channels())))
    probe.close()
    while True:
        cmd = conn.recv()
        if cmd == "quit":
            break
        # a fresh NVML session per block, as `rigbench monitor` opens one per run
        source = _source()
        agg = Aggregator(source.channels(), 1 / RATE_HZ)
        sampler = Sampler(source, RATE_HZ, [agg.add])
        sampler.start()
        conn.send(("started",))
        assert conn.recv() == "stop"
        conn.send(("stats", sampler.stop().to_dict()))
        source.close()


def _gemm_block(torch: Any, a: Any, b: Any, out: Any, seconds: float) -> list[float]:
    """Per-matmul seconds (CUDA events) of back-to-back matmuls for about `seconds`."""
    if DRY:
        times = []
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t0)
        return times
    pairs = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        # enqueue 20 at a time, each between its own events; the queue never runs dry
        for _ in range(20):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            torch.mm(a, b, out=out)
            e.record()
            pairs.append((s, e))
        if len(pairs) > 40:  # stay at most ~40 matmuls ahead, so the GPU never waits on us
            pairs[-40][1].synchronize()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) / 1e3 for s, e in pairs]


def overhead(out_path: Path) -> None:
    import torch

    from rigbench.telemetry.aggregate import Aggregator
    from rigbench.telemetry.sampler import Sampler

    dev = "cpu" if DRY else "cuda"
    doc: dict[str, Any] = {
        "what": "bf16 8192^3 torch.mm on cuda:0, CUDA events per call; sampler at 100 Hz",
        "device": "DRY RUN on the CPU" if DRY else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "rounds": ROUNDS,
        "block_s": BLOCK_S,
    }
    flops = 2.0 * N**3
    dtype = torch.float32 if DRY else torch.bfloat16
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(N, N, device=dev, generator=gen).to(dtype)
    b = torch.randn(N, N, device=dev, generator=gen).to(dtype)
    out = torch.empty(N, N, device=dev, dtype=dtype)
    _gemm_block(torch, a, b, out, WARM_S)  # clocks and power settle at the limit

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_sampler_process, args=(there,), daemon=True)
    child.start()
    there.close()
    if not here.poll(90):
        raise RuntimeError("the sampler process did not start within 90 s")
    msg = here.recv()
    doc["gpus_sampled"] = msg[1]

    blocks: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    per_round: list[dict[str, float]] = []
    sampler_stats: dict[str, list[dict[str, Any]]] = {"thread": [], "process": []}
    try:
        for r in range(ROUNDS):
            order = CONDITIONS[r % 3 :] + CONDITIONS[: r % 3]  # rotate: no position bias
            this_round: dict[str, float] = {}
            for cond in order:
                sampler = source = None
                if cond == "thread":
                    source = _source()  # opened outside the timed block
                    agg = Aggregator(source.channels(), 1 / RATE_HZ)
                    sampler = Sampler(source, RATE_HZ, [agg.add])
                    sampler.start()
                elif cond == "process":
                    here.send("start")
                    here.recv()
                times = _gemm_block(torch, a, b, out, BLOCK_S)
                if sampler is not None and source is not None:
                    sampler_stats["thread"].append(sampler.stop().to_dict())
                    source.close()
                elif cond == "process":
                    here.send("stop")
                    sampler_stats["process"].append(here.recv()[1])
                rate = flops / statistics.median(times) / 1e12
                blocks[cond].append(rate)
                this_round[cond] = rate
            per_round.append(this_round)
    finally:
        here.send("quit")
        child.join(timeout=10)

    base = statistics.median(blocks["none"])
    doc["tflops_median_per_block"] = blocks
    doc["per_round"] = per_round
    doc["baseline_tflops"] = base
    doc["noise_pct"] = 100 * (max(blocks["none"]) - min(blocks["none"])) / base
    for cond in ("thread", "process"):
        med = statistics.median(blocks[cond])
        paired = [100 * (1 - r[cond] / r["none"]) for r in per_round]
        stats = sampler_stats[cond]
        doc[cond] = {
            "tflops": med,
            "overhead_pct": 100 * (1 - med / base),
            "overhead_pct_paired_by_round": paired,
            "sampler_achieved_hz": [s.get("achieved_hz") for s in stats],
            "sampler_read_ms_mean": [s.get("read_ms_mean") for s in stats],
            "sampler_missed": [s.get("missed") for s in stats],
        }
    out_path.write_text(json.dumps(doc, indent=2))
    print(json.dumps({k: doc[k] for k in ("baseline_tflops", "noise_pct")}, indent=None))
    for cond in ("thread", "process"):
        print(cond, f"{doc[cond]['overhead_pct']:+.2f} %", doc[cond]["sampler_achieved_hz"])


# --- stats of the recorded samples -------------------------------------------------------


def _changes_per_s(ts: list[float], vs: list[Any]) -> float | None:
    pts = [(t, v) for t, v in zip(ts, vs, strict=True) if v is not None]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    changes = sum(1 for (_, a), (_, b) in zip(pts, pts[1:], strict=False) if a != b)
    return changes / (pts[-1][0] - pts[0][0])


def stats(db_path: Path, out_path: Path) -> None:
    db = sqlite3.connect(db_path)
    runs = db.execute("SELECT id, command, status FROM runs ORDER BY id").fetchall()
    cols = [
        "power_instant_w", "power_avg_w", "energy_mj", "sm_clock_mhz", "mem_clock_mhz",
        "temp_gpu_c", "temp_mem_c", "fan_pct", "util_gpu_pct", "mem_used_bytes",
        "throttle_mask", "pcie_replay_count", "ecc_corrected", "ecc_uncorrected",
    ]  # fmt: skip
    doc: dict[str, Any] = {"runs": []}
    for rid, command, status in runs:
        run: dict[str, Any] = {"id": rid, "command": command, "status": status, "gpus": []}
        for gpu, name, src_i, src_a, facts in db.execute(
            "SELECT gpu, name, power_instant_source, power_avg_source, facts"
            " FROM telemetry_gpus WHERE run_id = ? ORDER BY gpu",
            (rid,),
        ).fetchall():
            rows = db.execute(
                f"SELECT t, {', '.join(cols)} FROM telemetry_samples"
                " WHERE run_id = ? AND gpu = ? ORDER BY t",
                (rid, gpu),
            ).fetchall()
            ts = [r[0] for r in rows]
            gaps = sorted(b - a for a, b in zip(ts, ts[1:], strict=False))
            g: dict[str, Any] = {
                "gpu": gpu,
                "name": name,
                "power_instant_source": src_i,
                "power_avg_source": src_a,
                "unavailable": json.loads(facts).get("unavailable", {}),
                "limits": json.loads(facts).get("limits", {}),
                "samples": len(rows),
                "achieved_hz": (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 else None,
                "gap_ms_median": 1e3 * statistics.median(gaps) if gaps else None,
                "gap_ms_max": 1e3 * gaps[-1] if gaps else None,
                "always_null": [c for k, c in enumerate(cols) if all(r[k + 1] is None for r in rows)],
                "changes_per_s": {
                    c: _changes_per_s(ts, [r[k + 1] for r in rows])
                    for k, c in enumerate(cols)
                    if c in ("power_instant_w", "power_avg_w", "energy_mj", "sm_clock_mhz", "temp_gpu_c")
                },
            }
            for c in ("power_instant_w", "power_avg_w", "temp_gpu_c", "temp_mem_c"):
                k = cols.index(c) + 1
                vals = [r[k] for r in rows if r[k] is not None]
                g[f"{c}_max"] = max(vals) if vals else None
                g[f"{c}_median"] = statistics.median(vals) if vals else None
            run["gpus"].append(g)
        run["events"] = [
            dict(zip(("t", "gpu", "kind", "code", "message"), e, strict=True))
            for e in db.execute(
                "SELECT t, gpu, kind, code, message FROM telemetry_events WHERE run_id = ?",
                (rid,),
            ).fetchall()
        ]
        doc["runs"].append(run)
    out_path.write_text(json.dumps(doc, indent=2))


# --- summary -----------------------------------------------------------------------------


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"_missing": f"{path.name}: {exc}"}


def _f(v: Any, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def summary(outdir: Path) -> None:
    rc = _load(outdir / "exit_codes.json") if (outdir / "exit_codes.json").exists() else {}
    print("== 1. monitor: 100 Hz for 5 s, recorded ==")
    mon = _load(outdir / "monitor.json")
    st = _load(outdir / "telemetry_stats.json")
    if "_missing" in mon:
        print("  MISSING:", mon["_missing"], "(see log.txt)")
    elif "message" in mon:
        print("  monitor said:", mon["message"])
    else:
        s = mon.get("sampler", {})
        print(
            f"  sampler: asked {s.get('rate_hz')} Hz, achieved {_f(s.get('achieved_hz'))} Hz, "
            f"{s.get('missed')} ticks missed, one tick (all GPUs) {_f(s.get('read_ms_mean'), '.3f')} ms "
            f"mean / {_f(s.get('read_ms_max'), '.2f')} ms max"
        )
        for g in mon.get("gpus", []):
            ch = g.get("channel", {})
            print(
                f"  GPU {g['gpu']} {g['name']}: {g['samples']} samples; instant power from "
                f"{ch.get('power_instant_source')}, average from {ch.get('power_avg_source')}; "
                f"peak {_f(g.get('power_peak_w'))} W"
            )
            for k, why in (ch.get("unavailable") or {}).items():
                print(f"    unavailable {k}: {why}")
        print(f"  events: {mon.get('events')}; Xid watching: {mon.get('events_unavailable') or 'on'}")
    for run in st.get("runs", []) if isinstance(st, dict) else []:
        for g in run["gpus"]:
            print(
                f"  [{run['command']} run {run['id']}] GPU {g['gpu']}: achieved {_f(g['achieved_hz'])} Hz, "
                f"gap median {_f(g['gap_ms_median'], '.2f')} ms max {_f(g['gap_ms_max'], '.1f')} ms; "
                f"value changes per s: "
                + ", ".join(f"{k} {_f(v)}" for k, v in g["changes_per_s"].items())
            )
            if g["always_null"]:
                print(f"    never read: {', '.join(g['always_null'])}")
    print(f"  exit code {rc.get('monitor')} (0 = no Xid, no lost GPU)")

    print("== 2. sampler overhead on bf16 8192^3 matmuls (CUDA events) ==")
    ov = _load(outdir / "overhead.json")
    if "_missing" in ov:
        print("  MISSING:", ov["_missing"], "(see log.txt)")
    else:
        print(
            f"  {ov.get('device')}: without sampler {_f(ov.get('baseline_tflops'))} TFLOP/s; "
            f"noise between those blocks {_f(ov.get('noise_pct'), '.2f')} %"
        )
        for cond, what in (("thread", "100 Hz sampler thread in the same process"),
                           ("process", "100 Hz sampler in a separate process")):
            c = ov.get(cond, {})
            rates = [r for r in c.get("sampler_achieved_hz", []) if r]
            print(
                f"  {what}: {_f(c.get('tflops'))} TFLOP/s, overhead {_f(c.get('overhead_pct'), '+.2f')} % "
                f"(per round: {', '.join(_f(x, '+.2f') for x in c.get('overhead_pct_paired_by_round', []))}); "
                f"sampler achieved {', '.join(_f(r) for r in rates)} Hz"
            )
        print("  goal: under 1 %; an overhead inside the noise is not distinguishable from 0")
    print(f"  exit code {rc.get('overhead')}")

    print("== 3. burnin on all GPUs (--json) ==")
    bi = _load(outdir / "burnin.json")
    if "_missing" in bi:
        print("  MISSING:", bi["_missing"], "(see log.txt)")
    else:
        print(f"  rig verdict: {bi.get('verdict')}  run {bi.get('run_id')}")
        for r in bi.get("reasons", []):
            print(f"    [{r['severity']}] {r['message']}")
        for g in bi.get("gpus", []):
            f = g["figures"]
            print(
                f"  {g['label']} {g['name']}: {g['verdict'].upper()}; matmul {_f(f.get('gemm_tflops_median'))} "
                f"TFLOP/s {f.get('gemm_dtype')} n={f.get('gemm_n')} ({f.get('gemm_batches')} batches, "
                f"{f.get('checks')} checks, checksum {f.get('checksum')}); memory {_f(f.get('memory_gbps_median'), '.0f')} GB/s"
            )
            print(
                f"    power peak {_f(f.get('power_peak_w'), '.0f')} W ({f.get('power_peak_kind')}), 1 s avg peak "
                f"{_f(f.get('power_avg_1s_peak_w'), '.0f')} W, mean {_f(f.get('power_mean_w'), '.0f')} W, "
                f"energy-based {_f(f.get('energy_avg_w'), '.0f')} W, largest rise {_f(f.get('power_rise_w'), '.0f')} W "
                f"in {_f(f.get('power_rise_window_s'), '.2f')} s; temp {_f(f.get('temp_gpu_peak_c'), '.0f')} °C, "
                f"memory {_f(f.get('temp_mem_peak_c'), '.0f')} °C; SM clock under load "
                f"{_f(f.get('sm_clock_sustained_median_mhz'), '.0f')} MHz; throttle s {f.get('throttle_s')}"
            )
            for r in g["reasons"]:
                print(f"    [{r['severity']}] {r['message']}")
        t = bi.get("totals", {})
        s = t.get("sampler", {})
        print(
            f"  all GPUs: peak {_f(t.get('power_peak_w'), '.0f')} W, mean {_f(t.get('power_mean_w'), '.0f')} W, "
            f"largest rise {_f(t.get('power_rise_w'), '.0f')} W; {t.get('idle_to_full_steps')} idle->full steps; "
            f"all_reduce busbw {_f(t.get('allreduce_busbw_gbps_median'))} GB/s; telemetry "
            f"{_f(s.get('achieved_hz'))} Hz of {s.get('rate_hz')} ({s.get('missed')} missed)"
        )
        for n in bi.get("notes", []):
            print(f"  note: {n}")
        print(f"  plot: {'burnin.png' if (outdir / 'burnin.png').exists() else 'none'}")
    print(f"  exit code {rc.get('burnin')} (0 pass, 1 fail)")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "overhead":
        overhead(Path(sys.argv[2]))
    elif mode == "stats":
        stats(Path(sys.argv[2]), Path(sys.argv[3]))
    elif mode == "summary":
        summary(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
