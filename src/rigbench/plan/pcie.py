"""PCIe and GPU-mix checks of a build: lanes asked of the CPU, each GPU's link, what a
narrow link costs a data-parallel step, P2P, and mixed GPU models.

* a link carries `pcie_gbs(gen, width)` per direction (rigbench.links: GT/s x line code /
  8 x lanes); a GPU behind a shared uplink (chipset, PCIe switch) gets its share of it;
* one ring all-reduce of `B` bytes over `n` GPUs moves `2(n-1)/n x B` through every GPU's
  link, so it takes `t = 2(n-1)/n x B / r` at the slowest link's rate `r` (nccl-tests'
  busbw definition), at best: real transfers reach 80-90 % of a PCIe link;
* the gradients of `N` parameters are `4N` bytes: PyTorch DDP under autocast reduces the
  fp32 gradients of fp32 master weights (a bf16 compression hook halves it);
* without PCIe P2P (GeForce cards on the stock driver) every hop is staged through host
  memory: two copies in series, at `HOST_STAGED_EFFICIENCY` of their combined rate (seed
  000's measurement);
* the ring runs over NVLink when every GPU is of one model and one NVLink domain: all its
  links through NVSwitch, `links // (n-1)` links per pair in a direct mesh (SXM2), a
  bridge only between two cards; otherwise over PCIe at the slowest host link.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rigbench.links import pcie_gbs
from rigbench.plan.build import Build, GpuUnit
from rigbench.plan.records import Finding

# Below this per-direction rate a GPU's link is "narrow" for data-parallel training: Gen3 x8
# (7.9 GB/s) and up are what multi-GPU boards give; x4 and x1 slots and risers fall below.
NARROW_GBS = 7.5
# The gradients `plan` prices a link with when the build has no full-training [[model]].
REFERENCE_PARAMS = 1e9
GRAD_BYTES_PER_PARAM = 4.0
# GPUs without PCIe P2P exchange through host memory: two copies per hop. What those copies
# reach of the two links' combined rate, measured: seed 000 (4 GeForce cards on Gen4 x16,
# Threadripper PRO 7955WX) saw 11.3 GB/s GPU-to-GPU, 0.72 of the 15.75 GB/s two 31.5 GB/s
# hops give in series.
HOST_STAGED_EFFICIENCY = 0.72
HOST_STAGED_SOURCE = (
    "the Minerva 4×3090 workstation write-up: 11.3 GB/s GPU-to-GPU through the host on Gen4 x16"
)

NARROW_LINK_SOURCE = (
    "nccl-tests busbw ring formula; the 4×V100 SXM2 server write-up (x1 slot: DDP ~4x slower)"
)


@dataclass(frozen=True, slots=True)
class Ring:
    """The path a data-parallel ring all-reduce runs over."""

    gbs: float  # per direction, the slowest hop
    over: str  # "nvlink", "pcie", or "host" (no P2P: staged through host memory)
    basis: str
    slowest: GpuUnit | None  # the GPU whose link limits a PCIe ring


def ring(build: Build, gpus: list[GpuUnit] | None = None) -> Ring | None:
    """The ring of `gpus` (default: all); None for fewer than two GPUs."""
    gs = list(build.gpus if gpus is None else gpus)
    n = len(gs)
    if n < 2:
        return None
    kinds = {g.nvlink for g in gs}
    specs = {g.spec.id for g in gs}
    if len(specs) == 1 and len(kinds) == 1 and "none" not in kinds:
        spec, kind = gs[0].spec, gs[0].nvlink
        links, per_link = spec.nvlink_links or 0, spec.nvlink_gbs_per_link or 0.0
        if kind == "nvswitch":
            return Ring(links * per_link, "nvlink", f"NVSwitch, {links} x {per_link:g} GB/s", None)
        if kind == "mesh":
            per_pair = max(1, links // (n - 1))
            return Ring(
                per_pair * per_link,
                "nvlink",
                f"NVLink mesh, {per_pair} link(s) per pair x {per_link:g} GB/s (NCCL may run"
                " more rings over the other links)",
                None,
            )
        if kind == "bridge" and n == 2:
            return Ring(
                links * per_link, "nvlink", f"NVLink bridge, {links} x {per_link:g} GB/s", None
            )
    slowest = min(gs, key=lambda g: g.host_gbs)
    basis = (
        f"PCIe, slowest link GPU {slowest.index} Gen{slowest.link_gen} x{slowest.link_width}"
        f" ({slowest.host_gbs:.2f} GB/s)"
    )
    if any(g.spec.p2p_over_pcie is False for g in gs):
        # each ring hop is two copies through host memory: out of one GPU, into the next
        ordered = sorted(g.host_gbs for g in gs)
        two_hops = 1 / (1 / ordered[0] + 1 / ordered[1])
        gbs = HOST_STAGED_EFFICIENCY * two_hops
        basis += (
            f"; no P2P: every hop staged through host memory, two copies at"
            f" {ordered[0]:.2f} and {ordered[1]:.2f} GB/s x {HOST_STAGED_EFFICIENCY:g}"
            f" = {gbs:.2f} GB/s ({HOST_STAGED_SOURCE})"
        )
        return Ring(gbs, "host", basis, slowest)
    return Ring(slowest.host_gbs, "pcie", basis, slowest)


def allreduce_s(nbytes: float, n: int, gbs: float) -> float:
    """Seconds for one ring all-reduce of `nbytes` over `n` GPUs at `gbs` per direction."""
    return 2 * (n - 1) / n * nbytes / (gbs * 1e9)


def reference_gradients(build: Build) -> tuple[float, str]:
    """The parameter count a link is priced with: the first full-training [[model]] that
    gives or resolves one, else REFERENCE_PARAMS."""
    for entry, spec in zip(build.models, build.model_specs, strict=False):
        if entry.mode == "full":
            params = spec.params if spec is not None else entry.params
            if params:
                return float(params), entry.name or f"{params / 1e9:.2g}B-parameter model"
    return REFERENCE_PARAMS, "a 1B-parameter model (reference)"


def check_lanes(build: Build) -> list[Finding]:
    cpu = build.cpu
    if cpu is None:
        return [
            Finding(
                id="pcie.no_cpu",
                source="rigbench.plan.pcie",
                origin="assumption",
                severity="info",
                title="no [cpu] in the build: lanes not checked",
                why="links are taken from the board, the build file or the GPU",
                fix="add [cpu] model to check lanes and the PCIe generation",
            )
        ]
    lanes = cpu.lanes_for(build.cpu_count)
    asked = 0
    uplinks: set[str] = set()
    for g in build.gpus:
        if g.via in (None, "cpu"):
            asked += g.link_width
        elif build.board is not None:
            up = build.board.uplink_named(g.via)
            if up is not None and g.via != "chipset" and g.via not in uplinks:
                uplinks.add(g.via)
                asked += up.width
    sockets = f"{build.cpu_count} x " if build.cpu_count > 1 else ""
    evidence = {
        "lanes_asked": asked,
        "cpu_lanes": lanes,
        "cpu": cpu.name,
        "sockets": build.cpu_count,
    }
    if asked > lanes:
        return [
            Finding(
                id="pcie.lanes",
                source="CPU catalog (vendor specifications: usable lanes)",
                origin="plan",
                severity="warning",
                title=(
                    f"the GPUs ask {asked} PCIe lanes of the CPU; {sockets}{cpu.name} gives {lanes}"
                ),
                why=(
                    "without enough lanes the GPUs run narrower than planned (x8, x4) or need"
                    " a PCIe switch; the links and times below assume the lanes exist"
                ),
                fix=(
                    "give each [[gpu]] the link its slot really has, pick a board that splits"
                    " the lanes (x8/x8), or a CPU with more lanes (Threadripper, EPYC, Xeon)"
                ),
                evidence=evidence,
            )
        ]
    return [
        Finding(
            id="pcie.lanes",
            source="CPU catalog (vendor specifications: usable lanes)",
            origin="plan",
            severity="info",
            title=f"GPUs use {asked} of the {lanes} PCIe lanes of {sockets}{cpu.name}",
            why=f"the CPU's lanes are PCIe {cpu.pcie_gen}.0",
            evidence=evidence,
        )
    ]


def check_links(build: Build) -> list[Finding]:
    findings: list[Finding] = []
    n = len(build.gpus)
    r = ring(build)
    params, model = reference_gradients(build)
    nbytes = params * GRAD_BYTES_PER_PARAM
    best = max((g.host_gbs for g in build.gpus), default=0.0)
    for g in build.gpus:
        if g.host_gbs >= NARROW_GBS:
            continue
        full = pcie_gbs(g.link_gen, min(16, g.spec.pcie_width or 16))
        evidence = {
            "gpu": g.index,
            "link": f"Gen{g.link_gen} x{g.link_width}",
            "link_gbs": g.link_gbs,
            "host_gbs": g.host_gbs,
            "basis": g.link_basis,
        }
        if n >= 2 and r is not None and r.over in ("pcie", "host"):
            t_here = allreduce_s(nbytes, n, min(g.host_gbs, r.gbs))
            t_best = allreduce_s(nbytes, n, max(best, full))
            evidence |= {"allreduce_s": t_here, "allreduce_s_at_best": t_best, "params": params}
            findings.append(
                Finding(
                    id="pcie.narrow_link",
                    source=NARROW_LINK_SOURCE,
                    origin="plan",
                    severity="warning",
                    title=(
                        f"{g.label} has a Gen{g.link_gen} x{g.link_width} link"
                        f" ({g.host_gbs:.2f} GB/s): every data-parallel step waits for it"
                    ),
                    why=(
                        f"one all-reduce of the fp32 gradients of {model} ({nbytes / 1e9:.1f} GB)"
                        f" over {n} GPUs takes {t_here:.2f} s at this link against"
                        f" {t_best:.2f} s at {max(best, full):.1f} GB/s (the 4×V100 SXM2 server "
                        "write-up: two GPUs"
                        " with one on an x1 PCIe 3.0 slot made DDP ~4x slower)"
                    ),
                    fix=(
                        "move it to an x8/x16 slot from the CPU, use it for separate jobs"
                        " (inference, tuning runs), or leave it out of data-parallel runs"
                    ),
                    evidence=evidence,
                )
            )
        else:
            findings.append(
                Finding(
                    id="pcie.narrow_link",
                    source=NARROW_LINK_SOURCE,
                    origin="plan",
                    severity="info",
                    title=(
                        f"{g.label} has a Gen{g.link_gen} x{g.link_width} link"
                        f" ({g.host_gbs:.2f} GB/s)"
                    ),
                    why=(
                        "loading weights and data takes longer; training on it alone or over"
                        " NVLink does not wait for it"
                    ),
                    evidence=evidence,
                )
            )
    for g in build.gpus:
        if g.via not in (None, "cpu") and g.via == "chipset":
            up = build.board.uplink_named("chipset") if build.board is not None else None
            up_gbs = pcie_gbs(up.gen, up.width) if up is not None else None
            in_ring = n >= 2 and r is not None and r.over in ("pcie", "host")
            findings.append(
                Finding(
                    id="pcie.chipset_slot",
                    severity="warning" if in_ring else "info",
                    title=(
                        f"{g.label} sits in chipset slot {g.slot}"
                        + (
                            f": every data-parallel step crosses the chipset's"
                            f" {up_gbs:.1f} GB/s uplink"
                            if in_ring and up_gbs is not None
                            else ""
                        )
                    ),
                    why=(
                        "the chipset's link to the CPU is shared with its M.2 drives, USB and"
                        " network, so the GPU gets less than its slot's rate when they are busy;"
                        " P2P through the chipset is often slow or unsupported"
                    ),
                    fix="prefer a slot wired to the CPU for a GPU",
                    evidence={
                        "gpu": g.index,
                        "slot": g.slot,
                        "basis": g.link_basis,
                        "uplink_gbs": up_gbs,
                        "in_data_parallel_ring": in_ring,
                    },
                    source="board catalog (vendor manual: which slots hang off the chipset)",
                    origin="plan",
                    gpus=[g.index],
                )
            )
    if build.board is None:
        sxm = [g for g in build.gpus if g.spec.form_factor in ("sxm2", "sxm4", "sxm5")]
        if sxm:
            findings.append(
                Finding(
                    id="pcie.sxm_baseboard",
                    source="GPU catalog (form factor)",
                    origin="assumption",
                    severity="info",
                    title=f"{len(sxm)} SXM module(s) and no [motherboard]",
                    why=(
                        "SXM GPUs need an SXM baseboard (a server such as the T180-G20 or an"
                        " HGX board); their host links are taken from the catalog"
                    ),
                    fix="add the server as [motherboard] to check its slots",
                )
            )
    return findings


def check_p2p(build: Build) -> list[Finding]:
    r = ring(build)
    if r is None or r.over not in ("pcie", "host"):
        return []
    no = [g for g in build.gpus if g.spec.p2p_over_pcie is False]
    unknown = [g for g in build.gpus if g.spec.p2p_over_pcie is None]
    findings = []
    if no:
        names = sorted({g.spec.name for g in no})
        findings.append(
            Finding(
                id="pcie.no_p2p",
                severity="info",
                title=(
                    f"no PCIe P2P between {', '.join(names)} cards: GPU-to-GPU copies go"
                    " through host memory"
                ),
                why=(
                    "the stock driver does not enable peer-to-peer for these GPUs; NCCL falls"
                    f" back to shared memory: the ring runs at ~{r.gbs:.1f} GB/s, not the"
                    f" links' rate ({r.basis})"
                ),
                fix=(
                    "nothing to buy; if a driver claims P2P and transfers hang (the 3×3090 "
                    "ex-mining rig write-up,"
                    " driver 545), try NCCL_P2P_DISABLE=1 or another driver version"
                ),
                evidence={"gpus": [g.index for g in no], "ring_gbs": r.gbs},
                source=HOST_STAGED_SOURCE,
                origin="plan",
            )
        )
    if unknown:
        findings.append(
            Finding(
                id="pcie.p2p_unknown",
                severity="info",
                title=(
                    f"P2P support of {', '.join(sorted({g.spec.name for g in unknown}))}"
                    " is not in the catalog"
                ),
                why="NCCL tests P2P at start; without it copies go through host memory",
                fix="run `rigbench bench --only p2p` on the rig",
                evidence={"gpus": [g.index for g in unknown]},
                source="GPU catalog (p2p_over_pcie)",
                origin="assumption",
            )
        )
    return findings


def _dp_dtype(build: Build) -> str:
    for dtype in ("bf16", "fp16", "fp32"):
        if all(dtype in g.spec.peak_tflops for g in build.gpus):
            return dtype
    return "fp32"


def check_mix(build: Build) -> list[Finding]:
    if len(build.gpus) < 2:
        return []
    counts = Counter(g.spec.name for g in build.gpus)
    if len(counts) == 1:
        return []
    dtype = _dp_dtype(build)
    peaks = {g.spec.name: g.spec.peak_tflops.get(dtype, 0.0) for g in build.gpus}
    mems = {g.spec.name: g.spec.memory_gib for g in build.gpus}
    slowest = min(peaks, key=lambda k: peaks[k])
    total = sum(peaks[g.spec.name] for g in build.gpus)
    lockstep = len(build.gpus) * peaks[slowest]
    idle = 1 - lockstep / total if total else 0.0
    parts = " + ".join(f"{c}x {name}" for name, c in counts.items())
    why = (
        f"data-parallel GPUs wait for each other every step, so all run at the {slowest}'s pace"
        f" ({peaks[slowest]:g} {dtype} TFLOP/s dense): {idle:.0%} of the rig's peak idles"
    )
    if len(set(mems.values())) > 1:
        why += (
            f"; the smallest memory ({min(mems.values()):g} GiB) bounds what each data-parallel"
            " or FSDP rank holds"
        )
    return [
        Finding(
            id="mix.models",
            source="GPU catalog dense peaks; data-parallel steps wait for the slowest GPU",
            origin="plan",
            severity="warning",
            title=f"mixed GPU models: {parts}",
            why=why,
            fix=(
                "give the faster GPUs bigger batches (uneven data parallel), run separate jobs"
                " per model, or match the models"
            ),
            evidence={
                "models": dict(counts),
                "dtype": dtype,
                "peak_tflops": peaks,
                "memory_gib": mems,
                "idle_share": idle,
            },
        )
    ]
