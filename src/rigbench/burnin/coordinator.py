"""The parent's side of the burn-in load: start one load worker per device and the
all_reduce crew, hand them the schedule, listen, and record every child that errors, hangs
or dies while the others carry on.

Children are rigbench.supervisor workers (forked from a fork server that has imported
torch once), each in its own process session: ending a child kills its whole group. A
load worker that is silent for HANG_S is hung; the crew is hung when an allreduce phase
has not reported CREW_GRACE_S after its end. A hung or failed crew is killed and, while
two or more devices still run and an allreduce phase is ahead, started again over those
devices (at most MAX_CREWS crews in a run).
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection as mpc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Literal, cast

from rigbench.burnin.load import (
    CPU_ALLREDUCE_BYTES,
    GPU_ALLREDUCE_BYTES,
    JobCrew,
    LoadConfig,
    LoadDevice,
    crew_rank_main,
    load_worker_main,
)
from rigbench.burnin.schedule import Phase
from rigbench.records import FailureReason
from rigbench.supervisor import context, kill_group, start

WorkerStatus = Literal["starting", "ready", "running", "done", "failed"]

GPU_STARTUP_S = 180.0
CPU_STARTUP_S = 90.0
# Unknown: a load worker speaks every 0.5 s (load.BEAT_S) and its matmul batches last ~20 ms,
# so 30 s of silence (60 missed beats) is a stuck GPU or driver, not a slow one. PyTorch's
# NCCL watchdogs (8-10 min) are far looser because they cover collectives across nodes.
GPU_HANG_S = 30.0
CPU_HANG_S = 10.0
GPU_CREW_GRACE_S = 30.0
CPU_CREW_GRACE_S = 4.0
JOIN_S = 10.0
GO_LEAD_S = 0.5  # the schedule starts this long after the last worker is ready
MAX_CREWS = 4  # the first crew and up to three restarts


@dataclass(kw_only=True)
class WorkerOutcome:
    """What one device's load worker did."""

    device: LoadDevice
    status: WorkerStatus = "starting"
    error: str | None = None
    reason: FailureReason | None = None  # the code of `error`, where it has one
    error_detail: str | None = None
    error_t: float | None = None  # seconds after t0
    info: dict[str, Any] = field(default_factory=dict)
    gemm: dict[int, list[float]] = field(default_factory=dict)  # phase -> TFLOP/s per batch
    memory: dict[int, list[float]] = field(default_factory=dict)  # phase -> GB/s per batch
    wrong: list[str] = field(default_factory=list)
    checks: int = 0
    phases_started: int = 0
    # parent-side bookkeeping
    proc: BaseProcess | None = None
    conn: Any = None
    last_heard: float = 0.0


@dataclass(kw_only=True)
class CrewRun:
    """One crew: the devices it spanned and how it ended."""

    members: list[str]
    started_t: float
    busbw: dict[int, list[float]] = field(default_factory=dict)  # phase -> GB/s, slowest rank
    problems: list[str] = field(default_factory=list)
    failure: str | None = None
    reason: FailureReason | None = None  # the code of `failure`, where it has one
    failure_t: float | None = None


@dataclass(kw_only=True)
class _Crew:
    run: CrewRun
    devices: list[LoadDevice]
    procs: list[BaseProcess]
    conns: list[Any]
    stop: Any
    ready: set[int] = field(default_factory=set)
    went: bool = False
    reports: dict[int, dict[int, tuple[list[float], str | None]]] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    last_heard: float = 0.0


class Coordinator:
    def __init__(
        self,
        devices: list[LoadDevice],
        cfg: LoadConfig,
        *,
        on_gpu: bool,
        collectives: bool,
        job: JobCrew | None = None,
    ) -> None:
        self.devices = devices
        self.cfg = cfg
        self.on_gpu = on_gpu
        # a job-wide crew (one device here, the others on other ranks) is never restarted:
        # its other ranks are not this process's to start
        self.job = job if job is not None and len(devices) == 1 else None
        self.collectives = collectives and (len(devices) >= 2 or self.job is not None)
        self.stop_event = context().Event()
        self.workers = [WorkerOutcome(device=d) for d in devices]
        self.crews: list[CrewRun] = []
        self._crew: _Crew | None = None
        self.phases: list[Phase] = []
        self.hang_s = GPU_HANG_S if on_gpu else CPU_HANG_S
        self.startup_s = GPU_STARTUP_S if on_gpu else CPU_STARTUP_S
        self.crew_grace_s = GPU_CREW_GRACE_S if on_gpu else CPU_CREW_GRACE_S
        self.crew_bytes = GPU_ALLREDUCE_BYTES if on_gpu else CPU_ALLREDUCE_BYTES
        self.backend = "nccl" if on_gpu else "gloo"

    def t(self) -> float:
        return time.monotonic() - self.cfg.t0

    # --- starting ----------------------------------------------------------------------

    def start(self) -> None:
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        now = time.monotonic()
        for w in self.workers:
            worker = start(
                load_worker_main,
                (w.device, self.cfg),
                {"stop": self.stop_event},
                name=f"rigbench-burnin-{w.device.label}",
            )
            w.proc, w.conn, w.last_heard = worker.proc, worker.conn, now
        if self.collectives:
            self._start_crew(self.devices)

    def _start_crew(self, devices: list[LoadDevice]) -> None:
        now = time.monotonic()
        run = CrewRun(members=[d.label for d in devices], started_t=now - self.cfg.t0)
        stop = context().Event()
        procs, conns = [], []
        for rank, dev in enumerate(devices):
            job = self.job
            worker = start(
                crew_rank_main,
                (
                    job.rank if job else rank,
                    job.world if job else len(devices),
                    self.backend,
                    dev,
                    self.cfg,
                    self.crew_bytes,
                ),
                {"stop": stop, "job": job},
                name=f"rigbench-burnin-crew{rank}",
            )
            procs.append(worker.proc)
            conns.append(worker.conn)
        self.crews.append(run)
        self._crew = _Crew(
            run=run, devices=devices, procs=procs, conns=conns, stop=stop, last_heard=now
        )

    def wait_ready(self, on_tick: Callable[[], None] | None = None) -> None:
        """Until every load worker is ready or has failed (the crew may come later)."""
        deadline = time.monotonic() + self.startup_s
        while any(w.status == "starting" for w in self.workers):
            self._poll(0.1)
            for w in self.workers:
                if w.status == "starting" and time.monotonic() > deadline:
                    self._fail(
                        w, f"did not start within {self.startup_s:.0f} s", reason="timeout_startup"
                    )
            if on_tick:
                on_tick()

    def wait_crew(self, on_tick: Callable[[], None] | None = None) -> None:
        """Until the crew is ready (for a job-wide crew: every rank's crew rank has joined)
        or has failed, so that no allreduce phase starts without it."""
        deadline = time.monotonic() + self.startup_s
        while self._crew is not None and len(self._crew.ready) < len(self._crew.devices):
            self._poll(0.1)
            c = self._crew
            if c is not None and time.monotonic() > deadline:
                self._crew_failed(f"did not start within {self.startup_s:.0f} s", "timeout_startup")
            if on_tick:
                on_tick()

    def go(self, phases: list[Phase]) -> None:
        self.phases = phases
        for w in self.workers:
            if w.status == "ready":
                w.conn.send(("go", phases))
                w.status = "running"
        self._crew_go()

    def go_each(self, phases: list[list[Phase]]) -> None:
        """Each worker its own timetable, in the order of `devices` (the PSU-trip finder's
        ramps: GPU k joins at step k, MS after the one before it). No crew."""
        for w, mine in zip(self.workers, phases, strict=True):
            if w.status == "ready":
                w.conn.send(("go", mine))
                w.status = "running"

    def _crew_go(self) -> None:
        c = self._crew
        if c is None or c.went or not self.phases or len(c.ready) < len(c.devices):
            return
        for conn in c.conns:
            conn.send(("go", self.phases))
        c.went = True

    # --- listening ---------------------------------------------------------------------

    def _fail(
        self,
        w: WorkerOutcome,
        why: str,
        detail: str | None = None,
        reason: FailureReason | None = None,
    ) -> None:
        if w.status in ("failed", "done"):
            return
        w.status = "failed"
        w.error = why
        w.reason = reason
        w.error_detail = detail
        w.error_t = self.t()
        kill_group(w.proc)

    def _poll(self, timeout: float) -> None:
        conns: dict[Any, tuple[str, Any]] = {}
        for w in self.workers:
            if w.status in ("starting", "ready", "running"):
                conns[w.conn] = ("worker", w)
        c = self._crew
        if c is not None:
            for rank, conn in enumerate(c.conns):
                if rank not in c.done:
                    conns[conn] = ("crew", rank)
        if conns:
            ready = mpc.wait(list(conns), timeout=timeout)
        else:
            time.sleep(timeout)
            ready = []
        now = time.monotonic()
        for conn in ready:
            kind, who = conns[conn]
            try:
                msg = cast("tuple[Any, ...]", cast(mpc.Connection, conn).recv())
            except (EOFError, OSError):
                msg = ("eof",)
            if kind == "worker":
                self._on_worker(who, msg, now)
            else:
                self._on_crew(who, msg, now)
        self._check_deadlines(now)

    def _on_worker(self, w: WorkerOutcome, msg: tuple[Any, ...], now: float) -> None:
        w.last_heard = now
        kind = msg[0]
        if kind == "ready":
            w.info = msg[1]
            if w.info.get("reference_problem"):
                w.wrong.append(f"first matmul against float64: {w.info['reference_problem']}")
            w.status = "ready" if w.status == "starting" else w.status
            if self.phases and w.status == "ready":  # a late starter joins what is left
                w.conn.send(("go", self.phases))
                w.status = "running"
        elif kind == "phase":
            w.phases_started += 1
        elif kind == "gemm":
            w.gemm.setdefault(msg[1], []).extend(msg[2])
            w.checks = max(w.checks, msg[3])
        elif kind == "memory":
            w.memory.setdefault(msg[1], []).extend(msg[2])
            w.checks = max(w.checks, msg[3])
        elif kind == "wrong":
            w.wrong.append(f"phase {msg[1]}: {msg[2]}")
        elif kind == "done":
            w.checks = max(w.checks, msg[1].get("checks", 0))
            w.status = "done"
        elif kind == "error":
            self._fail(w, msg[1], msg[2])
        elif kind == "eof":
            code = w.proc.exitcode if w.proc is not None else None
            if w.proc is not None:
                w.proc.join(timeout=1)
                code = w.proc.exitcode
            self._fail(w, f"worker died (exit code {code})", reason="crash")

    def _on_crew(self, rank: int, msg: tuple[Any, ...], now: float) -> None:
        c = self._crew
        assert c is not None
        c.last_heard = now
        kind = msg[0]
        if kind == "port":
            for conn in c.conns[1:]:
                conn.send(("port", msg[1]))
        elif kind == "ready":
            c.ready.add(rank)
            self._crew_go()
        elif kind == "allreduce":
            c.reports.setdefault(msg[1], {})[rank] = (list(msg[2]), msg[3])
            if len(c.reports[msg[1]]) == len(c.devices):
                self._close_report(c, msg[1])
        elif kind == "done":
            c.done.add(rank)
        elif kind == "error":
            self._crew_failed(f"rank {rank} ({c.devices[rank].label}): {msg[1]}")
        elif kind == "eof":
            self._crew_failed(f"rank {rank} ({c.devices[rank].label}) exited", "crash")

    def _close_report(self, c: _Crew, phase: int) -> None:
        reports = c.reports[phase]
        per_rank = [reports[r][0] for r in sorted(reports)]
        n = min((len(x) for x in per_rank), default=0)
        # an iteration's busbw is its slowest rank's
        c.run.busbw[phase] = [min(x[i] for x in per_rank) for i in range(n)]
        for r in sorted(reports):
            if reports[r][1]:
                c.run.problems.append(f"phase {phase}: {reports[r][1]}")

    def _crew_failed(self, why: str, reason: FailureReason | None = None) -> None:
        c = self._crew
        if c is None:
            return
        c.run.failure = why
        c.run.reason = reason
        c.run.failure_t = self.t()
        c.stop.set()
        self._end_crew(c)
        # again, over the devices still running, if an allreduce phase is still ahead
        alive = [w.device for w in self.workers if w.status in ("ready", "running")]
        ahead = any(p.kind == "allreduce" and p.start > time.monotonic() + 1.0 for p in self.phases)
        if (
            len(alive) >= 2
            and self.job is None
            and ahead
            and len(self.crews) < MAX_CREWS
            and not self.stop_event.is_set()
        ):
            self._start_crew(alive)
            self._crew_go()

    def _end_crew(self, c: _Crew) -> None:
        """Kill the all_reduce crew's process groups and drop its pipes."""
        for p in c.procs:
            kill_group(p)
        for conn in c.conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._crew = None

    def _check_deadlines(self, now: float) -> None:
        for w in self.workers:
            if w.status in ("ready", "running") and now - w.last_heard > self.hang_s:
                self._fail(
                    w, f"hung: no progress for {self.hang_s:.0f} s, worker killed", reason="hang"
                )
            elif (
                w.status in ("ready", "running")
                and w.proc is not None
                and not w.proc.is_alive()
                and not w.conn.poll(0)
            ):
                self._fail(w, f"worker died (exit code {w.proc.exitcode})", reason="crash")
        c = self._crew
        if c is None:
            return
        if not c.went:
            if now - c.last_heard > self.startup_s:
                self._crew_failed(f"did not start within {self.startup_s:.0f} s", "timeout_startup")
            return
        for p in self.phases:
            if p.kind != "allreduce" or p.end + self.crew_grace_s > now:
                continue
            if p.end <= c.run.started_t + self.cfg.t0:  # before this crew existed
                continue
            if len(c.reports.get(p.index, {})) < len(c.devices):
                silent = [
                    c.devices[r].label
                    for r in range(len(c.devices))
                    if r not in c.reports.get(p.index, {})
                ]
                self._crew_failed(
                    f"hung in all_reduce phase {p.index}: no report from "
                    f"{', '.join(silent)} {self.crew_grace_s:.0f} s after the phase ended, "
                    "crew killed",
                    "hang",
                )
                return

    def supervise(
        self, until: float, *, on_tick: Callable[[], None] | None = None, tick_s: float = 0.1
    ) -> None:
        """Listen until monotonic `until` (or until every worker has ended)."""
        while time.monotonic() < until:
            if all(w.status in ("done", "failed") for w in self.workers):
                break
            self._poll(min(tick_s, max(0.0, until - time.monotonic())))
            if on_tick:
                on_tick()

    # --- stopping ----------------------------------------------------------------------

    def shutdown(self, *, grace_s: float = JOIN_S) -> None:
        """Tell everyone to stop, collect their last words, and kill who is left."""
        self.stop_event.set()
        c = self._crew
        if c is not None:
            c.stop.set()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            busy = [w for w in self.workers if w.status in ("starting", "ready", "running")]
            crew_busy = c is not None and self._crew is c and len(c.done) < len(c.devices)
            if not busy and not crew_busy:
                break
            try:
                self._poll(0.1)
            except Exception:
                break
            c = self._crew
        for w in self.workers:
            if w.status in ("starting", "ready", "running"):
                self._fail(w, "did not stop when asked, worker killed")
            kill_group(w.proc)
            if w.conn is not None:  # a Ctrl-C while it was starting left it without one
                with contextlib.suppress(OSError):
                    w.conn.close()
        c = self._crew
        if c is not None:
            pending = [
                p.index
                for p in self.phases
                if p.kind == "allreduce"
                and p.start < time.monotonic()
                and len(c.reports.get(p.index, {})) < len(c.devices)
            ]
            if pending and len(c.done) < len(c.devices) and c.run.failure is None:
                c.run.failure = f"did not finish all_reduce phase {pending[-1]} when asked to stop"
                c.run.failure_t = self.t()
            self._end_crew(c)

    def kill_all(self) -> None:
        """Last resort (a second Ctrl-C): kill every child now."""
        for w in self.workers:
            kill_group(w.proc)
        if self._crew is not None:
            for p in self._crew.procs:
                kill_group(p)
