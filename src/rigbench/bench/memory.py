"""Device-memory bandwidth: `dst.copy_(src)` between two buffers on one device.

Bytes counted are read plus written (2 x buffer size), in GB/s (1e9 bytes/s), against the
datasheet memory bandwidth. Buffers are far past the L2 on a GPU (1 GiB each; `--full`
adds a sweep of sizes), 64 MiB on the CPU stand-in, scaled by `size_scale`. The data is
random, the destination is poisoned with NaN first, and after timing it must equal the
source exactly.

Torch is imported inside the functions that need it: `plan` runs in the parent, cheaply.
"""

from __future__ import annotations

import statistics
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.records import Result

if TYPE_CHECKING:
    import torch

NAME = "memory"
METRIC = "copy"
UNIT = "GB/s"

GPU_BYTES = 1 << 30  # per buffer, quick and full
GPU_SWEEP = (256 << 20, 1 << 30, 4 << 30)  # --full: these sizes (1 GiB among them)
CPU_BYTES = 64 << 20
ALIGN = 4096

REPEATS_GPU = 50
REPEATS_CPU = 10
WARM_S_GPU = 0.3
WARM_S_CPU = 0.0
MIN_WARMUP = 2

TIMEOUT_S = 60.0


def _human(nbytes: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{unit}"
    return f"{nbytes}B"


def _scaled(nbytes: int, scale: float) -> int:
    return max(ALIGN, ALIGN * round(nbytes * scale / ALIGN))


def sizes(ctx: BenchContext, dev: BenchDevice) -> list[int]:
    """Buffer sizes measured on `dev` in this mode."""
    if dev.torch_device.startswith("cuda"):
        chosen = GPU_SWEEP if ctx.mode == "full" else (GPU_BYTES,)
    else:
        chosen = (CPU_BYTES,)
    return sorted({_scaled(b, ctx.size_scale) for b in chosen})


def plan(ctx: BenchContext) -> list[Step]:
    return [
        Step(
            key=f"{NAME}:{dev.label}:{_human(nbytes)}",
            label=f"{dev.label} memory copy {_human(nbytes)}",
            metric=METRIC,
            unit=UNIT,
            devices=[dev.label],
            params={"bytes": nbytes},
            timeout_s=TIMEOUT_S,
        )
        for dev in ctx.devices
        for nbytes in sizes(ctx, dev)
    ]


def verify_copy(src: torch.Tensor, dst: torch.Tensor) -> str | None:
    """None when `dst` holds exactly what `src` holds, else what is wrong."""
    import torch

    if src.shape != dst.shape or src.dtype != dst.dtype:
        return f"destination is {dst.dtype}{tuple(dst.shape)}, source {src.dtype}{tuple(src.shape)}"
    if torch.equal(src, dst):
        return None
    wrong = int((src != dst).sum())
    return f"{wrong} of {src.numel()} copied elements differ from the source"


def _release(tdev: torch.device) -> None:
    import torch

    if tdev.type == "cuda":
        torch.cuda.synchronize(tdev)
        torch.cuda.empty_cache()


def _measure(ctx: BenchContext, dev: BenchDevice, step: Step, nbytes: int) -> Result:
    import torch

    from rigbench.bench.timing import rates, time_iterations, warmup_count

    tdev = torch.device(dev.torch_device)
    on_cuda = tdev.type == "cuda"
    params: dict[str, Any] = {"bytes": nbytes, "bytes_moved": 2 * nbytes}
    if on_cuda:
        free, _total = torch.cuda.mem_get_info(tdev)
        if 2 * nbytes > 0.9 * free:
            return Result.failure(
                NAME,
                METRIC,
                UNIT,
                f"{dev.label}: two {_human(nbytes)} buffers need more than the "
                f"{free / 2**30:.1f} GiB free",
                devices=[dev.label],
                params=params,
                status="skipped",
            )
    gen = torch.Generator(device=tdev)
    gen.manual_seed((ctx.seed * 1_000_003 + zlib.crc32(step.key.encode())) % (2**63))
    n = nbytes // 4
    src = torch.randn(n, generator=gen, device=tdev, dtype=torch.float32)
    dst = torch.full((n,), float("nan"), device=tdev, dtype=torch.float32)

    def copy() -> object:
        return dst.copy_(src)

    repeats = REPEATS_GPU if on_cuda else REPEATS_CPU
    probe = statistics.median(time_iterations(copy, tdev, warmup=1, repeats=3))
    warmup = warmup_count(probe, WARM_S_GPU if on_cuda else WARM_S_CPU, least=MIN_WARMUP)
    dst.fill_(float("nan"))  # poisoned again: the measured copies must fill it
    t0 = time.monotonic()
    seconds = time_iterations(copy, tdev, warmup=warmup, repeats=repeats)
    params |= {"window_t0": t0, "window_t1": time.monotonic()}  # for the conditions
    wrong = verify_copy(src, dst)
    return Result.checked_rate(
        NAME,
        METRIC,
        UNIT,
        rates(seconds, 2 * nbytes / 1e9),
        wrong=None if wrong is None else f"{dev.label}: wrong copy: {wrong}",
        devices=[dev.label],
        params=params,
        peak=dev.peak_memory_bandwidth,
    )


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    dev = ctx.device(step.devices[0])
    tdev = torch.device(dev.torch_device)
    try:
        yield _measure(ctx, dev, step, int(step.params["bytes"]))
    finally:
        _release(tdev)
