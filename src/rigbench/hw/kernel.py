"""The kernel's side of the GPUs: IOMMU state (sysfs and the kernel command line) and
Xid errors in the kernel log (/dev/kmsg, `dmesg` or `journalctl -k`, whichever is
readable). Parsing is separate from reading, so it is tested on real log text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rigbench.hw.model import KernelEvent, XidEvent

# "NVRM: Xid (PCI:0000:41:00): 79, pid=1234, name=python, GPU has fallen off the bus."
# Old drivers print no "PCI:" and some print the function ("0000:00:1e.0").
_XID_RE = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})"
    r"(?:\.[0-7])?\): (?P<code>\d+)"
)
# Newer drivers also report a lost GPU without an Xid, over several lines:
#   NVRM: The NVIDIA GPU 0000:b3:00.0
#   NVRM: (PCI ID: 10de:26b5) installed in this system has
#   NVRM: fallen off the bus and is not responding to commands.
_GPU_ADDR_RE = re.compile(
    r"NVRM: (?:The NVIDIA )?GPU (?:at PCI:)?(?P<pci>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})"
)
_FALLEN = "fallen off the bus"
_TIME_RE = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\]")
# "pcieport 0000:40:01.1: AER: Corrected error received: 0000:41:00.0"
# "nvidia 0000:41:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)"
_AER_RECEIVED_RE = re.compile(
    r"AER: (?P<sev>Corrected|Uncorrected \([^)]*\)|Multiple [A-Za-z ()-]+?) error"
    r"(?:s)? received: (?:id=)?(?P<pci>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])"
)
_AER_BUS_RE = re.compile(
    r"(?P<pci>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): (?:AER: )?PCIe Bus Error: "
    r"severity=(?P<sev>[A-Za-z ()-]+?),"
)
# "AMD-Vi: Event logged [IO_PAGE_FAULT device=41:00.0 domain=0x000e address=0x... ]"
# "nvidia 0000:41:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=...]"
# "DMAR: [DMA Read NO_PASID] Request device [41:00.0] fault addr 0x... [fault reason 0x06]"
_AMDVI_RE = re.compile(r"IO_PAGE_FAULT(?: device=(?P<dev>[0-9a-fA-F:.]+))?")
_DEV_PREFIX_RE = re.compile(r"(?P<pci>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): ")
_DMAR_RE = re.compile(
    r"DMAR: \[DMA (?:Read|Write)[^\]]*\] Request device \[(?P<dev>[0-9a-fA-F:.]+)\]"
)
# "NVRM: API mismatch: the client has the version 535.104.05, but
#  NVRM: this kernel module has the version 535.86.10.  Please ..."
_API_MISMATCH_RE = re.compile(r"NVRM: API mismatch: the client has the version (?P<client>[\d.]+)")
_MODULE_VERSION_RE = re.compile(r"this kernel module has the version (?P<module>[\d.]+?)\.?\s")
KERNEL_LOG_TIMEOUT_S = 10.0
_E = TypeVar("_E", XidEvent, KernelEvent)


# --- kernel command line and IOMMU groups ---------------------------------------------------


def parse_cmdline_iommu(cmdline: str) -> dict[str, object]:
    """What the kernel command line says about the IOMMU: {"args": [the IOMMU arguments],
    "passthrough": bool, "off": bool, "on": bool}. `iommu=pt`, `amd_iommu=pt` and
    `iommu.passthrough=1` mean passthrough (DMA not translated); `iommu=off`,
    `intel_iommu=off` and `amd_iommu=off` turn it off; `intel_iommu=on` turns it on."""
    args: list[str] = []
    passthrough = off = on = False
    for token in cmdline.split():
        key, _, value = token.partition("=")
        key = key.lower()
        values = [v.strip().lower() for v in value.split(",")]
        if key not in ("iommu", "intel_iommu", "amd_iommu", "iommu.passthrough"):
            continue
        args.append(token)
        if key == "iommu.passthrough":
            passthrough = values[0] in ("1", "y", "on")
        elif "pt" in values:
            passthrough = True
        elif "off" in values:
            off = True
        elif "on" in values or "force" in values:
            on = True
    return {"args": args, "passthrough": passthrough, "off": off and not passthrough, "on": on}


def sysfs_bdf(bus_id: str) -> str:
    """NVML's "00000000:41:00.0" as sysfs writes it: "0000:41:00.0"."""
    domain, rest = bus_id.lower().split(":", 1)
    return f"{int(domain, 16):04x}:{rest}"


def iommu_state(gpu_bus_ids: list[str]) -> tuple[int | None, str | None]:
    """(number of IOMMU groups, the type of the GPUs' groups) from sysfs; (0, None) when
    there is no IOMMU, None where sysfs does not say."""
    root = Path("/sys/kernel/iommu_groups")
    try:
        groups = len(list(root.iterdir())) if root.exists() else 0
    except OSError:
        return None, None
    types: set[str] = set()
    for bus_id in gpu_bus_ids:
        with contextlib.suppress(OSError, ValueError):
            path = Path(f"/sys/bus/pci/devices/{sysfs_bdf(bus_id)}/iommu_group/type")
            types.add(path.read_text().strip())
    return groups, "/".join(sorted(types)) if types else None


# --- the kernel log -------------------------------------------------------------------------


@dataclass(slots=True)
class KernelLog:
    text: str | None
    source: str | None = None
    why: str | None = None  # when text is None


def _read_kmsg() -> str:
    """The kernel ring buffer through /dev/kmsg, without blocking at its end."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    lines: list[str] = []
    try:
        while True:
            try:
                record = os.read(fd, 16384)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # a record was overwritten while reading
                    continue
                raise
            if not record:
                break
            text = record.decode("utf-8", "replace")
            # "6,1234,5678901,-;message", continuation lines start with a space
            head, _, message = text.partition(";")
            lines.append((message if message else head).rstrip("\n"))
    finally:
        os.close(fd)
    return "\n".join(lines)


def _run(cmd: list[str]) -> tuple[str | None, str]:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=KERNEL_LOG_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{cmd[0]}: {exc}"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = lines[-1] if lines else ""
        return None, f"{cmd[0]}: {reason or f'exit code {proc.returncode}'}"
    return proc.stdout, ""


def read_kernel_log() -> KernelLog:
    """This boot's kernel messages from the first source that can be read."""
    reasons = []
    try:
        return KernelLog(_read_kmsg(), "/dev/kmsg")
    except OSError as exc:
        reasons.append(f"/dev/kmsg: {exc.strerror or exc}")
    if shutil.which("dmesg"):
        text, why = _run(["dmesg"])
        if text is not None:
            return KernelLog(text, "dmesg")
        reasons.append(why)
    else:
        reasons.append("no dmesg")
    if shutil.which("journalctl"):
        text, why = _run(["journalctl", "-k", "-b", "0", "--no-pager", "-q"])
        if text is not None:
            return KernelLog(text, "journalctl -k")
        reasons.append(why)
    return KernelLog(None, why="; ".join(reasons) + " (run as root to read the kernel log)")


def parse_xids(text: str) -> list[XidEvent]:
    """Xid events of a kernel log, in order. A GPU reported "fallen off the bus" without
    an Xid line counts as Xid 79 (unless that GPU also has an Xid 79 line)."""
    events: list[XidEvent] = []
    fallen: list[XidEvent] = []
    recent_gpu: str | None = None  # the GPU a multi-line NVRM message is about
    for raw in text.splitlines():
        line = raw.strip()
        m = _XID_RE.search(line)
        if m:
            events.append(
                XidEvent(code=int(m["code"]), pci=m["pci"].lower(), line=line, time_s=_time(line))
            )
            continue
        addr = _GPU_ADDR_RE.search(line)
        if addr:
            recent_gpu = addr["pci"].lower()
        if _FALLEN in line and "NVRM" in line:
            fallen.append(XidEvent(code=79, pci=recent_gpu, line=line))
        elif "NVRM" not in line:
            recent_gpu = None
    have_79 = {e.pci for e in events if e.code == 79}
    seen: set[str | None] = set()
    for e in fallen:
        if e.pci not in have_79 and e.pci not in seen:
            seen.add(e.pci)
            events.append(e)
    return events


def _time(line: str) -> float | None:
    m = _TIME_RE.match(line)
    return float(m["t"]) if m else None


def _full_bdf(dev: str) -> str:
    """ "41:00.0" (AMD-Vi and DMAR omit the domain) as "0000:41:00.0"."""
    return dev.lower() if dev.count(":") == 2 else f"0000:{dev.lower()}"


def parse_kernel_events(text: str) -> list[KernelEvent]:
    """PCIe AER errors, IOMMU page faults (AMD-Vi, Intel DMAR) and NVRM API-mismatch
    lines of a kernel log, in order. An API mismatch keeps both versions in its line."""
    events: list[KernelEvent] = []
    mismatch: KernelEvent | None = None
    for raw in text.splitlines():
        line = raw.strip()
        t = _time(line)
        if mismatch is not None:
            found = _MODULE_VERSION_RE.search(line + " ")
            if found and "NVRM" in line:
                mismatch.line += " " + line
                mismatch = None
                continue
            mismatch = None
        m = _API_MISMATCH_RE.search(line)
        if m:
            mismatch = KernelEvent(kind="api_mismatch", pci=None, line=line, time_s=t)
            events.append(mismatch)
            continue
        aer = _AER_RECEIVED_RE.search(line) or _AER_BUS_RE.search(line)
        if aer:
            sev, pci = aer["sev"].strip(), aer["pci"].lower()
            last = next((e for e in reversed(events) if e.kind == "aer"), None)
            # one error prints a "received" line and a "PCIe Bus Error" line: count it once
            if not (
                last is not None
                and last.pci == pci
                and last.severity == sev
                and t is not None
                and last.time_s is not None
                and abs(t - last.time_s) < 0.01
            ):
                events.append(KernelEvent(kind="aer", pci=pci, line=line, time_s=t, severity=sev))
            continue
        fault = _AMDVI_RE.search(line)
        if fault:
            dev = fault["dev"]
            if dev is None:
                prefix = _DEV_PREFIX_RE.search(line)
                dev = prefix["pci"] if prefix else None
            events.append(
                KernelEvent(
                    kind="iommu_fault", pci=_full_bdf(dev) if dev else None, line=line, time_s=t
                )
            )
            continue
        dmar = _DMAR_RE.search(line)
        if dmar:
            events.append(
                KernelEvent(kind="iommu_fault", pci=_full_bdf(dmar["dev"]), line=line, time_s=t)
            )
    return events


def api_mismatch_versions(line: str) -> tuple[str | None, str | None]:
    """(user-space client version, kernel module version) of an NVRM API-mismatch line."""
    client = _API_MISMATCH_RE.search(line)
    module = _MODULE_VERSION_RE.search(line + " ")
    return (client["client"] if client else None, module["module"] if module else None)


def _bus_key(address: str) -> tuple[int, str, str] | None:
    """(domain, bus, device) of "0000:41:00", "00000000:41:00.0" or "0000:41:00.0"."""
    parts = address.lower().split(":")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0], 16), parts[1], parts[2].split(".")[0]
    except ValueError:
        return None


def match_gpus(events: list[_E], gpu_bus: dict[int, str]) -> list[_E]:
    """Fill in each event's GPU index from the rig's bus ids (None: not a GPU NVML sees)."""
    by_key = {_bus_key(bus): index for index, bus in gpu_bus.items()}
    for e in events:
        e.gpu = by_key.get(_bus_key(e.pci)) if e.pci else None
    return events
