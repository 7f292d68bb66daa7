"""Platform checks: IOMMU and ACS (the usual cause of P2P hangs on self-built rigs), the
NCCL/CUDA environment, persistence mode, /dev/shm, memlock, CPU governor, NUMA."""

from __future__ import annotations

from rigbench.doctor.context import (
    DoctorInput,
    common_reason,
    gpus_text,
    ok,
    skipped,
    unknown,
    with_gaps,
)
from rigbench.hw.health import iommu_mode
from rigbench.hw.kernel import parse_cmdline_iommu
from rigbench.hw.pci import ACS_P2P_REDIRECT, decode_acs
from rigbench.records import Finding

SHM_MIN_BYTES = 1 << 30
_TRUE = ("1", "true", "yes", "on")


def _pcie_p2p_pairs(d: DoctorInput) -> list[tuple[int, int]]:
    """GPU pairs whose traffic goes over PCIe with the driver offering P2P."""
    return [(p.a, p.b) for p in d.rig.pairs if not p.nvlink_count and p.p2p in ("ok", "unknown")]


def check_iommu(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    mode, words = iommu_mode(host)
    evidence = {
        "mode": mode,
        "how_known": words,
        "cmdline_iommu_args": parse_cmdline_iommu(host.cmdline)["args"] if host.cmdline else None,
    }
    if mode == "unknown":
        why = host.unavailable.get("iommu_groups") or host.unavailable.get("cmdline") or words
        return [skipped("iommu", why)]
    if mode != "translated":
        return [ok("iommu", f"IOMMU {mode}: GPU DMA is not translated", evidence)]
    p2p_pairs = _pcie_p2p_pairs(d)
    warn = bool(p2p_pairs)
    return [
        Finding(
            id="iommu.enabled",
            severity="warning" if warn else "info",
            title="The IOMMU translates GPU DMA (" + words + ")",
            evidence={**evidence, "pcie_p2p_pairs": [f"{a}-{b}" for a, b in p2p_pairs]},
            why=(
                "With the IOMMU translating, GPU-to-GPU traffic over PCIe is sent up to the "
                "root complex (the kernel turns ACS on) and translated there: on many AMD and "
                "Intel boards P2P then hangs or crawls, the classic NCCL hang of self-built "
                "multi-GPU rigs. Minerva's P2P check printed 'IOMMU is enabled'."
                if warn
                else "These GPUs have no PCIe P2P (traffic already goes through host memory), "
                "so translation costs little; it matters once P2P is in play."
            ),
            fix="Boot with iommu=pt (AMD: amd_iommu=on iommu=pt; Intel: intel_iommu=on "
            "iommu=pt): the IOMMU stays for VMs but stops translating host DMA. Add it to "
            "GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, run update-grub, reboot; "
            "/sys/kernel/iommu_groups/*/type then reads identity. Or turn IOMMU (AMD-Vi, "
            "VT-d) off in the BIOS if no VM needs it.",
        )
    ]


def check_acs(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    if len(d.rig.gpus) < 2:
        return [skipped("acs", f"needs at least 2 GPUs ({len(d.rig.gpus)} here)")]
    if host.acs is None:
        return [skipped("acs", unknown(host, "acs"))]
    if not host.acs:
        return [ok("acs", "No PCIe bridge sits between the GPUs")]
    redirecting = [b for b in host.acs if b.control is not None and b.control & ACS_P2P_REDIRECT]
    table = {
        b.bridge: {
            "acs_control": None if b.control is None else f"0x{b.control:04x}",
            "enabled": decode_acs(b.control) if b.control is not None else "no ACS capability",
            "gpus": b.gpus,
            "read_from": b.source,
        }
        for b in host.acs
    }
    if not redirecting:
        return [
            ok("acs", f"No P2P redirect on the {len(host.acs)} bridges between the GPUs", table)
        ]
    cmds = "; ".join(f"setpci -s {b.bridge} ECAP_ACS+0x6.w=0000" for b in redirecting)
    gpus = sorted({g for b in redirecting for g in b.gpus})
    return [
        Finding(
            id="acs.enabled",
            severity="warning",
            title=f"ACS redirects P2P traffic on {len(redirecting)} bridge(s) between "
            f"{gpus_text(gpus)}",
            evidence=table,
            why="PCIe Access Control Services on a bridge send every GPU-to-GPU request up "
            "to the root complex instead of across the bridge: P2P gets slow, and with the "
            "IOMMU translating it often hangs. It is the most common cause of NCCL hangs "
            "and slow P2P on self-built machines.",
            fix="Turn ACS off in the BIOS (often 'ACS Enable' under the chipset/NBIO or "
            f"PCIe settings), or after every boot, as root: {cmds}. If the IOMMU translates, "
            "fix that first (iommu=pt): the kernel turns ACS on for it.",
            gpus=gpus,
        )
    ]


def check_env(d: DoctorInput) -> list[Finding]:
    env = d.health.host.env
    if env is None:
        return [skipped("env", unknown(d.health.host, "env"))]
    n = len(d.rig.gpus)
    found: list[Finding] = []

    def on(name: str) -> bool:
        return env.get(name, "").strip().lower() in _TRUE

    if on("NCCL_P2P_DISABLE"):
        working = [p for p in d.probes.pairs or [] if p.status == "ok"]
        why = (
            "NCCL stages every GPU-to-GPU transfer through host memory: all_reduce crosses "
            "PCIe twice and copies through the CPU. The 3×3090 ex-mining rig write-up set it to "
            "get past a P2P hang "
            "and called the result 'punitively slow'."
        )
        if working:
            why += (
                f" P2P copies work on this rig ({len(working)} pairs probed), so it only "
                "costs speed."
            )
        found.append(
            Finding(
                id="env.nccl_p2p_disable",
                severity="warning" if n > 1 else "info",
                title=f"NCCL_P2P_DISABLE={env['NCCL_P2P_DISABLE']} is set",
                evidence={"NCCL_P2P_DISABLE": env["NCCL_P2P_DISABLE"]},
                why=why,
                fix="Unset it (check ~/.bashrc, /etc/environment, the job script, the "
                "container's ENV) once P2P works; if P2P hangs, fix the cause (see the p2p "
                "check) instead.",
            )
        )
    if on("NCCL_SHM_DISABLE"):
        found.append(
            Finding(
                id="env.nccl_shm_disable",
                severity="warning" if n > 1 else "info",
                title=f"NCCL_SHM_DISABLE={env['NCCL_SHM_DISABLE']} is set",
                evidence={"NCCL_SHM_DISABLE": env["NCCL_SHM_DISABLE"]},
                why="Without shared memory, GPU pairs that have no P2P talk over network "
                "sockets inside the machine: much slower.",
                fix="Unset it; if it was set because of shared-memory errors in a container, "
                "give the container a bigger /dev/shm (--shm-size or --ipc=host) instead.",
            )
        )
    if on("NCCL_IB_DISABLE"):
        found.append(
            Finding(
                id="env.nccl_ib_disable",
                severity="info",
                title=f"NCCL_IB_DISABLE={env['NCCL_IB_DISABLE']} is set",
                evidence={"NCCL_IB_DISABLE": env["NCCL_IB_DISABLE"]},
                why="Harmless on one machine; across machines NCCL then uses TCP sockets "
                "instead of InfiniBand/RoCE.",
                fix="Unset it for multi-node jobs on an RDMA network.",
            )
        )
    if on("CUDA_LAUNCH_BLOCKING"):
        found.append(
            Finding(
                id="env.cuda_launch_blocking",
                severity="warning",
                title="CUDA_LAUNCH_BLOCKING=1 is set",
                evidence={"CUDA_LAUNCH_BLOCKING": env["CUDA_LAUNCH_BLOCKING"]},
                why="Every kernel launch waits for the previous one: a debugging aid that "
                "makes training much slower.",
                fix="Unset it outside debugging sessions.",
            )
        )
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [v.strip() for v in visible.split(",") if v.strip()]
        if not entries:
            found.append(
                Finding(
                    id="env.cuda_visible_devices",
                    severity="warning",
                    title="CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU",
                    evidence={"CUDA_VISIBLE_DEVICES": visible},
                    why="Programs run on the CPU or fail to find a GPU.",
                    fix="Unset it, or list the GPUs to use.",
                )
            )
        else:
            mapping = {f"cuda:{k}": e for k, e in enumerate(entries)}
            reordered = entries != sorted(entries)
            found.append(
                Finding(
                    id="env.cuda_visible_devices",
                    severity="info",
                    title=f"CUDA_VISIBLE_DEVICES={visible}: CUDA sees {len(entries)} of "
                    f"{n} GPU(s)" + (", in a different order" if reordered else ""),
                    evidence={"CUDA_VISIBLE_DEVICES": visible, "cuda_index_to_gpu": mapping},
                    why="CUDA's device numbers then differ from nvidia-smi's (cuda:0 is the "
                    "first listed GPU): logs and monitoring name different GPUs.",
                    fix="Unset it to use every GPU, or keep it and read cuda:N through the "
                    "mapping above.",
                )
            )
    groups = d.same_model_groups()
    if len(groups) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        found.append(
            Finding(
                id="env.cuda_device_order",
                severity="info",
                title="CUDA_DEVICE_ORDER is not PCI_BUS_ID on a rig with mixed GPU models",
                evidence={
                    "CUDA_DEVICE_ORDER": env.get("CUDA_DEVICE_ORDER", "(unset: FASTEST_FIRST)")
                },
                why="CUDA numbers the fastest GPU first, nvidia-smi by PCI bus: cuda:0 may "
                "not be nvidia-smi's GPU 0.",
                fix="export CUDA_DEVICE_ORDER=PCI_BUS_ID",
            )
        )
    if not any(f.severity in ("warning", "error") for f in found):
        found.append(ok("env", "No NCCL or CUDA variable that slows or hides GPUs", dict(env)))
    return found


def check_persistence(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("persistence", "no GPU")]
    off, missing = [], []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        if h.persistence_mode is None:
            missing.append((g.index, unknown(h, "persistence_mode")))
        elif not h.persistence_mode:
            off.append(g.index)
    if off:
        return [
            Finding(
                id="persistence.off",
                severity="warning",
                title=f"Persistence mode is off on {gpus_text(off)}",
                evidence={"off": off},
                why="Without it the driver tears the GPU state down whenever no process "
                "uses the GPU: every start pays the initialisation again (seconds on a "
                "multi-GPU machine) and settings such as application clocks are lost.",
                fix="sudo systemctl enable --now nvidia-persistenced (NVIDIA's way), or "
                "sudo nvidia-smi -pm 1 (lost at reboot).",
                gpus=off,
            )
        ]
    if len(missing) == len(d.rig.gpus):
        return [skipped("persistence", common_reason(missing))]
    return [with_gaps(ok("persistence", "Persistence mode is on"), missing)]


def check_shm(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    size = host.dev_shm_bytes
    if size is None:
        return [skipped("shm", unknown(host, "dev_shm_bytes"))]
    mib = size / 2**20
    if size < SHM_MIN_BYTES:
        return [
            Finding(
                id="shm.small",
                severity="warning",
                title=f"/dev/shm is only {mib:.0f} MiB",
                evidence={"dev_shm_bytes": size},
                why="NCCL's shared-memory transport and DataLoader workers live in /dev/shm; "
                "a container's default 64 MiB makes NCCL fail ('unhandled system error', "
                "bus errors) and DataLoader workers crash.",
                fix="Start the container with --ipc=host or --shm-size=16g (Kubernetes: an "
                "emptyDir volume with medium: Memory at /dev/shm).",
            )
        ]
    return [ok("shm", f"/dev/shm holds {mib / 1024:.1f} GiB", {"dev_shm_bytes": size})]


def check_memlock(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    limit = host.memlock_bytes
    if limit is None:
        return [skipped("memlock", unknown(host, "memlock_bytes"))]
    if limit < 0:
        return [ok("memlock", "Locked-memory limit is unlimited")]
    return [
        Finding(
            id="memlock.limited",
            severity="info",
            title=f"Locked memory is limited to {limit / 2**20:g} MiB (ulimit -l)",
            evidence={"memlock_bytes": limit},
            why="Fine on one machine (CUDA pins memory through its driver, not this limit); "
            "RDMA for multi-node NCCL (InfiniBand, RoCE, GPUDirect) needs it unlimited.",
            fix="For multi-node jobs: ulimit -l unlimited (limits.conf memlock, or docker "
            "--ulimit memlock=-1).",
        )
    ]


def check_governor(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    governors = host.cpu_governors
    if not governors:
        return [skipped("governor", unknown(host, "cpu_governors"))]
    driver = host.cpu_scaling_driver or ""
    pstate = "pstate" in driver
    slow = {
        g: n for g, n in governors.items() if g == "userspace" or (g == "powersave" and not pstate)
    }
    evidence = {"governors": governors, "driver": driver or None}
    if slow:
        return [
            Finding(
                id="governor.slow",
                severity="warning",
                title="CPU frequency governor "
                + ", ".join(f"{g} ({n} CPUs)" for g, n in slow.items())
                + (f" with {driver}" if driver else ""),
                evidence=evidence,
                why="These hold the CPUs at a low clock: data loading, tokenisation and "
                "the Python side of every training step slow down.",
                fix="sudo cpupower frequency-set -g performance (or schedutil); make it "
                "stick with your distribution's tool (cpufrequtils, tuned, a systemd unit).",
            )
        ]
    if "conservative" in governors:
        return [
            Finding(
                id="governor.conservative",
                severity="info",
                title="CPU frequency governor conservative",
                evidence=evidence,
                why="It raises the clock slowly after bursts of work.",
                fix="schedutil or performance react faster.",
            )
        ]
    return [ok("governor", "CPU frequency governor: " + ", ".join(governors), evidence)]


def check_numa(d: DoctorInput) -> list[Finding]:
    host, rig = d.health.host, d.rig
    nodes = host.numa_nodes
    if nodes is None:
        if (rig.system.cpu_sockets or 1) <= 1:
            return [ok("numa", "One CPU socket: no NUMA placement to get wrong")]
        return [skipped("numa", unknown(host, "numa_nodes"))]
    if nodes <= 1:
        return [ok("numa", "One NUMA node: no placement to get wrong")]
    if not rig.gpus:
        return [ok("numa", f"{nodes} NUMA nodes, no GPU")]
    by_node: dict[str, list[int]] = {}
    for g in rig.gpus:
        key = str(g.numa_node) if g.numa_node is not None else "unknown"
        by_node.setdefault(key, []).append(g.index)
    if set(by_node) == {"unknown"}:
        return [
            skipped(
                "numa",
                f"{nodes} NUMA nodes, but the GPUs' node is not known (the firmware gives none)",
            )
        ]
    return [
        Finding(
            id="numa.split",
            severity="info",
            title=f"{nodes} NUMA nodes: "
            + "; ".join(f"node {n}: {gpus_text(ids)}" for n, ids in sorted(by_node.items())),
            evidence={"gpus_by_node": by_node},
            why="A process whose CPU threads and memory sit on the other node reaches its "
            "GPU across the inter-socket link: slower host copies and data loading.",
            fix="Bind each rank to its GPU's node (numactl --cpunodebind=N --membind=N, or "
            "your launcher's NUMA binding option).",
            gpus=[g.index for g in rig.gpus],
        )
    ]
