"""Dense matrix-multiply throughput per dtype: TFLOP/s (TOP/s for int8) = 2*M*N*K / t,
twice per dtype, because both are true and an owner needs both:

- burst (`<dtype>.burst`): the L2 flushed before each call, random data, 5 warm-up calls,
  then 20 single calls each between two CUDA events and waited for; the median. What the
  silicon does at its boost clock, and what "maximum achievable matmul" tables report.
- sustained (`<dtype>.sustained`): products back to back for SUSTAINED_S_FULL seconds
  (`--full`, every dtype) or SUSTAINED_S_QUICK (quick: bf16 only, to keep `bench --quick`
  short); the median of the calls in the second half, when the clocks have settled at the
  power cap. What training gets (an H200 at 700 W: ~770 burst, ~685 sustained bf16).

One 8192^3 product on a GPU (512^3 on the CPU stand-in), scaled by `size_scale`, smaller
only when it would not fit the step's time budget. Each result carries the monotonic times
of its timed part (`window_t0`/`window_t1`), so the parent can attach the clocks and power
it sampled meanwhile. Every figure is checked: a block of the output against a float64
product of the same (already quantised) inputs, computed on the CPU.

Torch is imported inside the functions that need it: `plan` runs in the parent, cheaply.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.records import Result
from rigbench.stats import Spread, summarize

if TYPE_CHECKING:
    import torch

NAME = "gemm"

DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")
CPU_DTYPES = ("fp64", "fp32", "bf16")

GPU_N = 8192  # documented quick size on a GPU (M = N = K)
CPU_N = 512  # documented size on the CPU stand-in
GPU_ALIGN = 256  # dimensions are multiples of this on a GPU ...
CPU_ALIGN = 16  # ... and of this on the CPU (fp8 and int8 need multiples of 16)
MIN_DIM = 32  # _int_mm needs M > 16

BURST_REST_S = 1.5  # idle before each burst, so the power limiter's average has fallen
BURST_WARMUP = 5
BURST_REPEATS = 20
SUSTAINED_S_QUICK = 3.0
SUSTAINED_S_FULL = 10.0
SUSTAINED_S_CPU = 0.3  # the CPU stand-in runs the same code path, briefly
QUICK_SUSTAINED = ("bf16",)  # the training dtype; --full does every dtype
CHUNK_S = 0.1  # sustained calls are timed in chunks this long (events each), then synced
STEP_BUDGET_S = 2.0  # the burst part of one step; a slower product is made smaller
CPU_CACHE_BYTES = 32 << 20  # nominal last-level cache of the CPU stand-in (for rotation)
MAX_INPUT_SETS = 8

QUICK_TIMEOUT_S = 60.0
FULL_TIMEOUT_S = 120.0

CHECK_BLOCK = 256  # rows and columns of the output checked against float64
FP8_MAX = 448.0  # largest finite float8_e4m3fn
FP8_FAST_ACCUM = True  # what fp8 training uses in the forward pass; recorded in params

# Relative Frobenius error allowed against the float64 product of the same inputs.
TOLERANCE = {
    "fp64": 1e-12,
    "fp32": 1e-5,
    "tf32": 5e-3,
    "fp16": 2e-2,
    "bf16": 2e-2,
    "fp8": 5e-2,
    "int8": 0.0,  # exact
}


def unit_for(dtype: str) -> str:
    return "TOP/s" if dtype == "int8" else "TFLOP/s"


def plan(ctx: BenchContext) -> list[Step]:
    timeout = FULL_TIMEOUT_S if ctx.mode == "full" else QUICK_TIMEOUT_S
    return [
        Step(
            key=f"{NAME}:{dev.label}:{dtype}",
            label=f"{dev.label} {dtype} matmul",
            metric=f"{dtype}.burst",
            unit=unit_for(dtype),
            devices=[dev.label],
            params={"dtype": dtype},
            timeout_s=timeout,
        )
        for dev in ctx.devices
        for dtype in DTYPES
    ]


def unsupported(dev: BenchDevice, dtype: str, capability: tuple[int, int] | None) -> str | None:
    """Why `dev` cannot run `dtype` here, or None when it can."""
    import torch

    if dev.torch_device.startswith("cpu"):
        if dtype not in CPU_DTYPES:
            return f"{dtype}: the CPU stand-in measures {', '.join(CPU_DTYPES)} only"
        return None
    cc = capability or (0, 0)
    sm = f"sm_{cc[0]}{cc[1]}"
    if dtype in ("tf32", "bf16") and cc < (8, 0):
        return f"{dtype} needs compute capability 8.0+ (sm_80); this device is {sm}"
    if dtype == "fp8":
        if cc < (8, 9):
            return f"fp8 needs compute capability 8.9+ (sm_89); this device is {sm}"
        if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
            return f"fp8: torch {torch.__version__} has no torch._scaled_mm"
    if dtype == "int8":
        if not hasattr(torch, "_int_mm"):
            return f"int8: torch {torch.__version__} has no torch._int_mm"
        if cc < (7, 5):
            return f"int8 matmul (torch._int_mm) needs compute capability 7.5+; this is {sm}"
    return None


# --- correctness ----------------------------------------------------------------------


def check_output(
    dtype: str, out_block: torch.Tensor, ref_block: torch.Tensor
) -> tuple[float, str | None]:
    """Relative Frobenius error of `out_block` against the float64 `ref_block`, and a
    failure message (None when it passes). NaN or Inf never passes; int8 must be exact."""
    import torch

    out = out_block.detach().to("cpu", torch.float64)
    ref = ref_block.detach().to("cpu", torch.float64)
    if out.shape != ref.shape:
        return (
            math.nan,
            f"{dtype}: output block has shape {tuple(out.shape)}, expected {tuple(ref.shape)}",
        )
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        return math.nan, f"{dtype}: {bad} non-finite values in the checked output block"
    ref_norm = float(torch.linalg.vector_norm(ref))
    diff = float(torch.linalg.vector_norm(out - ref))
    err = diff / ref_norm if ref_norm > 0 else diff
    tol = TOLERANCE[dtype]
    if dtype == "int8":
        if not torch.equal(out, ref):
            wrong = int((out != ref).sum())
            return (
                err,
                f"int8: {wrong} of {out.numel()} checked outputs differ from the exact product",
            )
        return err, None
    if not err <= tol:
        return err, f"{dtype}: relative error {err:.3g} against float64 exceeds {tol:g}"
    return err, None


@contextlib.contextmanager
def fp32_math(device_type: str, *, tf32: bool) -> Iterator[None]:
    """Sets how float32 products are computed on `device_type` (TF32 on or off) and
    restores the global setting afterwards, through the API the running torch has."""
    import torch

    if device_type == "cuda":
        mod: Any = torch.backends.cuda.matmul
    else:
        mod = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    new_api = False
    if mod is not None:
        try:
            old = mod.fp32_precision  # torch >= 2.9; "none" means "follow the generic one"
            new_api = True
        except (AttributeError, RuntimeError):
            new_api = False
    if new_api:
        mod.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            mod.fp32_precision = old
    elif device_type == "cuda":
        old_allow = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old_allow
    else:
        yield


# --- problems -------------------------------------------------------------------------


@dataclass
class _Problem:
    """Operands (several sets, rotated), one output buffer and the product call."""

    dtype: str
    m: int
    n: int
    k: int
    sets: list[tuple[Any, ...]]
    out: Any
    call: Callable[[int], object]
    _next: int = field(default=0)

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    def step(self) -> object:
        i = self._next
        self._next = (i + 1) % len(self.sets)
        return self.call(i)

    def poison(self) -> None:
        import torch

        if self.out.dtype == torch.int32:
            self.out.fill_(torch.iinfo(torch.int32).min)  # unreachable: |sum| <= 64 * K
        else:
            self.out.fill_(math.nan)

    def reference_block(self, i: int = 0) -> torch.Tensor:
        """float64 product (on the CPU) of the first CHECK_BLOCK rows of A and columns of
        B of input set `i`, from the very values the kernel was given."""
        import torch

        r, c = min(CHECK_BLOCK, self.m), min(CHECK_BLOCK, self.n)
        a, b = self.sets[i][0], self.sets[i][1]
        a, b = a[:r], b[:, :c]
        if self.dtype == "fp8":  # float8 converts through float32 (exact)
            a, b = a.float(), b.float()
        a64 = a.to("cpu", torch.float64)
        b64 = b.to("cpu", torch.float64)
        if self.dtype == "fp8":
            sa, sb = self.sets[i][2], self.sets[i][3]
            a64 = a64 * float(sa)
            b64 = b64 * float(sb)
        return a64 @ b64

    def verify(self) -> tuple[float, str | None]:
        """One fresh product of input set 0 into a poisoned output, checked."""
        import torch

        self.poison()
        self.call(0)
        synchronize_tensor(self.out)
        if self.out.dtype == torch.int32:
            unwritten = int((self.out == torch.iinfo(torch.int32).min).sum())
        else:
            unwritten = int(torch.isnan(self.out).sum())
        if unwritten:
            return math.nan, f"{self.dtype}: {unwritten} output elements were not written"
        r, c = min(CHECK_BLOCK, self.m), min(CHECK_BLOCK, self.n)
        return check_output(self.dtype, self.out[:r, :c], self.reference_block(0))


def synchronize_tensor(t: torch.Tensor) -> None:
    import torch

    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)


def _operand_bytes(dtype: str, m: int, n: int, k: int) -> int:
    size_in = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}[dtype]
    size_out = {"fp8": 2, "int8": 4}.get(dtype, size_in)
    return (m * k + k * n) * size_in + m * n * size_out


def _build(
    dtype: str, m: int, n: int, k: int, tdev: torch.device, gen: torch.Generator, n_sets: int
) -> _Problem:
    import torch

    def randn(rows: int, cols: int, dt: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(rows, cols, generator=gen, device=tdev, dtype=dt)

    sets: list[tuple[Any, ...]] = []
    if dtype == "int8":
        for _ in range(n_sets):
            a = torch.randint(-8, 9, (m, k), generator=gen, device=tdev, dtype=torch.int8)
            # B column-major, as for fp8: cuBLASLt's int8 tensor-core kernels want "TN";
            # a row-major B ran at an eighth of the rate on an H100.
            b = torch.randint(-8, 9, (n, k), generator=gen, device=tdev, dtype=torch.int8).t()
            sets.append((a, b))
        out = torch.empty(m, n, dtype=torch.int32, device=tdev)

        def call(i: int) -> object:
            a, b = sets[i]
            return torch._int_mm(a, b, out=out)

    elif dtype == "fp8":
        f8 = torch.float8_e4m3fn
        for _ in range(n_sets):
            a32 = randn(m, k)
            sa = (a32.abs().amax() / FP8_MAX).float()
            a = (a32 / sa).to(f8)
            del a32
            b32 = randn(n, k)  # B is stored column-major: (N, K) row-major, transposed
            sb = (b32.abs().amax() / FP8_MAX).float()
            b = (b32 / sb).to(f8).t()
            del b32
            sets.append((a, b, sa, sb))
        out = torch.empty(m, n, dtype=torch.bfloat16, device=tdev)

        def call(i: int) -> object:
            a, b, sa, sb = sets[i]
            return torch._scaled_mm(
                a,
                b,
                scale_a=sa,
                scale_b=sb,
                out_dtype=torch.bfloat16,
                use_fast_accum=FP8_FAST_ACCUM,
                out=out,
            )

    else:
        tdtype = {
            "fp64": torch.float64,
            "fp32": torch.float32,
            "tf32": torch.float32,
            "fp16": torch.float16,
            "bf16": torch.bfloat16,
        }[dtype]
        for _ in range(n_sets):
            if tdtype == torch.float64:
                a, b = randn(m, k, torch.float64), randn(k, n, torch.float64)
            else:
                a, b = randn(m, k).to(tdtype), randn(k, n).to(tdtype)
            sets.append((a, b))
        out = torch.empty(m, n, dtype=tdtype, device=tdev)

        def call(i: int) -> object:
            a, b = sets[i]
            return torch.mm(a, b, out=out)

    return _Problem(dtype=dtype, m=m, n=n, k=k, sets=sets, out=out, call=call)


# --- measuring ------------------------------------------------------------------------


@dataclass
class _Measured:
    m: int
    n: int
    k: int
    spread: Spread
    sets: int
    rel_error: float
    failure: str | None
    window: tuple[float, float]
    extra: dict[str, Any] = field(default_factory=dict)


def _seed(ctx: BenchContext, key: str) -> int:
    return (ctx.seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63)


def _generator(tdev: torch.device, seed: int) -> torch.Generator:
    import torch

    gen = torch.Generator(device=tdev)
    gen.manual_seed(seed)
    return gen


def _align(value: float, align: int) -> int:
    return max(MIN_DIM, align * max(1, round(value / align)))


def _release(tdev: torch.device, *, workspaces: bool = False) -> None:
    """Give cached GPU memory back; at the end of a step also cuBLAS's workspaces."""
    import torch

    if tdev.type == "cuda":
        torch.cuda.synchronize(tdev)
        clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if workspaces and clear is not None:
            clear()
        torch.cuda.empty_cache()


def _sized_problem(
    ctx: BenchContext, dev: BenchDevice, dtype: str, key: str
) -> tuple[_Problem, int, float]:
    """The documented square product, made smaller only when its burst would not fit the
    step's time budget (fp64 on a consumer GPU, say). Returns (problem, input sets, s/call)."""
    import torch

    from rigbench.bench.timing import l2_cache_bytes, time_iterations

    tdev = torch.device(dev.torch_device)
    on_cuda = tdev.type == "cuda"
    align = GPU_ALIGN if on_cuda else CPU_ALIGN
    cache = l2_cache_bytes(tdev) or CPU_CACHE_BYTES
    size = _align((GPU_N if on_cuda else CPU_N) * ctx.size_scale, align)
    gen = _generator(tdev, _seed(ctx, key))

    def attempt(size: int) -> tuple[_Problem, float, int]:
        n_sets = _input_sets(dtype, size, size, size, cache)
        prob = _build(dtype, size, size, size, tdev, gen, n_sets)
        probe = statistics.median(time_iterations(prob.step, tdev, warmup=1, repeats=3))
        return prob, probe, n_sets

    prob, probe, n_sets = attempt(size)
    for _ in range(3):
        need = probe * (BURST_REPEATS + BURST_WARMUP)
        smaller = _align(size * (STEP_BUDGET_S / need) ** (1 / 3), align)
        if need <= STEP_BUDGET_S or smaller >= size:
            break
        del prob
        _release(tdev)
        size = smaller
        prob, probe, n_sets = attempt(size)
    return prob, n_sets, probe


def _measure_burst(prob: _Problem, tdev: torch.device, n_sets: int) -> _Measured:
    """5 warm-up calls, then 20 single calls between CUDA events, the L2 flushed before
    each (outside the timed region)."""
    from rigbench.bench.timing import l2_flusher, rates, synchronize, time_iterations

    flush = l2_flusher(tdev)
    if tdev.type == "cuda":
        # A burst starts from rest: right after another dtype's load the power limiter still
        # holds the clock down (an H100 read bf16 at 744 TFLOP/s after the fp64 and fp16
        # bursts, 778 from rest; the bare loop gave 774: benchmarks/2026-12-06-h100-1gpu.md).
        synchronize(tdev)
        time.sleep(BURST_REST_S)
    t0 = time.monotonic()
    seconds = time_iterations(
        prob.step,
        tdev,
        warmup=BURST_WARMUP,
        repeats=BURST_REPEATS,
        before_each=flush,
        wait_each=True,
    )
    t1 = time.monotonic()
    spread = summarize(rates(seconds, prob.flops / 1e12))
    rel_error, failure = prob.verify()
    return _Measured(
        prob.m, prob.n, prob.k, spread, n_sets, rel_error, failure, (t0, t1),
        {"warmup": BURST_WARMUP, "repeats": BURST_REPEATS, "l2_flush": flush is not None},
    )  # fmt: skip


def _measure_sustained(
    prob: _Problem, tdev: torch.device, n_sets: int, duration_s: float, per_call_s: float
) -> _Measured:
    """Calls back to back for `duration_s`, each timed; the median of the second half."""
    from rigbench.bench.timing import rates, time_iterations

    chunk = max(1, min(1000, int(CHUNK_S / max(per_call_s, 1e-6))))
    start = time.monotonic()
    half = start + duration_s / 2
    late: list[float] = []
    settled = None
    while True:
        chunk_t0 = time.monotonic()
        seconds = time_iterations(prob.step, tdev, warmup=0, repeats=chunk)
        now = time.monotonic()
        if now >= half:
            if settled is None:
                settled = chunk_t0  # the window covers every call the median is over
            late += seconds
        if now - start >= duration_s and late:
            break
    spread = summarize(rates(late, prob.flops / 1e12))
    rel_error, failure = prob.verify()
    return _Measured(
        prob.m, prob.n, prob.k, spread, n_sets, rel_error, failure, (settled or start, now),
        {"seconds": round(now - start, 2), "timed_calls": len(late)},
    )  # fmt: skip


def sustained_seconds(ctx: BenchContext, dev: BenchDevice, dtype: str) -> float | None:
    """How long the sustained run of `dtype` lasts on `dev` (None: not run this mode)."""
    if ctx.mode != "full" and dtype not in QUICK_SUSTAINED:
        return None
    if dev.torch_device.startswith("cpu"):
        return SUSTAINED_S_CPU
    return SUSTAINED_S_FULL if ctx.mode == "full" else SUSTAINED_S_QUICK


def _input_sets(dtype: str, m: int, n: int, k: int, cache_bytes: int) -> int:
    """How many input sets to rotate so that consecutive products do not find their
    operands in the cache: enough to cover twice the cache, when one set fits in it."""
    one = _operand_bytes(dtype, m, n, k)
    if one >= 2 * cache_bytes:
        return 1
    return max(1, min(MAX_INPUT_SETS, math.ceil(2 * cache_bytes / one)))


# --- results --------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _result(dev: BenchDevice, dtype: str, metric: str, meas: _Measured) -> Result:
    peak = dev.peak_tflops.get(dtype)
    params: dict[str, Any] = {
        "dtype": dtype,
        "m": meas.m,
        "n": meas.n,
        "k": meas.k,
        "input_sets": meas.sets,
        **meas.extra,
        "rel_error": _finite(meas.rel_error),
        "window_t0": meas.window[0],
        "window_t1": meas.window[1],
    }
    if dtype == "fp8":
        params["fast_accum"] = FP8_FAST_ACCUM
    if meas.failure is not None:
        return Result.failure(
            NAME,
            metric,
            unit_for(dtype),
            f"{dev.label}: wrong result: {meas.failure}",
            devices=[dev.label],
            params=params,
        )
    return Result(
        benchmark=NAME,
        metric=metric,
        value=meas.spread.p50,
        unit=unit_for(dtype),
        params=params,
        devices=[dev.label],
        spread=meas.spread,
        peak=peak.value if peak else None,
        basis=peak.basis if peak else None,
    )


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    dev = ctx.device(step.devices[0])
    dtype = str(step.params["dtype"])
    unit = unit_for(dtype)
    tdev = torch.device(dev.torch_device)
    capability = dev.compute_capability
    if tdev.type == "cuda" and capability is None:
        capability = torch.cuda.get_device_capability(tdev)
    why = unsupported(dev, dtype, capability)
    if why is not None:
        yield Result.failure(
            NAME,
            f"{dtype}.burst",
            unit,
            why,
            devices=[dev.label],
            params={"dtype": dtype},
            status="skipped",
        )
        return

    def math_mode() -> contextlib.AbstractContextManager[None]:
        if dtype in ("fp32", "tf32"):
            return fp32_math(tdev.type, tf32=dtype == "tf32")
        return contextlib.nullcontext()

    try:
        with math_mode():
            prob, n_sets, per_call = _sized_problem(ctx, dev, dtype, step.key)
            burst = _measure_burst(prob, tdev, n_sets)
        yield _result(dev, dtype, f"{dtype}.burst", burst)
        duration = sustained_seconds(ctx, dev, dtype)
        if duration is None or burst.failure is not None:
            return
        with math_mode():
            per_call_s = prob.flops / 1e12 / burst.spread.p50
            sustained = _measure_sustained(prob, tdev, n_sets, duration, per_call_s)
        yield _result(dev, dtype, f"{dtype}.sustained", sustained)
    finally:
        _release(tdev, workspaces=True)
