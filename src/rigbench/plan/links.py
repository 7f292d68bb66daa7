"""Where each GPU of a build plugs in: its slot on the board, the PCIe link it runs at,
the share of a chipset or switch uplink it gets, its power and its NVLink."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable

from rigbench.catalog import BoardSpec, CpuSpec, GpuSpec, Slot, find_gpu
from rigbench.links import pcie_gbs
from rigbench.plan.rig import GpuUnit
from rigbench.plan.schema import BuildFile, BuildFileError, LinkSpec

Fail = Callable[[str | None, str], BuildFileError]


def resolve_gpus(
    file: BuildFile, cpu: CpuSpec | None, board: BoardSpec | None, fail: Fail
) -> list[GpuUnit]:
    """Each GPU's slot, PCIe link and what it gets to the host once shared uplinks are
    divided; errors name the key they come from."""
    f = file
    # 1. every GPU's requested slot (or None)
    wanted: list[tuple[int, int, GpuSpec, str | None]] = []  # (entry, k, spec, slot)
    for e, entry in enumerate(f.gpu):
        spec = find_gpu(entry.model)
        assert spec is not None  # checked by the field validator
        link = entry.link
        names: list[str | None] = [None] * entry.count
        if isinstance(link, str | list):
            where = f"gpu[{e}].link"
            if board is None:
                raise fail(where, "names a slot, but the build has no [motherboard]")
            given = [link] if isinstance(link, str) else link
            if len(given) != entry.count:
                raise fail(
                    where,
                    f"names {len(given)} slot(s) for {entry.count} GPU(s): give one slot per GPU",
                )
            for k, name in enumerate(given):
                slot = board.slot_named(name)
                if slot is None:
                    close = difflib.get_close_matches(
                        name, [s.name for s in board.slots], n=2, cutoff=0.5
                    )
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    raise fail(where, f"the {board.name} has no slot {json.dumps(name)}{hint}")
                names[k] = slot.name
        for k in range(entry.count):
            wanted.append((e, k, spec, names[k]))

    # 2. slots: explicit ones reserved first, then the board's order for the rest
    taken: dict[str, int] = {}
    for i, (e, _, _, name) in enumerate(wanted):
        if name is not None:
            if name in taken:
                raise fail(f"gpu[{e}].link", f"slot {name} already holds GPU {taken[name]}")
            taken[name] = i
    assigned: list[str | None] = [w[3] for w in wanted]
    if board is not None:
        free = [s for s in board.slots_for_gpus if s.name not in taken]
        for i, (e, _, spec, name) in enumerate(wanted):
            if name is not None or isinstance(f.gpu[e].link, LinkSpec):
                continue
            kind = _slot_kind(spec)
            slot = next((s for s in free if s.kind == kind), None)
            if slot is None:
                raise fail(
                    f"gpu[{e}]",
                    f"no free {kind} slot left on the {board.name} for GPU {i}"
                    f" ({len([s for s in board.slots if s.kind == kind])} {kind} slots)",
                )
            free.remove(slot)
            assigned[i] = slot.name
            taken[slot.name] = i

    # 3. links
    units: list[GpuUnit] = []
    populated = set(taken)
    uplink_load: dict[str, int] = {}
    if board is not None:
        for name in populated:
            slot_via = board.slot(name).via
            if slot_via != "cpu":
                uplink_load[slot_via] = uplink_load.get(slot_via, 0) + 1
    cpu_gen = cpu.pcie_gen if cpu is not None else None
    for i, (e, _, spec, _) in enumerate(wanted):
        entry = f.gpu[e]
        gpu_gen = spec.pcie_gen or 6
        gpu_width = spec.pcie_width or 16
        slot_name = assigned[i]
        via: str | None = None
        if isinstance(entry.link, LinkSpec):
            gen, width = min(entry.link.gen, gpu_gen), min(entry.link.width, gpu_width)
            basis = f"link Gen{entry.link.gen} x{entry.link.width} from the build file"
            if cpu_gen is not None and gen > cpu_gen:
                basis += f", run at Gen{cpu_gen} (the CPU's lanes)"
                gen = cpu_gen
        elif slot_name is not None and board is not None:
            slot = board.slot(slot_name)
            if slot.kind != _slot_kind(spec):
                raise fail(
                    f"gpu[{e}].link",
                    f"the {spec.name} is a {_slot_kind(spec)} GPU; slot {slot.name} of"
                    f" the {board.name} is {slot.kind}",
                )
            width_now = slot.width_with(populated - {slot.name})
            if width_now == 0:
                others = ", ".join(sorted(populated & _sharers(slot)))
                raise fail(
                    f"gpu[{e}]",
                    f"slot {slot.name} of the {board.name} is disabled while {others} holds a card",
                )
            via = slot.via
            gen = min(slot.gen, gpu_gen)
            width = min(width_now, gpu_width)
            basis = f"slot {slot.name} of the {board.name} (Gen{slot.gen} x{slot.width}"
            basis += f", x{width_now} as populated)" if width_now != slot.width else ")"
            if via == "cpu" and cpu_gen is not None and gen > cpu_gen:
                basis += f", run at Gen{cpu_gen} (the CPU's lanes)"
                gen = cpu_gen
        else:
            gen, width = gpu_gen, gpu_width
            if cpu_gen is not None and gen > cpu_gen:
                gen = cpu_gen
            via = "cpu"
            basis = f"assumed: a full-width slot (Gen{gen} x{width}); no link or board given"
        link_gbs = pcie_gbs(gen, width)
        host_gbs = link_gbs
        if board is not None and via is not None and via != "cpu":
            up = board.uplink_named(via)
            assert up is not None  # the board catalog checks via names
            up_gen = min(up.gen, cpu_gen) if cpu_gen is not None else up.gen
            share = pcie_gbs(up_gen, up.width) / max(1, uplink_load.get(via, 1))
            if share < link_gbs:
                host_gbs = share
                basis += (
                    f"; behind {via} (Gen{up_gen} x{up.width}) shared by"
                    f" {uplink_load.get(via, 1)} GPU(s)"
                )
        units.append(
            GpuUnit(
                index=i,
                entry=e,
                spec=spec,
                power_limit_w=entry.power_limit_w,
                power_w=_power_of(e, spec, entry.power_limit_w, fail),
                link_gen=gen,
                link_width=width,
                link_gbs=link_gbs,
                host_gbs=host_gbs,
                slot=slot_name,
                via=via,
                link_basis=basis,
                nvlink=_nvlink_of(e, spec, entry.nvlink, fail),
            )
        )
    return units


def _power_of(e: int, spec: GpuSpec, limit: float | None, fail: Fail) -> float:
    if limit is not None:
        return limit
    if spec.tdp_w is None:
        raise fail(
            f"gpu[{e}]",
            f"the catalog has no TDP for the {spec.name}: give power_limit_w",
        )
    return spec.tdp_w


def _nvlink_of(e: int, spec: GpuSpec, kind: str | None, fail: Fail) -> str:
    if kind is None:
        if spec.nvlink_links is None:
            return "none"
        return {"sxm2": "mesh", "sxm4": "nvswitch", "sxm5": "nvswitch"}.get(
            spec.form_factor or "", "none"
        )
    if kind != "none" and spec.nvlink_links is None:
        raise fail(f"gpu[{e}].nvlink", f"the {spec.name} has no NVLink")
    if kind == "bridge" and spec.form_factor != "pcie":
        raise fail(f"gpu[{e}].nvlink", "bridges link PCIe cards; use mesh or nvswitch")
    return kind


# -- PSUs


def socket_key(socket: str) -> str:
    return re.sub(r"[\s\-_]+", "", socket.casefold())


def _slot_kind(spec: GpuSpec) -> str:
    ff = spec.form_factor or "pcie"
    return ff if ff in ("sxm2", "sxm4", "sxm5") else "pcie"


def _sharers(slot: Slot) -> set[str]:
    return {name for rule in slot.shares if rule.width == 0 for name in rule.when}
