"""The three-body problem of our users' V100 write-up: many independent systems of three
equal unit masses (G = 1, Plummer softening eps = 0.1), integrated with velocity Verlet
(kick-drift-kick, dt = 1e-3) in fp32 and in fp64 on every device.

Two engines:

* "triton" (GPUs with Triton): one kernel integrates every step with each system's state in
  registers (`nbody_triton.py`), so the floating-point units set the pace and the
  fp64 : fp32 ratio shows the hardware's.
* "torch" (every device): the same steps as PyTorch element-wise operations on (3, 3, N)
  tensors, each reading and writing memory: the way such code is usually written, and
  memory-bound, so its fp64 : fp32 ratio is near 1 : 2 whatever the chip (our user's RTX
  3060 saw 2× where its fp64 units are 64× slower).

Sizes: GPU 2^20 systems, triton 5000 steps (--full 10000), torch 100 (--full 500); CPU
2^12 systems, 300 steps (--full 2000); systems scaled by `size_scale`. `bench --set
nbody.engines=triton,torch` picks engines.

Figures:

* systems·steps/s = N · steps / t, t the time of one whole integration (CUDA events, the
  state reset from the initial conditions before each, outside the timed region). Peak
  (triton engine, with a catalog fp32 figure): fp32 peak · r / FLOPS_PER_SYSTEM_STEP, r = 1
  for fp32 and the fp64 : fp32 FMA rate of the architecture for fp64, counting the square
  root and the division as one operation each (they take several on the fp64 units, so
  fp64 lands further under its peak than fp32).
* fp64 : fp32 = rate in fp64 / rate in fp32, against r from the CUDA C++ Programming Guide's
  arithmetic-throughput table (per SM per clock: 1/2 on sm_60, 70, 80, 90, 100; 1/32 on
  sm_61, 75; 1/64 on sm_86, 89, 120). The catalog's fp64 and fp32 peaks are in params: on
  A100/H100/H200 its fp64 is the tensor-core DGEMM rate, which n-body cannot use (H100 SXM:
  67 TFLOP/s DGEMM, 34 without tensor cores, against 67 fp32).
* energy drift = median over systems of |E_end − E_start| / (K_start + |U_start|), energies
  in fp64 from the (upcast) state; above DRIFT_TOL of the dtype the dtype's results fail (a
  broken integrator or a too-large step shows here). p99 and max are in params.
"""

from __future__ import annotations

import math
import os
import statistics
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.bench.options import options_of
from rigbench.records import Result
from rigbench.stats import summarize

if TYPE_CHECKING:
    import torch

NAME = "nbody"
UNIT = "systems·steps/s"

DT = 1e-3
EPS = 0.1
GPU_SYSTEMS = 1 << 20
CPU_SYSTEMS = 1 << 12
STEPS = {  # (engine, on_gpu, full) -> steps per integration
    ("triton", True, False): 5000,
    ("triton", True, True): 10000,
    ("torch", True, False): 100,
    ("torch", True, True): 500,
    ("torch", False, False): 300,
    ("torch", False, True): 2000,
}
REPEATS = {True: 5, False: 3}
MAX_RUN_S = 2.0  # a slower integration (fp64 on a GeForce card) is made shorter
# Median relative energy drift allowed. Velocity Verlet's own error at this dt is ~1e-6
# (4096 systems, 500-2000 steps, fp32 and fp64 alike, on the CPU); dt = 0.05 gives ~1.
DRIFT_TOL = {"fp32": 1e-4, "fp64": 1e-5}
# FLOPs of one system-step: 3 pairs × 16 (differences, r², sqrt, 1/r, 1/r³, three products)
# + 12 to sum the accelerations + 2 kicks × 18 + 1 drift × 18.
FLOPS_PER_SYSTEM_STEP = 3 * 16 + 12 + 36 + 18
CHECK_SYSTEMS = 4096  # triton is checked against the torch engine on this many systems
CHECK_STEPS = 20
CHECK_TOL = {"fp32": 1e-4, "fp64": 1e-10}

TIMEOUT_S = 180.0

# Per SM per clock, 64-bit over 32-bit FMA throughput (CUDA C++ Programming Guide,
# "Arithmetic Instructions" table).
_FP64_RATIO_BY_MAJOR_MINOR: dict[tuple[int, int], float] = {
    (5, 0): 1 / 32,
    (5, 2): 1 / 32,
    (5, 3): 1 / 32,
    (6, 0): 1 / 2,
    (6, 1): 1 / 32,
    (6, 2): 1 / 32,
    (7, 0): 1 / 2,
    (7, 2): 1 / 2,
    (7, 5): 1 / 32,
    (8, 0): 1 / 2,
    (8, 6): 1 / 64,
    (8, 7): 1 / 64,
    (8, 9): 1 / 64,
    (9, 0): 1 / 2,
    (10, 0): 1 / 2,
    (12, 0): 1 / 64,
}


def fp64_fp32_rate(capability: tuple[int, int] | None) -> float | None:
    """fp64 : fp32 FMA throughput of a compute capability, or None when not known."""
    return _FP64_RATIO_BY_MAJOR_MINOR.get(capability) if capability else None


def system_steps_per_s(systems: int, steps: int, seconds: float) -> float:
    return systems * steps / seconds


def peak_system_steps(fp32_tflops: float, rate: float = 1.0) -> float:
    """Systems·steps/s at the fp32 peak (× `rate` for fp64)."""
    return fp32_tflops * 1e12 * rate / FLOPS_PER_SYSTEM_STEP


# --------------------------------------------------------------------------- plan


def _engines(ctx: BenchContext) -> list[str]:
    wanted: list[str] = list(options_of(ctx.extra).nbody_engines or ("triton", "torch"))
    if not ctx.on_gpu:
        wanted = ["torch"]
    return wanted


def plan(ctx: BenchContext) -> list[Step]:
    full = ctx.mode == "full"
    base = GPU_SYSTEMS if ctx.on_gpu else CPU_SYSTEMS
    systems = max(64, int(base * ctx.size_scale))
    return [
        Step(
            key=f"{NAME}:{dev.label}:{engine}",
            label=f"{dev.label} three-body {engine}, fp32 and fp64",
            metric="system_steps_per_s",
            unit=UNIT,
            devices=[dev.label],
            params={
                "engine": engine,
                "systems": systems,
                "steps": STEPS[(engine, ctx.on_gpu, full)],
                "dt": DT,
            },
            timeout_s=TIMEOUT_S,
        )
        for dev in ctx.devices
        for engine in _engines(ctx)
    ]


# ----------------------------------------------------------------- the physics


def initial_state(
    systems: int, dtype: torch.dtype, device: torch.device | str, seed: int
) -> torch.Tensor:
    """(18, N): positions uniform in [-1, 1]³, velocities normal with σ 0.3, both shifted
    to the centre-of-mass frame. Drawn in fp64, then cast (fp32 and fp64 start alike)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(3, 3, systems, generator=g, dtype=torch.float64) * 2 - 1
    vel = torch.randn(3, 3, systems, generator=g, dtype=torch.float64) * 0.3
    pos -= pos.mean(0, keepdim=True)
    vel -= vel.mean(0, keepdim=True)
    state = torch.cat([pos.reshape(9, systems), vel.reshape(9, systems)])
    return state.to(device=device, dtype=dtype).contiguous()


_PAIRS = ((0, 1), (0, 2), (1, 2))


def accelerations(pos: torch.Tensor, eps2: float) -> torch.Tensor:
    """(3 bodies, 3 axes, N) accelerations of unit masses, softened."""
    import torch

    acc = torch.zeros_like(pos)
    for i, j in _PAIRS:
        d = pos[j] - pos[i]
        inv = (d * d).sum(0).add_(eps2).rsqrt_()
        f = d * (inv * inv * inv)
        acc[i] += f
        acc[j] -= f
    return acc


def integrate_torch(state: torch.Tensor, steps: int, dt: float = DT, eps: float = EPS) -> None:
    """Velocity Verlet in place on an (18, N) state with PyTorch element-wise operations."""
    n = state.shape[1]
    pos = state[:9].view(3, 3, n)
    vel = state[9:].view(3, 3, n)
    eps2 = eps * eps
    acc = accelerations(pos, eps2)
    for _ in range(steps):
        vel.add_(acc, alpha=dt / 2)
        pos.add_(vel, alpha=dt)
        acc = accelerations(pos, eps2)
        vel.add_(acc, alpha=dt / 2)


def energies(state: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Kinetic and (softened) potential energy of every system, in fp64."""
    import torch

    s = state.to(torch.float64)
    n = s.shape[1]
    pos, vel = s[:9].view(3, 3, n), s[9:].view(3, 3, n)
    kinetic = 0.5 * (vel * vel).sum((0, 1))
    potential = torch.zeros(n, dtype=torch.float64, device=s.device)
    for i, j in _PAIRS:
        d = pos[j] - pos[i]
        potential -= ((d * d).sum(0) + eps * eps).rsqrt()
    return kinetic, potential


def energy_drift(start: torch.Tensor, end: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per system |E_end − E_start| / (K_start + |U_start|); inf where `end` is not finite."""
    import torch

    k0, u0 = energies(start, eps)
    k1, u1 = energies(end, eps)
    drift = ((k1 + u1) - (k0 + u0)).abs() / (k0 + u0.abs())
    finite = torch.isfinite(end.to(torch.float64)).all(0)
    return torch.where(finite, drift, torch.full_like(drift, math.inf))


# -------------------------------------------------------------------------- run


def _integrator(engine: str, state: torch.Tensor, steps: int) -> Any:
    import torch

    if engine == "triton":
        from rigbench.bench import nbody_triton

        params = torch.tensor([DT, EPS * EPS], dtype=state.dtype, device=state.device)
        return lambda: nbody_triton.integrate(state, params, steps)
    return lambda: integrate_torch(state, steps)


def _check_triton(dtype: torch.dtype, tdev: torch.device, seed: int, name: str) -> str | None:
    """The kernel against the torch engine on a few systems for a few steps."""
    import torch

    from rigbench.bench import nbody_triton

    a = initial_state(CHECK_SYSTEMS, dtype, tdev, seed)
    b = a.clone()
    params = torch.tensor([DT, EPS * EPS], dtype=dtype, device=tdev)
    nbody_triton.integrate(a, params, CHECK_STEPS)
    integrate_torch(b, CHECK_STEPS)
    ref = b.double()
    err = float(torch.linalg.vector_norm(a.double() - ref) / torch.linalg.vector_norm(ref))
    if not err <= CHECK_TOL[name]:
        return (
            f"{name}: the kernel differs from the torch engine by {err:.3g} (> {CHECK_TOL[name]:g})"
        )
    return None


def _measure(
    ctx: BenchContext, dev: BenchDevice, step: Step, name: str
) -> tuple[dict[str, Any], str | None]:
    """Rate samples and drift of one dtype: (figures, failure or None)."""
    import torch

    from rigbench.bench.timing import time_iterations

    dtype = {"fp32": torch.float32, "fp64": torch.float64}[name]
    tdev = torch.device(dev.torch_device)
    engine = str(step.params["engine"])
    systems, steps = int(step.params["systems"]), int(step.params["steps"])
    seed = (ctx.seed * 1_000_003 + zlib.crc32(step.key.encode())) % (2**31)
    if engine == "triton":
        wrong = _check_triton(dtype, tdev, seed, name)
        if wrong:
            return {"steps": steps}, wrong
    start = initial_state(systems, dtype, tdev, seed)
    state = start.clone()
    # Probe with a short run, then size the integration to MAX_RUN_S (never longer).
    probe_steps = max(1, steps // 20)
    probe = statistics.median(
        time_iterations(
            _integrator(engine, state, probe_steps),
            tdev,
            warmup=1,
            repeats=1,
            before_each=lambda: state.copy_(start),
        )
    )
    per_step = probe / probe_steps
    if per_step * steps > MAX_RUN_S:
        steps = max(probe_steps, int(MAX_RUN_S / per_step))
    seconds = time_iterations(
        _integrator(engine, state, steps),
        tdev,
        warmup=1,
        repeats=REPEATS[ctx.on_gpu],
        before_each=lambda: state.copy_(start),
    )
    drift = energy_drift(start, state).cpu()
    finite = drift[torch.isfinite(drift)]
    med = float(drift.median())
    figures = {
        "steps": steps,
        "seconds": seconds,
        "drift_median": med,
        "drift_p99": float(torch.quantile(finite, 0.99)) if finite.numel() else math.inf,
        "drift_max": float(drift.max()),
        "not_finite": int((~torch.isfinite(drift)).sum()),
    }
    tol = DRIFT_TOL[name]
    if not med <= tol:
        return figures, (
            f"{name}: energy not conserved: median relative drift {med:.3g} over {steps} steps "
            f"(tolerance {tol:g})"
        )
    return figures, None


def _catalog(dev: BenchDevice, dtype: str) -> float | None:
    exp = dev.peak_tflops.get(dtype)
    return exp.value if exp else None


def results_for(
    dev: BenchDevice,
    step: Step,
    measured: dict[str, tuple[dict[str, Any], str | None]],
    capability: tuple[int, int] | None,
) -> list[Result]:
    """Results of one device and engine from both dtypes' figures (pure)."""
    engine = str(step.params["engine"])
    systems = int(step.params["systems"])
    rate_r = fp64_fp32_rate(capability)
    fp32_peak = _catalog(dev, "fp32")
    out: list[Result] = []
    rates: dict[str, float] = {}
    for name, (fig, failure) in measured.items():
        params: dict[str, Any] = {
            "engine": engine,
            "dtype": name,
            "systems": systems,
            "steps": fig.get("steps"),
            "dt": DT,
            "softening": EPS,
            "flops_per_system_step": FLOPS_PER_SYSTEM_STEP,
        }
        params.update({k: fig[k] for k in ("drift_median", "drift_p99", "drift_max") if k in fig})
        if failure is not None:
            out.append(
                Result.failure(
                    NAME, "system_steps_per_s", UNIT, failure, devices=[dev.label], params=params
                )
            )
            continue
        samples = [
            system_steps_per_s(systems, int(fig["steps"]), t) for t in fig["seconds"] if t > 0
        ]
        spread = summarize(samples)
        rates[name] = spread.p50
        params["gflops"] = spread.p50 * FLOPS_PER_SYSTEM_STEP / 1e9
        peak = basis = None
        if engine == "triton" and fp32_peak:
            r = 1.0 if name == "fp32" else rate_r
            if r is not None:
                peak = peak_system_steps(fp32_peak, r)
                basis = (
                    f"{fp32_peak:g} TFLOP/s fp32"
                    + ("" if name == "fp32" else f" × {r:g} (fp64 FMA rate)")
                    + f" / {FLOPS_PER_SYSTEM_STEP} FLOP a system-step; "
                    + dev.peak_tflops["fp32"].basis
                )
        out.append(
            Result(
                benchmark=NAME,
                metric="system_steps_per_s",
                value=spread.p50,
                unit=UNIT,
                params=params,
                devices=[dev.label],
                spread=spread,
                peak=peak,
                basis=basis,
            )
        )
        out.append(
            Result(
                benchmark=NAME,
                metric="energy_drift",
                value=fig["drift_median"],
                unit="relative",
                params=params,
                devices=[dev.label],
                expected=None,
                basis=f"median |ΔE| / (K + |U|) at the start; tolerance {DRIFT_TOL[name]:g}",
            )
        )
    if "fp32" in rates and "fp64" in rates:
        ratio = rates["fp64"] / rates["fp32"]
        c64, c32 = _catalog(dev, "fp64"), _catalog(dev, "fp32")
        params = {
            "engine": engine,
            "systems": systems,
            "fp32_system_steps_per_s": rates["fp32"],
            "fp64_system_steps_per_s": rates["fp64"],
            "fp32_over_fp64": 1 / ratio if ratio else None,
            "catalog_fp64_tflops": c64,
            "catalog_fp32_tflops": c32,
            "catalog_fp64_over_fp32": c64 / c32 if c64 and c32 else None,
            "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        }
        if engine == "torch":
            basis = (
                "PyTorch element-wise steps are memory-bound: fp64 moves twice the bytes, so "
                "about 1/2 is expected whatever the fp64 units"
            )
            expected: float | None = None
        elif rate_r is not None:
            expected = rate_r
            basis = (
                f"fp64:fp32 FMA rate per SM per clock of sm_{capability[0]}{capability[1]} "  # type: ignore[index]
                f"(CUDA C++ Programming Guide): 1:{round(1 / rate_r)}; fp64 sqrt and division "
                "take several instructions, so the measured ratio falls below it. Catalog fp64 "
                "on A100/H100/H200 is the tensor-core DGEMM rate, not this"
            )
        else:
            expected = None
            basis = "no fp64:fp32 rate known for this device"
        out.append(
            Result(
                benchmark=NAME,
                metric="fp64_fp32_ratio",
                value=ratio,
                unit="ratio",
                params=params,
                devices=[dev.label],
                expected=expected,
                basis=basis,
            )
        )
    return out


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    dev = ctx.device(step.devices[0])
    tdev = torch.device(dev.torch_device)
    engine = str(step.params["engine"])
    if engine == "triton":
        why = None
        if tdev.type != "cuda":
            why = "the triton engine runs on GPUs only"
        else:
            try:
                from rigbench.bench import nbody_triton  # noqa: F401
            except ImportError as exc:
                why = f"Triton is not importable here ({exc})"
        if why:
            yield Result.failure(
                NAME,
                "system_steps_per_s",
                UNIT,
                why,
                devices=[dev.label],
                params={"engine": engine},
                status="skipped",
            )
            return
    capability = dev.compute_capability
    if tdev.type == "cuda" and capability is None:
        capability = torch.cuda.get_device_capability(tdev)
    if tdev.type != "cuda":
        torch.set_num_threads(os.cpu_count() or 1)
    measured = {name: _measure(ctx, dev, step, name) for name in ("fp32", "fp64")}
    yield from results_for(dev, step, measured, capability)
