# ruff: noqa: E501  (kernel log lines are quoted whole)
"""What the doctor reads from the kernel and the PCI bus, parsed from real text: Xid lines
as dmesg, journalctl and /dev/kmsg print them, kernel command lines, the ACS register from
config space bytes and from `lspci -vvv`, and the live host readers on this machine."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from rigbench.hw.health import HostHealth, iommu_mode, read_host_health
from rigbench.hw.kernel import match_gpus, parse_cmdline_iommu, parse_xids, read_kernel_log
from rigbench.hw.model import GpuInfo, Rig
from rigbench.hw.pci import (
    ACS_P2P_REDIRECT,
    acs_from_config,
    acs_from_lspci,
    decode_acs,
    nvidia_gpus_on_pci,
)

# Lines as the NVIDIA driver writes them (formats from driver 418 to 570, as users posted
# them in bug reports); one per format the parser must take.
DMESG = """\
[    4.331029] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.172.04  Thu Apr 11 13:27:06 UTC 2024
[ 1399.140318] NVRM: GPU at PCI:0000:01:00: GPU-34d7319c-5b19-1e75-186d-c187099e4fe5
[ 1399.140323] NVRM: Xid (PCI:0000:01:00): 32, Channel ID 00000009 intr 00800000
[ 8235.114561] NVRM: Xid (PCI:0000:41:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.
[ 8235.114570] NVRM: GPU 0000:41:00.0: GPU has fallen off the bus.
[190233.551204] NVRM: Xid (PCI:0000:47:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.
[190233.612870] NVRM: Xid (PCI:0000:47:00): 94, pid=88123, name=python3, Contained: CE User Channel (0x9). RST: No, D-RST: No
[201877.004411] NVRM: Xid (PCI:0000:47:00): 95, pid=90417, name=python3, Uncontained: FBHUB. RST: Yes, D-RST: No
[ 5512.337141] NVRM: Xid (PCI:0000:02:00): 119, pid=4411, name=python3, Timeout after 6s of waiting for RPC response from GPU1 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20800a4c 0x4).
[12345.678901] NVRM: Xid (PCI:0000:00:1e.0): 13, pid=1, name=python, Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address
[12346.000000] NVRM: Xid (0000:02:00): 31, pid=7, name=x, Ch 00000010, intr 10000000
[12347.000000] nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context
"""
JOURNAL = (
    "Feb 14 05:03:41 gpu-1 kernel: NVRM: Xid (PCI:0000:ab:00): 63, pid='<unknown>', "
    "name=<unknown>, Row Remapper: New row (0x00000000003e1f20) Marked for Remapping, "
    "reset gpu to activate.\n"
    "Feb 14 05:04:10 gpu-1 kernel: NVRM: Xid (PCI:0000:ab:00): 64, pid='<unknown>', "
    "name=<unknown>, Row Remapper Error\n"
)
# A GPU lost without an Xid line (newer drivers), as dmesg prints the multi-line message.
FALLEN_NO_XID = """\
[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0
               NVRM: (PCI ID: 10de:26b5) installed in this system has
               NVRM: fallen off the bus and is not responding to commands.
[ 1843.439662] NVRM: The NVIDIA probe routine failed for 1 device(s).
"""


def test_xid_lines_of_every_format() -> None:
    events = parse_xids(DMESG)
    assert [e.code for e in events] == [32, 79, 48, 94, 95, 119, 13, 31]
    assert [e.pci for e in events] == [
        "0000:01:00",
        "0000:41:00",
        "0000:47:00",
        "0000:47:00",
        "0000:47:00",
        "0000:02:00",
        "0000:00:1e",
        "0000:02:00",
    ]
    assert events[1].line.endswith("GPU has fallen off the bus.")


def test_xid_lines_from_journalctl() -> None:
    assert [(e.code, e.pci) for e in parse_xids(JOURNAL)] == [
        (63, "0000:ab:00"),
        (64, "0000:ab:00"),
    ]


def test_gpu_fallen_off_without_an_xid_counts_as_79() -> None:
    events = parse_xids(FALLEN_NO_XID)
    assert [(e.code, e.pci) for e in events] == [(79, "0000:b3:00")]
    # ... but not twice when the driver also printed the Xid line
    both = parse_xids(
        FALLEN_NO_XID + "NVRM: Xid (PCI:0000:b3:00): 79, GPU has fallen off the bus.\n"
    )
    assert [(e.code, e.pci) for e in both] == [(79, "0000:b3:00")]


def test_xids_are_matched_to_gpus_by_bus_id() -> None:
    events = match_gpus(parse_xids(DMESG), {0: "00000000:01:00.0", 1: "00000000:47:00.0"})
    by_code = {e.code: e.gpu for e in events}
    assert by_code[32] == 0 and by_code[48] == 1 and by_code[79] is None


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        ("BOOT_IMAGE=/vmlinuz-6.5.0-17-generic root=/dev/sda2 ro quiet splash", {}),
        (
            "BOOT_IMAGE=/vmlinuz ro quiet splash amd_iommu=on iommu=pt",
            {"on": True, "passthrough": True},
        ),
        ("ro intel_iommu=on", {"on": True}),
        ("ro intel_iommu=on,sm_on iommu.passthrough=1", {"on": True, "passthrough": True}),
        ("ro amd_iommu=off", {"off": True}),
        ("ro iommu=off", {"off": True}),
        ("ro iommu.passthrough=0 intel_iommu=on", {"on": True}),
    ],
)
def test_kernel_command_line_iommu(cmdline: str, expected: dict[str, bool]) -> None:
    got = parse_cmdline_iommu(cmdline)
    for key in ("passthrough", "off", "on"):
        assert got[key] == expected.get(key, False), key


def test_iommu_mode_prefers_the_group_type_over_the_command_line() -> None:
    assert iommu_mode(HostHealth(iommu_groups=0))[0] == "off"
    host = HostHealth(iommu_groups=71, iommu_group_type="DMA-FQ", cmdline="ro iommu=pt")
    assert iommu_mode(host)[0] == "translated"
    assert iommu_mode(HostHealth(iommu_groups=212, iommu_group_type="identity"))[0] == "passthrough"
    assert iommu_mode(HostHealth(iommu_groups=40, cmdline="ro amd_iommu=on iommu=pt"))[0] == (
        "passthrough"
    )
    assert iommu_mode(HostHealth(iommu_groups=40, cmdline="ro quiet"))[0] == "translated"
    assert iommu_mode(HostHealth())[0] == "unknown"


def _config_with_acs(control: int) -> bytes:
    """4 KiB of a PCIe switch port's config space: AER at 100h, then ACS at 148h (the
    layout of a PLX PEX 8747 downstream port)."""
    cfg = bytearray(4096)
    struct.pack_into("<I", cfg, 0x100, 0x0001 | (2 << 16) | (0x148 << 20))  # AER v2 -> 148h
    struct.pack_into("<I", cfg, 0x148, 0x000D | (1 << 16) | (0 << 20))  # ACS v1, last
    struct.pack_into("<HH", cfg, 0x14C, 0x005F, control)  # capability, control
    return bytes(cfg)


def test_acs_control_from_config_space() -> None:
    assert acs_from_config(_config_with_acs(0x001D)) == 0x001D
    assert decode_acs(0x001D) == ["SrcValid", "ReqRedir", "CmpltRedir", "UpstreamFwd"]
    assert 0x001D & ACS_P2P_REDIRECT
    assert acs_from_config(_config_with_acs(0)) == 0
    no_acs = bytearray(_config_with_acs(0))
    struct.pack_into("<I", no_acs, 0x100, 0x0001 | (2 << 16))  # AER is the only capability
    assert acs_from_config(bytes(no_acs)) is None
    with pytest.raises(ValueError):
        acs_from_config(bytes(64))  # what a non-root read of sysfs config returns


def test_acs_control_from_lspci() -> None:
    text = """\
	Capabilities: [148 v1] Access Control Services
		ACSCap:	SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
		ACSCtl:	SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
"""
    assert acs_from_lspci(text) == 0x001D
    off = text.replace(
        "ACSCtl:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+",
        "ACSCtl:\tSrcValid- TransBlk- ReqRedir- CmpltRedir- UpstreamFwd-",
    )
    assert acs_from_lspci(off) == 0
    assert (
        acs_from_lspci("\tCapabilities: [148 v1] Access Control Services <access denied>") is None
    )


def test_acs_parser_reads_this_machines_bridges() -> None:
    """Real config space of this machine's first PCI device: the extended part (root only)
    parsed, the first 256 bytes alone are refused."""
    devices = sorted(Path("/sys/bus/pci/devices").glob("*/config"))
    full = [p for p in devices if p.stat().st_size > 256]
    if not devices:
        pytest.skip("no PCI devices in sysfs here (a container)")
    path = full[0] if full else devices[0]
    try:
        data = path.read_bytes()
    except OSError:
        data = b""  # unreadable is the same to the parser as absent
    if len(data) <= 256:  # without root, sysfs gives the first 256 bytes: said, not guessed
        with pytest.raises(ValueError):
            acs_from_config(data)
    else:
        control = acs_from_config(data)
        assert control is None or 0 <= control <= 0xFFFF


def test_live_host_readers_never_raise() -> None:
    rig = Rig(source="none", gpus=[GpuInfo(index=0, name="x", bus_id="00000000:FE:00.0")])
    host = read_host_health(rig)
    for name in ("pci_gpus", "cmdline", "iommu_groups", "xids", "dev_shm_bytes", "memlock_bytes"):
        value = getattr(host, name)
        assert value is not None or name in host.unavailable, name
    listed = nvidia_gpus_on_pci()
    assert isinstance(listed, dict | str)
    log = read_kernel_log()
    assert (log.text is None) == (log.why is not None)
