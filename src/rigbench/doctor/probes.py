"""The doctor's probes that can hang, each in supervised worker processes under a timeout
(`rigbench.supervisor.run_steps`), all three at once. A probe's timeout counts only once
its workers are up (start-up has its own, generous limit: a slow start is a note about a
busy machine, not a GPU fault), and a probe that hangs is run once more before it is
called a hang:

* p2p: `bench.p2p`'s copy of every GPU pair, both ways, received data verified, all pairs
  in one worker. At 4 MiB a copy (p2p sizes its buffers by `ctx.on_gpu`, so the doctor
  hands it the CPU-stand-in size on GPUs too): it checks that copies arrive intact, it
  does not measure. The first pair that hangs or kills its worker ends the probe; the
  pairs left are reported as not probed (a P2P hang is a platform problem in practice,
  and every further hang would cost another timeout).
* all_reduce: `bench.collectives`' all_reduce across every GPU at two small sizes, its
  result checked against the known sum (copies can pass while a collective is wrong).
* load: on live GPUs, `bench.hostlink`'s host<->device copies while the parent samples
  each GPU's PCIe link (`hw.nvml_health.PcieLinkSampler`): links train down at idle.

On a simulated rig the GPUs are CPU stand-ins that play the rig's faults, as in
`rigbench bench`. Nothing here changes a GPU setting.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, cast

from rigbench.bench.context import BenchDevice
from rigbench.errors import one_line
from rigbench.hw.model import Rig
from rigbench.records import FailureReason, Result
from rigbench.supervisor import kill_all, run_steps

# not_started: the probe's workers never reported ready (a slow or busy machine, not a GPU
# fault); not_probed: not tried because an earlier pair hung (skipped_dependency).
PairStatus = Literal["ok", "hang", "corrupt", "crash", "error", "not_probed", "not_started"]
ReduceStatus = Literal["ok", "wrong", "hang", "crash", "error", "not_started"]

P2P_SCALE = 0.25  # of p2p's 16 MiB stand-in size: 4 MiB copies
HOSTLINK_SCALE = 1 / 8  # of hostlink's 256 MiB: 32 MiB copies
REDUCE_SIZES_GPU = (4 << 10, 1 << 20)
REDUCE_SIZES_CPU = (4 << 10,)
# Seconds a step may make no progress: (GPUs, CPU stand-ins). The all_reduce step starts
# one process per GPU and their communicator before its first reply.
P2P_TIMEOUT_S = (10.0, 5.0)
REDUCE_TIMEOUT_S = (30.0, 20.0)
LOAD_TIMEOUT_S = 30.0
# The probes check that data arrives intact; they measure nothing on the CPU. One torch
# thread each: the p2p worker, the all_reduce ranks and the load run at once, and on a
# 2-core machine a second thread per process only makes them wait for each other (the
# healthy 8-GPU simulated rig's copy probe took 3.7-5.2 s with torch's default threads,
# 2.0-2.8 s with one, on this project's 2-core CI machine under load).
PROBE_TORCH_THREADS = 1


@dataclass(kw_only=True, slots=True)
class PairProbe:
    a: int
    b: int
    status: PairStatus
    message: str | None = None
    reason: FailureReason | None = None
    gbps: float | None = None  # median unidir copy a->b (4 MiB, not a measurement to quote)


@dataclass(kw_only=True, slots=True)
class ProbeResults:
    """What the hang-prone probes found; a None part did not run (see `skipped`)."""

    pairs: list[PairProbe] | None = None
    reduce_status: ReduceStatus | None = None
    reduce_message: str | None = None
    reduce_reason: FailureReason | None = None
    reduce_gpus: list[int] = field(default_factory=list)
    # GPU index -> highest (gen, width) seen while the GPUs were loaded
    pcie_loaded: dict[int, tuple[int | None, int | None]] | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # "p2p"/"all_reduce"/"load" -> why
    seconds: float = 0.0


class _Stop(Exception):
    """Raised from a result callback to end a probe early (its worker is then killed)."""


# The probe status of a step the supervisor ended, by its `Result.reason`: a worker that
# did not report ready in time is a slow or busy machine (not_started), never a hang.
_ABORTED: dict[str, str] = {"hang": "hang", "timeout_startup": "not_started", "crash": "crash"}


def _hung(r: Result) -> str | None:
    """The status of a step its worker never finished (by `Result.reason`), else None."""
    if r.status != "failed" or r.reason is None:
        return None
    return _ABORTED.get(r.reason)


def _first_failure(
    results: list[Result], *, wrong_data: str
) -> tuple[str, str | None, FailureReason | None]:
    """A probe's status, message and reason code from its step's results: the first that
    hung, crashed or failed (`wrong_data` is the status a wrong-data failure reads as),
    else ("ok", None, None)."""
    for r in results:
        kind = _hung(r)
        if kind:
            return kind, r.message, r.reason
        if r.status == "failed":
            return (wrong_data if r.reason == "wrong_data" else "error"), r.message, r.reason
    return "ok", None, None


def _cuda_usable(rig: Rig) -> tuple[bool, str | None]:
    if rig.source != "nvml" or not rig.gpus:
        return False, None
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = "this torch is a CPU-only build" if build is None else "torch sees no CUDA device"
        return False, why
    return True, None


def _pair_probes(
    devices: list[BenchDevice], results: list[Result], order: list[tuple[int, int]]
) -> list[PairProbe]:
    """One PairProbe per GPU pair (NVML indices), from p2p's results in probe order."""
    label_to_gpu = {d.label: d.gpu_index for d in devices if d.gpu_index is not None}
    by_pair: dict[tuple[int, int], list[Result]] = {}
    for r in results:
        gpus = [label_to_gpu[label] for label in r.devices[:2] if label in label_to_gpu]
        if len(gpus) == 2:
            a, b = sorted(gpus)
            by_pair.setdefault((a, b), []).append(r)
    probes = []
    for a, b in order:
        rs = by_pair.get((a, b))
        if not rs:
            probes.append(PairProbe(a=a, b=b, status="not_probed", reason="skipped_dependency"))
            continue
        found, message, reason = _first_failure(rs, wrong_data="corrupt")
        status = cast(PairStatus, found)
        speed = next(
            (r.value for r in rs if r.metric == "unidir" and r.value is not None),
            None,
        )
        probes.append(
            PairProbe(a=a, b=b, status=status, message=message, reason=reason, gbps=speed)
        )
    return probes


def run_probes(
    rig: Rig,
    *,
    p2p: bool,
    all_reduce: bool,
    load: bool,
    timeout_s: float | None = None,
    sampler_factory: Callable[[], object] | None = None,
) -> ProbeResults:
    """Run the asked-for probes at once and wait for all of them. `sampler_factory`
    builds the live PCIe sampler (a context manager with `.seen`, `.samples`, `.error`)."""
    from rigbench.bench.suite import build_plan
    from rigbench.errors import BadInput

    started = time.monotonic()
    out = ProbeResults()
    live, why_not = _cuda_usable(rig)
    if rig.source == "nvml" and not live:
        for name in ("p2p", "all_reduce", "load"):
            out.skipped[name] = why_not or "no GPU to probe"
        return out
    if len(rig.gpus) < 2:
        out.skipped["p2p"] = out.skipped["all_reduce"] = (
            f"needs at least 2 GPUs ({len(rig.gpus)} here)"
        )
        p2p = all_reduce = False
    if not live:
        load = False  # simulated links are given as read under load
    wanted = [n for n, on in (("hostlink", load), ("p2p", p2p), ("collectives", all_reduce)) if on]
    if not wanted:
        return out
    gpus = [g.index for g in rig.gpus]
    try:
        plan = build_plan(
            rig,
            gpus=gpus,
            only=wanted,
            mode="quick",
            cuda_available=live,
            size_scale=HOSTLINK_SCALE if live else 1.0,
        )
    except BadInput as exc:  # a GPU hidden by CUDA_VISIBLE_DEVICES
        for name in ("p2p", "all_reduce", "load"):
            out.skipped[name] = f"{exc}; unset it to probe every GPU"
        return out
    k = 0 if live else 1
    jobs: list[tuple[str, Callable[[], None]]] = []
    # Set once a pair's P2P hang (or crash) is confirmed: the all_reduce crosses that pair,
    # so it is stopped there and then instead of waiting out its own timeout.
    p2p_failed = threading.Event()

    if p2p:
        ctx = replace(plan.contexts["p2p"], on_gpu=False, size_scale=P2P_SCALE)
        limit = timeout_s or P2P_TIMEOUT_S[k]
        steps = [replace(s, timeout_s=limit) for s in plan.steps["p2p"]]
        order = []
        for s in steps:
            i, j = (int(x) for x in s.key.split(":", 1)[1].split("-"))
            a, b = ctx.devices[i].gpu_index, ctx.devices[j].gpu_index
            if a is not None and b is not None:
                order.append((a, b))
        p2p_results: list[Result] = []

        def job_p2p() -> None:
            todo, retried = list(steps), set()
            ended: list[Result] = []

            def on_p2p(r: Result) -> None:
                if _hung(r):
                    ended.append(r)
                    raise _Stop
                p2p_results.append(r)

            while todo:
                ended.clear()
                with contextlib.suppress(_Stop):
                    run_steps("p2p", ctx, todo, on_p2p, torch_threads=PROBE_TORCH_THREADS)
                if not ended:
                    break
                r = ended[0]
                key = r.params.get("step")
                if r.reason == "hang" and key not in retried:
                    # Once more, from this pair on, in a fresh worker: a copy stalled by a
                    # busy host must not read as a GPU fault.
                    retried.add(key)
                    pair = set(r.devices[:2])
                    p2p_results[:] = [x for x in p2p_results if set(x.devices[:2]) != pair]
                    todo = todo[next((i for i, s in enumerate(todo) if s.key == key), 0) :]
                    continue
                p2p_results.append(r)
                break
            pairs = _pair_probes(ctx.devices, p2p_results, order)
            if ended and ended[0].reason == "timeout_startup":
                # the pairs after a worker that never started were not tried for that
                # reason, not because of a hang
                late = ended[0].message
                pairs = [
                    replace(p, status="not_started", message=late, reason="timeout_startup")
                    if p.status == "not_probed"
                    else p
                    for p in pairs
                ]
            out.pairs = pairs
            if any(p.status in ("hang", "crash") for p in pairs):
                p2p_failed.set()

        jobs.append(("p2p", job_p2p))

    if all_reduce:
        cctx = plan.contexts["collectives"]
        faults = {
            key: ("corrupt" if f == "corrupt_collectives" else f)
            for key, f in cctx.p2p_faults.items()
            if f in ("corrupt", "hang", "corrupt_collectives")
        }
        cctx = replace(cctx, p2p_faults=faults)
        sizes = list(REDUCE_SIZES_GPU if live else REDUCE_SIZES_CPU)
        step = next(s for s in plan.steps["collectives"] if s.key.endswith(":all_reduce"))
        step = replace(
            step,
            timeout_s=timeout_s or REDUCE_TIMEOUT_S[k],
            params={**step.params, "sizes": sizes},
        )
        out.reduce_gpus = [d.gpu_index for d in cctx.devices if d.gpu_index is not None]
        reduce_results: list[Result] = []

        def job_reduce() -> None:
            for _attempt in range(2):  # a hang is run once more before it is called one
                reduce_results.clear()
                run_steps(
                    "collectives",
                    cctx,
                    [step],
                    reduce_results.append,
                    stop=p2p_failed,
                    torch_threads=PROBE_TORCH_THREADS,
                )
                if p2p_failed.is_set():  # judged as not run (check_collectives)
                    out.skipped["all_reduce"] = "not run: a GPU pair's P2P copies hang"
                    return
                if not any(_hung(r) == "hang" for r in reduce_results):
                    break
            found, message, reason = _first_failure(reduce_results, wrong_data="wrong")
            status = cast(ReduceStatus, found)
            if not reduce_results:
                status, message = "error", "the all_reduce worker returned nothing"
            out.reduce_status, out.reduce_message = status, message
            out.reduce_reason = reason

        jobs.append(("all_reduce", job_reduce))

    if load:
        lctx = plan.contexts["hostlink"]
        lsteps = plan.steps["hostlink"]
        load_steps = [s for s in lsteps if s.key.endswith(":all")] or lsteps[:1]
        load_steps = [replace(s, timeout_s=timeout_s or LOAD_TIMEOUT_S) for s in load_steps]

        def job_load() -> None:
            run_steps("hostlink", lctx, load_steps, lambda r: None)

        jobs.append(("load", job_load))

    errors: dict[str, str] = {}

    def guarded(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a probe that breaks is reported, not raised
                errors[name] = one_line(exc)

        return run

    threads = [
        threading.Thread(target=guarded(name, fn), name=f"doctor-{name}", daemon=True)
        for name, fn in jobs
    ]
    sampler = sampler_factory() if (load and sampler_factory) else None
    with contextlib.ExitStack() as stack:
        if sampler is not None:
            stack.enter_context(sampler)  # type: ignore[arg-type]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            kill_all()
            for t in threads:
                t.join(timeout=5)
            raise
    for name, why in errors.items():
        if name == "p2p":
            out.pairs = None
        if name == "all_reduce":
            out.reduce_status, out.reduce_message = "error", why
        out.skipped.setdefault(name, f"the probe failed: {why}")
    if sampler is not None:
        seen = getattr(sampler, "seen", {})
        if seen:
            out.pcie_loaded = dict(seen)
        else:
            out.skipped["load"] = getattr(sampler, "error", None) or "no PCIe sample was read"
    out.seconds = time.monotonic() - started
    return out
