"""Timing device work honestly: CUDA events per iteration on GPUs, a synchronised
monotonic clock on the CPU; warm-up first, every repeat kept."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the main process plans with this module, no torch
    import torch


def synchronize(device: torch.device | str) -> None:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_clock(
    device: torch.device | str,
) -> tuple[Callable[[], object], Callable[[object, object], float]]:
    """`(mark, seconds)`: `mark()` records a point in the device's work (a CUDA event on
    the current stream, the host's perf_counter on the CPU); `seconds(a, b)` is the time
    between two marks, waiting for `b` to complete first."""
    import torch

    if torch.device(device).type != "cuda":
        return time.perf_counter, lambda a, b: float(b - a)  # type: ignore[operator,unused-ignore]

    def mark() -> object:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def seconds(a: object, b: object) -> float:
        b.synchronize()  # type: ignore[attr-defined]
        return float(a.elapsed_time(b)) / 1e3  # type: ignore[attr-defined]

    return mark, seconds


def time_iterations(
    fn: Callable[[], object],
    device: torch.device | str,
    *,
    warmup: int,
    repeats: int,
    before_each: Callable[[], object] | None = None,
    wait_each: bool = False,
) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`, after `warmup` untimed calls.

    `before_each` (e.g. an L2 flush) runs before every call, outside the timed region.
    `wait_each`: wait for each call to finish before queueing the next (single launches,
    as a "burst" figure is measured, rather than a stream of back-to-back work).
    """
    import torch

    dev = torch.device(device)
    for _ in range(warmup):
        if before_each:
            before_each()
        fn()
    synchronize(dev)
    if dev.type == "cuda":
        with torch.cuda.device(dev):
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            for i in range(repeats):
                if before_each:
                    before_each()
                starts[i].record()
                fn()
                ends[i].record()
                if wait_each:
                    ends[i].synchronize()
            torch.cuda.synchronize(dev)
            return [s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends, strict=True)]
    out = []
    for _ in range(repeats):
        if before_each:
            before_each()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rates(seconds: list[float], amount: float) -> list[float]:
    """amount / t for each sample (e.g. bytes -> bytes/s, flops -> flop/s)."""
    return [amount / t for t in seconds if t > 0]


def warmup_count(
    seconds_per_call: float, warm_s: float, *, least: int = 1, most: int = 1000
) -> int:
    """Untimed calls enough to keep the device busy for `warm_s` (clocks ramp up, caches and
    library heuristics settle), bounded to [least, most]."""
    if seconds_per_call <= 0:
        return most
    return max(least, min(most, math.ceil(warm_s / seconds_per_call)))


def l2_cache_bytes(device: torch.device | str) -> int | None:
    """The GPU's L2 size in bytes; None on the CPU or where the driver does not say."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    size = int(getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 0)
    return size or None


def l2_flusher(device: torch.device | str) -> Callable[[], object] | None:
    """A call that evicts the GPU's L2 by writing a buffer twice its size (run it before each
    timed call, outside the timed region); None on the CPU."""
    import torch

    l2 = l2_cache_bytes(device)
    if l2 is None:
        return None
    buf = torch.empty(2 * l2, dtype=torch.uint8, device=torch.device(device))

    def flush() -> object:
        return buf.fill_(0x5A)

    return flush
