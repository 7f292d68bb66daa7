"""The PCI bus as sysfs shows it: NVIDIA GPUs present on the bus (whether or not the
driver sees them) and PCIe Access Control Services (ACS) on the bridges between GPUs.

ACS lives in a PCIe extended capability (id 000Dh) in the 4 KiB config space, which
Linux shows past the first 64 bytes only to root. Read order: sysfs config, then
`setpci`, then `lspci -vvv`; otherwise the reason it cannot be read. Only reads.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

from rigbench.hw.kernel import sysfs_bdf
from rigbench.hw.model import AcsBridge

PCI_DEVICES = Path("/sys/bus/pci/devices")
NVIDIA_VENDOR = "0x10de"
GPU_CLASSES = ("0x0300", "0x0302")  # VGA-compatible and 3D controllers
ACS_CAP_ID = 0x000D
ACS_CONTROL_OFFSET = 6
_BDF_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")

# ACS Control register bits (PCIe base spec, 7.7.11.3), as lspci names them.
ACS_BITS: tuple[tuple[int, str, str], ...] = (
    (0x01, "SrcValid", "source validation"),
    (0x02, "TransBlk", "translation blocking"),
    (0x04, "ReqRedir", "P2P request redirect"),
    (0x08, "CmpltRedir", "P2P completion redirect"),
    (0x10, "UpstreamFwd", "upstream forwarding"),
    (0x20, "EgressCtrl", "P2P egress control"),
    (0x40, "DirectTrans", "direct translated P2P"),
)
# Bits that send GPU-to-GPU traffic up to the root complex (and its IOMMU) or block it.
ACS_P2P_REDIRECT = 0x04 | 0x08 | 0x20


def decode_acs(control: int) -> list[str]:
    """lspci's names of the ACS control bits set, e.g. ["SrcValid", "ReqRedir"]."""
    return [name for bit, name, _ in ACS_BITS if control & bit]


def acs_from_config(config: bytes) -> int | None:
    """The ACS control register from a device's config space bytes, or None when the
    device has no ACS capability. Raises ValueError when the extended space (past 256
    bytes) is not in `config`."""
    if len(config) <= 0x100:
        raise ValueError("extended config space not readable")
    offset, seen = 0x100, set()
    while offset and offset not in seen and offset + 8 <= len(config):
        seen.add(offset)
        (header,) = struct.unpack_from("<I", config, offset)
        if header in (0, 0xFFFFFFFF):
            return None
        if header & 0xFFFF == ACS_CAP_ID:
            (control,) = struct.unpack_from("<H", config, offset + ACS_CONTROL_OFFSET)
            return int(control)
        offset = (header >> 20) & 0xFFC
    return None


def acs_from_lspci(text: str) -> int | None:
    """The ACS control register from `lspci -vvv` text ("ACSCtl: SrcValid+ TransBlk- ..."),
    or None when there is no ACSCtl line."""
    m = re.search(r"ACSCtl:\s*(.*)", text)
    if not m:
        return None
    flags = dict(re.findall(r"(\w+)([+-])", m[1]))
    return sum(bit for bit, name, _ in ACS_BITS if flags.get(name) == "+")


def nvidia_gpus_on_pci() -> dict[str, str] | str:
    """NVIDIA display and 3D controllers on the PCI bus: bus id ("00000000:41:00.0",
    NVML's form) -> the kernel driver bound to it ("nvidia", "vfio-pci", "" for none);
    or why they cannot be listed."""
    if not PCI_DEVICES.is_dir():
        return "no /sys/bus/pci/devices (not Linux, or sysfs is not mounted)"
    found = {}
    for dev in sorted(PCI_DEVICES.iterdir()):
        try:
            vendor = (dev / "vendor").read_text().strip().lower()
            klass = (dev / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == NVIDIA_VENDOR and klass.startswith(GPU_CLASSES):
            domain, rest = dev.name.split(":", 1)
            driver = dev / "driver"
            name = os.path.basename(os.path.realpath(driver)) if driver.exists() else ""
            found[f"{int(domain, 16):08X}:{rest.upper()}"] = name
    return found


def _path(bus_id: str) -> list[str] | None:
    """[root bus, bridge, ..., the device] from sysfs, e.g.
    ["pci0000:00", "0000:00:01.1", "0000:01:00.0"]."""
    link = PCI_DEVICES / sysfs_bdf(bus_id)
    if not link.exists():
        return None
    parts = os.path.realpath(link).split("/")
    roots = [i for i, p in enumerate(parts) if p.startswith("pci")]
    if not roots:
        return None
    return [parts[roots[-1]]] + [p for p in parts[roots[-1] + 1 :] if _BDF_RE.match(p)]


def _read_control(bdf: str) -> tuple[int | None, str] | str:
    """(ACS control or None without the capability, where it was read), or why not."""
    reasons = []
    try:
        config = (PCI_DEVICES / bdf / "config").read_bytes()
        return acs_from_config(config), "sysfs config"
    except OSError as exc:
        reasons.append(f"sysfs config: {exc.strerror or exc}")
    except ValueError:
        reasons.append("sysfs shows only the first 256 bytes of config space (not root)")
    if shutil.which("setpci"):
        try:
            proc = subprocess.run(
                ["setpci", "-s", bdf, f"ECAP_ACS+{ACS_CONTROL_OFFSET}.w"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if proc.returncode == 0 and proc.stdout.strip():
                return int(proc.stdout.strip(), 16), "setpci"
            if "not found" in (proc.stderr or "").lower():
                return None, "setpci"
            reasons.append(f"setpci: {(proc.stderr or '').strip() or 'no output'}")
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            reasons.append(f"setpci: {exc}")
    if shutil.which("lspci"):
        try:
            proc = subprocess.run(
                ["lspci", "-s", bdf, "-vvv"], capture_output=True, text=True, timeout=5, check=False
            )
            control = acs_from_lspci(proc.stdout)
            if control is not None:
                return control, "lspci"
            if "Access Control Services" in proc.stdout and "access denied" not in proc.stdout:
                return None, "lspci"
            reasons.append("lspci: no ACSCtl line (not root?)")
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"lspci: {exc}")
    return "; ".join(reasons)


def acs_bridges(gpu_bus: dict[int, str]) -> list[AcsBridge] | str:
    """Every bridge that GPU-to-GPU traffic crosses below its common parent, with its ACS
    control register; or why they cannot be read.

    A bridge matters when its parent (a switch port, or the root bus for root ports) has
    GPUs below it that are not below the bridge: ACS redirect on it sends traffic between
    those GPUs up to the root complex instead of across the parent."""
    if len(gpu_bus) < 2:
        return []
    paths: dict[int, list[str]] = {}
    for index, bus_id in gpu_bus.items():
        path = _path(bus_id)
        if path is None:
            return f"GPU {index} ({bus_id}) is not in /sys/bus/pci/devices (a VM or container?)"
        paths[index] = path
    found: dict[str, list[int]] = {}
    for path in paths.values():
        for k in range(1, len(path) - 1):  # bridges: not the root bus, not the GPU
            bridge, parent = path[k], path[k - 1]
            under_parent = sorted(i for i, p in paths.items() if parent in p)
            under_bridge = {i for i, p in paths.items() if bridge in p}
            if any(i not in under_bridge for i in under_parent):
                found[bridge] = under_parent
    bridges = []
    for bdf in sorted(found):
        read = _read_control(bdf)
        if isinstance(read, str):
            return f"ACS of bridge {bdf} cannot be read: {read}"
        control, source = read
        bridges.append(AcsBridge(bridge=bdf, control=control, gpus=found[bdf], source=source))
    return bridges
