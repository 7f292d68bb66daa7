"""VRAM junction temperature of GDDR6/GDDR6X cards, read from a GPU register.

NVML reports no memory temperature on GeForce and most workstation GDDR cards. The driver
keeps the memory's junction temperature in a BAR0 register, whose offset per PCI device ID
the public `gddr6` reader documents (table below). This module maps the one page holding
that register from `/sys/bus/pci/devices/<bdf>/resource0`, read-only (PROT_READ, a file
opened O_RDONLY), and reads one aligned 32-bit word per sample. It never opens /dev/mem,
never writes, and never maps a device whose ID is not in the table.

    reader = open_gddr_reader("00000000:01:00.0")   # GddrReader, or GddrUnavailable(why)
    reader.read_c()                                 # 104.0, or None for an invalid word

It needs root (resource files are mode 0600) and a kernel not in lockdown (lockdown forbids
mapping PCI BARs from user space); otherwise the answer is the reason, in one line.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys")
NVIDIA_VENDOR_ID = 0x10DE
NOT_GDDR = "not a GDDR6/GDDR6X device"

# The register holds the temperature in bits [11:0], in 1/32 °C.
TEMP_MASK = 0xFFF
TEMP_PER_C = 32
# A read of a device that stopped answering returns all ones (PCIe master abort).
ALL_ONES = 0xFFFFFFFF

OFFSET_GA102_AD10X = 0xE2A8
OFFSET_GA104 = 0xEE50


@dataclass(frozen=True, slots=True)
class GddrDevice:
    device_id: int  # PCI device ID (vendor 0x10de)
    name: str
    arch: str
    memory: str  # "GDDR6X" or "GDDR6"
    offset: int  # byte offset of the temperature register in BAR0


# Source: github.com/olealgoritme/gddr6, lib/src/gddr6.c, `dev_table` (commit b5e11b1d,
# 2026-08-01): device IDs, memory type, chip and register offset per card. Laptop parts and
# the GDDR7 RTX 5090 (another register and encoding) are left out. Offsets are as the source
# gives them (its RTX A4000, a GA104, reads at 0xE2A8, the GeForce GA104s at 0xEE50).
_ROWS: tuple[tuple[int, str, str, str, int], ...] = (
    # (PCI device ID, card, chip, memory, register offset in BAR0)
    (0x2684, "RTX 4090", "AD102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2685, "RTX 4090 D", "AD102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2702, "RTX 4080 SUPER", "AD103", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2704, "RTX 4080", "AD103", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2705, "RTX 4070 Ti SUPER", "AD103", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2782, "RTX 4070 Ti", "AD104", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2783, "RTX 4070 SUPER", "AD104", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2786, "RTX 4070", "AD104", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2203, "RTX 3090 Ti", "GA102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2204, "RTX 3090", "GA102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2208, "RTX 3080 Ti", "GA102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2206, "RTX 3080", "GA102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2216, "RTX 3080", "GA102", "GDDR6X", OFFSET_GA102_AD10X),
    (0x2484, "RTX 3070", "GA104", "GDDR6", OFFSET_GA104),
    (0x2488, "RTX 3070", "GA104", "GDDR6", OFFSET_GA104),
    (0x2531, "RTX A2000", "GA106", "GDDR6", OFFSET_GA102_AD10X),
    (0x2571, "RTX A2000", "GA106", "GDDR6", OFFSET_GA102_AD10X),
    (0x24B0, "RTX A4000", "GA104", "GDDR6", OFFSET_GA102_AD10X),
    (0x2232, "RTX A4500", "GA102", "GDDR6", OFFSET_GA102_AD10X),
    (0x2231, "RTX A5000", "GA102", "GDDR6", OFFSET_GA102_AD10X),
    (0x26B1, "RTX 6000 Ada Generation", "AD102", "GDDR6", OFFSET_GA102_AD10X),
    (0x27B8, "L4", "AD104", "GDDR6", OFFSET_GA102_AD10X),
    (0x26B9, "L40S", "AD102", "GDDR6", OFFSET_GA102_AD10X),
    (0x2236, "A10", "GA102", "GDDR6", OFFSET_GA102_AD10X),
)
GDDR_DEVICES: tuple[GddrDevice, ...] = tuple(
    GddrDevice(device_id=i, name=n, arch=a, memory=m, offset=o) for i, n, a, m, o in _ROWS
)
_BY_ID = {d.device_id: d for d in GDDR_DEVICES}


def gddr_device(device_id: int) -> GddrDevice | None:
    """The table entry for an NVIDIA PCI device ID, or None."""
    return _BY_ID.get(device_id)


def gddr_device_by_name(name: str) -> GddrDevice | None:
    """The table entry whose card name ends the NVML name ("NVIDIA GeForce RTX 3090" ->
    RTX 3090, not RTX 3090 Ti); for simulated rigs, which carry names, not PCI IDs."""
    words = name.lower().replace("nvidia", "").replace("geforce", "").split()
    for d in GDDR_DEVICES:
        if d.name.lower().split() == words:
            return d
    return None


def temperature_c(word: int) -> float | None:
    """°C from the register's 32-bit word; None for a word that is no reading (all ones: the
    device did not answer; zero: the register is not populated)."""
    if word == ALL_ONES:
        return None
    value = (word & TEMP_MASK) / TEMP_PER_C
    return value if value > 0 else None


@dataclass(frozen=True, slots=True)
class GddrUnavailable:
    """Why a GPU's VRAM temperature cannot be read, in one line."""

    why: str


def sysfs_bdf(bus_id: str) -> str:
    """NVML's bus id ("00000000:01:00.0") as sysfs names the device ("0000:01:00.0")."""
    domain, _, rest = bus_id.strip().lower().partition(":")
    return f"{int(domain or '0', 16):04x}:{rest}"


def _read_hex(path: Path) -> int:
    return int(path.read_text().strip(), 16)


def _lockdown(sysfs: Path) -> str | None:
    """The kernel's lockdown mode when it forbids mapping BARs ("integrity"/"confidentiality")."""
    try:
        text = (sysfs / "kernel" / "security" / "lockdown").read_text()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]") and word != "[none]":
            return word.strip("[]")
    return None


class GddrReader:
    """One GPU's temperature register, mapped read-only; `read_c` may be called from the
    sampler's thread."""

    def __init__(self, device: GddrDevice, bdf: str, fd: int, page_offset: int, word: int):
        self.device = device
        self.bdf = bdf
        self._fd = fd
        self._map: mmap.mmap | None = mmap.mmap(
            fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=page_offset
        )
        # A memoryview of unsigned 32-bit words: indexing it is one aligned 4-byte load,
        # which is how a device register must be read.
        self._words: memoryview | None = memoryview(self._map).cast("I")
        self._index = word

    @property
    def source(self) -> str:
        return (
            f"{self.device.memory} junction register BAR0+0x{self.device.offset:X} "
            f"({self.bdf}/resource0, read-only)"
        )

    def read_word(self) -> int | None:
        if self._words is None:
            return None
        return int(self._words[self._index])

    def read_c(self) -> float | None:
        """The VRAM junction temperature now (°C), or None when the word is no reading."""
        word = self.read_word()
        return temperature_c(word) if word is not None else None

    def close(self) -> None:
        if self._words is not None:
            self._words.release()
            self._words = None
        if self._map is not None:
            self._map.close()
            self._map = None
        with contextlib.suppress(OSError):
            os.close(self._fd)


def open_gddr_reader(bus_id: str, *, sysfs: Path = SYSFS) -> GddrReader | GddrUnavailable:
    """A read-only reader of the VRAM temperature of the GPU at `bus_id`, or why there is
    none. Reads the device's `vendor` and `device` attributes first; only a device in
    GDDR_DEVICES has its resource0 opened."""
    bdf = sysfs_bdf(bus_id)
    dev_dir = sysfs / "bus" / "pci" / "devices" / bdf
    try:
        vendor, device_id = _read_hex(dev_dir / "vendor"), _read_hex(dev_dir / "device")
    except (OSError, ValueError) as exc:
        return GddrUnavailable(f"cannot read the PCI ID of {bdf} from sysfs ({exc})")
    device = gddr_device(device_id) if vendor == NVIDIA_VENDOR_ID else None
    if device is None:
        return GddrUnavailable(
            f"{NOT_GDDR} (PCI ID {vendor:04x}:{device_id:04x} is not in rigbench's table of "
            "GDDR6/GDDR6X cards with a known temperature register)"
        )
    mode = _lockdown(sysfs)
    if mode is not None:
        return GddrUnavailable(
            f"kernel lockdown ({mode}) forbids mapping the GPU's registers: VRAM temperature "
            "unavailable"
        )
    path = dev_dir / "resource0"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        return GddrUnavailable(
            f"reading the {device.memory} temperature needs root ({path} is readable by root only)"
        )
    except OSError as exc:
        return GddrUnavailable(f"cannot open {path}: {exc.strerror or exc}")
    page = mmap.PAGESIZE
    page_offset = device.offset - device.offset % page
    try:
        size = os.fstat(fd).st_size
        if size < page_offset + page:
            os.close(fd)
            return GddrUnavailable(
                f"{path} is {size} bytes, too small to hold the register at 0x{device.offset:X}"
            )
        return GddrReader(device, bdf, fd, page_offset, (device.offset % page) // 4)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.close(fd)
        if exc.errno in (errno.EPERM, errno.EACCES):
            return GddrUnavailable(
                f"mapping {path} was refused ({exc.strerror}): needs root and a kernel "
                "without lockdown"
            )
        return GddrUnavailable(f"cannot map {path}: {exc.strerror or exc}")
