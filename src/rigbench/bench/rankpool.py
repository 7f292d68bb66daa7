"""A pool of torch.distributed ranks inside one benchmark worker: the worker is rank 0,
ranks 1..n-1 are the step's peers (`rigbench.supervisor.start_peers`: rigbench starts
them from its fork server) that serve commands over pipes.

The rendezvous is the collectives benchmark's: a TCPStore on 127.0.0.1 on a port the OS
picks (no window for another process to take it), NCCL on GPUs and gloo on the CPU,
NCCL_NVLS_ENABLE=0 unless already set (NVLink multicast stays off). The supervisor kills
the ranks with the worker on a timeout. Once every rank is ready the pool tells the supervisor
(`step_ready`): the step's timeout then counts from there, start-up excluded.

What a rank does is a *handler*: a class named by a dotted path ("module:Class", so it
pickles as a string), built in every rank as `Class(rank, world_size, device)` after the
process group exists, with `handle(cmd) -> tuple` (first item "ok" or "error") and
`close()`. `RankPool.command(*cmd)` sends `cmd` to every rank, runs it on rank 0 here and
returns the replies in rank order.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing.connection as mpc
import os
import traceback
from datetime import timedelta
from multiprocessing.util import Finalize
from typing import Any, Protocol

from rigbench import supervisor
from rigbench.errors import one_line

INIT_TIMEOUT = timedelta(seconds=120)


class Handler(Protocol):
    def handle(self, cmd: tuple[Any, ...]) -> tuple[Any, ...]: ...

    def close(self) -> None: ...


def set_rank_env() -> None:
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off


def _handler_class(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _safe_handle(handler: Handler, rank: int, cmd: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return handler.handle(cmd)
    except Exception as exc:
        return ("error", f"rank {rank}: {one_line(exc)}", traceback.format_exc())


def _rank_main(
    rank: int,
    world_size: int,
    backend: str,
    device: str,
    port: int,
    handler_path: str,
    threads: int,
    conn: mpc.Connection,
) -> None:
    """Ranks 1..n-1: join the group, then serve rank 0's commands until told to stop."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)  # rank 0's: a rank works as the worker that started it
    set_rank_env()
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    conn.send(("started",))
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(device)
    store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False, timeout=INIT_TIMEOUT)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    handler: Handler = _handler_class(handler_path)(rank, world_size, device)
    conn.send(("ready",))
    try:
        while True:
            try:
                cmd = conn.recv()
            except EOFError:  # rank 0 is gone
                break
            if cmd[0] == "stop":
                break
            conn.send(_safe_handle(handler, rank, cmd))
    finally:
        handler.close()
        dist.destroy_process_group()


class RankPool:
    """Rank 0's handle on ranks 1..n-1 and the process group they share. A pool of one
    device starts no process (a group of one rank, still through the backend)."""

    def __init__(self, devices: list[str], backend: str, handler_path: str) -> None:
        self.devices = list(devices)
        self.backend = backend
        self.handler_path = handler_path
        self.world = len(self.devices)
        self.peers: list[supervisor.Peer] = []
        self.store: Any = None
        self.broken = False
        self.closed = False
        self.me: Handler | None = None
        self._finalizer = Finalize(self, self.shutdown, exitpriority=10)
        try:
            self._start()
        except BaseException:
            self.broken = True
            self.shutdown()
            raise

    def _start(self) -> None:
        import torch
        import torch.distributed as dist

        set_rank_env()
        if torch.device(self.devices[0]).type == "cuda":
            torch.cuda.set_device(self.devices[0])
        # Port 0: the OS picks a free one, with no window for another process to take it.
        self.store = dist.TCPStore(
            "127.0.0.1", 0, self.world, is_master=True, wait_for_workers=False, timeout=INIT_TIMEOUT
        )
        port = int(self.store.port)
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        threads = torch.get_num_threads()
        self.peers = supervisor.start_peers(
            [
                (
                    _rank_main,
                    (rank, self.world, self.backend, self.devices[rank], port,
                     self.handler_path, threads),
                    f"rigbench-rank{rank}",
                )
                for rank in range(1, self.world)
            ]
        )  # fmt: skip
        for rank in range(1, self.world):
            self._recv(rank)  # "started": the process runs (a crash on import shows here)
        dist.init_process_group(self.backend, store=self.store, rank=0, world_size=self.world)
        self.me = _handler_class(self.handler_path)(0, self.world, self.devices[0])
        for rank in range(1, self.world):
            self._recv(rank)  # "ready"
        supervisor.step_ready()

    def alive(self) -> bool:
        return not self.broken and not self.closed and all(p.alive() for p in self.peers)

    def _recv(self, rank: int) -> tuple[Any, ...]:
        peer = self.peers[rank - 1]
        conn = peer.conn
        while not conn.poll(0.2):
            if not peer.alive() and not conn.poll(0):
                self.broken = True
                code = peer.exitcode()
                raise RuntimeError(
                    f"rank {rank} ({self.devices[rank]}) exited"
                    + (f" with code {code}" if code is not None else "")
                )
        try:
            msg: tuple[Any, ...] = conn.recv()
        except EOFError as exc:
            self.broken = True
            raise RuntimeError(f"rank {rank} ({self.devices[rank]}) closed its pipe") from exc
        return msg

    def command(self, *cmd: Any) -> list[tuple[Any, ...]]:
        """Send `cmd` to every rank, run it here as rank 0, and return the replies by rank.
        An error on rank 0 raises at once: the others may be waiting for it inside a
        collective, and the runner's timeout ends them."""
        assert self.me is not None
        for peer in self.peers:
            peer.conn.send(cmd)
        mine = _safe_handle(self.me, 0, cmd)
        if mine[0] == "error":
            self.broken = True
            raise RuntimeError(mine[1])
        return [mine] + [self._recv(r) for r in range(1, self.world)]

    def shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        import torch.distributed as dist

        for peer in self.peers:
            with contextlib.suppress(OSError, ValueError):
                peer.conn.send(("stop",))
        if self.broken:
            for peer in self.peers:
                peer.kill()
        if self.me is not None:
            with contextlib.suppress(Exception):
                self.me.close()
        if dist.is_initialized():
            dist.destroy_process_group()  # with the others', concurrently (NCCL wants that)
        for peer in self.peers:
            peer.join(timeout=30)
            if peer.alive():
                peer.kill()
                peer.join(timeout=10)
            peer.conn.close()
        self.store = None
        self._finalizer.cancel()
