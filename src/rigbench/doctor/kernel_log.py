"""Kernel-log lines besides Xid: PCIe AER errors, IOMMU page faults (AMD-Vi / Intel DMAR
IO_PAGE_FAULT, the signature of the 3×3090 rig write-up's P2P hang) and NVRM API-mismatch lines."""

from __future__ import annotations

from rigbench.doctor.context import DoctorInput, gpus_text, ok, skipped, unknown
from rigbench.hw.health import iommu_mode
from rigbench.hw.kernel import api_mismatch_versions
from rigbench.hw.model import KernelEvent
from rigbench.records import Finding, Severity

AER_WARN = 10  # corrected errors below this since boot are noise on most links
KERNEL_PARAMS_URL = "https://docs.kernel.org/admin-guide/kernel-parameters.html"
AER_URL = "https://docs.kernel.org/PCI/pcieaer-howto.html"


def _where(events: list[KernelEvent]) -> str:
    gpus = sorted({e.gpu for e in events if e.gpu is not None})
    other = sorted({e.pci for e in events if e.gpu is None and e.pci})
    parts = []
    if gpus:
        parts.append(gpus_text(gpus))
    if other:
        parts.append("PCI " + ", ".join(other[:4]) + (" ..." if len(other) > 4 else ""))
    return " and ".join(parts) or "an unnamed device"


def check_kernel_log(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    events = host.kernel_events
    if events is None:
        return [skipped("kernel", unknown(host, "kernel_events"))]
    found: list[Finding] = []
    faults = [e for e in events if e.kind == "iommu_fault"]
    if faults:
        mode, words = iommu_mode(host)
        on_gpus = [e for e in faults if e.gpu is not None]
        found.append(
            Finding(
                id="kernel.iommu_page_fault",
                severity="error" if on_gpus else "info",
                title=f"IOMMU page faults (IO_PAGE_FAULT) x{len(faults)} on {_where(faults)}",
                evidence={
                    "count": len(faults),
                    "iommu": f"{mode}: {words}",
                    "last_lines": [e.line for e in faults[-3:]],
                },
                why="The IOMMU refused a device's DMA: when the device is a GPU this is what "
                "GPU-to-GPU (P2P) traffic looks like while the IOMMU translates it, and NCCL "
                "or DDP then hangs at the first collective (the 3×3090 rig write-up's hang; the"
                " fix in "
                "pytorch/pytorch#52142).",
                fix="Boot with iommu=pt (AMD: amd_iommu=on iommu=pt; Intel: intel_iommu=on "
                "iommu=pt) in GRUB_CMDLINE_LINUX_DEFAULT, update-grub, reboot; or turn IOMMU "
                "(AMD-Vi / VT-d) off in the BIOS if no VM needs it. Then check ACS (acs check).",
                source="https://github.com/pytorch/pytorch/issues/52142; the 3×3090 rig write-up; "
                f"iommu= in the kernel parameters ({KERNEL_PARAMS_URL})",
                origin="reading",
                gpus=sorted({e.gpu for e in on_gpus if e.gpu is not None}),
            )
        )
    aer = [e for e in events if e.kind == "aer"]
    if aer:
        # Servers log corrected errors for NICs and disks too: only a GPU's errors warn.
        on_gpu = [e for e in aer if e.gpu is not None]
        fatal = [e for e in on_gpu if e.severity and not e.severity.startswith("Corrected")]
        severity: Severity = "error" if fatal else ("warning" if len(aer) >= AER_WARN else "info")
        found.append(
            Finding(
                id="kernel.pcie_aer",
                severity=severity,
                title=f"PCIe AER errors x{len(aer)} on {_where(aer)}"
                + (f", {len(fatal)} uncorrected" if fatal else " (corrected)"),
                evidence={
                    "count": len(aer),
                    "uncorrected": len(fatal),
                    "last_lines": [e.line for e in aer[-3:]],
                },
                why="Advanced Error Reporting logs link errors: corrected ones are "
                "retransmissions (a few are normal, many mean a marginal riser or slot); "
                "uncorrected ones lose data and precede a GPU falling off the bus (Xid 79).",
                fix="Reseat or replace the riser and the card, clean the slot; if errors "
                "continue, set that slot one PCIe generation lower in the BIOS.",
                source=f"Linux PCIe AER howto ({AER_URL})",
                origin="reading",
                gpus=sorted({e.gpu for e in aer if e.gpu is not None}),
            )
        )
    mismatch = [e for e in events if e.kind == "api_mismatch"]
    if mismatch:
        client, module = api_mismatch_versions(mismatch[-1].line)
        found.append(
            Finding(
                id="kernel.driver_api_mismatch",
                severity="error",
                title="The NVIDIA kernel module and the user-space driver differ"
                + (f" (module {module}, user space {client})" if client and module else ""),
                evidence={
                    "kernel_module": module,
                    "user_space": client,
                    "last_line": mismatch[-1].line,
                },
                why="A driver update replaced the user-space libraries while the old kernel "
                "module stayed loaded: nvidia-smi says 'Failed to initialize NVML: "
                "Driver/library version mismatch' and CUDA cannot start.",
                fix="Reboot (the new module loads). Without a reboot: stop everything using "
                "the GPUs (nvidia-persistenced, display manager) and reload the modules "
                "(sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia; sudo modprobe "
                "nvidia). Do not reinstall the driver: it is already installed.",
                source="NVRM 'API mismatch' kernel message; NVIDIA driver README, "
                "'Installing the driver' (the kernel module and user-space components must "
                "be the same version)",
                origin="reading",
            )
        )
    if not found:
        found.append(
            ok(
                "kernel",
                "No PCIe AER error, IOMMU page fault or driver mismatch in the kernel log",
                {"log": host.kernel_log_source},
            )
        )
    return found
