"""The GDDR6/GDDR6X VRAM temperature reader, against a fake sysfs tree whose `resource0` is
a regular file holding a planted register value: the same function the live path calls."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import pytest

from rigbench.hw.gddr import (
    GDDR_DEVICES,
    NOT_GDDR,
    GddrReader,
    GddrUnavailable,
    gddr_device,
    gddr_device_by_name,
    open_gddr_reader,
    sysfs_bdf,
    temperature_c,
)

BUS_ID = "00000000:41:00.0"  # as NVML writes it
BDF = "0000:41:00.0"


def _fake_sysfs(
    root: Path, device_id: int, word: int | None = None, offset: int = 0xE2A8, size: int = 0x10000
) -> Path:
    dev = root / "bus" / "pci" / "devices" / BDF
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "device").write_text(f"0x{device_id:04x}\n")
    bar = bytearray(size)
    if word is not None:
        struct.pack_into("<I", bar, offset, word)
    (dev / "resource0").write_bytes(bytes(bar))
    return dev / "resource0"


def test_reads_the_planted_temperature_of_a_3090(tmp_path: Path) -> None:
    # 104 °C is 104 * 32 = 3328 = 0xD00 in the low 12 bits; the high bits are not temperature
    res = _fake_sysfs(tmp_path, 0x2204, word=0xABCD_0000 | 0xD00)
    reader = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(reader, GddrReader), reader
    try:
        assert reader.device.name == "RTX 3090" and reader.device.memory == "GDDR6X"
        assert reader.read_c() == 104.0
        assert "BAR0+0xE2A8" in reader.source
        # the register is read again on every call, not cached
        with open(res, "r+b") as f:
            f.seek(0xE2A8)
            f.write(struct.pack("<I", 112 * 32 + 16))
        assert reader.read_c() == 112.5
    finally:
        reader.close()


def test_ga104_reads_at_its_own_offset(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path, 0x2484, word=70 * 32, offset=0xEE50)
    reader = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(reader, GddrReader)
    try:
        assert reader.read_c() == 70.0
    finally:
        reader.close()


def test_the_mapping_is_read_only(tmp_path: Path) -> None:
    res = _fake_sysfs(tmp_path, 0x2204, word=90 * 32)
    before = res.read_bytes()
    reader = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(reader, GddrReader)
    try:
        assert reader._map is not None
        with pytest.raises(TypeError):  # "mmap can't modify a readonly memory map"
            reader._map[0:4] = b"\0\0\0\0"
        maps = [
            line.split()
            for line in Path("/proc/self/maps").read_text().splitlines()
            if line.endswith(str(res))
        ]
        assert maps, "the resource file is not mapped"
        for fields in maps:
            assert fields[1].startswith("r-") and fields[1].endswith("s"), fields  # r--s
        assert reader.read_c() == 90.0
    finally:
        reader.close()
    assert res.read_bytes() == before


def test_a_gpu_outside_the_table_is_never_opened(tmp_path: Path) -> None:
    res = _fake_sysfs(tmp_path, 0x2330, word=90 * 32)  # H100 SXM5 (HBM3)
    res.chmod(0)  # opening it would fail loudly: the reader must not even try
    got = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(got, GddrUnavailable)
    assert got.why.startswith(NOT_GDDR) and "10de:2330" in got.why


def test_kernel_lockdown_is_the_reason(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path, 0x2204, word=90 * 32)
    sec = tmp_path / "kernel" / "security"
    sec.mkdir(parents=True)
    (sec / "lockdown").write_text("none [integrity] confidentiality\n")
    got = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(got, GddrUnavailable) and "lockdown (integrity)" in got.why
    (sec / "lockdown").write_text("[none] integrity confidentiality\n")
    assert isinstance(open_gddr_reader(BUS_ID, sysfs=tmp_path), GddrReader)


def test_unreadable_resource_says_root(tmp_path: Path) -> None:
    import os

    res = _fake_sysfs(tmp_path, 0x2204, word=90 * 32)
    res.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("root reads a mode-0 file")
    got = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(got, GddrUnavailable) and "needs root" in got.why


def test_a_resource_too_small_for_the_register_is_refused(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path, 0x2204, size=mmap.PAGESIZE)
    got = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(got, GddrUnavailable) and "too small" in got.why


def test_a_missing_device_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    got = open_gddr_reader(BUS_ID, sysfs=tmp_path)
    assert isinstance(got, GddrUnavailable) and BDF in got.why


def test_decoding() -> None:
    assert temperature_c(104 * 32) == 104.0
    assert temperature_c(0xFFFFFFFF) is None  # the device did not answer
    assert temperature_c(0x12345000) is None  # nothing in the temperature bits
    assert sysfs_bdf(BUS_ID) == BDF and sysfs_bdf("0000:01:00.0") == "0000:01:00.0"


def test_table_lookups() -> None:
    assert len({d.device_id for d in GDDR_DEVICES}) == len(GDDR_DEVICES)
    assert gddr_device(0x2204) is not None and gddr_device(0x2330) is None
    by_name = gddr_device_by_name("NVIDIA GeForce RTX 3090")
    assert by_name is not None and by_name.name == "RTX 3090"
    ti = gddr_device_by_name("NVIDIA GeForce RTX 3090 Ti")
    assert ti is not None and ti.device_id == 0x2203
    assert gddr_device_by_name("NVIDIA H100 80GB HBM3") is None
    l40s = gddr_device_by_name("NVIDIA L40S")
    assert l40s is not None and l40s.memory == "GDDR6"
