"""VRAM test: write/read patterns over nearly all free memory of each GPU, the failing
address ranges reported (what owners of consumer GPUs run a separate memtest for).

Patterns, on 32-bit words: walking ones (each of the 32 bits set alone, every word), the
address in the address (word i holds i), random words from a seeded generator with a
checksum per chunk (a chunk whose checksum changed is regenerated and compared word by word
to find the addresses). A word that reads back differently from what was written is bad;
bad words are merged into ranges (byte offsets into the tested buffer, and the device
address, data_ptr + offset) with the patterns that found them.

The buffer is FREE_SHARE of the free memory on a GPU (the rest stays for the driver, the
CUDA context and the checksums' 64 MiB chunks widened to int64), CPU_BYTES on a CPU
stand-in. A simulated rig's `[[vram_fault]]` is played on its stand-in: from `offset_kib`,
`length_kib` long, bit `bit` of every word reads back flipped.

    rigbench bench --only vram
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.records import Result

NAME = "vram"
METRIC = "bad_words"
UNIT = "words"

# The share of free memory the patterns cover: gpu-burn's and gpu-fryer's default
# (wilicc/gpu-burn gpu_burn-drv.cpp L32 "USEMEM 0.9"; huggingface/gpu-fryer src/main.rs L36).
FREE_SHARE = 0.9
CPU_BYTES = 16 << 20
CHUNK_WORDS = 1 << 24  # 64 MiB of int32: the unit of the random pattern's checksums
WEIGHT_MOD = 65521  # the largest prime below 2^16: position weights of the second checksum
MAX_RANGES = 20  # reported; the count of bad words is always complete
TIMEOUT_S = 600.0  # silence allowed: one pattern over 130 GiB at ~1 TB/s is seconds

Reader = Callable[[Any, int], Any]  # (chunk tensor, offset in words) -> what reads back


@dataclass(kw_only=True, slots=True)
class BadRange:
    offset: int  # bytes into the tested buffer
    length: int  # bytes
    address: int | None  # the device address of its first byte (None on a CPU stand-in)
    words: int  # bad words in it
    patterns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["offset_hex"] = f"0x{self.offset:x}"
        if self.address is not None:
            d["address_hex"] = f"0x{self.address:x}"
        return d


def merge_ranges(bad: dict[int, set[str]], base: int | None, gap_words: int = 1) -> list[BadRange]:
    """Bad word indices (with the patterns that found each) merged into byte ranges; words
    at most `gap_words` apart join one range."""
    out: list[BadRange] = []
    for i in sorted(bad):
        last = out[-1] if out else None
        if last is not None and i * 4 <= last.offset + last.length + 4 * (gap_words - 1):
            last.length = (i + 1) * 4 - last.offset
            last.words += 1
            last.patterns = sorted(set(last.patterns) | bad[i])
        else:
            addr = base + i * 4 if base is not None else None
            out.append(
                BadRange(offset=i * 4, length=4, address=addr, words=1, patterns=sorted(bad[i]))
            )
    return out


def _plain(chunk: Any, offset: int) -> Any:
    return chunk


def run_patterns(buf: Any, *, seed: int, read: Reader = _plain) -> dict[int, set[str]]:
    """Every pattern over the int32 tensor `buf`; bad word index -> patterns that saw it.
    `read` stands between a write and its read back (a simulated fault plays there)."""
    import torch

    n = buf.numel()
    bad: dict[int, set[str]] = {}

    def note(mask: Any, start: int, name: str) -> None:
        if bool(mask.any()):
            for i in mask.nonzero().flatten().tolist():
                bad.setdefault(start + int(i), set()).add(name)

    chunks = [(s, min(n, s + CHUNK_WORDS)) for s in range(0, n, CHUNK_WORDS)]
    for bit in range(32):
        value = (1 << bit) - (1 << 32 if bit == 31 else 0)  # as a signed int32
        buf.fill_(value)
        for s, e in chunks:
            note(read(buf[s:e], s) != value, s, "walking_ones")
    for s, e in chunks:
        buf[s:e] = torch.arange(e - s, dtype=torch.int32, device=buf.device) + (s & 0x7FFFFFFF)
    for s, e in chunks:
        want = torch.arange(e - s, dtype=torch.int32, device=buf.device) + (s & 0x7FFFFFFF)
        note(read(buf[s:e], s) != want, s, "address_in_address")

    def random_chunk(k: int, length: int) -> Any:
        gen = torch.Generator(device=buf.device)
        gen.manual_seed(seed * 1_000_003 + k)
        return torch.randint(
            -(2**31), 2**31, (length,), generator=gen, dtype=torch.int32, device=buf.device
        )

    def checksum(chunk: Any) -> tuple[int, int]:
        # a plain sum misses flips that cancel (bit 31 set in one word, cleared in another);
        # a position-weighted sum beside it does not
        wide = chunk.to(torch.int64)
        weights = torch.arange(chunk.numel(), device=chunk.device, dtype=torch.int64)
        weighted = int((wide * (weights % WEIGHT_MOD + 1)).sum())
        return int(wide.sum()), weighted

    sums = []
    for k, (s, e) in enumerate(chunks):
        buf[s:e] = random_chunk(k, e - s)
        sums.append(checksum(buf[s:e]))
    for k, (s, e) in enumerate(chunks):
        got = read(buf[s:e], s)
        if checksum(got) != sums[k]:
            note(got != random_chunk(k, e - s), s, "random_checksum")
    return bad


def stuck_bit_reader(offset_bytes: int, length_bytes: int, bit: int) -> Reader:
    """A simulated fault: bit `bit` of every word in the byte range reads back flipped."""
    lo, hi = offset_bytes // 4, (offset_bytes + length_bytes + 3) // 4
    flip = (1 << bit) - (1 << 32 if bit == 31 else 0)

    def read(chunk: Any, offset: int) -> Any:
        a, b = max(lo, offset), min(hi, offset + chunk.numel())
        if a >= b:
            return chunk
        out = chunk.clone()
        out[a - offset : b - offset] ^= flip
        return out

    return read


def plan(ctx: BenchContext) -> list[Step]:
    return [
        Step(
            key=f"{NAME}:{dev.label}",
            label=f"{dev.label} VRAM patterns",
            metric=METRIC,
            unit=UNIT,
            devices=[dev.label],
            params={},
            timeout_s=TIMEOUT_S,
        )
        for dev in ctx.devices
    ]


def _test(ctx: BenchContext, dev: BenchDevice) -> Result:
    import torch

    tdev = torch.device(dev.torch_device)
    if tdev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(tdev)
        nbytes = int(FREE_SHARE * free) // 4 * 4
    else:
        nbytes = max(4096, int(CPU_BYTES * ctx.size_scale) // 4 * 4)
    buf = torch.empty(nbytes // 4, dtype=torch.int32, device=tdev)
    base = buf.data_ptr() if tdev.type == "cuda" else None
    read: Reader = _plain
    fault = ctx.vram_faults.get(dev.label)
    if fault is not None and tdev.type != "cuda":
        read = stuck_bit_reader(*fault)
    t0 = time.monotonic()
    bad = run_patterns(buf, seed=ctx.seed, read=read)
    seconds = time.monotonic() - t0
    del buf
    if tdev.type == "cuda":
        torch.cuda.empty_cache()
    ranges = merge_ranges(bad, base)
    params: dict[str, Any] = {
        "bytes_tested": nbytes,
        "bad_words": len(bad),
        "patterns": ["walking_ones", "address_in_address", "random_checksum"],
        "bad_ranges": [r.to_dict() for r in ranges[:MAX_RANGES]],
        "bad_ranges_total": len(ranges),
        "seconds": round(seconds, 3),
    }
    if bad:
        where = ", ".join(f"0x{r.offset:x}+{r.length}" for r in ranges[:3])
        return Result.failure(
            NAME,
            METRIC,
            UNIT,
            f"{len(bad)} bad words in {len(ranges)} range(s) of "
            f"{nbytes / 2**30:.2f} GiB tested (buffer offset+bytes: {where})",
            devices=[dev.label],
            params=params,
            reason="wrong_data",
        )
    return Result(
        benchmark=NAME,
        metric=METRIC,
        value=0.0,
        unit=UNIT,
        devices=[dev.label],
        params=params,
    )


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    yield _test(ctx, ctx.device(step.devices[0]))
