"""The one way rigbench runs work in child processes: start workers, hear them report
ready, bound their work with a timeout, kill their whole process group, and say why a
step failed with a `FailureReason` code.

Workers are forked from a fork server that imported torch once (`context()`), so a step
of four workers pays one torch import, not four. Each worker gets the parent's
environment as it is when the worker starts (a fork server keeps the one it started
with) and, unless told otherwise, its own process session: killing the group ends the
worker and everything it started, and a Ctrl-C in the terminal reaches the parent only.

Start-up (importing torch, creating CUDA contexts, a communicator's rendezvous) is timed
apart from the work: a worker or step that does not report ready within its start-up
limit fails with `timeout_startup` (a slow or busy machine), never with `hang`.

`run_steps` runs a benchmark module's steps (`plan`/`run`, see rigbench.bench) in a
worker, one timeout per step; a step that starts processes of its own declares a
`startup_s` and calls `step_ready()` once they are up. Those processes (the ranks of a
multi-device step) come from `start_peers`: rigbench starts them from its own fork
server at the step's request, so a run pays one torch import however many steps start
ranks, and rigbench kills them with the step's worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from rigbench.errors import one_line
from rigbench.records import FailureReason, Result

# A worker must import the benchmark module (and initialise CUDA) before its first step.
STARTUP_TIMEOUT_S = 120.0
# A step that starts ranks (processes and a communicator) before its first measurement.
RANKS_STARTUP_S = 180.0
# Imported once in the fork server; every worker forked from it has them already. Every
# worker runs this module's `_child_main` (and its records): preloaded, a worker of the CPU
# stand-in's memory step costs 45-49 CPU-ms instead of 54-57 (the 2-core CI machine).
PRELOAD = ["rigbench.forkserver_signals", "torch", "torch.distributed", "rigbench.supervisor"]

_CONTEXT: Any = None


def context() -> Any:
    """The multiprocessing context workers start from: a fork server with torch imported
    where the platform has one, spawn elsewhere."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _CONTEXT = ctx
        else:
            _CONTEXT = mp.get_context("spawn")
    return _CONTEXT


def warm_up() -> None:
    """Start the fork server (and its torch import) in the background, so that it overlaps
    the caller's own work before the first worker is needed."""

    def start_server() -> None:
        if context().get_start_method() == "forkserver":
            from multiprocessing import forkserver

            with contextlib.suppress(OSError, ValueError):
                forkserver.ensure_running()

    threading.Thread(target=start_server, name="rigbench-forkserver", daemon=True).start()


def reason_for(exc: BaseException) -> FailureReason | None:
    """The reason code an exception raised by a step's work stands for, where it has one."""
    if "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
        return "oom"
    return None


# --- one worker --------------------------------------------------------------------------


@dataclass(kw_only=True)
class Worker:
    """A started worker: its process and the parent's end of its pipe."""

    proc: BaseProcess
    conn: mpc.Connection
    name: str
    started: float

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        kill_group(self.proc)


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when its parent, the fork server, ends; the fork server
    ends once rigbench has (it reads EOF on a pipe only rigbench writes to). So a worker
    never outlives a rigbench killed with -9. CPython hands every forked child a copy of
    that pipe's write end (for children that use the fork server themselves, which ours
    do not: they ask rigbench to, `start_peers`); it is closed here, or the fork server
    would live as long as any worker."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError, ImportError):
        from multiprocessing import forkserver

        server: Any = getattr(forkserver, "_forkserver")  # noqa: B009 - private, guarded
        if server._forkserver_alive_fd is not None and server._forkserver_pid is None:
            os.close(server._forkserver_alive_fd)
            server._forkserver_alive_fd = None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _child_main(
    target: Callable[..., None],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    conn: mpc.Connection,
    environ: dict[str, str],
    own_session: bool,
) -> None:
    if own_session:
        os.setsid()
    # What the fork server imported (torch) lives as long as the worker: frozen, collections
    # skip it and leave its pages shared with the fork server instead of copying them.
    gc.freeze()
    _die_with_parent()
    os.environ.clear()
    os.environ.update(environ)
    target(*args, conn=conn, **kwargs)


def start(
    target: Callable[..., None],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    name: str,
    own_session: bool = True,
    daemon: bool = True,
    environ: dict[str, str] | None = None,
) -> Worker:
    """Start `target(*args, conn=<its end of a duplex pipe>, **kwargs)` in a worker, with
    `environ` (default: this process's environment). `own_session=False` keeps the worker
    in this process's group (ranks started outside a step worker: killing this process's
    group ends them too). A worker that starts workers of its own must be `daemon=False`
    (multiprocessing's rule); it is still killed with its group when it hangs or its
    parent ends."""
    ctx = context()
    here, there = ctx.Pipe()
    proc = ctx.Process(
        target=_child_main,
        args=(target, args, kwargs or {}, there, dict(environ or os.environ), own_session),
        name=name,
        daemon=daemon,
    )
    try:
        proc.start()
    finally:
        there.close()
    return Worker(proc=proc, conn=here, name=name, started=time.monotonic())


def kill_group(proc: BaseProcess | None) -> None:
    """Kill a worker and everything it started. A worker may not have reached setsid()
    yet (then it has no group, and no children either), so it is also killed by pid."""
    if proc is None or proc.pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
        proc.kill()
    with contextlib.suppress(ValueError):
        proc.join(timeout=10)


def kill_all() -> None:
    """Kill every worker this process started, with their groups (Ctrl-C)."""
    for child in mp.active_children():
        kill_group(child)


def next_message(
    conn: mpc.Connection, proc: BaseProcess, wait_s: float, stop: threading.Event | None = None
) -> tuple[Any, ...] | str:
    """The worker's next message, or "timeout" after `wait_s` of silence, or "died" when
    the worker is gone and nothing more is in the pipe, or "stopped" once `stop` is set."""
    deadline = time.monotonic() + wait_s
    while True:
        if stop is not None and stop.is_set():
            return "stopped"
        try:
            if conn.poll(min(0.25, max(0.0, deadline - time.monotonic()))):
                return conn.recv()  # type: ignore[no-any-return,unused-ignore]
        except (EOFError, OSError):
            return "died"
        if not proc.is_alive():
            try:
                return conn.recv() if conn.poll(0.1) else "died"  # type: ignore[no-any-return,unused-ignore]
            except (EOFError, OSError):
                return "died"
        if time.monotonic() >= deadline:
            return "timeout"


# --- a benchmark's steps in a worker ------------------------------------------------------


class StepLike(Protocol):
    key: str
    label: str
    metric: str
    unit: str
    devices: list[str]
    params: dict[str, Any]
    timeout_s: float
    startup_s: float


class StepModule(Protocol):
    NAME: str

    def plan(self, ctx: Any) -> list[Any]: ...

    def run(self, ctx: Any, step: Any) -> Iterator[Result]: ...


def load_module(name: str) -> StepModule:
    """`rigbench.bench.<name>`, or a dotted module path."""
    return importlib.import_module(name if "." in name else f"rigbench.bench.{name}")  # type: ignore[return-value,unused-ignore]


_STEP_CONN: mpc.Connection | None = None


def step_ready() -> None:
    """Inside a step: its start-up is over (its processes and communicator are up); the
    step's own timeout starts now. Outside a supervised worker, nothing."""
    if _STEP_CONN is not None:
        _STEP_CONN.send(("ready",))


@dataclass(kw_only=True)
class Peer:
    """A process a step started beside its worker (a rank): the pipe to it and its pid.
    `proc` is there only where this process started it (outside a step worker)."""

    conn: mpc.Connection
    pid: int
    name: str
    proc: BaseProcess | None = None

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.is_alive()
        try:
            os.kill(self.pid, 0)  # its parent, rigbench's fork server, reaps it at once
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def exitcode(self) -> int | None:
        return None if self.proc is None else self.proc.exitcode

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def join(self, timeout: float) -> None:
        if self.proc is not None:
            self.proc.join(timeout=timeout)
            return
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)


PeerSpec = tuple[Callable[..., None], tuple[Any, ...], str]  # target, args, name


def start_peers(specs: list[PeerSpec]) -> list[Peer]:
    """Start `target(*args, conn=...)` for each spec beside this step's worker. Inside a
    step worker rigbench starts them from its fork server (torch imported once for the
    whole run; a worker would otherwise start a fork server, and a torch import, of its
    own), with this worker's environment, and kills them with this worker. Elsewhere they
    are started here, in this process's group."""
    if _STEP_CONN is None:
        workers = [start(t, a, name=n, own_session=False) for t, a, n in specs]
        return [Peer(conn=w.conn, pid=w.proc.pid or 0, name=w.name, proc=w.proc) for w in workers]
    _STEP_CONN.send(("peers", specs, dict(os.environ)))
    reply = _STEP_CONN.recv()
    if reply[0] != "peers":
        raise RuntimeError(f"rigbench could not start the step's processes: {reply[1]}")
    return [
        Peer(conn=conn, pid=pid, name=name)
        for (conn, pid), (_t, _a, name) in zip(reply[1], specs, strict=True)
    ]


def _steps_main(
    module_name: str,
    ctx: Any,
    steps: list[Any],
    torch_threads: int | None,
    *,
    conn: mpc.Connection,
) -> None:
    global _STEP_CONN
    _STEP_CONN = conn
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    module = load_module(module_name)
    for step in steps:
        conn.send(("start", step.key))
        try:
            for result in module.run(ctx, step):
                conn.send(("result", result.to_dict()))
        except Exception as exc:  # a failed step is recorded; the next one still runs
            conn.send(("error", step.key, one_line(exc), reason_for(exc), traceback.format_exc()))
        conn.send(("end", step.key))
    conn.send(("done",))


def _start_peers_for(
    worker: Worker, specs: list[PeerSpec], environ: dict[str, str], peers: list[Worker]
) -> None:
    """A step worker's `start_peers`, run here: the reply carries each peer's end of its
    pipe (multiprocessing hands the worker a duplicate of the descriptor) and its pid.
    This process's copy is closed once sent, so that a peer reads EOF when the worker,
    its only other holder, is gone."""
    try:
        started = [start(t, a, name=n, environ=environ) for t, a, n in specs]
    except Exception as exc:
        worker.conn.send(("error", one_line(exc)))
        return
    peers.extend(started)
    worker.conn.send(("peers", [(w.conn, w.proc.pid) for w in started]))
    for w in started:
        w.conn.close()


def _failure(
    module_name: str, step: StepLike, message: str, reason: FailureReason | None
) -> Result:
    return Result.failure(
        module_name.rsplit(".", 1)[-1],
        step.metric,
        step.unit,
        message,
        devices=step.devices,
        params={**step.params, "step": step.key},
        reason=reason,
    )


def run_steps(
    module_name: str,
    ctx: Any,
    steps: list[Any],
    on_result: Callable[[Result], None],
    on_step: Callable[[Any], None] | None = None,
    *,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    stop: threading.Event | None = None,
    torch_threads: int | None = None,
) -> list[str]:
    """Run `steps` of `rigbench.bench.<module_name>` in workers; every result, measured or
    failed, goes to `on_result` as soon as it exists. `on_step` is told when a step ends.

    The worker has `startup_timeout_s` to start and import the module; a step then has
    its `startup_s` (0: none) to call `step_ready()`, and after that `timeout_s` between
    any two messages. A failure record's `reason` says which limit ran out ("hang",
    "timeout_startup") or that the worker died ("crash"). Returns the keys of steps whose
    worker hung, died or did not start; a fresh worker carries on with the steps after
    it. Once `stop` is set (another probe found what makes these steps pointless) the
    worker is killed and this returns at once; the steps left get no record, the caller
    that set it says why. `torch_threads` caps the worker's torch CPU threads (work that
    checks rather than measures the CPU, run beside other workers on few cores).
    KeyboardInterrupt kills the worker and propagates."""
    remaining = list(steps)
    finished: set[str] = set()
    aborted: list[str] = []

    def close(step: StepLike, message: str | None, reason: FailureReason | None) -> None:
        if message is not None:
            aborted.append(step.key)
            on_result(_failure(module_name, step, f"{step.label}: {message}", reason))
        finished.add(step.key)
        if on_step:
            on_step(step)

    while remaining and not (stop is not None and stop.is_set()):
        worker: Worker | None = None
        peers: list[Worker] = []
        current: StepLike | None = None
        ready = False
        try:
            # Inside the try: a Ctrl-C that lands while the worker starts must still kill it,
            # or interpreter exit would wait forever on a hung worker.
            worker = start(
                _steps_main,
                (module_name, ctx, remaining, torch_threads),
                name=f"rigbench-{module_name}",
                daemon=False,  # it may start ranks
            )
            while True:
                if current is None:
                    wait, phase = startup_timeout_s, "startup"
                elif not ready:
                    wait, phase = current.startup_s, "startup"
                else:
                    wait, phase = current.timeout_s, "work"
                msg = next_message(worker.conn, worker.proc, wait, stop)
                if msg == "stopped":
                    return aborted  # the worker is killed on the way out
                if msg in ("timeout", "died"):
                    step = current or next((s for s in remaining if s.key not in finished), None)
                    if step is not None:
                        reason: FailureReason
                        if msg == "died":
                            worker.proc.join(timeout=5)  # the pipe can close before exitcode
                            why = f"worker died (exit code {worker.proc.exitcode})"
                            reason = "crash"
                        elif phase == "work":
                            why = f"hung: no progress for {wait:.0f} s, worker killed"
                            reason = "hang"
                        else:
                            why = f"did not start within {wait:.0f} s (a slow or busy machine)"
                            reason = "timeout_startup"
                        close(step, why, reason)
                    break
                assert isinstance(msg, tuple)
                kind = msg[0]
                if kind == "start":
                    current = next(s for s in remaining if s.key == msg[1])
                    ready = not getattr(current, "startup_s", 0.0)
                elif kind == "ready":
                    ready = True
                elif kind == "peers":
                    _start_peers_for(worker, msg[1], msg[2], peers)
                elif kind == "result":
                    ready = True
                    on_result(Result.from_dict(msg[1]))
                elif kind == "error" and current is not None:
                    # The step raised: a failed measurement, not an aborted worker.
                    on_result(_failure(module_name, current, f"{current.label}: {msg[2]}", msg[3]))
                elif kind == "end" and current is not None:
                    close(current, None, None)
                    current = None
                elif kind == "done":
                    worker.proc.join(timeout=10)  # let it tear down (groups, NCCL) in peace
                    break
        finally:
            if worker is not None:
                worker.kill()
                worker.conn.close()
            for peer in peers:
                peer.kill()
        remaining = [s for s in remaining if s.key not in finished]
    return aborted
