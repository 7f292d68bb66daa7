"""Host <-> device bandwidth: host-to-device ("h2d") and device-to-host ("d2h") copies from
pinned and pageable host buffers, per device, then all devices at once.

Per device, each copy is timed with CUDA events (warm-up first, every repeat kept). All at
once, one thread per device, each on its own CUDA stream, starts every repeat together on
a `threading.Barrier`; the aggregate is the total bytes over the wall time from the common
start to the last finish, so a shared uplink (a PCIe switch, a chipset link) shows here.
The expected figure is the device's host link per direction (for all at once, their sum).

Host buffers are made next to the GPU: on a host of several NUMA nodes the measuring thread
runs on the GPU's node while it makes them (and, for one device, while it copies), as a
`numactl --cpunodebind=N --membind=N` run would; a buffer on the other socket crosses the
inter-socket link and can read below the link's healthy figure on a healthy rig (a P100's
bandwidthTest: 12.2 GB/s from its own node, 3.8 from the other; the gen3x16 entry of
catalog/data/references.toml). `params["numa"]` says where they were: "local", "remote"
(this process may not run on the GPU's node: taskset, a cgroup cpuset) or "unknown".

256 MiB per buffer on a GPU (1 GiB with `--full`), 16 MiB on the CPU stand-in, scaled by
`size_scale`. The CPU has no host link: its "copies" are memcpy between two host buffers,
measured through the same code path and labelled so; pinned memory needs CUDA there and
is reported as skipped. Data is random, destinations are poisoned first and compared with
the source after timing.

Torch is imported inside the functions that need it: `plan` runs in the parent, cheaply.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rigbench.bench.context import BenchContext, BenchDevice, Expectation, Step
from rigbench.hw import numa
from rigbench.records import Result

if TYPE_CHECKING:
    import torch

NAME = "hostlink"
UNIT = "GB/s"
DIRECTIONS = ("h2d", "d2h")
ALL_KEY = f"{NAME}:all"

GPU_BYTES = 256 << 20
GPU_BYTES_FULL = 1 << 30
CPU_BYTES = 16 << 20
ALIGN = 4096

REPEATS_GPU = 20
REPEATS_CPU = 5
WARMUP_GPU = 3
WARMUP_CPU = 1

DEVICE_TIMEOUT_S = 60.0
ALL_TIMEOUT_S = 120.0
BARRIER_TIMEOUT_S = 60.0

CPU_NOTE = "no host link on CPU: this is memcpy"


def _is_cuda(dev: BenchDevice) -> bool:
    return dev.torch_device.startswith("cuda")


def transfer_bytes(ctx: BenchContext, dev: BenchDevice) -> int:
    base = CPU_BYTES
    if _is_cuda(dev):
        base = GPU_BYTES_FULL if ctx.mode == "full" else GPU_BYTES
    return max(ALIGN, ALIGN * round(base * ctx.size_scale / ALIGN))


def plan(ctx: BenchContext) -> list[Step]:
    steps = [
        Step(
            key=f"{NAME}:{dev.label}",
            label=f"{dev.label} host link",
            metric="h2d",
            unit=UNIT,
            devices=[dev.label],
            params={"bytes": transfer_bytes(ctx, dev)},
            timeout_s=DEVICE_TIMEOUT_S,
        )
        for dev in ctx.devices
    ]
    if len(ctx.devices) > 1:
        steps.append(
            Step(
                key=ALL_KEY,
                label=f"all {len(ctx.devices)} host links at once",
                metric="h2d",
                unit=UNIT,
                devices=[dev.label for dev in ctx.devices],
                params={"bytes": max(transfer_bytes(ctx, dev) for dev in ctx.devices)},
                timeout_s=ALL_TIMEOUT_S,
            )
        )
    return steps


# --- helpers --------------------------------------------------------------------------


def verify_transfer(src: torch.Tensor, dst: torch.Tensor) -> str | None:
    """None when `dst` (on any device) holds exactly what `src` holds, else what is wrong."""
    import torch

    if src.shape != dst.shape or src.dtype != dst.dtype:
        return f"destination is {dst.dtype}{tuple(dst.shape)}, source {src.dtype}{tuple(src.shape)}"
    a, b = src.cpu(), dst.cpu()
    if torch.equal(a, b):
        return None
    wrong = int((a != b).sum())
    return f"{wrong} of {a.numel()} transferred elements differ from the source"


def _params(dev_is_cuda: bool, nbytes: int, pinned: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "bytes": nbytes,
        "pinned": pinned,
        "host_memory": "pinned" if pinned else "pageable",
    }
    if not dev_is_cuda:
        params["note"] = CPU_NOTE
    return params


def placement(ctx: BenchContext, dev: BenchDevice) -> str:
    """Where the device's host buffers go: "local" (one NUMA node, or the GPU's node is one
    this process may run on, and the buffers are made there), "remote" (it may not), or
    "unknown" (the GPU's node or the process's is not known)."""
    if ctx.numa_nodes == 1:
        return "local"
    node = dev.numa_node
    if node is None or node < 0 or ctx.process_numa_nodes is None:
        return "unknown"
    return "local" if node in ctx.process_numa_nodes else "remote"


def _numa_params(ctx: BenchContext, devs: list[BenchDevice], placed: list[str]) -> dict[str, Any]:
    """The placement of every device's buffers as one word ("remote" if any is), with the
    facts behind it for the judgement's words."""
    word = "remote" if "remote" in placed else "local" if set(placed) == {"local"} else "unknown"
    return {
        "numa": word,
        "gpu_numa_nodes": [d.numa_node for d in devs],
        "process_numa_nodes": ctx.process_numa_nodes,
    }


@contextlib.contextmanager
def _near(ctx: BenchContext, dev: BenchDevice, cuda: bool) -> Iterator[str]:
    """On a GPU whose node this process may run on, the calling thread runs there inside;
    yields where the device's buffers go (a CPU stand-in's: the rig file's placement)."""
    where = placement(ctx, dev)
    bind = cuda and where == "local" and ctx.numa_nodes != 1
    with numa.on_node(dev.numa_node if bind else None) as bound:
        yield "unknown" if bind and not bound else where


def _seed(ctx: BenchContext, *parts: object) -> int:
    key = ":".join(str(p) for p in parts)
    return (ctx.seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63)


@dataclass
class _Lane:
    """One device's buffers for one direction: `dst.copy_(src)` is the transfer."""

    tdev: torch.device
    src: torch.Tensor
    dst: torch.Tensor
    pinned: bool

    def copy(self) -> object:
        return self.dst.copy_(self.src, non_blocking=self.pinned)


def _lane(tdev: torch.device, direction: str, pinned: bool, nbytes: int, seed: int) -> _Lane:
    """Random source and NaN-poisoned destination: host buffer on one side (pinned or
    pageable), device buffer on the other."""
    import torch

    n = nbytes // 4
    gen = torch.Generator(device=tdev)
    gen.manual_seed(seed)
    data = torch.randn(n, generator=gen, device=tdev, dtype=torch.float32)
    host = torch.empty(n, dtype=torch.float32, pin_memory=pinned)
    if direction == "h2d":
        host.copy_(data)
        dev_buf = torch.full((n,), float("nan"), device=tdev, dtype=torch.float32)
        lane = _Lane(tdev, host, dev_buf, pinned)
    else:
        host.fill_(float("nan"))
        lane = _Lane(tdev, data, host, pinned)
    if tdev.type == "cuda":
        torch.cuda.synchronize(tdev)
    return lane


def _release(tdevs: list[torch.device]) -> None:
    import torch

    if any(t.type == "cuda" for t in tdevs):
        for t in tdevs:
            if t.type == "cuda":
                torch.cuda.synchronize(t)
        torch.cuda.empty_cache()
        empty_host = getattr(torch._C, "_host_emptyCache", None)  # pinned blocks
        if empty_host is not None:
            empty_host()


def _skipped_pinned(labels: list[str], direction: str, params: dict[str, Any]) -> Result:
    return Result.failure(
        NAME,
        direction,
        UNIT,
        "pinned host memory needs CUDA; the CPU stand-in has no host link",
        devices=labels,
        params=params,
        status="skipped",
    )


# --- one device -----------------------------------------------------------------------


def _measure_one(
    ctx: BenchContext, dev: BenchDevice, direction: str, pinned: bool, nbytes: int
) -> Result:
    import torch

    from rigbench.bench.timing import rates, time_iterations

    tdev = torch.device(dev.torch_device)
    cuda = tdev.type == "cuda"
    params = _params(cuda, nbytes, pinned)
    with _near(ctx, dev, cuda) as where:  # a pageable copy's staging runs on this thread too
        lane = _lane(
            tdev, direction, pinned, nbytes, _seed(ctx, NAME, dev.label, direction, pinned)
        )
        t0 = time.monotonic()
        seconds = time_iterations(
            lane.copy,
            tdev,
            warmup=WARMUP_GPU if cuda else WARMUP_CPU,
            repeats=REPEATS_GPU if cuda else REPEATS_CPU,
        )
    params |= _numa_params(ctx, [dev], [where])
    params |= {"window_t0": t0, "window_t1": time.monotonic()}  # for the conditions
    wrong = verify_transfer(lane.src, lane.dst)
    del lane
    return Result.checked_rate(
        NAME,
        direction,
        UNIT,
        rates(seconds, nbytes / 1e9),
        wrong=None if wrong is None else f"{dev.label}: wrong {direction} data: {wrong}",
        devices=[dev.label],
        params=params,
        expected=dev.host_link,
    )


def _run_one(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    dev = ctx.device(step.devices[0])
    tdev = torch.device(dev.torch_device)
    nbytes = transfer_bytes(ctx, dev)
    try:
        for pinned in (True, False):
            for direction in DIRECTIONS:
                if pinned and tdev.type != "cuda":
                    yield _skipped_pinned([dev.label], direction, _params(False, nbytes, True))
                    continue
                result = _measure_one(ctx, dev, direction, pinned, nbytes)
                _release([tdev])
                yield result
    finally:
        _release([tdev])


# --- all devices at once --------------------------------------------------------------


def uplink_groups(devs: list[BenchDevice]) -> list[list[BenchDevice]] | None:
    """The devices by the uplink their host traffic shares (BenchDevice.uplink); None where
    that is unknown for any of them."""
    groups: dict[int, list[BenchDevice]] = {}
    for d in devs:
        if d.uplink is None:
            return None
        groups.setdefault(d.uplink, []).append(d)
    return list(groups.values())


def _sum_expected(devs: list[BenchDevice]) -> Expectation | None:
    """The sum of the uplinks: one host link per PCIe switch the devices share (the widest
    below it; the switch's own link to the CPU is not visible), each other device's own."""
    links = {d.label: d.host_link for d in devs if d.host_link is not None}
    if not devs or len(links) < len(devs):
        return None
    known = uplink_groups(devs)
    groups = known or [[d] for d in devs]
    per_uplink = [max((links[d.label] for d in g), key=lambda link: link.value) for g in groups]
    bases = {link.basis for link in per_uplink}
    what = (
        f"{len(per_uplink)} x ({per_uplink[0].basis})"
        if len(bases) == 1
        else "; ".join(link.basis for link in per_uplink)
    )
    shared = [g for g in groups if len(g) > 1]
    if known is None:
        how = "how the devices share uplinks is unknown (a PCIe switch would give less)"
    elif shared:
        how = "; ".join("+".join(d.label for d in g) + " behind one PCIe switch" for g in shared)
    else:
        how = "no two share a PCIe switch"
    return Expectation(
        value=sum(link.value for link in per_uplink),
        unit=per_uplink[0].unit,
        basis=f"sum of the host links of {len(per_uplink)} uplink(s), {what}; {how}",
    )


def concurrent_wall_times(lanes: list[_Lane], warmup: int, repeats: int) -> list[float]:
    """Per repeat, seconds from the first lane's start to the last lane's finish, every
    lane in its own thread (and CUDA stream), released together by a barrier."""
    import torch

    total = warmup + repeats
    starts = [[0.0] * total for _ in lanes]
    ends = [[0.0] * total for _ in lanes]
    barrier = threading.Barrier(len(lanes), timeout=BARRIER_TIMEOUT_S)
    errors: list[BaseException] = []

    def work(j: int) -> None:
        lane = lanes[j]
        try:
            with contextlib.ExitStack() as stack:
                stream = None
                if lane.tdev.type == "cuda":
                    stack.enter_context(torch.cuda.device(lane.tdev))
                    stream = torch.cuda.Stream(device=lane.tdev)
                    stack.enter_context(torch.cuda.stream(stream))
                for it in range(total):
                    barrier.wait()
                    t0 = time.perf_counter()
                    lane.copy()
                    if stream is not None:
                        stream.synchronize()
                    ends[j][it] = time.perf_counter()
                    starts[j][it] = t0
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=work, args=(j,), name=f"{NAME}-{j}", daemon=True)
        for j in range(len(lanes))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        raise (real or errors)[0]
    return [
        max(ends[j][it] for j in range(len(lanes))) - min(starts[j][it] for j in range(len(lanes)))
        for it in range(warmup, total)
    ]


def _all_params(ctx: BenchContext, devs: list[BenchDevice], pinned: bool) -> dict[str, Any]:
    sizes = [transfer_bytes(ctx, d) for d in devs]
    params = _params(all(_is_cuda(d) for d in devs), sizes[0], pinned)
    groups = uplink_groups(devs)
    params.update(
        at_once=len(devs), bytes_total=sum(sizes), uplinks=len(groups) if groups else None
    )
    return params


def _measure_all(
    ctx: BenchContext, devs: list[BenchDevice], direction: str, pinned: bool
) -> Result:
    import torch

    from rigbench.bench.timing import rates

    tdevs = [torch.device(d.torch_device) for d in devs]
    cuda = all(t.type == "cuda" for t in tdevs)
    sizes = [transfer_bytes(ctx, d) for d in devs]
    labels = [d.label for d in devs]
    params = _all_params(ctx, devs, pinned)
    lanes = []
    placed: list[str] = []
    for d, t, size in zip(devs, tdevs, sizes, strict=True):
        with _near(ctx, d, cuda) as where:  # each device's buffers next to it
            placed.append(where)
            lanes.append(
                _lane(t, direction, pinned, size, _seed(ctx, ALL_KEY, d.label, direction, pinned))
            )
    params |= _numa_params(ctx, devs, placed)
    walls = concurrent_wall_times(
        lanes, WARMUP_GPU if cuda else WARMUP_CPU, REPEATS_GPU if cuda else REPEATS_CPU
    )
    wrong = [
        f"{d.label}: {w}"
        for d, lane in zip(devs, lanes, strict=True)
        if (w := verify_transfer(lane.src, lane.dst)) is not None
    ]
    del lanes
    return Result.checked_rate(
        NAME,
        direction,
        UNIT,
        rates(walls, sum(sizes) / 1e9),
        wrong=f"wrong {direction} data: " + "; ".join(wrong) if wrong else None,
        devices=labels,
        params=params,
        expected=_sum_expected(devs),
    )


def _run_all(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    devs = [ctx.device(label) for label in step.devices]
    tdevs = [torch.device(d.torch_device) for d in devs]
    cuda = all(t.type == "cuda" for t in tdevs)
    try:
        for pinned in (True, False):
            for direction in DIRECTIONS:
                if pinned and not cuda:
                    yield _skipped_pinned(
                        [d.label for d in devs], direction, _all_params(ctx, devs, True)
                    )
                    continue
                result = _measure_all(ctx, devs, direction, pinned)
                _release(tdevs)
                yield result
    finally:
        _release(tdevs)


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    if step.key == ALL_KEY:
        yield from _run_all(ctx, step)
    else:
        yield from _run_one(ctx, step)
