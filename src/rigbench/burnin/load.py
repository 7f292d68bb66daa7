"""What runs in the burn-in's child processes: one load worker per GPU, and the all_reduce
crew (one rank per GPU). Each child starts its own process session, so the parent can end it
and everything it started in one kill; the parent records a child that errors, hangs or
dies, and the others carry on.

Load worker, per phase of the schedule (burnin.schedule):

* gemm / full: `out = A @ B` for fixed inputs (generated on the CPU from SEED, the same on
  every GPU), in batches; each batch's output is checksummed (CRC32 of its exact row and
  column sums, integers over the output's bits) while the next batch runs, so the GPU never
  waits for the check. Every checksum must equal the GPU's first one (over time) and the
  first one of every GPU of the same model (the parent compares); the first output is also
  checked against a float64 product of the same inputs (rigbench.bench.gemm.check_output).
  Batch rate: 2*N^3*batch / t, timed with CUDA events (a monotonic clock on the CPU).
* memory: dst.copy_(src) of a large buffer in batches, dst compared with src after each;
  rate 2*S/t (bytes read + written), as `rigbench bench`'s memory figure.
* idle / allreduce: nothing on this worker (the crew has the GPU during allreduce).

All_reduce crew rank: during allreduce phases, in-place all_reduce (sum) of a float32 buffer
of rank-dependent small integers (rigbench.bench.collectives' pattern, exact in float32),
restored before every call and checked against the known sum after each batch; the ranks
agree to stop through a one-element all_reduce (MIN) after each batch, so none is left
alone inside a collective. busbw = 2(n-1)/n * S / t (nccl-tests).

Messages to the parent are tuples; the first item names them (see burnin.coordinator).
A simulated GPU that drops off the bus (`lost_at`) makes its worker fail with the error a
real one gives, and its crew rank hang, as NCCL does when a peer is gone.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rigbench.burnin.schedule import Phase
from rigbench.errors import one_line

SEED = 20240923
BEAT_S = 0.5  # a worker speaks at least this often
GPU_GEMM_N = 8192
CPU_GEMM_N = 192
GPU_ALIGN = 256
CPU_ALIGN = 16
TARGET_BATCH_S = 0.02  # one batch of matmuls lasts about this long
MAX_BATCH = 8
GPU_MEM_BYTES = 1 << 30
GPU_MEM_FRACTION = 0.05
CPU_MEM_BYTES = 8 << 20
GPU_ALLREDUCE_BYTES = 64 << 20
CPU_ALLREDUCE_BYTES = 256 << 10
ALLREDUCE_BATCH = 4
CHECK_BLOCK = 256
# A simulated GPU's CPU stand-in runs its steps at a quarter duty: it exists to run the same
# code as a GPU (sizes, checks, messages) while the rig's trace supplies power and heat, and
# an 8-GPU replay on a 2-core laptop would otherwise peg every core and starve the sampler.
STAND_IN_IDLE = 3.0  # seconds idle per second of work
INIT_TIMEOUT = timedelta(seconds=120)
LOST_MESSAGE = "CUDA error: unspecified launch failure (simulated: the GPU fell off the bus)"


@dataclass(frozen=True, slots=True)
class LoadDevice:
    """One device under load: a GPU ("cuda:k"), or a CPU stand-in ("cpu") for a simulated
    GPU or on a machine without GPUs."""

    label: str  # "GPU0", "cpu0"
    torch_device: str
    name: str
    gpu_index: int | None = None
    lost_at: float | None = None  # simulated: seconds after t0 when the GPU drops off
    # simulated silent data corruption: from this many seconds after t0 on, one bit of one
    # element of every matmul result is flipped
    bit_flip_at: float | None = None


@dataclass(frozen=True, slots=True)
class JobCrew:
    """This process's one device joins an all_reduce crew over every rank of a torchrun job
    (burnin.cluster): its crew rank, the crew's size, and where the job's rendezvous store
    is (the crew's keys live under `prefix`)."""

    rank: int
    world: int
    host: str
    port: int
    prefix: str


@dataclass(frozen=True, slots=True)
class LoadConfig:
    t0: float  # the telemetry clock's zero (monotonic), for simulated faults
    seed: int = SEED


def stands_in_for_a_gpu(dev: LoadDevice) -> bool:
    """A CPU stand-in for a simulated GPU (not the CPU of a machine without GPUs)."""
    return dev.torch_device == "cpu" and dev.gpu_index is not None


def _check_lost(dev: LoadDevice, cfg: LoadConfig) -> None:
    if dev.lost_at is not None and time.monotonic() >= cfg.t0 + dev.lost_at:
        raise RuntimeError(LOST_MESSAGE)


def _corrupt(out: Any, dev: LoadDevice, cfg: LoadConfig) -> None:
    """A simulated GPU's silent data corruption: the lowest mantissa bit of the last
    element flipped (far inside any float tolerance; only a bit-exact comparison sees it)."""
    if dev.bit_flip_at is None or time.monotonic() < cfg.t0 + dev.bit_flip_at:
        return
    import torch

    bits = out.view(torch.int16 if out.element_size() == 2 else torch.int32)
    bits[-1, -1] = bits[-1, -1] ^ 1


def _align(value: float, align: int) -> int:
    return max(align, align * int(value // align))


def gemm_dtype(torch_device: str, capability: tuple[int, int] | None) -> str:
    """bf16 where tensor cores have it (sm_80+), fp16 on Volta/Turing, else fp32."""
    if not torch_device.startswith("cuda") or capability is None:
        return "fp32"
    if capability >= (8, 0):
        return "bf16"
    if capability >= (7, 0):
        return "fp16"
    return "fp32"


def checksum(out: Any) -> Any:
    """Row and column sums of the output's bit patterns as int64 (exact, order-free),
    still on the device."""
    import torch

    bits = out.view(torch.int16 if out.element_size() == 2 else torch.int32)
    return torch.cat([bits.sum(dim=1, dtype=torch.int64), bits.sum(dim=0, dtype=torch.int64)])


def crc(sums: Any) -> int:
    import torch

    return zlib.crc32(bytes(sums.cpu().contiguous().view(torch.uint8).tolist()))


class _Sender:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.last = time.monotonic()

    def send(self, *msg: Any) -> None:
        self.conn.send(msg)
        self.last = time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self.last >= BEAT_S:
            self.send("beat")


def _sleep_until(t: float, sender: _Sender, stop: Any, dev: LoadDevice, cfg: LoadConfig) -> bool:
    """Sleep until monotonic `t`, speaking every BEAT_S; False if told to stop."""
    while True:
        _check_lost(dev, cfg)
        left = t - time.monotonic()
        if left <= 0:
            return True
        if stop.wait(min(left, BEAT_S / 2)):
            return False
        sender.beat()


# --- the load worker --------------------------------------------------------------------


class _Load:
    def __init__(self, dev: LoadDevice, cfg: LoadConfig, sender: _Sender) -> None:
        import torch

        self.torch = torch
        self.dev = dev
        self.cfg = cfg
        self.sender = sender
        self.tdev = torch.device(dev.torch_device)
        self.on_gpu = self.tdev.type == "cuda"
        if self.on_gpu:
            torch.cuda.set_device(self.tdev)
            cap = torch.cuda.get_device_capability(self.tdev)
            total = torch.cuda.get_device_properties(self.tdev).total_memory
        else:
            torch.set_num_threads(1)  # stand-ins share the host's cores
            cap, total = None, 0
        self.dtype_name = gemm_dtype(dev.torch_device, cap)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
            self.dtype_name
        ]
        self.idle = STAND_IN_IDLE if stands_in_for_a_gpu(dev) else 0.0
        self.reference_sum: int | None = None
        self.mismatches = 0
        self.checks = 0
        self._size_gemm()
        self._size_memory(total)

    # sizes ---------------------------------------------------------------------------

    def _inputs(self, n: int) -> tuple[Any, Any]:
        torch = self.torch
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.cfg.seed + n)
        a = torch.randn(n, n, generator=gen).to(self.dtype)
        b = torch.randn(n, n, generator=gen).to(self.dtype)
        return a, b

    def _size_gemm(self) -> None:
        torch = self.torch
        n = GPU_GEMM_N if self.on_gpu else CPU_GEMM_N
        align = GPU_ALIGN if self.on_gpu else CPU_ALIGN
        while True:
            a, b = self._inputs(n)
            self.a_cpu, self.b_cpu = a, b
            self.a, self.b = a.to(self.tdev), b.to(self.tdev)
            self.outs = [torch.empty(n, n, dtype=self.dtype, device=self.tdev) for _ in range(2)]
            self.n = n
            t = self._time_one()
            if t <= 4 * TARGET_BATCH_S or n <= align:
                break
            # too slow for the step phases (fp32 on a GPU without tensor cores): shrink
            n = _align(n * (TARGET_BATCH_S / t) ** (1 / 3), align)
        self.gemm_s = t
        self.batch = max(1, min(MAX_BATCH, round(TARGET_BATCH_S / max(t, 1e-6))))
        self.flops = 2.0 * n**3

    def _sync(self) -> None:
        if self.on_gpu:
            self.torch.cuda.synchronize(self.tdev)

    def _time_one(self) -> float:
        torch = self.torch
        torch.mm(self.a, self.b, out=self.outs[0])  # warm (cuBLAS picks its kernel)
        self._sync()
        t0 = time.perf_counter()
        for _ in range(3):
            torch.mm(self.a, self.b, out=self.outs[0])
        self._sync()
        return (time.perf_counter() - t0) / 3

    def _size_memory(self, total: int) -> None:
        torch = self.torch
        if self.on_gpu:
            nbytes = int(min(GPU_MEM_BYTES, GPU_MEM_FRACTION * total)) // 4 * 4
        else:
            nbytes = CPU_MEM_BYTES
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.cfg.seed + 1)
        self.src = torch.randint(
            -(2**31), 2**31 - 1, (nbytes // 4,), generator=gen, dtype=torch.int32
        ).to(self.tdev)
        self.dst = torch.empty_like(self.src)
        self.mem_bytes = nbytes

    # the reference check ---------------------------------------------------------------

    def reference(self) -> tuple[float, str | None]:
        """The first output, checked against float64; its checksum becomes the reference."""
        from rigbench.bench.gemm import check_output

        torch = self.torch
        out = self.outs[0]
        out.fill_(math.nan)
        torch.mm(self.a, self.b, out=out)
        _corrupt(out, self.dev, self.cfg)
        self._sync()
        r = min(CHECK_BLOCK, self.n)
        ref = self.a_cpu[:r].double() @ self.b_cpu[:, :r].double()
        err, problem = check_output(self.dtype_name, out[:r, :r], ref)
        self.reference_sum = crc(checksum(out).cpu())
        return err, problem

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "dtype": self.dtype_name,
            "n": self.n,
            "batch": self.batch,
            "gemm_ms": self.gemm_s * 1e3,
            "memory_bytes": self.mem_bytes,
            "checksum": self.reference_sum,
        }
        if self.on_gpu:
            info["cuda_name"] = self.torch.cuda.get_device_name(self.tdev)
        return info

    # phases --------------------------------------------------------------------------

    def _verify(self, sums_host: Any, phase: Phase) -> None:
        self.checks += 1
        value = crc(sums_host)
        if value != self.reference_sum:
            self.mismatches += 1
            if self.mismatches <= 3:
                self.sender.send(
                    "wrong",
                    phase.index,
                    f"matmul output checksum {value:08x} differs from this GPU's first "
                    f"{self.reference_sum:08x} (same inputs)",
                )

    def gemm(self, phase: Phase, stop: Any) -> None:
        torch = self.torch
        rates: list[float] = []
        last_sent = time.monotonic()
        pending: tuple[Any, Any, Any, Any, float] | None = None
        k = 0
        hosts = [
            torch.empty(2 * self.n, dtype=torch.int64, pin_memory=self.on_gpu) for _ in range(2)
        ]

        def finish(p: tuple[Any, Any, Any, Any, float]) -> None:
            ready, start, end, host, t_host = p
            if self.on_gpu:
                ready.synchronize()
                seconds = start.elapsed_time(end) / 1e3
            else:
                seconds = t_host
            if seconds > 0:
                rates.append(self.flops * self.batch / seconds / 1e12)
            self._verify(host, phase)

        while time.monotonic() < phase.end and not stop.is_set():
            _check_lost(self.dev, self.cfg)
            out = self.outs[k % 2]
            host = hosts[k % 2]
            if self.on_gpu:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(self.batch):
                    torch.mm(self.a, self.b, out=out)
                end.record()
                host.copy_(checksum(out), non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
                current = (ready, start, end, host, 0.0)
            else:
                t0 = time.perf_counter()
                for _ in range(self.batch):
                    torch.mm(self.a, self.b, out=out)
                took = time.perf_counter() - t0
                if self.idle:
                    stop.wait(self.idle * took)
                _corrupt(out, self.dev, self.cfg)
                host.copy_(checksum(out))
                current = (None, None, None, host, took)
            if pending is not None:
                finish(pending)  # the previous batch, while this one runs
            pending = current
            k += 1
            if time.monotonic() - last_sent >= BEAT_S:
                self.sender.send("gemm", phase.index, rates, self.checks)
                rates, last_sent = [], time.monotonic()
        if pending is not None:
            finish(pending)
        self.sender.send("gemm", phase.index, rates, self.checks)

    def memory(self, phase: Phase, stop: Any) -> None:
        from rigbench.bench.timing import device_clock

        torch = self.torch
        mark, elapsed = device_clock(self.dev.torch_device)
        rates: list[float] = []
        last_sent = time.monotonic()
        while time.monotonic() < phase.end and not stop.is_set():
            _check_lost(self.dev, self.cfg)
            t0 = time.perf_counter()
            if self.on_gpu:
                start = mark()
                for _ in range(MAX_BATCH):
                    self.dst.copy_(self.src)
                seconds = elapsed(start, mark())
            else:
                for _ in range(MAX_BATCH):
                    self.dst.copy_(self.src)
                seconds = time.perf_counter() - t0
                if self.idle:
                    stop.wait(self.idle * seconds)
            if seconds > 0:
                rates.append(2 * self.mem_bytes * MAX_BATCH / seconds / 1e9)
            self.checks += 1
            if not bool(torch.equal(self.dst, self.src)):
                self.mismatches += 1
                if self.mismatches <= 3:
                    wrong = int((self.dst != self.src).sum())
                    self.sender.send(
                        "wrong",
                        phase.index,
                        f"device copy: {wrong} of {self.src.numel()} words differ",
                    )
            self.dst.fill_(0)
            if time.monotonic() - last_sent >= BEAT_S:
                self.sender.send("memory", phase.index, rates, self.checks)
                rates, last_sent = [], time.monotonic()
        self.sender.send("memory", phase.index, rates, self.checks)


def _wait_for_go(conn: Any, stop: Any, sender: _Sender) -> list[Phase] | None:
    """The timetable the coordinator's "go" carries, beating while waiting for it; None
    when told to stop first."""
    while not stop.is_set():
        if conn.poll(BEAT_S / 2):
            msg = conn.recv()
            if msg[0] == "go":
                return list(msg[1])
        sender.beat()
    return None


def load_worker_main(dev: LoadDevice, cfg: LoadConfig, conn: Any, stop: Any) -> None:
    """A load worker: set up, report ("ready", info), wait for ("go", phases), run them,
    report ("done", summary). Errors become ("error", one line, traceback)."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # cuda:k is NVML's GPU order
    sender = _Sender(conn)
    try:
        load = _Load(dev, cfg, sender)
        err, problem = load.reference()
        sender.send("ready", {**load.info(), "reference_error": err, "reference_problem": problem})
        phases = _wait_for_go(conn, stop, sender)
        if phases is None:
            return
        for phase in phases:
            if phase.end <= time.monotonic():
                continue
            if not _sleep_until(phase.start, sender, stop, dev, cfg):
                break
            sender.send("phase", phase.index)
            if phase.kind in ("gemm", "full"):
                load.gemm(phase, stop)
            elif phase.kind == "memory":
                load.memory(phase, stop)
            elif not _sleep_until(phase.end, sender, stop, dev, cfg):
                break
            if stop.is_set():
                break
        load._sync()
        sender.send("done", {"checks": load.checks, "mismatches": load.mismatches})
    except BaseException as exc:
        with contextlib.suppress(OSError, ValueError):
            sender.send("error", one_line(exc), traceback.format_exc())


# --- the all_reduce crew ---------------------------------------------------------------


def crew_rank_main(
    rank: int,
    world: int,
    backend: str,
    dev: LoadDevice,
    cfg: LoadConfig,
    nbytes: int,
    conn: Any,
    stop: Any,
    job: JobCrew | None = None,
) -> None:
    """One rank of the all_reduce crew. Rank 0 hosts the rendezvous and reports its port
    ("port", p); the others are sent it (a job-wide crew, `job`, meets in the torchrun
    job's store instead). Then ("ready",), wait for ("go", phases), and one
    ("allreduce", phase index, busbw list, problem or None) per allreduce phase."""
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    sender = _Sender(conn)
    try:
        import torch
        import torch.distributed as dist

        from rigbench.bench.collectives import check_output, input_for
        from rigbench.bench.timing import device_clock

        tdev = torch.device(dev.torch_device)
        if tdev.type == "cuda":
            torch.cuda.set_device(tdev)
        else:
            torch.set_num_threads(1)
        store: Any
        if job is not None:
            base = dist.TCPStore(job.host, job.port, is_master=False, timeout=INIT_TIMEOUT)
            store = dist.PrefixStore(job.prefix, base)
        elif rank == 0:
            store = dist.TCPStore(
                "127.0.0.1", 0, world, is_master=True, wait_for_workers=False, timeout=INIT_TIMEOUT
            )
            sender.send("port", int(store.port))
        else:
            msg = conn.recv()
            store = dist.TCPStore(
                "127.0.0.1", int(msg[1]), world, is_master=False, timeout=INIT_TIMEOUT
            )
        dist.init_process_group(
            backend, store=store, rank=rank, world_size=world, timeout=timedelta(seconds=60)
        )
        count = max(world, nbytes // 4)
        mark, elapsed = device_clock(tdev)
        data = input_for("all_reduce", rank, world, count, device=tdev)
        pristine = data.clone()
        flag = torch.ones(1, device=tdev)
        factor = 2 * (world - 1) / world
        idle = STAND_IN_IDLE if stands_in_for_a_gpu(dev) else 0.0
        # one call outside the timed phases: NCCL connects on its first collective
        dist.all_reduce(data)
        data.copy_(pristine)
        if tdev.type == "cuda":
            torch.cuda.synchronize(tdev)
        sender.send("ready")
        phases = _wait_for_go(conn, stop, sender)
        if phases is None:
            return
        phases = [p for p in phases if p.kind == "allreduce"]
        for phase in phases:
            if phase.end <= time.monotonic():
                continue
            if not _sleep_until(phase.start, sender, stop, dev, cfg):
                break
            busbw: list[float] = []
            problem: str | None = None
            batch_s = 0.0
            while True:
                if dev.lost_at is not None and time.monotonic() >= cfg.t0 + dev.lost_at:
                    while True:  # a GPU gone from the bus: its peers wait in the collective
                        time.sleep(3600)
                t_batch = time.perf_counter()
                for _ in range(ALLREDUCE_BATCH):
                    data.copy_(pristine)
                    t0 = mark()
                    dist.all_reduce(data)
                    t = elapsed(t0, mark())
                    if t > 0:
                        busbw.append(count * 4 / t * factor / 1e9)
                if problem is None:
                    problem = check_output("all_reduce", rank, world, count, data)
                batch_s = time.perf_counter() - t_batch
                if idle:
                    stop.wait(idle * batch_s)
                    batch_s *= 1 + idle
                # everyone stops after the same batch: the earliest "no more time" wins
                more = time.monotonic() + batch_s < phase.end and not stop.is_set()
                flag.fill_(1.0 if more else 0.0)
                dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                if float(flag.item()) < 0.5:
                    break
                sender.beat()
            sender.send("allreduce", phase.index, busbw, problem)
            if stop.is_set():
                break
        sender.send("done", {})
        dist.destroy_process_group()
    except BaseException as exc:
        with contextlib.suppress(OSError, ValueError):
            sender.send("error", one_line(exc), traceback.format_exc())
