"""Bare PyTorch loops that measure what rigbench measures, for the same-run comparison
the bench issue asks for (gemm within 3 %, memory within 3 %, p2p and collectives
within 5 %). Prints one JSON object. Needs a CUDA GPU; collectives and p2p need two.

    python benchmarks/reference_loops.py            # on the GPU machine
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch


def events_median(fn, repeats: int, warm_s: float = 0.5) -> float:
    """Median of per-call CUDA-event times over `repeats` back-to-back calls, after about
    `warm_s` of untimed calls (so clocks are where a sustained load puts them)."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warm_s:
        fn()
        torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends))


def gemm_bf16(n: int = 8192) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    t = events_median(lambda: torch.matmul(a, b), repeats=50)
    return 2 * n**3 / t / 1e12


def copy_gbs(nbytes: int = 1 << 30) -> float:
    src = torch.randint(0, 255, (nbytes,), device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    t = events_median(lambda: dst.copy_(src), repeats=50)
    return 2 * nbytes / t / 1e9


def p2p_gbs(nbytes: int = 256 << 20) -> float:
    src = torch.randint(0, 255, (nbytes,), device="cuda:0", dtype=torch.uint8)
    dst = torch.empty(nbytes, device="cuda:1", dtype=torch.uint8)
    with torch.cuda.device(0):
        t = events_median(lambda: dst.copy_(src), repeats=20)
    return nbytes / t / 1e9


def _allreduce_worker(rank: int, world: int, port: int, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    torch.cuda.set_device(rank)
    torch.distributed.init_process_group("nccl", rank=rank, world_size=world)
    x = torch.randn(64 << 20, device="cuda")  # 256 MiB of fp32
    t = events_median(lambda: torch.distributed.all_reduce(x), repeats=20)
    if rank == 0:
        nbytes = x.numel() * 4
        q.put(nbytes / t / 1e9 * 2 * (world - 1) / world)
    torch.distributed.destroy_process_group()


def allreduce_busbw() -> float:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = torch.cuda.device_count()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_allreduce_worker, args=(r, world, port, q)) for r in range(world)]
    for p in procs:
        p.start()
    value = q.get(timeout=300)
    for p in procs:
        p.join()
    return value


if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    out = {
        "device": torch.cuda.get_device_name(0),
        "gemm_bf16_8192_tflops": gemm_bf16(),
        "copy_1gib_gbs": copy_gbs(),
    }
    if torch.cuda.device_count() >= 2:
        out["p2p_256mib_gbs"] = p2p_gbs()
        out["allreduce_256mib_busbw_gbs"] = allreduce_busbw()
    print(json.dumps(out))
