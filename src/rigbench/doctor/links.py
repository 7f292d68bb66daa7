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
REPLAYS_WARN = 100
NVLINK_ERRORS_WARN = 100

P2P_LAST_RESORT = (
    "Last resort: NCCL_P2P_DISABLE=1 makes NCCL stage every GPU-to-GPU transfer through "
    "host memory. Training then runs, but every all_reduce crosses PCIe twice and copies "
    "through the CPU: the 3×3090 ex-mining rig write-up called it 'punitively slow'. Use it to "
    "keep working, not as "
    "the fix."
)


def _pcie_rate(gen: int | None, width: int | None) -> float | None:
    try:
        return pcie_gbs(gen, width) if gen and width else None
    except ValueError:
        return None


def check_pcie(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("pcie", "no GPU")]
    loaded = d.probes.pcie_loaded
    if d.simulated:
        how = "as the rig file gives it (read under load)"
    elif loaded:
        how = "highest seen while the GPUs copied data"
    else:
        why = d.probes.skipped.get("load", "the load probe did not run")
        how = f"read at idle ({why}): the generation is not judged, links train down at idle"
    found: list[Finding] = []
    links: dict[str, str] = {}
    unknown: list[int] = []
    # (slot link, GPU link) -> (GPUs, slot GB/s, GPU GB/s)
    slots: dict[tuple[str, str], tuple[list[int], float, float | None]] = {}
    for g in d.rig.gpus:
        p = g.pcie
        gen, width = p.gen_current, p.width_current
        if loaded and g.index in loaded:
            gen, width = loaded[g.index]
        if not (gen and width and p.gen_max and p.width_max):
            unknown.append(g.index)
            continue
        links[f"GPU {g.index}"] = f"{link_name(gen, width)} of {link_name(p.gen_max, p.width_max)}"
        judged_gen = d.simulated or bool(loaded)
        gen_low = judged_gen and gen < p.gen_max
        if gen_low or width < p.width_max:
            now, best = _pcie_rate(gen, width), _pcie_rate(p.gen_max, p.width_max)
            found.append(
                Finding(
                    id="pcie.link_degraded",
                    severity="warning",
                    title=f"{{gpus}}: PCIe link at {link_name(gen, width)}; the "
                    f"slot and GPU allow {link_name(p.gen_max, p.width_max)}",
                    evidence={
                        "now": link_name(gen, width),
                        "allowed": link_name(p.gen_max, p.width_max),
                        "gbs_now": now,
                        "gbs_allowed": best,
                        "read": how,
                    },
                    why=f"Every host<->GPU copy, and P2P or NCCL traffic over PCIe, runs at "
                    f"the link's rate: {now or 0:.1f} instead of {best or 0:.1f} GB/s per "
                    "direction. A link that trains below what both ends can do has a signal "
                    "problem.",
                    fix="Reseat the card and its riser. A riser rated for a lower PCIe "
                    "generation, or a long one, trains down: replace it, or set the slot to "
                    "the generation the riser holds in the BIOS (a stable Gen3 beats a flaky "
                    "Gen4). Check that the slot's lanes are not shared with an M.2 slot or "
                    "split by a bifurcation setting.",
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
                    "at this rate gradients and batches crawl; the 4×V100 SXM2 server write-up's "
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
        found.append(
            ok(
                "pcie",
                "Every GPU's link runs at what slot and GPU allow",
                {"links": links, "read": how},
            )
        )
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


def hang_fix(d: DoctorInput, nvlink: bool) -> str:
    """The known fixes for a GPU-to-GPU hang, in the order worth trying on this rig."""
    if nvlink:
        return (
            "The pair talks over NVLink: reseat the GPUs (and the NVLink bridge); on SXM2 "
            "boards tighten every module screw evenly to its torque, the 4×V100 SXM2 server "
            "write-up's NCCL hangs "
            "(nv_queue pinning a CPU, a stuck irq/nvidia thread) stopped after that. Check "
            "`nvidia-smi nvlink -s` and the kernel log for Xid 74. " + P2P_LAST_RESORT
        )
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
    driver = d.rig.system.driver_version or "unknown"
    steps.append(
        f"Driver (now {driver}): try another branch. The 3×3090 ex-mining rig write-up's three "
        "RTX 3090s hung on "
        "driver 545 with IOMMU already off and iommu=pt set; going back to 535 fixed it."
    )
    steps.append(P2P_LAST_RESORT)
    return " ".join(f"{k}. {s}" for k, s in enumerate(steps, 1))


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
                    "after the processes start (the 3×3090 ex-mining rig write-up: 'keep hanging "
                    "forever after the "
                    "three process got initialized'). The probe stopped at the first hung "
                    "pair; the others were not tried."
                    if status == "hang"
                    else "The worker process died mid-copy: a GPU falling off the bus or a "
                    "driver fault does this. Check the kernel log (Xid) and power."
                ),
                fix=hang_fix(d, on_nvlink),
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
                fix="Stop using P2P on this pair: go back to the stock driver if P2P was "
                "enabled by a patched kernel module, or set NCCL_P2P_DISABLE=1 until it is "
                "fixed. Then check the link (PCIe replays, riser), IOMMU and ACS.",
                gpus=sorted({i for p in corrupt for i in (p.a, p.b)}),
            )
        )
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


# --- NVLink ---------------------------------------------------------------------------------


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
        if up < h.nvlink_links:
            found.append(
                Finding(
                    id="nvlink.down",
                    severity="error" if up == 0 else "warning",
                    title=f"{{gpus}}: {up} of {h.nvlink_links} NVLinks up",
                    evidence={"links": h.nvlink_links, "up": up},
                    why="Traffic to the GPU at the other end of a down link falls back to "
                    "slower paths or fails; on SXM boards a link goes down when a module is "
                    "not seated evenly, or when the GPU it leads to is gone.",
                    fix="If a GPU fell off the bus, that explains it (see inventory). Else "
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
                    "torque (the 4×V100 SXM2 server write-up's NCCL hangs ended after tightening "
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


def check_collectives(d: DoctorInput) -> list[Finding]:
    n = len(d.rig.gpus)
    if n < 2:
        return [skipped("collectives", f"needs at least 2 GPUs ({n} here)")]
    probes = d.probes
    status = probes.reduce_status
    if status is None:
        why = probes.skipped.get("all_reduce", "the all_reduce probe did not run")
        return [skipped("collectives", f"no all_reduce was run: {why}")]
    gpus = probes.reduce_gpus or [g.index for g in d.rig.gpus]
    evidence = {"gpus": gpus, "message": probes.reduce_message}
    on_nvlink = all(p.nvlink_count for p in d.rig.pairs)
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
                fix="Run again with NCCL_P2P_DISABLE=1: if the sum is right then, P2P is "
                "the culprit (stock driver instead of a P2P patch; check IOMMU, ACS, "
                "risers). NCCL_ALGO=Ring and NCCL_PROTO=Simple narrow it down further.",
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
                fix=(
                    "The P2P copies hang too (p2p.hang): the same cause, fix that first."
                    if any(p.status == "hang" for p in probes.pairs or [])
                    else hang_fix(d, on_nvlink)
                ),
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
