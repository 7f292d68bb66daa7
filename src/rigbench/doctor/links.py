"""Link checks: each GPU's PCIe link under load, GPU-to-GPU copies (P2P) with verified
data, NVLink state and errors, and an all_reduce whose result is checked."""

from __future__ import annotations

from typing import Any

from rigbench.doctor.context import DoctorInput, gpus_text, ok, skipped, with_gaps
from rigbench.doctor.probes import PairProbe
from rigbench.hw.health import iommu_mode
from rigbench.hw.pci import ACS_P2P_REDIRECT, decode_acs
from rigbench.links import link_name, pcie_gbs
from rigbench.records import Finding

SLOW_SLOT_GBS = 5.0  # below this a slot limits even plain data loading and DDP badly
PCIE_SOURCE = (
    "nvidia-smi documentation, GPU Link Info 'Current': 'may be reduced when the GPU is not "
    "in use'; https://forums.developer.nvidia.com/t/prevent-pcie-from-reducing-gen/72537"
)
REPLAYS_WARN = 100
NVLINK_ERRORS_WARN = 100

P2P_LAST_RESORT = (
    "Last resort: NCCL_P2P_DISABLE=1 makes NCCL stage every GPU-to-GPU transfer through "
    "host memory. Training then runs, but every all_reduce crosses PCIe twice and copies "
    "through the CPU: the 3×3090 rig write-up called it 'punitively slow'. Use it to "
    "keep working, not as "
    "the fix."
)


def _pcie_rate(gen: int | None, width: int | None) -> float | None:
    try:
        return pcie_gbs(gen, width) if gen and width else None
    except ValueError:
        return None


def check_pcie(d: DoctorInput) -> list[Finding]:
    """The link is judged as read under load: an idle GPU trains its link down to Gen1 to
    save power (ASPM / the driver's power states), which is not a fault."""
    if not d.rig.gpus:
        return [skipped("pcie", "no GPU")]
    loaded = d.probes.pcie_loaded or {}
    found: list[Finding] = []
    links: dict[str, str] = {}
    idle: dict[str, str] = {}
    unknown: list[int] = []
    not_judged: list[int] = []
    # (slot link, GPU link) -> (GPUs, slot GB/s, GPU GB/s)
    slots: dict[tuple[str, str], tuple[list[int], float, float | None]] = {}
    for g in d.rig.gpus:
        p = g.pcie
        gen, width = p.gen_current, p.width_current
        if g.index in loaded:
            how = (
                "the rig file's reading under load"
                if d.simulated
                else "highest seen while the GPUs copied data"
            )
            gen, width = loaded[g.index]
            if p.gen_current is not None and p.width_current is not None:
                idle[f"GPU {g.index}"] = link_name(p.gen_current, p.width_current)
            judged_gen = True
        elif d.simulated:
            how, judged_gen = "as the rig file gives it (read under load)", True
        else:
            why = d.probes.skipped.get("load", "the load probe did not run")
            how = f"read at idle ({why}): the generation is not judged, links train down at idle"
            judged_gen = False
        if not (gen and width and p.gen_max and p.width_max):
            unknown.append(g.index)
            continue
        links[f"GPU {g.index}"] = f"{link_name(gen, width)} of {link_name(p.gen_max, p.width_max)}"
        if not judged_gen and gen < p.gen_max:
            not_judged.append(g.index)
        gen_low = judged_gen and gen < p.gen_max
        if gen_low or width < p.width_max:
            now, best = _pcie_rate(gen, width), _pcie_rate(p.gen_max, p.width_max)
            found.append(
                Finding(
                    id="pcie.link_degraded",
                    severity="warning",
                    title=f"{{gpus}}: PCIe link at {link_name(gen, width)} under load; the "
                    f"slot and GPU allow {link_name(p.gen_max, p.width_max)}",
                    evidence={
                        "now": link_name(gen, width),
                        "allowed": link_name(p.gen_max, p.width_max),
                        "gbs_now": now,
                        "gbs_allowed": best,
                        "read": how,
                        "idle": link_name(p.gen_current, p.width_current)
                        if p.gen_current and p.width_current
                        else None,
                    },
                    why=f"Every host<->GPU copy, and P2P or NCCL traffic over PCIe, runs at "
                    f"the link's rate: {now or 0:.1f} instead of {best or 0:.1f} GB/s per "
                    "direction. A link that trains below what both ends can do while busy "
                    "has a signal problem.",
                    fix="Reseat the card and its riser. A riser rated for a lower PCIe "
                    "generation, or a long one, trains down: replace it, or set the slot to "
                    "the generation the riser holds in the BIOS (a stable Gen3 beats a flaky "
                    "Gen4). Check that the slot's lanes are not shared with an M.2 slot or "
                    "split by a bifurcation setting.",
                    source=PCIE_SOURCE,
                    origin="measurement" if g.index in loaded and not d.simulated else "reading",
                    gpus=[g.index],
                )
            )
        gpu_gen, gpu_width = p.gpu_gen_max or p.gen_max, p.gpu_width_max or p.width_max
        if gpu_gen > p.gen_max or gpu_width > p.width_max:
            key = (link_name(p.gen_max, p.width_max), link_name(gpu_gen, gpu_width))
            slots.setdefault(
                key, ([], _pcie_rate(p.gen_max, p.width_max) or 0.0, _pcie_rate(gpu_gen, gpu_width))
            )[0].append(g.index)
        if p.replay_count:
            found.append(
                Finding(
                    id="pcie.replays",
                    severity="warning" if p.replay_count >= REPLAYS_WARN else "info",
                    title=f"{{gpus}}: the PCIe link retransmitted {p.replay_count} times "
                    "since the driver loaded",
                    evidence={"replay_count": p.replay_count},
                    why="Replays are packets resent after link errors: a few are harmless, "
                    "many mean a marginal link (riser, dirty slot) that costs bandwidth and "
                    "can end in a GPU falling off the bus.",
                    fix="Reseat or replace the riser, clean the slot; lower the slot's PCIe "
                    "generation in the BIOS if it persists.",
                    gpus=[g.index],
                )
            )
    for (slot, gpu), (ids, rate, gpu_rate) in slots.items():
        slow = rate < SLOW_SLOT_GBS
        found.append(
            Finding(
                id="pcie.slot_limited",
                severity="warning" if slow else "info",
                title=(
                    f"GPU {ids[0]} sits in a {slot} slot ({rate:.1f} GB/s); the GPU can do {gpu}"
                    if len(ids) == 1
                    else f"{gpus_text(ids)} sit in {slot} slots ({rate:.1f} GB/s); the GPUs can "
                    f"do {gpu}"
                ),
                evidence={"slot": slot, "gpu": gpu, "gbs_slot": rate, "gbs_gpu": gpu_rate},
                why="The slot (or the CPU's PCIe generation) caps the link: "
                + (
                    "at this rate gradients and batches crawl; the V100 server write-up's "
                    "x1 PCIe 3.0 "
                    "slots (about 1 GB/s) made two-GPU DDP slower than one GPU."
                    if slow
                    else "fine for most single-node training; NCCL between GPUs without "
                    "NVLink runs at this rate."
                ),
                fix="Move the GPU to a CPU-attached x16 (or x8) slot; a board's chipset "
                "x1/x4 slots are for NICs, not training GPUs."
                if slow
                else None,
                gpus=ids,
            )
        )
    if unknown and not links:
        reasons = {d.rig.gpus[i].unavailable.get("pcie.gen_current", "not read") for i in unknown}
        return [skipped("pcie", f"PCIe link figures not available: {'; '.join(sorted(reasons))}")]
    if not any(f.severity in ("warning", "error") for f in found):
        title = "Every GPU's link runs at what slot and GPU allow"
        if idle and any(idle[k].split()[0] != links[k].split()[0] for k in idle if k in links):
            title += " under load (lower at idle: power saving, normal)"
        evidence: dict[str, Any] = {"links_under_load" if loaded or d.simulated else "links": links}
        if idle:
            evidence["links_at_idle"] = idle
        if not_judged:
            evidence["generation_not_judged"] = (
                f"{gpus_text(not_judged)} below their maximum generation at idle; "
                + d.probes.skipped.get("load", "no load reading")
            )
        found.append(ok("pcie", title, evidence))
    return found


# --- P2P ------------------------------------------------------------------------------------


def _pairs_text(pairs: list[PairProbe] | list[tuple[int, int]]) -> str:
    out = []
    for p in pairs:
        a, b = (p.a, p.b) if isinstance(p, PairProbe) else p
        out.append(f"{a}-{b}")
    return ", ".join(out)


def _pair_attr(d: DoctorInput, p: PairProbe, attr: str) -> Any:
    link = d.rig.pair(p.a, p.b)
    return getattr(link, attr) if link is not None else None


def _acs_redirecting(d: DoctorInput) -> list[dict[str, Any]] | None:
    bridges = d.health.host.acs
    if bridges is None:
        return None
    return [
        {"bridge": b.bridge, "acs": decode_acs(b.control), "gpus": b.gpus}
        for b in bridges
        if b.control is not None and b.control & ACS_P2P_REDIRECT
    ]


NCCL_ENV_URL = "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html"
NCCL_ACS_URL = (
    "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/troubleshooting.html"
    "#pci-access-control-services-acs"
)
HANG_SOURCE = (
    f"NCCL troubleshooting, PCI ACS and IOMMU ({NCCL_ACS_URL}); the 3×3090 rig write-up (TR"
    f" 1920X, 3x RTX "
    "3090: hang fixed by driver 545 -> 535); the V100 server write-up (V100 SXM2: hangs ended"
    " after "
    "re-torquing the modules); https://github.com/pytorch/pytorch/issues/52142"
)
CORRUPT_SOURCE = (
    f"NCCL_P2P_LEVEL in the NCCL environment variables ({NCCL_ENV_URL}#nccl-p2p-level); "
    f"NCCL troubleshooting, PCI ACS and IOMMU ({NCCL_ACS_URL})"
)


def _platform_steps(d: DoctorInput) -> list[str]:
    """The IOMMU and ACS steps for PCIe P2P trouble on this rig, as far as it is known."""
    steps = []
    mode, words = iommu_mode(d.health.host)
    if mode == "translated":
        steps.append(
            f"IOMMU: it translates GPU DMA here ({words}). Boot with iommu=pt (AMD: "
            "amd_iommu=on iommu=pt; Intel: intel_iommu=on iommu=pt) in "
            "GRUB_CMDLINE_LINUX_DEFAULT, or turn IOMMU/AMD-Vi/VT-d off in the BIOS if no VM "
            "needs it."
        )
    elif mode in ("off", "passthrough"):
        steps.append(f"IOMMU is not the cause here ({words}).")
    else:
        steps.append(
            "IOMMU: its state is unknown; if it translates, boot with iommu=pt or turn it off."
        )
    redirect = _acs_redirecting(d)
    if redirect:
        cmds = "; ".join(f"setpci -s {b['bridge']} ECAP_ACS+0x6.w=0000" for b in redirect)
        steps.append(
            "ACS: bridges between the GPUs redirect P2P traffic to the root complex. Turn "
            f"ACS off in the BIOS, or after every boot, as root: {cmds}."
        )
    elif redirect is None:
        why = d.health.host.unavailable.get("acs", "not read")
        steps.append(
            f"ACS: not known here ({why}); if the bridges between the GPUs have it on, turn "
            "it off in the BIOS or with setpci (rigbench doctor reads it when run as root)."
        )
    return steps


def _numbered(steps: list[str]) -> str:
    return " ".join(f"{k}. {s}" for k, s in enumerate(steps, 1))


def hang_fix(d: DoctorInput, nvlink: bool, bad: list[PairProbe] | None = None) -> str:
    """The known fixes for a GPU-to-GPU hang, in the order worth trying on this rig."""
    if nvlink:
        common = set.intersection(*({p.a, p.b} for p in bad)) if bad else set()
        others = [g.index for g in d.rig.gpus if g.index not in common]
        meanwhile = (
            f"Until then, leave GPU {min(common)} out (CUDA_VISIBLE_DEVICES="
            f"{','.join(str(i) for i in others)}) rather than setting NCCL_P2P_DISABLE, "
            "which would stop NVLink between every pair."
            if len(common) == 1 and others
            else "Do not set NCCL_P2P_DISABLE as a workaround: it stops NVLink between every pair."
        )
        return (
            "The pair talks over NVLink: reseat the GPUs (and the NVLink bridge); on SXM2 "
            "boards tighten every module screw evenly to its torque, the V100 server write-up's"
            " NCCL hangs "
            "(nv_queue pinning a CPU, a stuck irq/nvidia thread) stopped after that. Check "
            "`nvidia-smi nvlink -s` and the kernel log for Xid 74. " + meanwhile
        )
    steps = _platform_steps(d)
    if any(e.kind == "iommu_fault" for e in d.health.host.kernel_events or []):
        steps.insert(
            0,
            "The kernel log has IOMMU page faults (AMD-Vi/DMAR IO_PAGE_FAULT): the IOMMU "
            "refused the GPUs' peer DMA, the signature of this hang.",
        )
    driver = d.rig.system.driver_version or "unknown"
    steps.append(
        f"Driver (now {driver}): try another branch. The 3×3090 ex-mining rig write-up's three "
        "RTX 3090s hung on "
        "driver 545 with IOMMU already off and iommu=pt set; going back to 535 fixed it."
    )
    if any(p.nvlink_count for p in d.rig.pairs):
        steps.append(
            "Until then, keep NVLink and stop PCIe P2P: export NCCL_P2P_LEVEL=NVL (NCCL uses "
            "P2P only between NVLink-connected GPUs)."
        )
    else:
        steps.append(P2P_LAST_RESORT)
    return _numbered(steps)


def corrupt_fix(d: DoctorInput, pairs: list[PairProbe]) -> str:
    """What to do about copies that arrive wrong: the narrowest fix that keeps what works."""
    nvlinked = {(p.a, p.b) for p in d.rig.pairs if p.nvlink_count}
    on_nvlink = [p for p in pairs if (p.a, p.b) in nvlinked]
    if on_nvlink and len(on_nvlink) == len(pairs):
        return (
            "The pair talks over NVLink: reseat the GPUs and the NVLink bridge (SXM: module "
            "screws to torque), check `nvidia-smi nvlink -e` for CRC errors and the kernel "
            "log for Xid 74; if it persists the GPU or board needs service."
        )
    steps = []
    if nvlinked:
        steps.append(
            "Keep NVLink, stop P2P over PCIe: export NCCL_P2P_LEVEL=NVL (NCCL then uses P2P "
            "only between NVLink-connected GPUs; the PCIe pairs go through host memory). "
            "Do not set NCCL_P2P_DISABLE: it would turn NVLink off too."
        )
    steps.append(
        "If P2P on these cards comes from a patched kernel module (GeForce P2P patches), go "
        "back to the stock driver."
    )
    steps += [s for s in _platform_steps(d) if not s.startswith("IOMMU is not")]
    steps.append(
        "Check the link: PCIe replays and AER errors (riser, slot), see the pcie and kernel checks."
    )
    if not nvlinked:
        steps.append(
            "Until it is fixed, NCCL_P2P_DISABLE=1 keeps training correct (slower: transfers "
            "go through host memory)."
        )
    return _numbered(steps)


def check_p2p(d: DoctorInput) -> list[Finding]:
    rig = d.rig
    if len(rig.gpus) < 2:
        return [skipped("p2p", f"needs at least 2 GPUs ({len(rig.gpus)} here)")]
    found: list[Finding] = []
    disabled = [(p.a, p.b) for p in rig.pairs if p.p2p == "disabled"]
    unsupported = [(p.a, p.b) for p in rig.pairs if p.p2p == "unsupported" and not p.nvlink_count]
    if disabled:
        found.append(
            Finding(
                id="p2p.disabled",
                severity="warning",
                title=f"The driver has P2P disabled between GPUs {_pairs_text(disabled)}",
                evidence={"pairs": [f"{a}-{b}" for a, b in disabled]},
                why="Copies between these GPUs go through host memory, at a fraction of "
                "the link's rate.",
                fix="A driver registry key (NVreg_RegistryDwords) or a driver option turned "
                "P2P off: remove it unless it was set on purpose against a P2P problem.",
                gpus=sorted({i for pair in disabled for i in pair}),
            )
        )
    if unsupported:
        names = {rig.gpus[i].name for pair in unsupported for i in pair}
        found.append(
            Finding(
                id="p2p.unsupported",
                severity="info",
                title="No P2P between GPUs " + _pairs_text(unsupported) + " (the driver does "
                "not offer it for " + ", ".join(sorted(names)) + ")",
                evidence={"pairs": [f"{a}-{b}" for a, b in unsupported]},
                why="GPU-to-GPU traffic is staged through host memory: NCCL uses shared "
                "memory instead, about half the PCIe rate. Expected for GeForce cards on "
                "the stock driver; nothing is broken.",
                gpus=sorted({i for pair in unsupported for i in pair}),
            )
        )
    pairs = d.probes.pairs
    if pairs is None:
        why = d.probes.skipped.get("p2p", "the P2P probe did not run")
        found.append(skipped("p2p", f"no copy was tried: {why}"))
        return found
    probed = [p for p in pairs if p.status != "not_probed"]
    not_probed = [p for p in pairs if p.status == "not_probed"]
    nvlinked = {(p.a, p.b) for p in rig.pairs if p.nvlink_count}
    for status in ("hang", "crash"):
        bad = [p for p in pairs if p.status == status]
        if not bad:
            continue
        on_nvlink = all((p.a, p.b) in nvlinked for p in bad)
        mode, words = iommu_mode(d.health.host)
        found.append(
            Finding(
                id=f"p2p.{status}",
                severity="error",
                title=(
                    f"GPU-to-GPU copies hang between GPUs {_pairs_text(bad)}"
                    if status == "hang"
                    else f"The process copying between GPUs {_pairs_text(bad)} died"
                ),
                evidence={
                    "pairs": [f"{p.a}-{p.b}" for p in bad],
                    "message": bad[0].message,
                    "not_probed": [f"{p.a}-{p.b}" for p in not_probed],
                    "driver_reports_p2p": {f"{p.a}-{p.b}": _pair_attr(d, p, "p2p") for p in bad},
                    "driver": rig.system.driver_version,
                    "iommu": f"{mode}: {words}",
                    "acs_redirecting_bridges": _acs_redirecting(d),
                    "over_nvlink": on_nvlink,
                },
                why=(
                    "A copy that never completes is what hangs NCCL and DDP forever right "
                    "after the processes start (the 3×3090 rig write-up: 'keep hanging "
                    "forever after the "
                    "three process got initialized'). The probe stopped at the first hung "
                    "pair; the others were not tried."
                    if status == "hang"
                    else "The worker process died mid-copy: a GPU falling off the bus or a "
                    "driver fault does this. Check the kernel log (Xid) and power."
                ),
                fix=hang_fix(d, on_nvlink, bad),
                source=HANG_SOURCE,
                origin="measurement",
                gpus=sorted({i for p in bad for i in (p.a, p.b)}),
            )
        )
    corrupt = [p for p in pairs if p.status == "corrupt"]
    if corrupt:
        found.append(
            Finding(
                id="p2p.corrupt",
                severity="error",
                title=f"GPU-to-GPU copies arrive with wrong data between GPUs "
                f"{_pairs_text(corrupt)}",
                evidence={
                    "pairs": [f"{p.a}-{p.b}" for p in corrupt],
                    "message": corrupt[0].message,
                    "driver_reports_p2p": {
                        f"{p.a}-{p.b}": _pair_attr(d, p, "p2p") for p in corrupt
                    },
                    "driver": rig.system.driver_version,
                },
                why="Training would silently compute on corrupted tensors; a bandwidth test "
                "alone looks healthy. Community patches that switch P2P on for GeForce cards "
                "can do this on boards they were not tested on.",
                fix=corrupt_fix(d, corrupt),
                source=CORRUPT_SOURCE,
                origin="measurement",
                gpus=sorted({i for p in corrupt for i in (p.a, p.b)}),
            )
        )
    hung = [p for p in pairs if p.status in ("hang", "crash")]
    if not_probed:
        found.append(
            Finding(
                id="p2p.not_run",
                severity="skipped",
                title=f"p2p: not run between GPUs {_pairs_text(not_probed)}: " + hang_text(hung),
                evidence={
                    "reason": "skipped_dependency",
                    "pairs": [f"{p.a}-{p.b}" for p in not_probed],
                },
                why="After a pair hangs, the probe stops: each further hang would cost "
                "another timeout, and the cause is usually shared.",
                gpus=sorted({i for p in not_probed for i in (p.a, p.b)}),
            )
        )
    late = [p for p in pairs if p.status == "not_started"]
    if late:
        found.append(
            skipped(
                "p2p",
                "the copy probe's worker did not start in time (a slow or busy machine, not "
                f"a GPU fault): {late[0].message}; run rigbench doctor again",
                {"reason": "timeout_startup"},
            )
        )
    found += _slow_pairs(d, [p for p in pairs if p.status == "ok"])
    errors = [p for p in pairs if p.status == "error"]
    if errors:
        found.append(
            Finding(
                id="p2p.probe_error",
                severity="warning",
                title=f"The copy probe failed between GPUs {_pairs_text(errors)}",
                evidence={"message": errors[0].message},
                why="The copy raised an error before its data could be checked.",
                fix="Read the message; rerun with rigbench bench --only p2p for details.",
                gpus=sorted({i for p in errors for i in (p.a, p.b)}),
            )
        )
    if probed and all(p.status == "ok" for p in probed) and not not_probed:
        found.append(
            ok(
                "p2p",
                f"Copies between every GPU pair ({len(probed)}) arrived intact, both ways",
                {
                    "pairs": {f"{p.a}-{p.b}": _pair_attr(d, p, "topo_code") for p in probed},
                    "bytes_per_copy": "4 MiB, both directions, checksummed",
                },
            )
        )
    return found


def hang_text(hung: list[PairProbe]) -> str:
    """ "P2P hangs between GPU 0 and 1" (the reason dependent checks did not run)."""
    return "P2P hangs between " + "; ".join(f"GPU {p.a} and {p.b}" for p in hung)


SLOW_PAIR_RATIO = 0.5  # of the median of pairs with the same path


def _slow_pairs(d: DoctorInput, ok_pairs: list[PairProbe]) -> list[Finding]:
    """A pair that copies at under half the rate of identical paths on the same rig: a
    link trained a generation lower or at half its lanes, or traffic detoured through the
    CPU (ACS), shows as such a gap; identical healthy paths agree far closer than 2x.
    Simulated rigs give the rate their owner measured (`p2p_gbps`); CPU stand-ins' own
    copy rates mean nothing and are not judged."""
    rates: dict[tuple[int, int], float] = {}
    for p in ok_pairs:
        key = f"{p.a}-{p.b}"
        if d.simulated:
            if key in d.rig.p2p_measured_gbps:
                rates[(p.a, p.b)] = d.rig.p2p_measured_gbps[key]
        elif p.gbps:
            rates[(p.a, p.b)] = p.gbps
    groups: dict[str, list[tuple[int, int]]] = {}
    for a, b in rates:
        link = d.rig.pair(a, b)
        groups.setdefault(link.topo_code if link else "?", []).append((a, b))
    found = []
    for code, members in groups.items():
        if len(members) < 3:
            continue  # two pairs cannot say which one is slow
        for a, b in members:
            others = [rates[m] for m in members if m != (a, b)]
            median = sorted(others)[len(others) // 2]
            if rates[(a, b)] < SLOW_PAIR_RATIO * median:
                found.append(
                    Finding(
                        id="p2p.slow_pair",
                        severity="warning",
                        title=f"Copies between GPUs {a} and {b} run at "
                        f"{rates[(a, b)]:.1f} GB/s, under half of the other {code} pairs "
                        f"({median:.1f} GB/s)",
                        evidence={
                            "gbps": rates[(a, b)],
                            "median_same_path_gbps": median,
                            "path": code,
                            "pairs_compared": len(members),
                        },
                        why="Identical paths on one rig copy at about the same rate; one pair "
                        "at half of it has a link running below its generation or width, or "
                        "traffic detouring through the CPU, and every collective waits for it.",
                        fix="Check both GPUs' links under load (pcie check, nvidia-smi -q -d "
                        "PCIE while copying), reseat their risers, and look for ACS on the "
                        "bridge between them (acs check).",
                        source="relative to identical paths on this rig; rigbench bench --only "
                        "p2p gives the full-size figures",
                        origin="measurement",
                        gpus=[a, b],
                    )
                )
    return found


# --- NVLink ---------------------------------------------------------------------------------


# NVLinks each SXM GPU model has (NVML name fragment -> links), from NVIDIA's datasheets:
# V100 SXM2 300 GB/s = 6 NVLink2 links; A100 SXM4 600 GB/s = 12 NVLink3 links; H100/H200
# SXM5 900 GB/s = 18 NVLink4 links. PCIe cards (bridges) and unknown models: not judged.
NVLINKS_BY_MODEL = (
    ("V100-SXM", 6),
    ("A100-SXM", 12),
    ("H100 80GB HBM3", 18),
    ("H100-SXM", 18),
    ("H100 SXM", 18),
    ("H200", 18),
)
NVLINK_SOURCE = (
    "NVIDIA V100, A100 and H100/H200 datasheets (NVLink bandwidth per GPU / 50 GB/s per link)"
)


def expected_nvlinks(name: str) -> int | None:
    if "NVL" in name.replace("NVLink", "") or "PCIe" in name:
        return None  # H100 NVL / H200 NVL and PCIe cards: bridges, not SXM links
    for fragment, links in NVLINKS_BY_MODEL:
        if fragment in name:
            return links
    return None


def check_nvlink(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("nvlink", "no GPU")]
    found: list[Finding] = []
    with_links = []
    unknown = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        if h.nvlink_links is None:
            unknown.append(g.index)
            continue
        if not h.nvlink_links:
            continue
        with_links.append(g.index)
        up = h.nvlink_links_up if h.nvlink_links_up is not None else g.nvlink_active_links or 0
        should = max(h.nvlink_links, expected_nvlinks(g.name) or 0)
        alone = len(d.rig.gpus) == 1  # no peer on this rig needs the links
        if up < should:
            found.append(
                Finding(
                    id="nvlink.down",
                    severity="info" if alone else ("error" if up == 0 else "warning"),
                    title=f"{{gpus}}: {up} of {should} NVLinks up"
                    + (" (one GPU on this rig: nothing uses them)" if alone else ""),
                    evidence={
                        "links_reported": h.nvlink_links,
                        "links_the_model_has": expected_nvlinks(g.name),
                        "up": up,
                    },
                    source=NVLINK_SOURCE,
                    origin="reading",
                    why="One GPU on this rig: no peer uses NVLink (a VM cut from an HGX "
                    "node shows its links down)."
                    if alone
                    else "Traffic to the GPU at the other end of a down link falls back to "
                    "slower paths or fails; on SXM boards a link goes down when a module is "
                    "not seated evenly, or when the GPU it leads to is gone.",
                    fix=None
                    if alone
                    else "If a GPU fell off the bus, that explains it (see inventory). Else "
                    "reseat the GPU or NVLink bridge; on SXM2 boards tighten the module "
                    "screws evenly to their torque.",
                    gpus=[g.index],
                )
            )
        errors = h.nvlink_errors or {}
        total = sum(errors.values())
        if total:
            warn = total >= NVLINK_ERRORS_WARN or errors.get("recovery", 0) > 0
            found.append(
                Finding(
                    id="nvlink.errors",
                    severity="warning" if warn else "info",
                    title=f"{{gpus}}: NVLinks logged {total} errors since the driver loaded",
                    evidence=dict(errors),
                    why="CRC errors, replays and recoveries are retransmissions on a marginal "
                    "link; many of them slow collectives and precede hangs (Xid 74).",
                    fix="Reseat the GPU or bridge; on SXM2 boards check the module screws' "
                    "torque (the V100 server write-up's NCCL hangs ended after tightening "
                    "them).",
                    gpus=[g.index],
                )
            )
    if not with_links:
        if unknown and len(unknown) == len(d.rig.gpus):
            why = d.gpu_health(unknown[0]).unavailable.get("nvlink_links", "not read")
            return [skipped("nvlink", f"NVLink state not available: {why}")]
        return [ok("nvlink", "No NVLink on these GPUs: nothing to check")]
    if not found:
        missing = [
            (i, d.gpu_health(i).unavailable.get("nvlink_links", "not read")) for i in unknown
        ]
        found.append(with_gaps(ok("nvlink", "Every NVLink is up, with no errors"), missing))
    return found


# --- all_reduce -----------------------------------------------------------------------------


def _wrong_result_fix(d: DoctorInput) -> str:
    if any(p.nvlink_count for p in d.rig.pairs) and not all(p.nvlink_count for p in d.rig.pairs):
        first = (
            "Run it again with NCCL_P2P_LEVEL=NVL: if the sum is right then, P2P over the "
            "PCIe pairs is the culprit; keep that setting (NVLink stays in use) and fix the "
            "PCIe path."
        )
    else:
        first = (
            "Run it again with NCCL_P2P_DISABLE=1 as a test: if the sum is right then, P2P "
            "is the culprit."
        )
    rest = (
        " Go back to the stock driver if a P2P patch is installed; check IOMMU (iommu=pt) "
        "and ACS on the bridges between the GPUs, and the risers. NCCL_ALGO=Ring and "
        "NCCL_PROTO=Simple, for one test run, narrow it down further."
    )
    return first + rest


def check_collectives(d: DoctorInput) -> list[Finding]:
    n = len(d.rig.gpus)
    if n < 2:
        return [skipped("collectives", f"needs at least 2 GPUs ({n} here)")]
    probes = d.probes
    status = probes.reduce_status
    gpus = probes.reduce_gpus or [g.index for g in d.rig.gpus]
    hung = [p for p in probes.pairs or [] if p.status in ("hang", "crash")]
    if hung:
        # every collective crosses the hung pair: its result says nothing new (the probe
        # is stopped once the pair's hang is confirmed)
        return [
            Finding(
                id="collectives.not_run",
                severity="skipped",
                title=f"collectives: not run: {hang_text(hung)}",
                evidence={"reason": "skipped_dependency", "gpus": gpus},
                why="An all_reduce crosses every GPU pair, so it hangs where the pair does; "
                "fix the P2P hang first (p2p.hang).",
                gpus=gpus,
            )
        ]
    if status is None:
        why = probes.skipped.get("all_reduce", "the all_reduce probe did not run")
        return [skipped("collectives", f"no all_reduce was run: {why}")]
    evidence = {"gpus": gpus, "message": probes.reduce_message}
    on_nvlink = all(p.nvlink_count for p in d.rig.pairs)
    if status == "not_started":
        return [
            Finding(
                id="collectives.slow_start",
                severity="skipped",
                title="collectives: not checked: the all_reduce workers did not start in time",
                evidence={"reason": "timeout_startup", "message": probes.reduce_message},
                why="Starting one process per GPU and importing torch took longer than allowed: "
                "a slow or busy machine, not a GPU fault. Run rigbench doctor again when the "
                "machine is less busy.",
                gpus=gpus,
            )
        ]
    if status == "ok":
        return [
            ok(
                "collectives",
                f"all_reduce across {gpus_text(gpus)} returned the right sum",
                {"gpus": gpus, "sizes": "4 KiB and 1 MiB (4 KiB on CPU stand-ins), result checked"},
            )
        ]
    if status == "wrong":
        return [
            Finding(
                id="collectives.wrong_result",
                severity="error",
                title=f"all_reduce across {gpus_text(gpus)} returned wrong data",
                evidence=evidence,
                why="Gradients summed wrong make training diverge or silently learn "
                "nonsense. Copies between two GPUs can pass while a collective is wrong "
                "(seen with patched consumer-P2P drivers), so both are checked.",
                fix=_wrong_result_fix(d),
                source=CORRUPT_SOURCE,
                origin="measurement",
                gpus=gpus,
            )
        ]
    if status in ("hang", "crash"):
        return [
            Finding(
                id=f"collectives.{status}",
                severity="error",
                title=f"all_reduce across {gpus_text(gpus)} "
                + ("hung" if status == "hang" else "killed its process"),
                evidence=evidence,
                why="This is the NCCL hang DDP and FSDP hit at their first step.",
                fix=hang_fix(d, on_nvlink),
                source=HANG_SOURCE,
                origin="measurement",
                gpus=gpus,
            )
        ]
    return [
        Finding(
            id="collectives.probe_error",
            severity="warning",
            title=f"The all_reduce probe failed across {gpus_text(gpus)}",
            evidence=evidence,
            why="It raised an error before its result could be checked.",
            fix="Read the message; rigbench bench --only collectives gives details.",
            gpus=gpus,
        )
    ]
