"""GPU-to-GPU copies for every pair: one-way bandwidth each way, both ways at once, and
one-way latency, with the received data verified.

Formulas (per pair a, b; S bytes per copy):
  unidir a->b  = S / t(copy a->b), timed with CUDA events on a's stream (torch runs a
                 peer copy on the source device's current stream)
  bidir        = 2 S / t(a->b and b->a launched together on two streams), host clock
                 around both, devices synchronised
  latency a->b = t(100 copies of 4 bytes) / 100, as p2pBandwidthLatencyTest does
A pair that hangs (peer access on boards with ACS/IOMMU in the way) is ended by the
runner's timeout and recorded as a failed cell.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.records import Result
from rigbench.stats import summarize

if TYPE_CHECKING:  # imported where a step runs: planning (the command's parent) needs no torch
    import torch

NAME = "p2p"
LATENCY_COPIES = 100


def _size_bytes(ctx: BenchContext) -> int:
    if ctx.on_gpu:
        return (1 << 30) if ctx.mode == "full" else (256 << 20)
    return max(1 << 16, int((16 << 20) * ctx.size_scale))


def plan(ctx: BenchContext) -> list[Step]:
    steps = []
    n = len(ctx.devices)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = ctx.devices[i], ctx.devices[j]
            steps.append(
                Step(
                    key=f"p2p:{i}-{j}",
                    label=f"p2p {a.label}<->{b.label}",
                    metric="unidir",
                    unit="GB/s",
                    devices=[a.label, b.label],
                    params={"pair": ctx.pair_key(i, j)},
                    timeout_s=30.0 if ctx.mode == "quick" else 90.0,
                )
            )
    return steps


def _checksum(t: torch.Tensor) -> int:
    import torch

    return int(t.view(torch.int32).sum(dtype=torch.int64).item())


def verify_copy(src: torch.Tensor, dst: torch.Tensor, generator: torch.Generator) -> str | None:
    """None if dst holds src's bytes (integer checksum plus sampled positions), else why."""
    import torch

    if _checksum(src) != _checksum(dst):
        return "received data differs from what was sent (checksum mismatch)"
    idx = torch.randint(0, src.numel(), (4096,), generator=generator)
    if not torch.equal(src.cpu()[idx], dst.cpu()[idx]):
        return "received data differs from what was sent (sampled bytes)"
    return None


def _peer_access(a: BenchDevice, b: BenchDevice) -> bool | None:
    import torch

    da, db = torch.device(a.torch_device), torch.device(b.torch_device)
    if da.type != "cuda" or db.type != "cuda":
        return None
    return bool(torch.cuda.can_device_access_peer(da, db))


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    from rigbench.bench.timing import rates, synchronize, time_iterations

    i, j = (int(x) for x in step.key.split(":", 1)[1].split("-"))
    a, b = ctx.devices[i], ctx.devices[j]
    fault = ctx.p2p_faults.get(ctx.pair_key(i, j))
    if fault == "hang":
        time.sleep(24 * 3600)  # the simulated rig's hang: the runner's timeout must end it
    if fault == "crash":
        os._exit(75)  # the process dies mid-transfer, as when a GPU falls off the bus
    size = _size_bytes(ctx)
    quick = ctx.mode == "quick"
    repeats = 10 if quick else 30
    gen = torch.Generator().manual_seed(ctx.seed + 1000 * i + j)
    peer = _peer_access(a, b)
    expected = ctx.pair_expected.get(ctx.pair_key(i, j))
    common = {"bytes": size, "p2p_access": peer}

    bufs = {}
    for d in (a, b):
        host = torch.randint(-(2**31), 2**31 - 1, (size // 4,), dtype=torch.int32, generator=gen)
        bufs[d.label] = (host.to(d.torch_device), torch.empty_like(host, device=d.torch_device))

    for src, dst in ((a, b), (b, a)):
        s_buf, _ = bufs[src.label]
        _, d_buf = bufs[dst.label]

        def copy(s: torch.Tensor = s_buf, d: torch.Tensor = d_buf) -> None:
            d.copy_(s)

        seconds = time_iterations(copy, src.torch_device, warmup=3, repeats=repeats)
        if fault == "corrupt":
            d_buf[: d_buf.numel() // 3].bitwise_xor_(1 << 7)
        problem = verify_copy(s_buf, d_buf, gen)
        spread = summarize([r / 1e9 for r in rates(seconds, size)])
        yield Result(
            benchmark=NAME,
            metric="unidir",
            value=spread.p50 if problem is None else None,
            unit="GB/s",
            params={**common, "direction": f"{src.label}->{dst.label}"},
            devices=[src.label, dst.label],
            spread=spread,
            expected=expected.value if expected else None,
            basis=expected.basis if expected else None,
            status="ok" if problem is None else "failed",
            message=problem,
            reason=None if problem is None else "wrong_data",
        )

    # Both directions at once, each on its own stream.
    (a_src, a_dst), (b_src, b_dst) = bufs[a.label], bufs[b.label]
    on_cuda = torch.device(a.torch_device).type == "cuda"
    streams = (
        (torch.cuda.Stream(a.torch_device), torch.cuda.Stream(b.torch_device)) if on_cuda else None
    )

    def both_ways() -> None:
        if streams is None:
            b_dst.copy_(a_src)
            a_dst.copy_(b_src)
            return
        with torch.cuda.stream(streams[0]):
            b_dst.copy_(a_src)
        with torch.cuda.stream(streams[1]):
            a_dst.copy_(b_src)

    def sync_both() -> None:
        for s in streams or ():
            s.synchronize()
        synchronize(a.torch_device)
        synchronize(b.torch_device)

    for _ in range(3):
        both_ways()
    sync_both()
    bidir = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        both_ways()
        sync_both()
        bidir.append(2 * size / (time.perf_counter() - t0) / 1e9)
    problem = verify_copy(a_src, b_dst, gen) or verify_copy(b_src, a_dst, gen)
    spread = summarize(bidir)
    yield Result(
        benchmark=NAME,
        metric="bidir",
        value=spread.p50 if problem is None else None,
        unit="GB/s",
        params={**common, "direction": f"{a.label}<->{b.label}"},
        devices=[a.label, b.label],
        spread=spread,
        expected=2 * expected.value if expected else None,
        basis=f"both directions: 2 x ({expected.basis})" if expected else None,
        status="ok" if problem is None else "failed",
        message=problem,
        reason=None if problem is None else "wrong_data",
    )

    # One-way latency: a burst of tiny copies, as p2pBandwidthLatencyTest times it.
    for src, dst in ((a, b), (b, a)):
        tiny_src = torch.ones(1, dtype=torch.int32, device=src.torch_device)
        tiny_dst = torch.zeros(1, dtype=torch.int32, device=dst.torch_device)

        def burst(s: torch.Tensor = tiny_src, d: torch.Tensor = tiny_dst) -> None:
            for _ in range(LATENCY_COPIES):
                d.copy_(s)

        seconds = time_iterations(burst, src.torch_device, warmup=2, repeats=repeats)
        spread = summarize([t / LATENCY_COPIES * 1e6 for t in seconds])
        yield Result(
            benchmark=NAME,
            metric="latency",
            value=spread.p50,
            unit="us",
            params={**common, "bytes": 4, "direction": f"{src.label}->{dst.label}"},
            devices=[src.label, dst.label],
            spread=spread,
        )
    del bufs
    if on_cuda:
        torch.cuda.empty_cache()
