"""What links the rig to other machines and its GPUs to each other beyond PCIe: network
ports (Ethernet, InfiniBand/RoCE) and their rates, NVSwitch's fabric manager, and the
driver pieces that must match (kernel module vs user space, CUDA's init error)."""

from __future__ import annotations

import statistics

from rigbench.doctor.context import DoctorInput, ok, skipped, unknown
from rigbench.records import Finding

FM_GUIDE = "https://docs.nvidia.com/datacenter/tesla/fabric-manager-user-guide/index.html"
CUDA_ERRORS = "https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__TYPES.html"
IB_DIAG = (
    "NCCL networking troubleshooting, NIC-level diagnostics (ibstat: ports up, expected link "
    "rate), https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/troubleshooting/"
    "networking_troubleshooting.html"
)
_UP = ("up", "active", "4: active")


def check_network(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    ports = host.net_ports
    if ports is None:
        return [skipped("network", unknown(host, "net_ports"))]
    rdma = [p for p in ports if p.kind in ("infiniband", "roce")]
    table = {p.name: {"kind": p.kind, "state": p.state, "rate_gbps": p.rate_gbps} for p in ports}
    found: list[Finding] = []
    down = [p for p in rdma if p.state is not None and p.state.lower() not in _UP]
    if down:
        # a dual-port card with one port cabled is normal: warn only when none is up
        all_down = len(down) == len(rdma)
        found.append(
            Finding(
                id="network.rdma_port_down",
                severity="warning" if all_down else "info",
                title="InfiniBand/RoCE port(s) not active: "
                + ", ".join(f"{p.name} ({p.state})" for p in down),
                evidence=table,
                why="NCCL uses only active ports; a down port takes its share of multi-node "
                "bandwidth with it (or all of it on a one-port node).",
                fix="Check the cable and the switch port (ibstat; ibstatus); an INIT state "
                "means no subnet manager answered (start opensm or check the fabric's).",
                source=IB_DIAG,
                origin="reading",
            )
        )
    rates = [p.rate_gbps for p in rdma if p.rate_gbps and p not in down]
    for p in rdma:
        if p in down or not p.rate_gbps:
            continue
        best = p.max_rate_gbps
        others = [
            r
            for q in rdma
            if q is not p and q.kind == p.kind and q not in down and (r := q.rate_gbps)
        ]
        peer = statistics.median(others) if len(others) >= 2 else None
        if (best and p.rate_gbps < best) or (peer and p.rate_gbps < peer / 2):
            ref = best or peer
            found.append(
                Finding(
                    id="network.rdma_port_slow",
                    severity="warning",
                    title=f"{p.name} trained to {p.rate_gbps:g} Gb/s"
                    + (
                        f"; the port can do {best:g} Gb/s"
                        if best
                        else f"; its sibling ports run at {peer:g} Gb/s"
                    ),
                    evidence={"rate_gbps": p.rate_gbps, "reference_gbps": ref, "ports": table},
                    why="A port that trains below its rate (a damaged or wrong cable, a "
                    "switch port set lower) slows every multi-node collective that uses it.",
                    fix="Reseat or replace the cable (an HDR port needs an HDR cable), check "
                    "the switch port's speed setting; ibstat shows the rate after the fix.",
                    source=IB_DIAG,
                    origin="reading",
                )
            )
    if any(f.severity in ("warning", "error") for f in found):
        return found
    if not rdma:
        eth = [p for p in ports if p.kind == "ethernet"]
        return [
            ok(
                "network",
                f"{len(eth)} Ethernet port(s), no InfiniBand/RoCE: multi-node NCCL would use "
                "TCP sockets",
                table,
            )
        ]
    return found + [
        ok(
            "network",
            f"{len(rdma) - len(down)} InfiniBand/RoCE port(s) active"
            + (f" at {', '.join(f'{r:g}' for r in sorted(set(rates)))} Gb/s" if rates else ""),
            table,
        )
    ]


def check_fabric_manager(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    nvswitch = any(p.via_nvswitch for p in d.rig.pairs)
    if not nvswitch:
        return [ok("fabricmanager", "No NVSwitch on this rig: no fabric manager needed")]
    state = host.fabric_manager
    if state is None:
        return [skipped("fabricmanager", unknown(host, "fabric_manager"))]
    if state == "running":
        return [ok("fabricmanager", "nvidia-fabricmanager is running (NVSwitch rig)")]
    return [
        Finding(
            id="fabricmanager.not_running",
            severity="error",
            title=f"nvidia-fabricmanager is {state} on an NVSwitch rig",
            evidence={"fabric_manager": state, "cuda_init_error": host.cuda_init_error},
            why="On NVSwitch systems the fabric manager sets up the NVLink fabric; without "
            "it CUDA fails to start (error 802, 'system not yet initialized') or the GPUs "
            "cannot reach each other over NVLink.",
            fix="Install the nvidia-fabricmanager package of exactly the driver's version "
            f"({d.rig.system.driver_version or 'see nvidia-smi'}), then sudo systemctl enable "
            "--now nvidia-fabricmanager; journalctl -u nvidia-fabricmanager says why it "
            "stopped.",
            source=f"NVIDIA Fabric Manager user guide ({FM_GUIDE})",
            origin="reading",
        )
    ]


def _version_key(v: str | None) -> str | None:
    return v.strip() if v else None


def check_driver(d: DoctorInput) -> list[Finding]:
    host, system = d.health.host, d.rig.system
    found: list[Finding] = []
    module, user = _version_key(host.kernel_module_version), _version_key(system.driver_version)
    if module and user and module != user:
        found.append(
            Finding(
                id="driver.version_mismatch",
                severity="error",
                title=f"NVIDIA kernel module {module}, user-space driver {user}",
                evidence={"kernel_module": module, "user_space": user},
                why="After a driver update without a reboot the old module stays loaded: "
                "NVML and CUDA refuse to start ('Driver/library version mismatch').",
                fix="Reboot. Without a reboot: stop what uses the GPUs (nvidia-persistenced, "
                "the display manager), sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset "
                "nvidia, sudo modprobe nvidia. Reinstalling the driver does not help.",
                source="NVIDIA driver README (kernel module and user-space components must "
                "be the same version); /proc/driver/nvidia/version against NVML",
                origin="reading",
            )
        )
    err = host.cuda_init_error
    if err:
        nvswitch = any(p.via_nvswitch for p in d.rig.pairs)
        found.append(
            Finding(
                id=f"driver.cuda_init_{err}",
                severity="error",
                title=f"CUDA fails to initialise: error {err}"
                + (" (system not yet initialized)" if err == 802 else ""),
                evidence={"cuda_init_error": err, "fabric_manager": host.fabric_manager},
                why="No CUDA program can use the GPUs."
                + (
                    " Error 802 (CUDA_ERROR_SYSTEM_NOT_READY) means a required driver daemon "
                    "is not running: on NVSwitch systems, the fabric manager."
                    if err == 802
                    else ""
                ),
                fix=(
                    "Start nvidia-fabricmanager (the package matching the driver version): "
                    "sudo systemctl enable --now nvidia-fabricmanager."
                    if err == 802 and nvswitch
                    else "Look the code up in CUDA's error list; check the kernel log (NVRM "
                    "lines) and that the driver's daemons run."
                ),
                source=f"CUDA driver API error codes ({CUDA_ERRORS}); Fabric Manager user "
                f"guide ({FM_GUIDE})",
                origin="reading",
            )
        )
    if found:
        return found
    if module is None and host.cuda_init_error is None:
        return [skipped("driver", unknown(host, "kernel_module_version"))]
    return [
        ok(
            "driver",
            "Kernel module and user-space driver match" if module else "CUDA initialises",
            {"kernel_module": module, "user_space": user},
        )
    ]
