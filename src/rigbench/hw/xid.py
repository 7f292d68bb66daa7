"""What NVIDIA Xid error codes mean, and how bad they are.

Source: NVIDIA's "XID Errors" catalogue (docs.nvidia.com/deploy/xid-errors) and its GPU
debug guidelines; wording is ours. Unknown codes are reported as unknown, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class XidInfo:
    code: int
    meaning: str
    severity: Severity
    action: str


_TABLE: dict[int, tuple[str, Severity, str]] = {
    13: (
        "graphics engine exception (often an application fault: illegal memory access)",
        "warning",
        "check the application first; recurring across programs points at hardware",
    ),
    31: (
        "GPU memory page fault (usually an application bug)",
        "warning",
        "check the application; if it recurs across programs, test the GPU",
    ),
    32: (
        "invalid or corrupted push buffer stream (PCIe / DMA problem)",
        "error",
        "check the PCIe link, riser and power",
    ),
    43: (
        "GPU stopped processing (a user application faulted)",
        "warning",
        "usually the application; recurring with different programs means hardware",
    ),
    45: (
        "preemptive cleanup after a previous error (follows another Xid)",
        "info",
        "look at the Xid before it",
    ),
    48: (
        "double-bit ECC error (uncorrectable memory error)",
        "error",
        "drain the GPU and reset it; if it recurs the GPU needs service",
    ),
    61: (
        "internal micro-controller breakpoint/warning",
        "error",
        "reset the GPU; update the driver; report if it recurs",
    ),
    62: (
        "internal micro-controller halt",
        "error",
        "reset the GPU; update the driver; report if it recurs",
    ),
    63: (
        "ECC page retirement or row remapping recorded",
        "warning",
        "the GPU retired or remapped memory; watch the counts, reset to apply",
    ),
    64: (
        "ECC page retirement or row remapping failed",
        "error",
        "the GPU could not retire bad memory: it needs service",
    ),
    68: ("video processor exception", "warning", "update the driver; check the application"),
    74: (
        "NVLink error",
        "error",
        "reseat the GPU or bridge (SXM: check the socket screws' torque); check NVLink state",
    ),
    79: (
        "GPU has fallen off the bus",
        "error",
        "check power (transients, PSU, cables), the riser or slot, and temperature; reseat the GPU",
    ),
    92: (
        "high single-bit ECC error rate",
        "warning",
        "watch the ECC counts; plan a replacement if they keep rising",
    ),
    94: (
        "contained ECC error (the affected application was stopped)",
        "warning",
        "restart the application; reset the GPU when convenient",
    ),
    95: ("uncontained ECC error", "error", "reset the GPU; all applications on it are affected"),
    109: ("context switch timeout", "warning", "check for hung applications; update the driver"),
    119: (
        "GSP RPC timeout (the GPU System Processor did not answer)",
        "error",
        "update the driver; reset the GPU; if it recurs, try NVreg_EnableGpuFirmware=0",
    ),
    120: ("GSP error", "error", "update the driver; reset the GPU"),
    140: ("unrecovered ECC error", "error", "reset the GPU; if it recurs it needs service"),
    # R550+ drivers: the line ends "... to 0x1 (GPU Reset Required)" (or Node Reboot
    # Required, Drain P2P, Drain and Reset); NVML's nvmlDeviceGpuRecoveryAction_t and
    # docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/error-recovery-and-response-flags.html
    154: (
        "GPU recovery action changed (the driver says what the GPU needs to work again)",
        "error",
        "do what the line's recovery action says: GPU Reset Required: stop the GPU's "
        "processes, then sudo nvidia-smi -r -i <gpu>; Node Reboot Required: reboot; Drain P2P: "
        "stop the jobs that use P2P/NVLink with this GPU, then reset it",
    ),
}


def xid_info(code: int) -> XidInfo:
    if code in _TABLE:
        meaning, severity, action = _TABLE[code]
        return XidInfo(code, meaning, severity, action)
    return XidInfo(
        code,
        "unknown to rigbench: look it up in NVIDIA's Xid catalogue",
        "warning",
        "see NVIDIA's Xid catalogue",
    )
