"""`rigbench bench`: choose devices, attach expectations from topology and catalog, run
each benchmark's steps under the supervisor, and hand every result on as it arrives."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rigbench.bench.context import BenchContext, BenchDevice, Expectation, Mode, Step
from rigbench.bench.options import WorkloadOptions
from rigbench.catalog import find_gpu
from rigbench.errors import BadInput
from rigbench.hw.cuda_order import cuda_index
from rigbench.hw.model import GpuInfo, Rig
from rigbench.links import expected_host_link, expected_pair
from rigbench.records import Result
from rigbench.supervisor import load_module, run_steps

DEFAULT_BENCHMARKS = ("gemm", "memory", "hostlink", "p2p", "collectives")
# Real workloads (minutes on a GPU): run only when named, e.g. --only train,infer,nbody.
WORKLOADS = ("train", "infer", "nbody")
# Checks that take the whole GPU (nearly all free memory): run only when named.
CHECKS = ("vram",)
BENCHMARKS = DEFAULT_BENCHMARKS + WORKLOADS + CHECKS
# Data-parallel workloads over 1..N devices; on a CPU-only machine they get two CPU workers.
DATA_PARALLEL = ("train",)
# Benchmarks that need two or more devices; on a CPU-only machine they get two CPU workers.
MULTI_DEVICE = ("p2p", "collectives")
CPU_WORKERS = 2


def parse_only(only: str | None) -> list[str]:
    if only is None:
        return list(DEFAULT_BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        raise BadInput(
            f"--only names no benchmark (got {only!r}): choose from {', '.join(BENCHMARKS)}"
        )
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise BadInput(
            f"unknown benchmark {', '.join(repr(u) for u in unknown)}: "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    return [n for n in BENCHMARKS if n in names]


def parse_gpus(gpus: str | None, rig: Rig) -> list[int]:
    available = [g.index for g in rig.gpus]
    if gpus is None:
        return available
    try:
        wanted = [int(x) for x in gpus.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"--gpus takes GPU indices like 0,1,3; got {gpus!r}") from None
    if not wanted:
        raise BadInput(f"--gpus names no GPU (got {gpus!r}): give indices like 0,1,3")
    missing = [g for g in wanted if g not in available]
    if missing:
        have = ", ".join(str(g) for g in available) if available else "none"
        raise BadInput(
            f"GPU {', '.join(str(m) for m in missing)} does not exist (GPUs here: {have})"
        )
    return sorted(set(wanted))


def _peaks(gpu: GpuInfo) -> tuple[dict[str, Expectation], Expectation | None]:
    spec = find_gpu(gpu.name)
    if spec is None:
        return {}, None
    src = spec.source_for("peak_tflops") or "catalog"
    peaks = {
        dtype: Expectation(
            value=v,
            unit="TOP/s" if dtype == "int8" else "TFLOP/s",
            basis=f"{spec.name}, dense {dtype} peak ({src})",
        )
        for dtype, v in spec.peak_tflops.items()
    }
    mem = None
    if spec.memory_bandwidth_gbs:
        mem_src = spec.source_for("memory") or "catalog"
        mem = Expectation(
            value=spec.memory_bandwidth_gbs,
            unit="GB/s",
            basis=f"{spec.name} memory bandwidth ({mem_src})",
        )
    return peaks, mem


@dataclass(kw_only=True)
class Plan:
    """Per benchmark, the context its steps run in and the steps."""

    contexts: dict[str, BenchContext] = field(default_factory=dict)
    steps: dict[str, list[Step]] = field(default_factory=dict)
    stand_ins: bool = False
    # benchmark -> why it has no steps on this machine
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return sum(len(s) for s in self.steps.values())


def build_plan(
    rig: Rig,
    *,
    gpus: list[int],
    only: list[str],
    mode: Mode = "quick",
    cuda_available: bool,
    size_scale: float = 1.0,
    step_timeout_s: float | None = None,
    options: WorkloadOptions | None = None,
) -> Plan:
    live = rig.source == "nvml" and cuda_available and bool(gpus)
    selected = [g for g in rig.gpus if g.index in gpus]
    devices: list[BenchDevice] = []
    if selected:
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        for g in selected:
            peaks, mem = _peaks(g)
            cuda = cuda_index(g.index) if live else None
            if live and cuda is None:
                raise BadInput(f"GPU {g.index} is hidden by CUDA_VISIBLE_DEVICES")
            cc: tuple[int, int] | None = None
            if live and g.compute_capability:
                major, minor = g.compute_capability.split(".")
                cc = (int(major), int(minor))
            devices.append(
                BenchDevice(
                    label=f"GPU{g.index}",
                    torch_device=f"cuda:{cuda}" if live else "cpu",
                    name=g.name if live else f"{g.name} (CPU stand-in)",
                    gpu_index=g.index,
                    compute_capability=cc,
                    peak_tflops=peaks if live else {},
                    peak_memory_bandwidth=mem if live else None,
                    # A CPU stand-in is not judged against the link it imitates (a memcpy
                    # would read as a fraction of a real PCIe rate: a fault that is not there).
                    host_link=expected_host_link(g) if live else None,
                    numa_node=g.numa_node,
                )
            )
    uplinks = shared_uplinks(rig, [g.index for g in selected])
    for dev in devices:
        dev.uplink = uplinks.get(dev.gpu_index) if dev.gpu_index is not None else None
    pair_expected: dict[str, Expectation] = {}
    for i in range(len(selected)):
        for j in range(i + 1, len(selected)):
            link = rig.pair(selected[i].index, selected[j].index)
            exp = expected_pair(link, selected[i], selected[j]) if link and live else None
            if exp:
                pair_expected[f"{i}-{j}"] = exp
    vram_faults = {
        f"GPU{g.index}": rig.vram_faults[g.index] for g in selected if g.index in rig.vram_faults
    }
    faults = {}
    for i in range(len(selected)):
        for j in range(i + 1, len(selected)):
            key = f"{selected[i].index}-{selected[j].index}"
            if key in rig.p2p_faults:
                faults[f"{i}-{j}"] = rig.p2p_faults[key]
    base = BenchContext(
        devices=devices,
        mode=mode,
        on_gpu=live,
        pair_expected=pair_expected,
        p2p_faults=faults,
        vram_faults=vram_faults,
        numa_nodes=rig.system.numa_nodes,
        process_numa_nodes=rig.system.process_numa_nodes,
        size_scale=size_scale,
        extra={"options": options} if options is not None else {},
    )
    plan = Plan(stand_ins=not live)
    for name in only:
        ctx = base
        if not devices:
            n = CPU_WORKERS if name in MULTI_DEVICE or name in DATA_PARALLEL else 1
            cpus = [
                BenchDevice(label=f"cpu{k}", torch_device="cpu", name=rig.system.cpu_model or "CPU")
                for k in range(n)
            ]
            ctx = replace(base, devices=cpus)
        plan.contexts[name] = ctx
        steps = load_module(name).plan(ctx)
        if step_timeout_s is not None:
            steps = [replace(s, timeout_s=step_timeout_s) for s in steps]
        plan.steps[name] = steps
        if not steps and name in MULTI_DEVICE:
            plan.skipped[name] = too_few_devices(len(ctx.devices))
    return plan


SWITCHED = ("PIX", "PXB")  # common ancestor a PCIe switch: the pair shares its uplink


def shared_uplinks(rig: Rig, gpus: list[int]) -> dict[int, int | None]:
    """Each GPU's uplink: the lowest index of the GPUs it reaches through PCIe switches alone
    (nvidia-smi topo's PIX or PXB), whose host traffic shares the switch's one link to the
    CPU. None for every GPU when the path of some pair is not known."""
    group = {g: g for g in gpus}

    def root(g: int) -> int:
        while group[g] != g:
            g = group[g]
        return g

    for i, a in enumerate(gpus):
        for b in gpus[i + 1 :]:
            link = rig.pair(a, b)
            if link is None or link.pcie_path is None:
                return dict.fromkeys(gpus)
            if link.pcie_path in SWITCHED:
                lo, hi = sorted((root(a), root(b)))
                group[hi] = lo
    return {g: root(g) for g in gpus}


def too_few_devices(n: int) -> str:
    """Why a benchmark over several devices did not run on `n` (the same with or without
    torchrun)."""
    return f"needs at least 2 GPUs ({n} selected)"


def skipped(name: str, why: str) -> Result:
    """The one row of a benchmark that did not run at all."""
    return Result.failure(name, name, "", why, status="skipped")


class _PairHung(Exception):
    """Raised from a result callback to stop the P2P steps at a hang (its worker is killed)."""


def _not_run(step: Step, module: str, hung: list[tuple[str, str]]) -> Result:
    pairs = "; ".join(f"{a} and {b}" for a, b in hung)
    return Result.failure(
        module,
        step.metric,
        step.unit,
        f"not run: P2P hangs between {pairs}",
        devices=step.devices,
        params={**step.params, "step": step.key},
        status="skipped",
        reason="skipped_dependency",
    )


def _run_p2p(
    ctx: BenchContext,
    steps: list[Step],
    on_result: Callable[[Result], None],
    on_step: Callable[[Step], None] | None,
    hung: list[tuple[str, str]],
) -> list[str]:
    """The P2P steps; after a pair hangs, the pairs sharing a GPU with it are not run (a
    hang is a platform or GPU problem in practice, and each further one costs a timeout)."""
    aborted: list[str] = []
    done: set[str] = set()

    def result(r: Result) -> None:
        on_result(r)
        if r.status == "failed" and r.reason == "hang" and len(r.devices) >= 2:
            hung.append((r.devices[0], r.devices[1]))
            raise _PairHung

    def step_done(step: Step) -> None:
        done.add(step.key)
        if on_step:
            on_step(step)

    remaining = list(steps)
    while remaining:
        try:
            aborted += run_steps("p2p", ctx, remaining, result, step_done)
            break
        except _PairHung:
            aborted.append(next(s.key for s in remaining if s.key not in done))
            done.add(aborted[-1])
        bad = {d for pair in hung for d in pair}
        left = [s for s in remaining if s.key not in done]
        remaining = [s for s in left if not bad & set(s.devices)]
        for s in left:
            if bad & set(s.devices):
                on_result(_not_run(s, "p2p", hung))
                step_done(s)
    return aborted


def run_plan(
    plan: Plan,
    on_result: Callable[[Result], None],
    on_step: Callable[[Step], None] | None = None,
) -> list[str]:
    """Run every planned step; returns the keys of steps whose worker hung or died. Steps
    that need a GPU pair whose P2P hung are reported "not run" (skipped_dependency)."""
    aborted: list[str] = []
    hung: list[tuple[str, str]] = []
    for name, why in plan.skipped.items():
        on_result(skipped(name, why))
    for name, steps in plan.steps.items():
        if not steps:
            continue
        if name == "p2p":
            aborted += _run_p2p(plan.contexts[name], steps, on_result, on_step, hung)
        elif name == "collectives" and hung:
            for s in steps:  # every collective crosses every pair
                on_result(_not_run(s, name, hung))
                if on_step:
                    on_step(s)
        else:
            aborted += run_steps(name, plan.contexts[name], steps, on_result, on_step)
    return aborted
