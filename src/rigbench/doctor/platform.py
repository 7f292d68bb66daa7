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


NCCL_ENV_URL = "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html"
CUDA_ENV_URL = "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#env-vars"


def has_rdma(d: DoctorInput) -> bool:
    """Whether the host has an active InfiniBand or RoCE port."""
    return any(
        p.kind in ("infiniband", "roce")
        and (p.state or "").lower() in ("active", "up", "4: active")
        for p in d.health.host.net_ports or []
    )


def _socket_ifname_matches(spec: str, names: list[str]) -> list[str]:
    """The entries of NCCL_SOCKET_IFNAME that match no interface. NCCL: a comma list of
    prefixes; '^' excludes, '=' asks for the exact name (NCCL environment docs)."""
    value = spec.strip()
    if value.startswith("^"):
        return []  # an exclusion list cannot name a missing interface that matters
    exact = value.startswith("=")
    entries = [e.strip() for e in value.lstrip("=").split(",") if e.strip()]
    return [e for e in entries if not any((n == e) if exact else n.startswith(e) for n in names)]


def _visible_devices_problems(visible: str, d: DoctorInput) -> tuple[list[str], int]:
    """(entries that match no GPU, how many GPUs CUDA sees). CUDA stops at the first
    entry that matches nothing: only the devices listed before it are visible."""
    uuids = [g.uuid or "" for g in d.rig.gpus]
    n = len(d.rig.gpus)
    bad: list[str] = []
    seen = 0
    for e in (v.strip() for v in visible.split(",") if v.strip()):
        if e.isdigit():
            ok_entry = int(e) < n
        elif e.upper().startswith("GPU-") or e.upper().startswith("MIG-"):
            ok_entry = any(u.lower().startswith(e.lower()) for u in uuids) or e.upper().startswith(
                "MIG-"
            )
        else:
            ok_entry = False
        if not ok_entry:
            bad.append(e)
        elif not bad:
            seen += 1
    return bad, seen


def check_env(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    if host.env is None:
        return [skipped("env", unknown(host, "env"))]
    # NCCL reads /etc/nccl.conf (or ~/.nccl.conf); the environment overrides it
    conf = {k: v for k, v in (host.nccl_conf or {}).items() if k.startswith("NCCL_")}
    env = {**conf, **host.env}
    where = {k: host.nccl_conf_path or "nccl.conf" for k in conf if k not in host.env}

    def set_in(name: str) -> str:
        return f" (in {where[name]})" if name in where else ""

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
                title=f"NCCL_P2P_DISABLE={env['NCCL_P2P_DISABLE']} is set"
                + set_in("NCCL_P2P_DISABLE"),
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
                title=f"NCCL_SHM_DISABLE={env['NCCL_SHM_DISABLE']} is set"
                + set_in("NCCL_SHM_DISABLE"),
                evidence={"NCCL_SHM_DISABLE": env["NCCL_SHM_DISABLE"]},
                why="Without shared memory, GPU pairs that have no P2P talk over network "
                "sockets inside the machine: much slower.",
                fix="Unset it; if it was set because of shared-memory errors in a container, "
                "give the container a bigger /dev/shm (--shm-size or --ipc=host) instead.",
            )
        )
    if on("NCCL_IB_DISABLE"):
        rdma = [
            p.name
            for p in host.net_ports or []
            if p.kind in ("infiniband", "roce") and (p.state or "").lower() in ("active", "up")
        ]
        found.append(
            Finding(
                id="env.nccl_ib_disable",
                severity="warning" if rdma else "info",
                title=f"NCCL_IB_DISABLE={env['NCCL_IB_DISABLE']} is set"
                + set_in("NCCL_IB_DISABLE")
                + (f" on a host with InfiniBand/RoCE ports ({', '.join(rdma)})" if rdma else ""),
                evidence={"NCCL_IB_DISABLE": env["NCCL_IB_DISABLE"], "rdma_ports": rdma},
                why="Across machines NCCL then uses TCP sockets instead of InfiniBand/RoCE: "
                "a fraction of the network's rate"
                + (", on a host that has RDMA ports." if rdma else "; harmless on one machine."),
                fix="Unset it (environment, job script, /etc/nccl.conf) for multi-node jobs.",
                source=f"NCCL_IB_DISABLE, NCCL environment variables ({NCCL_ENV_URL})",
                origin="reading",
            )
        )
    ifname = env.get("NCCL_SOCKET_IFNAME")
    if ifname and host.net_ports is not None:
        names = [p.name for p in host.net_ports if "/" not in p.name]
        missing = _socket_ifname_matches(ifname, names)
        if missing:
            found.append(
                Finding(
                    id="env.nccl_socket_ifname",
                    severity="error",
                    title=f"NCCL_SOCKET_IFNAME={ifname}{set_in('NCCL_SOCKET_IFNAME')} names "
                    f"no interface of this host ({', '.join(missing)})",
                    evidence={"NCCL_SOCKET_IFNAME": ifname, "interfaces": names},
                    why="NCCL's bootstrap, even on one machine, opens a socket on that "
                    "interface: with none matching, NCCL fails at init ('no socket interface "
                    "found') or hangs.",
                    fix="Set it to an interface this host has (ip -br link: "
                    + (", ".join(names) or "none listed")
                    + "), or unset it and let NCCL choose.",
                    source=f"NCCL_SOCKET_IFNAME, NCCL environment variables ({NCCL_ENV_URL})",
                    origin="reading",
                )
            )
    for name in ("NCCL_ALGO", "NCCL_PROTO"):
        if env.get(name):
            found.append(
                Finding(
                    id=f"env.{name.lower()}",
                    severity="warning",
                    title=f"{name}={env[name]} is set{set_in(name)}",
                    evidence={name: env[name]},
                    why="It overrides NCCL's choice for every collective and message size; "
                    "NCCL's tuner picks the fastest per size. NVIDIA discourages setting it "
                    "except to work around a suspected NCCL bug.",
                    fix=f"Unset {name} (environment, job script, /etc/nccl.conf) unless it "
                    "works around a known bug on this NCCL version.",
                    source=f"{name}, NCCL environment variables ({NCCL_ENV_URL})",
                    origin="reading",
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
        elif (bad := _visible_devices_problems(visible, d))[0]:
            names, seen = bad
            found.append(
                Finding(
                    id="env.cuda_visible_devices_invalid",
                    severity="error" if seen == 0 else "warning",
                    title=f"CUDA_VISIBLE_DEVICES={visible} lists {', '.join(names)}, which "
                    f"match(es) no GPU here: CUDA sees {seen} of {n}",
                    evidence={
                        "CUDA_VISIBLE_DEVICES": visible,
                        "not_matching": names,
                        "gpus": {g.index: g.uuid for g in d.rig.gpus},
                    },
                    why="CUDA stops at the first entry that matches no GPU: only the ones "
                    "listed before it are visible (a UUID from another machine, an index past "
                    "the last GPU).",
                    fix="List indices 0-"
                    + str(max(n - 1, 0))
                    + " or this host's UUIDs (nvidia-smi -L), or unset it.",
                    source=f"CUDA environment variables, CUDA_VISIBLE_DEVICES ({CUDA_ENV_URL})",
                    origin="reading",
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
    rdma = has_rdma(d)
    return [
        Finding(
            id="memlock.limited",
            severity="warning" if rdma else "info",
            title=f"Locked memory is limited to {limit / 2**20:g} MiB (ulimit -l)",
            why="Fine on one machine (CUDA pins memory through its driver, not this limit); "
            "RDMA for multi-node NCCL (InfiniBand, RoCE, GPUDirect) needs it unlimited.",
            fix="For multi-node jobs: ulimit -l unlimited (limits.conf memlock, or docker "
            "--ulimit memlock=-1).",
            evidence={"memlock_bytes": limit, "rdma_ports": has_rdma(d)},
            source="InfiniBand registers pinned memory under this limit ('NET/IB/OFI Unable "
            "to register memory': https://github.com/NVIDIA/nccl/issues/563); NCCL networking "
            "troubleshooting, https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/"
            "troubleshooting/networking_troubleshooting.html",
            origin="reading",
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
    found: list[Finding] = []
    allowed = host.process_numa_nodes
    gpu_nodes = {int(k) for k in by_node if k != "unknown"}
    if allowed is not None and gpu_nodes - set(allowed):
        far = [g.index for g in rig.gpus if g.numa_node is not None and g.numa_node not in allowed]
        found.append(
            Finding(
                id="numa.process_remote",
                severity="warning",
                title=f"This process may run only on NUMA node(s) {allowed}; "
                f"{gpus_text(far)} hang off another node",
                evidence={"process_numa_nodes": allowed, "gpus_by_node": by_node},
                why="Every host copy and data-loading thread for those GPUs crosses the "
                "inter-socket link: slower input pipelines and host<->GPU copies.",
                fix="Start one process per GPU bound to that GPU's node (numactl "
                "--cpunodebind=N --membind=N, torchrun with a NUMA binding option), or drop "
                "the taskset/cgroup limit that pins this one.",
                source="nvidia-smi topo -m 'NUMA Affinity' column; numactl(8)",
                origin="reading",
                gpus=far,
            )
        )
    return found + [
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
