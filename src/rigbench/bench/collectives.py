"""Collective bandwidth: all_reduce, all_gather, reduce_scatter, broadcast and all_to_all
across every device under test, one process per device, through torch.distributed (NCCL
on GPUs, gloo on the CPU stand-ins).

Figures follow nccl-tests (doc/PERFORMANCE.md there). For an operation on n ranks that
takes t seconds on a message of S bytes:

* S, the message size: all_reduce, the buffer; all_gather, the gathered output (n times
  each rank's input); reduce_scatter, the input (n times each rank's output); broadcast,
  the buffer; all_to_all, each rank's buffer (n blocks of S/n, one to every rank).
* algbw = S / t (bytes per second; reported in GB/s, 1e9).
* busbw = algbw * factor, the bandwidth each link carries in the ideal algorithm, so
  that it compares with the hardware's per-direction link bandwidth whatever n is:
  all_reduce 2(n-1)/n, all_gather (n-1)/n, reduce_scatter (n-1)/n, broadcast 1,
  all_to_all (n-1)/n. A ring's busbw approaches the slowest link's per-direction
  bandwidth, so the expected figure is the slowest pair of `ctx.pair_expected`.

Per (op, size) one "busbw" Result (GB/s; the value is busbw at the median time, the
spread is busbw over all timed iterations) and, for the smallest size of each op, a
"latency" Result (us, median time). t of one iteration is the slowest rank's time for
it: every rank times every iteration (CUDA events around the op on the current stream
on GPUs, perf_counter around the call on the CPU, where gloo ops return when done), the
times go to rank 0 and the maximum over ranks is taken per iteration. On GPUs the stream
is held by a spin kernel while Python enqueues a batch of ops (one untimed op first, to
absorb the ranks' skew): otherwise the events of a small message would time the host's
dispatch of torch.distributed's call (tens of us), not the GPUs' collective; a size
where a hold ran out before the host had enqueued its batch carries
params["host_paced_batches"]. Warm-up first; then as many iterations as fill about
TARGET_S (TARGET_S_CPU on CPU stand-ins), within MIN_ITERS..MAX_ITERS.

Sizes: GPUs, quick 8 B (latency), 1 MiB, 16 MiB, 256 MiB; full 8 B to 1 GiB by powers of
2. CPU stand-ins, quick 8 B, 4 KiB, 64 KiB, 1 MiB; full 8 B to 16 MiB. All are scaled by
`ctx.size_scale` and rounded down to whole float32 elements (at least one), and for the
ops that cut the message into n blocks to a multiple of n elements (at least n), as
nccl-tests does; `params["bytes"]` is the size actually moved.

Correctness is checked outside the timed loop on every rank and every size, once before
timing (output poisoned with NaN first) and once on the last timed iteration's output:
inputs are small rank- and position-dependent integers in float32 (sums over ranks are
exact), and the output must equal the analytically known result. A mismatch on any rank
makes the size's Results "failed", naming the rank and the first wrong index: that is how
P2P corruption (a patched driver, a bad riser) shows. all_reduce and broadcast are in
place, so their buffer is restored from a pristine copy before every iteration, outside
the timed region (the data never grows to inf, and every iteration checks the same thing).

Processes: the benchmark worker is rank 0. It starts ranks 1..n-1 as supervisor workers
(they stay in the worker's process group, so the supervisor's kill on a timeout ends them
too; their start-up is timed apart from the step's timeout), rendezvous through a
TCPStore on 127.0.0.1 whose port the OS picks, and keeps them for every step the worker
runs: process start and communicator set-up are paid once.
Commands go to each rank over its own pipe, replies (times, check results) come back
the same way (rigbench.bench.rankpool). NCCL_NVLS_ENABLE=0 is set for every rank unless
already set: NVLink multicast stays off. The pool is shut down (process groups
destroyed, ranks joined) after the last planned step, and at the worker's normal exit
otherwise. An op the backend lacks gives a "skipped" Result with the backend's reason
(torch 2.13's gloo has all five). Fewer than two devices: `plan` returns no steps
(nothing to measure; the caller says so), and `run` given such a step anyway yields one
"skipped" Result.

`ctx.p2p_faults` are played on CPU stand-ins only: for pair "i-j", rank j either
corrupts one element of its output after every op ("corrupt") or never returns from
its first op ("hang"), so a simulated rig shows what a faulty link does to collectives.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, get_args

from rigbench.bench.context import BenchContext, Step
from rigbench.bench.options import CollectiveOp, options_of
from rigbench.bench.rankpool import RankPool
from rigbench.bench.timing import synchronize, time_iterations
from rigbench.errors import one_line
from rigbench.records import FailureReason, Result
from rigbench.stats import percentile, summarize
from rigbench.supervisor import RANKS_STARTUP_S, step_ready

if TYPE_CHECKING:
    import torch

NAME = "collectives"

OPS: tuple[str, ...] = get_args(CollectiveOp)
# Ops whose message is cut into n equal blocks (sizes rounded to n elements).
_BLOCKED = frozenset({"all_gather", "reduce_scatter", "all_to_all"})

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
GPU_QUICK = (8, MiB, 16 * MiB, 256 * MiB)
GPU_FULL = tuple(1 << k for k in range(3, 31))  # 8 B .. 1 GiB
CPU_QUICK = (8, 4 * KiB, 64 * KiB, MiB)
CPU_FULL = tuple(1 << k for k in range(3, 25))  # 8 B .. 16 MiB

ELEM = 4  # float32
ROOT = 0  # broadcast root, as nccl-tests
WARMUP = 3  # untimed calls after the checked one (which pays lazy connection set-up)
CALIBRATE = 3  # calls timed together to size the timed loop
TARGET_S = 0.3  # aim for about this long per size in the timed loop
# CPU stand-ins (no GPU here, or a simulated rig) run the code paths and the data checks;
# gloo over loopback measures the host, not a link, and no reference judges it (catalog
# references hold GPUs only): MIN_ITERS or a fiftieth of a second per size is enough
# (under torchrun as without it)
TARGET_S_CPU = 0.02
MIN_ITERS = 5
MAX_ITERS = 200
# GPU timing holds the stream while the host enqueues HELD_BATCH ops (fewer than CUDA's
# queue of pending launches takes), for HOLD_MARGIN times the host's estimated enqueue
# time; ops slower than HOST_BOUND_S keep the GPU busy without a hold.
HELD_BATCH = 50
HOLD_MARGIN = 3.0
HOST_BOUND_S = 1e-3
MAX_HOLD_S = 0.2
# Spin cycles per second assumed when sizing a hold: above any GPU's SM clock, so that a
# hold comes out long rather than short (the spin itself brings idle clocks up).
SPIN_HZ = 3.5e9
GPU_STEP_TIMEOUT_S = 150.0  # silence allowed once the ranks are up
CPU_STEP_TIMEOUT_S = 60.0

# Pattern of the checked data: small integers, exact in float32 even summed over ranks.
_MOD = 65521


# ---------------------------------------------------------------------------- figures


def bus_factor(op: str, world_size: int) -> float:
    """nccl-tests' busbw / algbw for `op` on `world_size` ranks."""
    n = world_size
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    if op == "broadcast":
        return 1.0
    raise ValueError(f"unknown op {op!r}")


def message_counts(
    op: str, sizes_bytes: tuple[int, ...] | list[int], scale: float, world_size: int
) -> list[int]:
    """float32 element counts of the messages for `op`: each size scaled, rounded down to
    whole elements (and to multiples of `world_size` for blocked ops), deduplicated."""
    out: list[int] = []
    for size in sizes_bytes:
        count = max(1, int(size * scale) // ELEM)
        if op in _BLOCKED:
            count = max(world_size, count - count % world_size)
        if count not in out:
            out.append(count)
    return out


def planned_sizes(ctx: BenchContext) -> tuple[int, ...]:
    if ctx.on_gpu:
        return GPU_QUICK if ctx.mode == "quick" else GPU_FULL
    return CPU_QUICK if ctx.mode == "quick" else CPU_FULL


def iterations_for(estimate_s: float, target_s: float = TARGET_S) -> int:
    """Timed iterations so that a size takes about `target_s`, within MIN..MAX_ITERS."""
    if estimate_s <= 0:
        return MAX_ITERS
    return max(MIN_ITERS, min(MAX_ITERS, math.ceil(target_s / estimate_s)))


def slowest_iterations(per_rank: list[list[float]]) -> list[float]:
    """Per iteration, the slowest rank's time: a collective ends when its last rank does."""
    if not per_rank or any(len(t) != len(per_rank[0]) for t in per_rank):
        raise ValueError("every rank must report the same number of iterations")
    return [max(ts) for ts in zip(*per_rank, strict=True)]


def slowest_pair(ctx: BenchContext) -> tuple[float, str] | None:
    """The lowest expected pair bandwidth and a basis saying which pair it is."""
    if not ctx.pair_expected:
        return None
    key, exp = min(ctx.pair_expected.items(), key=lambda kv: kv[1].value)
    return exp.value, f"slowest pair {_pair_labels(ctx, key)}: {exp.basis}; " + (
        "ring busbw approaches the slowest link's per-direction bandwidth"
    )


def _pair_labels(ctx: BenchContext, key: str) -> str:
    try:
        i, j = (int(p) for p in key.split("-"))
        return f"{ctx.devices[i].label}-{ctx.devices[j].label}"
    except (ValueError, IndexError):
        return key


@dataclass(slots=True)
class Measured:
    """What the ranks reported for one (op, size)."""

    op: str
    nbytes: int
    world_size: int
    backend: str
    times_s: list[float] = field(default_factory=list)  # per iteration, slowest rank
    problem: str | None = None  # first check failure, or why nothing was measured
    reason: FailureReason | None = None  # "wrong_data" when a check failed
    short_holds: int = 0  # GPU batches some of whose ops the host, not the GPU, paced


def results_for(
    m: Measured, devices: list[str], expected: tuple[float, str] | None, *, latency: bool
) -> list[Result]:
    """The busbw Result (and, for the smallest size, the latency Result) of one size."""
    params: dict[str, Any] = {
        "op": m.op,
        "bytes": m.nbytes,
        "world_size": m.world_size,
        "backend": m.backend,
    }
    factor = bus_factor(m.op, m.world_size)
    p50 = p99 = None
    if m.times_s:
        s = sorted(m.times_s)
        p50, p99 = percentile(s, 50), percentile(s, 99)
        params.update(
            algbw_gbs=m.nbytes / p50 / 1e9 if p50 > 0 else None,
            time_us_p50=p50 * 1e6,
            time_us_p99=p99 * 1e6,
        )
    if m.short_holds:
        params["host_paced_batches"] = m.short_holds
    exp_value, basis = expected if expected else (None, None)
    metrics = [("busbw", "GB/s")] + ([("latency", "us")] if latency else [])
    out = []
    for metric, unit in metrics:
        if m.problem is not None or p50 is None or p50 <= 0:
            r = Result.failure(
                NAME,
                metric,
                unit,
                m.problem or "no positive time measured",
                devices=devices,
                params=dict(params),
                reason=m.reason,
            )
            if metric == "busbw":
                r.expected, r.basis = exp_value, basis
            out.append(r)
            continue
        if metric == "busbw":
            bw = [m.nbytes / t * factor / 1e9 for t in m.times_s if t > 0]
            out.append(
                Result(
                    benchmark=NAME,
                    metric="busbw",
                    value=m.nbytes / p50 * factor / 1e9,
                    unit="GB/s",
                    params=dict(params),
                    devices=devices,
                    spread=summarize(bw),
                    expected=exp_value,
                    basis=basis,
                )
            )
        else:
            out.append(
                Result(
                    benchmark=NAME,
                    metric="latency",
                    value=p50 * 1e6,
                    unit="us",
                    params=dict(params),
                    devices=devices,
                    spread=summarize([t * 1e6 for t in m.times_s]),
                )
            )
    return out


# ------------------------------------------------------------------ data and checks


def pattern(
    rank: int, count: int, *, offset: int = 0, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Rank `rank`'s checked data at positions offset..offset+count, as float32: integers
    in 1.._MOD that differ between ranks and along the buffer."""
    import torch

    end = offset + count
    dtype = torch.int32 if end <= (1 << 28) and rank < 1 << 10 else torch.int64
    i = torch.arange(offset, end, dtype=dtype, device=device)
    hi = torch.bitwise_right_shift(i, 16).mul_(13)
    i.mul_(7).add_(hi).add_(rank * 1009).remainder_(_MOD).add_(1)
    del hi
    return i.to(torch.float32)


def _sum_pattern(
    world_size: int, count: int, *, offset: int = 0, device: str | torch.device = "cpu"
) -> torch.Tensor:
    total = pattern(0, count, offset=offset, device=device)
    for r in range(1, world_size):
        total.add_(pattern(r, count, offset=offset, device=device))
    return total


def input_for(
    op: str, rank: int, world_size: int, count: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Rank `rank`'s input for a message of `count` elements (see the module docstring)."""
    if op == "all_gather":
        return pattern(rank, count // world_size, device=device)
    return pattern(rank, count, device=device)


def expected_output(
    op: str, rank: int, world_size: int, count: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """What rank `rank`'s output must hold after `op`, everyone's input from `input_for`."""
    import torch

    n = world_size
    block = count // n
    if op == "all_reduce":
        return _sum_pattern(n, count, device=device)
    if op == "all_gather":
        return torch.cat([pattern(r, block, device=device) for r in range(n)])
    if op == "reduce_scatter":
        return _sum_pattern(n, block, offset=rank * block, device=device)
    if op == "broadcast":
        return pattern(ROOT, count, device=device)
    if op == "all_to_all":
        # Block j of rank r's output is block r of rank j's input.
        return torch.cat([pattern(j, block, offset=rank * block, device=device) for j in range(n)])
    raise ValueError(f"unknown op {op!r}")


def first_mismatch(
    got: torch.Tensor, expected: torch.Tensor
) -> tuple[int, int, float, float] | None:
    """(wrong elements, first wrong index, its value, the value expected), or None."""
    import torch

    if got.shape != expected.shape:
        raise ValueError(f"shape {tuple(got.shape)} != {tuple(expected.shape)}")
    bad = got != expected  # NaN (an element never written) counts as wrong
    nbad = int(bad.sum())
    if nbad == 0:
        return None
    idx = int(bad.to(torch.uint8).argmax())
    return nbad, idx, float(got[idx]), float(expected[idx])


def check_output(op: str, rank: int, world_size: int, count: int, got: torch.Tensor) -> str | None:
    """None if rank `rank`'s output of `op` is right, else a message naming the rank and
    the first wrong index."""
    exp = expected_output(op, rank, world_size, count, device=got.device)
    bad = first_mismatch(got.reshape(-1), exp)
    del exp
    if bad is None:
        return None
    nbad, idx, g, e = bad
    return (
        f"rank {rank}: {nbad} of {got.numel()} elements wrong, "
        f"first at index {idx} (got {g:g}, expected {e:g})"
    )


# ------------------------------------------------------------------------- one rank


def _looks_unsupported(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, NotImplementedError) or any(
        s in text for s in ("not supported", "does not support", "unsupported", "not implemented")
    )


def _collective(op: str) -> Callable[..., Any] | None:
    """torch.distributed's function for `op`, or None when this torch has none."""
    import torch.distributed as dist

    names = {
        "all_reduce": ("all_reduce",),
        # torch 2.13 renamed the *_tensor forms and warns on the old names.
        "all_gather": ("all_gather_single", "all_gather_into_tensor"),
        "reduce_scatter": ("reduce_scatter_single", "reduce_scatter_tensor"),
        "broadcast": ("broadcast",),
        "all_to_all": ("all_to_all_single",),
    }[op]
    for name in names:
        fn = getattr(dist, name, None)
        if fn is not None:
            return fn
    return None


class _Rank:
    """One rank's side of the protocol, a rigbench.bench.rankpool handler; rank 0 runs it
    in the worker, the others in their own processes. Every command gets exactly one
    reply tuple, first item "ok", "unsupported", "error" (warm and time: rank 0's stops
    the pool) or "failed" (the other commands: nobody is inside a collective). The first
    command, ("fault", faults by rank), sets the simulated fault this rank plays."""

    def __init__(self, rank: int, world_size: int, device: str, group: Any = None) -> None:
        import torch

        self.rank = rank  # within `group` (None: the default, whole-world group)
        self.world = world_size
        self.device = torch.device(device)
        self.group = group
        self.fault: str | None = None
        self._clear()

    def _clear(self) -> None:
        self.op = ""
        self.count = 0
        self.inp: torch.Tensor | None = None
        self.out: torch.Tensor | None = None
        self.pristine: torch.Tensor | None = None

    def close(self) -> None:
        self._drop()

    def handle(self, cmd: tuple[Any, ...]) -> tuple[Any, ...]:
        reply = self._handle(cmd)
        if reply[0] == "error" and cmd[0] not in ("warm", "time"):
            return ("failed", *reply[1:])  # RankPool raises on rank 0's "error"
        return reply

    def _handle(self, cmd: tuple[Any, ...]) -> tuple[Any, ...]:
        try:
            if cmd[0] == "fault":
                self.fault = cmd[1][self.rank]
                return ("ok",)
            if cmd[0] == "prepare":
                return self._prepare(cmd[1], cmd[2])
            if cmd[0] == "warm":
                return self._warm()
            if cmd[0] == "time":
                return self._time(cmd[1], cmd[2])
            if cmd[0] == "drop":
                self._drop()
                return ("ok",)
            return ("error", f"rank {self.rank}: unknown command {cmd[0]!r}")
        except Exception as exc:
            self._drop()
            return ("error", f"rank {self.rank}: {one_line(exc)}", traceback.format_exc())

    def _prepare(self, op: str, count: int) -> tuple[Any, ...]:
        import torch

        self._drop()
        self.op, self.count = op, count
        n, dev = self.world, self.device
        data = input_for(op, self.rank, n, count, device=dev)
        if op in ("all_reduce", "broadcast"):
            self.out = data
            self.pristine = data.clone()
        else:
            self.inp = data
            out_n = count // n if op == "reduce_scatter" else count
            self.out = torch.full((out_n,), math.nan, dtype=torch.float32, device=dev)
        synchronize(dev)
        return ("ok",)

    def _call(self) -> None:
        import torch
        import torch.distributed as dist

        op, out = self.op, self.out
        assert out is not None
        fn = _collective(op)
        if fn is None:
            raise NotImplementedError(f"torch {torch.__version__} has no {op} collective")
        group = self.group
        if op == "all_reduce":
            fn(out, op=dist.ReduceOp.SUM, group=group)
        elif op == "broadcast":  # src is a global rank: the group's first member
            fn(out, src=ROOT if group is None else dist.get_global_rank(group, ROOT), group=group)
        elif op == "reduce_scatter":
            fn(out, self.inp, op=dist.ReduceOp.SUM, group=group)
        else:
            fn(out, self.inp, group=group)
        if self.fault == "corrupt":
            out.view(-1)[out.numel() // 2] += 1.0
        elif self.fault == "hang":
            while True:  # a link that never completes; the runner's timeout ends it
                time.sleep(3600)

    def _restore(self) -> None:
        if self.pristine is not None and self.out is not None:
            self.out.copy_(self.pristine)

    def _check(self, when: str) -> str | None:
        assert self.out is not None
        synchronize(self.device)
        msg = check_output(self.op, self.rank, self.world, self.count, self.out)
        return f"{msg} ({when})" if msg else None

    def _warm(self) -> tuple[Any, ...]:
        try:
            self._call()
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            if _looks_unsupported(exc):
                self._drop()
                return ("unsupported", one_line(exc))
            raise
        problem = self._check("before timing")
        for _ in range(WARMUP):
            self._restore()
            self._call()
        synchronize(self.device)
        t0 = time.perf_counter()
        for _ in range(CALIBRATE):
            self._restore()
            self._call()
        synchronize(self.device)
        return ("ok", problem, (time.perf_counter() - t0) / CALIBRATE)

    def _time(self, iters: int, estimate_s: float) -> tuple[Any, ...]:
        before = self._restore if self.pristine is not None else None
        short = 0
        if self.device.type == "cuda":
            times, short = self._time_held(iters, estimate_s)
        else:  # gloo returns when the op is done
            times = time_iterations(
                self._call, self.device, warmup=0, repeats=iters, before_each=before
            )
        problem = self._check("after timing")
        self._drop()
        return ("ok", times, problem, short)

    def _time_held(self, iters: int, estimate_s: float) -> tuple[list[float], int]:
        """CUDA events around every op on the current stream, with the stream held by a
        spin kernel while Python enqueues a batch: the events then time the GPU's work,
        not the host's dispatch of each call (which, for small messages, is the larger).
        Also returns how many batches' holds ended before the host had enqueued them."""
        import torch

        dev = self.device
        before = self._restore if self.pristine is not None else None
        times: list[float] = []
        short = 0

        def event() -> torch.cuda.Event:
            return torch.cuda.Event(enable_timing=True)

        with torch.cuda.device(dev):
            for first in range(0, iters, HELD_BATCH):
                k = min(HELD_BATCH, iters - first)
                torch.cuda.synchronize(dev)
                held = estimate_s < HOST_BOUND_S
                hold_start, hold_end = event(), event()
                if held:
                    hold_s = min(MAX_HOLD_S, HOLD_MARGIN * (k + 1) * estimate_s + 2e-3)
                    hold_start.record()
                    torch.cuda._sleep(int(hold_s * SPIN_HZ))
                    hold_end.record()
                t0 = time.perf_counter()
                if before:
                    before()
                self._call()  # untimed: absorbs the ranks' skew as their holds end
                events = [(event(), event()) for _ in range(k)]
                for start, end in events:
                    if before:
                        before()
                    start.record()
                    self._call()
                    end.record()
                enqueue_s = time.perf_counter() - t0
                torch.cuda.synchronize(dev)
                times += [start.elapsed_time(end) / 1e3 for start, end in events]
                if held and hold_start.elapsed_time(hold_end) / 1e3 < enqueue_s:
                    short += 1
        return times, short

    def _drop(self) -> None:
        self._clear()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


def _fault_for(ctx: BenchContext, rank: int) -> str | None:
    """The simulated fault rank `rank` plays (CPU stand-ins only): the higher end of a
    faulty pair."""
    if ctx.on_gpu:
        return None
    for key, fault in ctx.p2p_faults.items():
        try:
            i, j = sorted(int(p) for p in key.split("-"))
        except ValueError:
            continue
        if j == rank and i < len(ctx.devices) and fault in ("corrupt", "hang"):
            return fault
    return None


# ------------------------------------------------------------------- rank 0's pool


_POOL: RankPool | None = None


def _pool(ctx: BenchContext) -> RankPool:
    global _POOL
    backend = "nccl" if ctx.on_gpu else "gloo"
    devices = [d.torch_device for d in ctx.devices]
    if _POOL is not None and (
        not _POOL.alive() or (_POOL.backend, _POOL.devices) != (backend, devices)
    ):
        shutdown_pool()
    if _POOL is None:
        _POOL = RankPool(devices, backend, "rigbench.bench.collectives:_Rank")
        _POOL.command("fault", [_fault_for(ctx, r) for r in range(_POOL.world)])
    return _POOL


def shutdown_pool() -> None:
    """Stop ranks 1..n-1 and destroy the process group (no-op when there is no pool)."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown()


# ----------------------------------------------------------------------- plan / run


def _op_of(step: Step) -> str:
    return str(step.params.get("op") or step.key.split(":", 1)[1])


def ops_of(ctx: BenchContext) -> tuple[str, ...]:
    """The collectives `--set collectives.ops=...` asks for, in OPS order (default: all)."""
    asked = options_of(ctx.extra).collectives_ops
    return tuple(op for op in OPS if asked is None or op in asked)


def plan(ctx: BenchContext) -> list[Step]:
    """One step per op over all devices; none when fewer than two devices are given."""
    n = len(ctx.devices)
    if n < 2:
        return []
    backend = "nccl" if ctx.on_gpu else "gloo"
    labels = [d.label for d in ctx.devices]
    steps = []
    for op in ops_of(ctx):
        counts = message_counts(op, planned_sizes(ctx), ctx.size_scale, n)
        steps.append(
            Step(
                key=f"{NAME}:{op}",
                label=f"{op} over {n} devices ({backend})",
                metric="busbw",
                unit="GB/s",
                devices=labels,
                params={
                    "op": op,
                    "world_size": n,
                    "backend": backend,
                    "sizes": [c * ELEM for c in counts],
                },
                timeout_s=GPU_STEP_TIMEOUT_S if ctx.on_gpu else CPU_STEP_TIMEOUT_S,
                startup_s=RANKS_STARTUP_S,
            )
        )
    return steps


def _skipped(op: str, ctx: BenchContext, backend: str, why: str) -> Result:
    return Result.failure(
        NAME,
        "busbw",
        "GB/s",
        why,
        devices=[d.label for d in ctx.devices],
        params={"op": op, "world_size": len(ctx.devices), "backend": backend},
        status="skipped",
    )


class CommandPool(Protocol):
    """What `_measure` drives: a RankPool, or bench.cluster's group of torchrun ranks."""

    world: int
    backend: str

    def command(self, *cmd: Any) -> list[tuple[Any, ...]]: ...


def _measure(pool: CommandPool, op: str, count: int, target_s: float = TARGET_S) -> Measured:
    m = Measured(op=op, nbytes=count * ELEM, world_size=pool.world, backend=pool.backend)
    replies = pool.command("prepare", op, count)
    errors = [r[1] for r in replies if r[0] != "ok"]
    if errors:  # e.g. out of memory on one rank: nobody has entered a collective
        pool.command("drop")
        m.problem = "; ".join(errors)
        m.reason = "oom" if "out of memory" in m.problem.lower() else None
        return m
    replies = pool.command("warm")
    unsupported = [r[1] for r in replies if r[0] == "unsupported"]
    errors = [r[1] for r in replies if r[0] == "error"]
    if unsupported or errors:
        pool.command("drop")
        raise _Unsupported(unsupported[0]) if unsupported else RuntimeError("; ".join(errors))
    problems = [r[1] for r in replies if r[1]]
    estimate = max(r[2] for r in replies)
    replies = pool.command("time", iterations_for(estimate, target_s), estimate)
    errors = [r[1] for r in replies if r[0] != "ok"]
    if errors:
        raise RuntimeError("; ".join(errors))
    problems += [r[2] for r in replies if r[2]]
    m.short_holds = max(r[3] for r in replies)
    m.times_s = slowest_iterations([list(r[1]) for r in replies])
    if problems:  # a rank's output failed its check (`check_output`)
        m.problem = "; ".join(problems)
        m.reason = "wrong_data"
    return m


class _Unsupported(Exception):
    pass


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch
    import torch.distributed as dist

    op = _op_of(step)
    n = len(ctx.devices)
    backend = "nccl" if ctx.on_gpu else "gloo"
    labels = [d.label for d in ctx.devices]
    if n < 2:
        yield _skipped(op, ctx, backend, "needs at least two devices")
        return
    if not dist.is_available():
        yield _skipped(op, ctx, backend, "this torch build has no torch.distributed")
        return
    if _collective(op) is None:
        yield _skipped(op, ctx, backend, f"torch {torch.__version__} has no {op} collective")
        return
    sizes = step.params.get("sizes") or [
        c * ELEM for c in message_counts(op, planned_sizes(ctx), ctx.size_scale, n)
    ]
    expected = slowest_pair(ctx)
    pool = _pool(ctx)
    step_ready()
    smallest = min(sizes)
    for nbytes in sizes:
        try:
            m = _measure(pool, op, int(nbytes) // ELEM, TARGET_S if ctx.on_gpu else TARGET_S_CPU)
        except _Unsupported as exc:
            yield _skipped(op, ctx, backend, f"{backend} does not support {op}: {exc}")
            break
        yield from results_for(m, labels, expected, latency=nbytes == smallest)
    last = plan(ctx)
    if last and step.key == last[-1].key:
        shutdown_pool()
