"""Runs a benchmark's steps in a worker process and bounds every step with a timeout.

The worker starts its own process session, so a hang (P2P on a board with ACS on, a
stuck NCCL collective, a dying GPU) is ended by killing the whole group, the step is
recorded as failed, and a fresh worker carries on with the steps that remain.
Results stream back as they are measured, so the caller can store each one at once.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from rigbench.bench.context import BenchContext, Step
from rigbench.records import FailureReason, Result

# A worker must import torch and initialise CUDA before its first step.
STARTUP_TIMEOUT_S = 120.0


class BenchmarkModule(Protocol):
    NAME: str

    def plan(self, ctx: BenchContext) -> list[Step]: ...

    def run(self, ctx: BenchContext, step: Step) -> Iterator[Result]: ...


def load_module(name: str) -> BenchmarkModule:
    return importlib.import_module(f"rigbench.bench.{name}")


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _worker_main(module_name: str, ctx: BenchContext, steps: list[Step], out: Any) -> None:
    # Own session: the parent can kill this worker and anything it starts in one go,
    # and a Ctrl-C in the terminal reaches the parent only.
    os.setsid()
    module = load_module(module_name)
    for step in steps:
        out.send(("start", step.key))
        try:
            for result in module.run(ctx, step):
                out.send(("result", result.to_dict()))
        except Exception as exc:  # a failed step is recorded; the next one still runs
            out.send(("error", step.key, _one_line(exc), traceback.format_exc()))
        out.send(("end", step.key))
    out.send(("done",))


def _kill_group(proc: mp.process.BaseProcess) -> None:
    """Kill the worker and everything it started. The worker may not have reached setsid()
    yet (then it has no group, and no children either), so it is also killed by pid."""
    if proc.pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
        proc.kill()
    proc.join(timeout=10)


def _failure(
    module_name: str, step: Step, message: str, reason: FailureReason | None = None
) -> Result:
    return Result.failure(
        module_name if "." not in module_name else module_name.rsplit(".", 1)[-1],
        step.metric,
        step.unit,
        message,
        devices=step.devices,
        params={**step.params, "step": step.key},
        reason=reason,
    )


def _next_message(reader: Any, proc: mp.process.BaseProcess, wait_s: float) -> tuple | str:
    """The worker's next message, or "timeout" after `wait_s` of silence, or "died" when
    the worker is gone and nothing more is in the pipe."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if reader.poll(min(0.25, max(0.0, deadline - time.monotonic()))):
                return reader.recv()  # type: ignore[no-any-return,unused-ignore]
        except (EOFError, OSError):
            return "died"
        if not proc.is_alive():
            try:
                return reader.recv() if reader.poll(0.1) else "died"  # type: ignore[no-any-return,unused-ignore]
            except (EOFError, OSError):
                return "died"
        if time.monotonic() >= deadline:
            return "timeout"


def run_steps(
    module_name: str,
    ctx: BenchContext,
    steps: list[Step],
    on_result: Callable[[Result], None],
    on_step: Callable[[Step], None] | None = None,
    *,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> list[str]:
    """Run `steps` of `rigbench.bench.<module_name>` in workers; every result, measured or
    failed, goes to `on_result` as soon as it exists. `on_step` is told when a step ends.
    Returns the keys of steps whose worker hung or died. KeyboardInterrupt kills the
    worker and propagates."""
    spawn = mp.get_context("spawn")
    remaining = list(steps)
    finished: set[str] = set()
    aborted: list[str] = []

    def close(step: Step, message: str | None, reason: FailureReason | None = None) -> None:
        if message is not None:
            aborted.append(step.key)
            on_result(_failure(module_name, step, f"{step.label}: {message}", reason))
        finished.add(step.key)
        if on_step:
            on_step(step)

    while remaining:
        # A pipe, not a Queue: send() is written before it returns, so a worker that dies
        # right after a message has still delivered it.
        reader, writer = spawn.Pipe(duplex=False)
        proc = spawn.Process(target=_worker_main, args=(module_name, ctx, remaining, writer))
        current: Step | None = None
        started = False
        try:
            # Inside the try: a Ctrl-C that lands while the worker starts must still kill it,
            # or interpreter exit would wait forever on a hung worker.
            proc.start()
            writer.close()
            while True:
                if current is not None:
                    wait = current.timeout_s
                elif not started:
                    wait = startup_timeout_s + remaining[0].timeout_s
                else:
                    wait = startup_timeout_s
                msg = _next_message(reader, proc, wait)
                if msg in ("timeout", "died"):
                    step = current or next((s for s in remaining if s.key not in finished), None)
                    if step is not None:
                        reason: FailureReason
                        if msg == "died":
                            proc.join(timeout=5)  # the pipe can close before exitcode is set
                            why = f"worker died (exit code {proc.exitcode})"
                            reason = "crash"
                        elif current is not None:
                            why = f"hung: no progress for {wait:.0f} s, worker killed"
                            reason = "hang"
                        else:
                            why = f"worker did not start within {wait:.0f} s"
                            reason = "timeout_startup"
                        close(step, why, reason)
                    break
                assert isinstance(msg, tuple)
                kind = msg[0]
                if kind == "start":
                    started = True
                    current = next(s for s in remaining if s.key == msg[1])
                elif kind == "result":
                    on_result(Result.from_dict(msg[1]))
                elif kind == "error" and current is not None:
                    # The step raised: a failed measurement, not an aborted worker.
                    on_result(_failure(module_name, current, f"{current.label}: {msg[2]}"))
                elif kind == "end" and current is not None:
                    close(current, None)
                    current = None
                elif kind == "done":
                    proc.join(timeout=10)  # let it tear down (process groups, NCCL) in peace
                    break
        finally:
            _kill_group(proc)
            reader.close()
        remaining = [s for s in remaining if s.key not in finished]
    return aborted
