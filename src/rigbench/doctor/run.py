"""The doctor's checks, in the order they are reported, and `run_doctor`, which reads the
rig and its health facts, runs the hang-prone probes the chosen checks need (in child
processes, under timeouts) and turns everything into findings."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from rigbench.doctor import fabric, gpu_health, inventory, kernel_log, links, platform
from rigbench.doctor.context import DoctorInput, gpus_text
from rigbench.doctor.probes import ProbeResults, run_probes
from rigbench.errors import BadInput
from rigbench.hw.backend import Backend
from rigbench.hw.health import HealthInfo
from rigbench.hw.model import Rig
from rigbench.judge import SEVERITY_RANK, exit_code_for
from rigbench.records import Finding
from rigbench.supervisor import warm_up

Check = Callable[[DoctorInput], list[Finding]]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    fn: Check
    summary: str  # for --help and the README
    probes: tuple[str, ...] = ()  # "p2p", "all_reduce", "load"


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "inventory",
        inventory.check_inventory,
        "GPUs seen by the driver vs the PCI bus, mixed models",
    ),
    CheckSpec("versions", inventory.check_versions, "driver, CUDA, torch and NCCL versions fit"),
    CheckSpec(
        "driver",
        fabric.check_driver,
        "kernel module vs user-space driver version, CUDA init errors (802)",
    ),
    CheckSpec("pcie", links.check_pcie, "PCIe link under load vs max, replays", ("load",)),
    CheckSpec("p2p", links.check_p2p, "P2P capability and a verified copy per GPU pair", ("p2p",)),
    CheckSpec("nvlink", links.check_nvlink, "NVLink links up vs the model's count, link errors"),
    CheckSpec("fabricmanager", fabric.check_fabric_manager, "fabric manager on NVSwitch rigs"),
    CheckSpec(
        "collectives",
        links.check_collectives,
        "a verified all_reduce across all GPUs",
        ("all_reduce",),
    ),
    CheckSpec("iommu", platform.check_iommu, "IOMMU translating GPU DMA"),
    CheckSpec("acs", platform.check_acs, "PCIe ACS redirect on bridges between GPUs"),
    CheckSpec(
        "env", platform.check_env, "NCCL/CUDA environment variables and /etc/nccl.conf that hurt"
    ),
    CheckSpec("persistence", platform.check_persistence, "persistence mode"),
    CheckSpec("shm", platform.check_shm, "/dev/shm size"),
    CheckSpec("memlock", platform.check_memlock, "locked-memory limit"),
    CheckSpec("governor", platform.check_governor, "CPU frequency governor"),
    CheckSpec("numa", platform.check_numa, "NUMA node of each GPU vs where this process runs"),
    CheckSpec("network", fabric.check_network, "NICs and InfiniBand/RoCE ports, state and rate"),
    CheckSpec("xid", gpu_health.check_xid, "Xid errors in the kernel log, how often over time"),
    CheckSpec(
        "kernel", kernel_log.check_kernel_log, "PCIe AER, IOMMU page faults, NVRM API mismatch"
    ),
    CheckSpec("ecc", gpu_health.check_ecc, "ECC error counts"),
    CheckSpec("memory", gpu_health.check_memory, "retired pages, remapped rows"),
    CheckSpec(
        "throttle",
        gpu_health.check_throttle,
        "thermal / power-brake throttling, now and accumulated",
    ),
    CheckSpec("temperature", gpu_health.check_temperature, "GPU and memory temperature vs limits"),
    CheckSpec("power", gpu_health.check_power, "power limits below default or uneven"),
    CheckSpec("clocks", gpu_health.check_clocks, "application / locked clocks"),
    CheckSpec("sanity", gpu_health.check_sanity, "fan vs temperature, BAR1 size, VBIOS"),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)
CHECK_ALIASES = {"net": "network"}  # `doctor --only net`, as multi-node guides write it

# Where a check's rules and fixes come from, for findings that name no source of their own.
_NCCL_TS = "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/troubleshooting.html"
_NCCL_ENV = "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html"
CHECK_SOURCES: dict[str, str] = {
    "inventory": "the V100 server write-up (V100 SXM2 server: a GPU fell off the bus on a 12 V"
    " sag; the RTX "
    "3060 + GTX 1060 desktop); NVIDIA Xid catalogue (Xid 79)",
    "versions": "CUDA compatibility guide, https://docs.nvidia.com/deploy/cuda-compatibility/; "
    "PyTorch install matrix, https://pytorch.org/get-started/locally/",
    "pcie": "nvidia-smi documentation, GPU Link Info; the V100 server write-up (x1 PCIe 3.0 slots"
    " made "
    "two-GPU DDP slower than one GPU)",
    "p2p": f"NCCL troubleshooting, GPU Direct and PCI ACS ({_NCCL_TS}); the 3×3090 rig write-up",
    "nvlink": "the V100 server write-up (NCCL hangs ended after re-torquing the SXM2 modules);"
    " nvidia-smi "
    "nvlink -s / -e",
    "collectives": f"NCCL troubleshooting ({_NCCL_TS}); the 3×3090 rig write-up",
    "iommu": f"NCCL troubleshooting, PCI ACS and IOMMU ({_NCCL_TS}); the Minerva write-up ('IOMMU"
    f" is "
    "enabled' in Minerva's P2P check)",
    "acs": f"NCCL troubleshooting, PCI Access Control Services ({_NCCL_TS})",
    "env": f"NCCL environment variables ({_NCCL_ENV}); CUDA environment variables, "
    "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#env-vars; the 3×3090 rig"
    " write-up",
    "persistence": "NVIDIA driver persistence, https://docs.nvidia.com/deploy/driver-persistence/",
    "shm": f"NCCL troubleshooting, shared memory in containers ({_NCCL_TS})",
    "memlock": f"NCCL troubleshooting ({_NCCL_TS})",
    "governor": "Linux CPU performance scaling, https://docs.kernel.org/admin-guide/pm/cpufreq.html",
    "numa": "nvidia-smi topo -m (NUMA affinity); numactl(8)",
    "xid": "NVIDIA Xid catalogue, https://docs.nvidia.com/deploy/xid-errors/",
    "ecc": "NVIDIA GPU memory error management, "
    "https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/",
    "memory": "NVIDIA GPU memory error management (row remapping), "
    "https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/; dynamic page retirement, "
    "https://docs.nvidia.com/deploy/dynamic-page-retirement/",
    "throttle": "NVML clocks event reasons (nvmlDeviceGetCurrentClocksEventReasons); the V100"
    " server write-up "
    "(hot GPU, PSU sag)",
    "temperature": "nvidia-smi -q -d TEMPERATURE thresholds; the V100 server write-up (GPU 2's"
    " heatsink); the 3×3090 rig "
    "write-up (GDDR6X at 104 of 110 C)",
    "power": "the 3×3090 rig write-up (285 of 350 W: 'a couple of percentage slower'); nvidia-smi"
    " -pl",
    "clocks": "the V100 server write-up (nvidia-smi -ac 877,1005: ~13 % slower training)",
    "sanity": "board vendors' zero-RPM fan modes stop the fans only while the GPU is cool; "
    "nvidia-smi -q -d TEMPERATURE,PERFORMANCE (fan, VBIOS, BAR1)",
}
# Checks whose findings come from making the hardware work (the probes); the rest read.
MEASURED = {"p2p", "collectives"}
SEVERITY_ORDER = SEVERITY_RANK


def parse_checks(only: str | None) -> list[str]:
    """The checks `--only` names, in report order; every check without it."""
    if not only:
        return list(CHECK_NAMES)
    names = [CHECK_ALIASES.get(n.strip(), n.strip()) for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown or not names:
        what = ", ".join(repr(u) for u in unknown) if unknown else "nothing"
        raise BadInput(f"unknown check {what}: choose from {', '.join(CHECK_NAMES)}")
    return [n for n in CHECK_NAMES if n in names]


@dataclass(kw_only=True, slots=True)
class DoctorReport:
    rig: Rig
    health: HealthInfo
    probes: ProbeResults
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 healthy (ok, info, skipped), 1 warnings, 2 errors."""
        return exit_code_for(self.findings)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITY_ORDER, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out


def merge_per_gpu(findings: list[Finding]) -> list[Finding]:
    """Per-GPU findings that say the same thing become one naming every GPU. A per-GPU
    title starts with "{gpus}: "; it is filled in here ("GPU 2: ..." or "GPUs 0, 1: ...")."""
    merged: dict[str, Finding] = {}
    out: list[Finding] = []
    for f in findings:
        if "{gpus}" not in f.title:
            out.append(f)
            continue
        key = json.dumps([f.id, f.severity, f.title, f.why, f.fix, f.evidence], default=str)
        if key in merged:
            merged[key].gpus = sorted(set(merged[key].gpus) | set(f.gpus))
            continue
        merged[key] = f
        out.append(f)
    for f in out:
        if "{gpus}" in f.title:
            f.title = f.title.replace("{gpus}", gpus_text(f.gpus) if f.gpus else "GPUs")
    return out


def _safe(spec: CheckSpec, d: DoctorInput) -> list[Finding]:
    """A check that raises becomes a skipped finding: the doctor never crashes on a rig."""
    try:
        found = merge_per_gpu(spec.fn(d))
        for f in found:
            if f.severity in ("ok", "skipped"):
                continue
            if f.source is None:
                f.source = CHECK_SOURCES.get(spec.name)
            if f.origin is None:
                f.origin = "measurement" if spec.name in MEASURED else "reading"
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return [
            Finding(
                id=f"{spec.name}.skipped",
                severity="skipped",
                title=f"{spec.name}: not checked",
                why=f"the check failed: {type(exc).__name__}: {exc} "
                f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno}); please report it",
            )
        ]
    return found


def run_doctor(
    backend: Backend,
    checks: list[str],
    *,
    timeout_s: float | None = None,
    sampler_factory: Callable[[], object] | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> DoctorReport:
    """Read the rig, run the probes `checks` need, run `checks`. `on_progress(stage, what)`
    is told "probes" (which ones, as they start) and "check" (each check as it is done)."""
    started = time.monotonic()
    specs = [c for c in CHECKS if c.name in checks]
    wanted = {p for c in specs for p in c.probes}
    rig = backend.rig()
    if wanted and rig.gpus:
        warm_up()  # the probes' workers come from it: its torch import overlaps the reading
    health = backend.health(rig)  # before the probes: they set CUDA_DEVICE_ORDER
    if on_progress and wanted:
        n = len(rig.gpus)
        words = {
            "p2p": f"P2P ({n * (n - 1) // 2} pairs)",
            "all_reduce": f"all_reduce ({n} GPUs)",
            "load": "PCIe under load",
        }
        if rig.source != "nvml":
            words.pop("load")  # a simulated rig's file gives its links under load
        on_progress("probes", ", ".join(words[w] for w in sorted(wanted) if w in words))
    probes = run_probes(
        rig,
        p2p="p2p" in wanted,
        all_reduce="all_reduce" in wanted,
        load="load" in wanted,
        timeout_s=timeout_s,
        sampler_factory=sampler_factory,
    )
    if rig.source.startswith("simulated") and probes.pcie_loaded is None:
        loaded: dict[int, tuple[int | None, int | None]] = {
            g.index: (g.pcie.gen_loaded, g.pcie.width_loaded or g.pcie.width_current)
            for g in rig.gpus
            if g.pcie.gen_loaded is not None
        }
        probes.pcie_loaded = loaded or None  # the rig file's readings under load
    d = DoctorInput(rig=rig, health=health, probes=probes)
    findings = []
    for spec in specs:
        found = _safe(spec, d)
        findings += found
        if on_progress:
            worst = min((f.severity for f in found), key=SEVERITY_RANK.__getitem__, default="ok")
            on_progress("check", f"{spec.name}: {worst}")
    return DoctorReport(
        rig=rig,
        health=health,
        probes=probes,
        findings=findings,
        seconds=time.monotonic() - started,
    )
