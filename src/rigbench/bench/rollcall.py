"""Which nodes reached a torchrun rendezvous, so a node that never joins can be named.

torchrun's c10d rendezvous counts nodes and, on a timeout, says only that it timed out. Each
`rigbench cluster` node answers a roll-call in the rendezvous's own store (the TCPStore that
torchrun's c10d backend creates, through its public `create_backend` and `create_handler`):
one line, its host name and the address it reaches the endpoint from. A thread keeps a copy
of the roll-call while the nodes join, because the store lives in the host node's process and
may be gone by the time a node's own join times out.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

BACKEND = "rigbench-c10d"  # torchrun's c10d rendezvous, plus the roll-call
_KEY = "rigbench.rollcall."
_POLL_S = 1.0
_STORE_READ_S = 5.0


@dataclass(frozen=True, slots=True)
class Node:
    host: str  # socket.gethostname() on that node
    addr: str  # the address it reaches the rendezvous from ("" where unknown)

    def line(self) -> str:
        return f"{self.host} {self.addr}".strip() + "\n"

    @classmethod
    def parse(cls, line: str) -> Node:
        host, _, addr = line.strip().partition(" ")
        return cls(host, addr)


@dataclass(slots=True)
class RollCall:
    """The roll-call of one launch (its endpoint and join timeout) and the nodes seen in it;
    filled by the handler below."""

    endpoint_host: str
    port: int
    join_timeout_s: float
    seen: list[Node] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reached: threading.Event = field(default_factory=threading.Event)  # the store answered
    stop: threading.Event = field(default_factory=threading.Event)
    poller: threading.Thread | None = None
    source: tuple[Any, str] | None = None  # the store and run id watched

    def watch(self, store: Any, run_id: str) -> None:
        """Keep a copy of the roll-call in `store` until the join timeout, or close()."""
        self.source = (store, run_id)
        self.poller = threading.Thread(
            target=_poll,
            args=(store, run_id, self, self.join_timeout_s + _POLL_S),
            name="rigbench-rollcall",
            daemon=True,
        )
        self.poller.start()

    def close(self) -> None:
        """Stop watching, and wait for the watcher. It must not outlive the launch: a daemon
        thread caught inside a store call (C++, the GIL released) when the interpreter exits
        is ended mid-call, and the process aborts ("terminate called without an active
        exception", seen under load on a node whose job had ended)."""
        self.stop.set()
        if self.poller is not None:
            self.poller.join(timeout=_STORE_READ_S + _POLL_S)

    def keep(self, nodes: list[Node]) -> None:
        with self.lock:
            if len(nodes) >= len(self.seen):
                self.seen = nodes

    def joined(self) -> list[Node]:
        with self.lock:
            return list(self.seen)

    def latest(self) -> list[Node]:
        """The roll-call read once more where the store still answers (the copy is up to a
        poll period old: a node that answered in it would be named as missing), else the
        copy."""
        if self.source is not None:
            with contextlib.suppress(Exception):
                self.keep(read(*self.source))
        return self.joined()


def route_addr(host: str, port: int) -> str:
    """The local address this node reaches host from (no packet is sent: a UDP connect)."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(sockaddr)
            return str(s.getsockname()[0])
    except OSError:
        return ""


def read(store: Any, run_id: str) -> list[Node]:
    key = _KEY + run_id
    if not store.check([key]):
        return []
    return [Node.parse(ln) for ln in store.get(key).decode().splitlines() if ln.strip()]


def answer(store: Any, run_id: str, me: Node) -> None:
    store.append(_KEY + run_id, me.line())


def _poll(store: Any, run_id: str, into: RollCall, until_s: float) -> None:
    end = time.monotonic() + until_s
    while time.monotonic() < end and not into.stop.is_set():
        try:
            into.keep(read(store, run_id))
        except Exception:  # the host node's store went away: keep what was seen
            return
        into.stop.wait(_POLL_S)


_current: list[RollCall] = []  # the launch this process runs: the handler serves it


def _handler(params: Any) -> Any:
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import create_backend
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import (
        RendezvousBackend,
        create_handler,
    )

    class Named(RendezvousBackend):  # torchrun checks a handler's backend name against its own
        def __init__(self, inner: RendezvousBackend) -> None:
            self.inner = inner

        @property
        def name(self) -> str:
            return BACKEND

        def get_state(self) -> Any:
            return self.inner.get_state()

        def set_state(self, state: bytes, token: Any = None) -> Any:
            return self.inner.set_state(state, token)

    call = _current[-1]
    c10d, store = create_backend(params)
    call.reached.set()
    backend = Named(c10d)
    answer(
        store, params.run_id, Node(socket.gethostname(), route_addr(call.endpoint_host, call.port))
    )
    store.set_timeout(timedelta(seconds=_STORE_READ_S))
    call.watch(store, params.run_id)
    return create_handler(store, backend, params)


def register(call: RollCall) -> None:
    """Make BACKEND torchrun's c10d rendezvous, answering `call` and watching it."""
    from torch.distributed.elastic.rendezvous import rendezvous_handler_registry

    _current.append(call)
    rendezvous_handler_registry.register(BACKEND, _handler)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _addresses(name: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()


def matches(name: str, node: Node) -> bool:
    """`--hosts` names a node by its host name (short or full) or by an address of it."""
    if _is_ip(name):
        return name == node.addr
    if name.split(".")[0].lower() == node.host.split(".")[0].lower():
        return True
    return bool(node.addr) and node.addr in _addresses(name)


def missing(hosts: list[str], joined: list[Node]) -> list[str]:
    """The hosts named that no node in the roll-call is, each node standing for one host."""
    left = list(joined)
    absent = []
    for name in hosts:
        found = next((n for n in left if matches(name, n)), None)
        if found is None:
            absent.append(name)
        else:
            left.remove(found)
    return absent
