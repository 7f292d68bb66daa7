"""Inventory checks: GPUs the driver sees against those on the PCI bus, mixed models,
and whether driver, CUDA and torch fit together."""

from __future__ import annotations

from rigbench.doctor.context import DoctorInput, gpus_text, ok, skipped
from rigbench.records import Finding

LOST_GPU_FIX = (
    "Reboot to get the GPU back, then find why it fell off. Power first: the 4×V100 SXM2 server "
    "write-up's V100s "
    "dropped off the bus when fast load swings sagged the 12 V supply to about 11.4 V; a "
    "lower power limit (nvidia-smi -pl) did not stop it, enough PSU capacity and sound "
    "connectors did (meanwhile, locking clocks with nvidia-smi -lgc, or -ac on V100, tames "
    "the swings). Then seating: reseat the card and its riser; on SXM2 boards tighten the "
    "module screws evenly to their torque. Then temperature. The kernel log's Xid 79 lines "
    "say when it happened."
)


def _key(bus_id: str) -> str:
    domain, rest = bus_id.lower().split(":", 1)
    return f"{int(domain, 16):08x}:{rest}"


def same_device(bus_id: str, pci: str) -> bool:
    """Whether NVML's "00000000:04:00.0" and the kernel log's "0000:04:00" name one device."""
    a, b = bus_id.lower().split(":"), pci.lower().split(":")
    try:
        return (
            len(a) == len(b) == 3
            and int(a[0], 16) == int(b[0], 16)
            and a[1] == b[1]
            and a[2].split(".")[0] == b[2].split(".")[0]
        )
    except ValueError:
        return False


def check_inventory(d: DoctorInput) -> list[Finding]:
    rig, host = d.rig, d.health.host
    found: list[Finding] = []
    pci = host.pci_gpus
    if not rig.gpus:
        nvml_error = rig.system.unavailable.get("driver_version") or ""
        mismatch = "mismatch" in nvml_error.lower() or any(
            e.kind == "api_mismatch" for e in host.kernel_events or []
        )
        if pci and mismatch:
            return [
                Finding(
                    id="inventory.driver_not_loaded",
                    severity="error",
                    title=f"{_count(len(pci))} on the PCI bus, but NVML does not start: the "
                    "kernel module and the driver libraries are different versions",
                    evidence={
                        "on_pci": pci,
                        "nvml": nvml_error or None,
                        "kernel_module": host.kernel_module_version,
                    },
                    why="A driver update replaced the user-space libraries while the old "
                    "kernel module stayed loaded ('Driver/library version mismatch'): nothing "
                    "can use the GPUs until the two match again.",
                    fix="Reboot (the new module loads). Without a reboot: stop what uses the "
                    "GPUs (nvidia-persistenced, the display manager), sudo rmmod nvidia_uvm "
                    "nvidia_drm nvidia_modeset nvidia, then sudo modprobe nvidia. Do not "
                    "reinstall the driver: it is installed, only not loaded. To stop it "
                    "recurring, hold the driver packages out of unattended upgrades.",
                    source="NVRM 'API mismatch' kernel message; NVIDIA driver README (kernel "
                    "module and user-space components must be the same version)",
                    origin="reading",
                )
            ]
        if pci:
            return [
                Finding(
                    id="inventory.driver_not_loaded",
                    severity="error",
                    title=f"{_count(len(pci))} on the PCI bus, but the NVIDIA driver (NVML) "
                    "does not load",
                    evidence={"on_pci": pci, "nvml": rig.system.unavailable.get("driver_version")},
                    why="Nothing can use the GPUs until the NVIDIA kernel module is loaded.",
                    fix="Install the NVIDIA driver (or load it: sudo modprobe nvidia) and check "
                    "that nvidia-smi lists the GPUs; with Secure Boot on, the module must be "
                    "signed; the kernel log (NVRM lines) says why it did not load.",
                )
            ]
        evidence = {"on_pci": pci} if pci is not None else {}
        return [
            Finding(
                id="inventory.no_gpu",
                severity="info",
                title="No NVIDIA GPU on this machine: rigbench runs its CPU stand-ins",
                evidence=evidence,
            )
        ]
    nvml_ids = {_key(g.bus_id) for g in rig.gpus if g.bus_id}
    if pci is None:
        found.append(skipped("inventory", f"GPUs on the PCI bus not listed: {_why(d)}"))
    elif not pci:
        found.append(
            skipped(
                "inventory",
                f"the PCI bus shows no NVIDIA device although the driver sees {len(rig.gpus)} "
                "(a VM or container that hides PCI): cannot compare",
            )
        )
    else:
        drivers = host.pci_gpu_drivers or {}
        absent = sorted(b for b in pci if _key(b) not in nvml_ids)
        elsewhere = {b: drivers[b] for b in absent if drivers.get(b) not in (None, "", "nvidia")}
        missing = [b for b in absent if b not in elsewhere]
        if elsewhere:
            found.append(
                Finding(
                    id="inventory.gpu_other_driver",
                    severity="info",
                    title=f"{_count(len(elsewhere))} on the PCI bus bound to another driver: "
                    + ", ".join(f"{b} ({drv})" for b, drv in elsewhere.items()),
                    evidence={"drivers": elsewhere},
                    why="A GPU bound to vfio-pci is passed through to a virtual machine, and "
                    "one bound to nouveau is not usable for CUDA: neither is lost, but "
                    "rigbench and CUDA here will not use it.",
                    fix="Nothing if on purpose; else bind it to the nvidia driver (remove it "
                    "from vfio-pci.ids, blacklist nouveau) and reboot.",
                )
            )
        if missing:
            lines = [
                x.line
                for x in host.xids or []
                if x.code == 79 and x.pci and any(same_device(m, x.pci) for m in missing)
            ]
            found.append(
                Finding(
                    id="inventory.gpu_missing",
                    severity="error",
                    title=f"{_count(len(missing))} on the PCI bus not seen by the driver: "
                    + ", ".join(missing),
                    evidence={
                        "on_pci": len(pci),
                        "seen_by_driver": len(rig.gpus),
                        "missing": missing,
                        "bound_driver": {b: drivers.get(b) or "none" for b in missing},
                        "xid_79": lines[-3:],
                    },
                    why="A GPU the PCI bus still lists but NVML lost has fallen off the bus "
                    "(Xid 79): jobs on it died, and it stays gone until a reboot.",
                    fix=LOST_GPU_FIX,
                )
            )
    groups = d.same_model_groups()
    if len(groups) > 1:
        ccs = {g.compute_capability for g in rig.gpus if g.compute_capability}
        mems = {g.memory_total_bytes for g in rig.gpus if g.memory_total_bytes}
        mixed_arch = len(ccs) > 1
        why = "Data-parallel training runs every step at the pace of the slowest GPU"
        if len(mems) > 1:
            why += ", and the smallest memory bounds the batch every GPU can take"
        why += "."
        if mixed_arch:
            why += (
                " Different architectures also differ in features (bf16, tensor-core "
                "generations): a job has to use what the oldest supports."
            )
        found.append(
            Finding(
                id="inventory.mixed_models",
                severity="warning" if mixed_arch else "info",
                title="Mixed GPU models: "
                + "; ".join(
                    f"{name} ({gpus_text(g.index for g in gs)})" for name, gs in groups.items()
                ),
                evidence={
                    name: {
                        "gpus": [g.index for g in gs],
                        "compute_capability": gs[0].compute_capability,
                        "memory_bytes": gs[0].memory_total_bytes,
                    }
                    for name, gs in groups.items()
                },
                why=why,
                fix="Balance the work by speed (or use the GPUs for separate jobs); set "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA numbers the GPUs as nvidia-smi does.",
                gpus=[g.index for g in rig.gpus],
            )
        )
    if not any(f.severity in ("error", "warning") for f in found):
        where = ", as on the PCI bus" if pci else ""
        found.append(
            ok(
                "inventory",
                f"{_count(len(rig.gpus))} seen by the driver{where}",
                {"gpus": [f"{g.index}: {g.name} ({g.bus_id})" for g in rig.gpus]},
            )
        )
    return found


def _count(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _why(d: DoctorInput) -> str:
    return d.health.host.unavailable.get("pci_gpus", "not read")


def _major_minor(v: str | None) -> tuple[int, int] | None:
    if not v:
        return None
    parts = v.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def check_versions(d: DoctorInput) -> list[Finding]:
    s = d.rig.system
    evidence = {
        "driver": s.driver_version,
        "driver_cuda": s.cuda_driver_version,
        "torch": s.torch_version,
        "torch_cuda": s.torch_cuda_version,
        "nccl": s.nccl_version,
    }
    if not d.rig.gpus:
        return [skipped("versions", "no GPU, so no driver to match", evidence)]
    if s.torch_version is None:
        if "torch_version" in s.unavailable and not d.simulated:
            return [
                Finding(
                    id="versions.no_torch",
                    severity="info",
                    title="torch is not installed: the P2P and all_reduce probes cannot run",
                    evidence=evidence,
                    fix="Install the CUDA build of torch that matches the driver "
                    "(pytorch.org lists the index URL per CUDA version).",
                )
            ]
        return [skipped("versions", "torch's version is not known (not in the rig file)", evidence)]
    torch_cuda, driver_cuda = (
        _major_minor(s.torch_cuda_version),
        _major_minor(s.cuda_driver_version),
    )
    if torch_cuda is None and d.rig.source == "nvml":
        return [
            Finding(
                id="versions.torch_cpu_build",
                severity="error",
                title=f"torch {s.torch_version} is a CPU-only build on a machine with GPUs",
                evidence=evidence,
                why="Training with this torch never touches a GPU.",
                fix="pip install the CUDA build of torch for this driver (pytorch.org: the "
                "index URL for a CUDA version the driver supports, e.g. .../whl/cu121).",
            )
        ]
    if torch_cuda is None or driver_cuda is None:
        what = "torch's CUDA" if torch_cuda is None else "the driver's CUDA version"
        return [skipped("versions", f"{what} is not known", evidence)]
    if torch_cuda[0] > driver_cuda[0]:
        return [
            Finding(
                id="versions.torch_cuda_too_new",
                severity="error",
                title=f"torch is built for CUDA {s.torch_cuda_version}, the driver "
                f"{s.driver_version} supports CUDA {s.cuda_driver_version}",
                evidence=evidence,
                why="A CUDA runtime of a newer major version than the driver's does not run: "
                "torch.cuda.is_available() is False.",
                fix=f"Install a torch built for CUDA {driver_cuda[0]}.x, or a driver that "
                f"supports CUDA {torch_cuda[0]}.",
            )
        ]
    if torch_cuda > driver_cuda:
        return [
            Finding(
                id="versions.cuda_minor_compat",
                severity="info",
                title=f"torch's CUDA {s.torch_cuda_version} is newer than the driver's "
                f"{s.cuda_driver_version}: it runs through CUDA minor-version compatibility",
                evidence=evidence,
                why="Most of torch works; code that JIT-compiles PTX for the newer CUDA can "
                "fail with 'the provided PTX was compiled with an unsupported toolchain'.",
                fix="A driver that supports the torch build's CUDA version avoids it.",
            )
        ]
    return [ok("versions", "Driver, CUDA and torch fit together", evidence)]
