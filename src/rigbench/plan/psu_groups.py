"""Which PSUs carry which load: [[psu]] entries grouped (a 12 V bus is one group), the
GPUs each group feeds and the group that feeds the CPU and the rest."""

from __future__ import annotations

from rigbench.plan.efficiency import DEFAULT_EFFICIENCY
from rigbench.plan.links import Fail
from rigbench.plan.rig import PsuGroup
from rigbench.plan.schema import BuildFile


def resolve_psus(file: BuildFile, n_gpus: int, fail: Fail) -> list[PsuGroup]:
    """The PSU groups (one ATX unit, or server units on one 12 V bus), what each feeds
    and which one feeds the system; errors name the key they come from."""
    f = file
    circuits = (f.wall.circuits or 1) if f.wall else 1
    bus_entries: list[int] = []
    solo: list[int] = []
    for p, entry in enumerate(f.psu):
        where = f"psu[{p}]"
        if entry.bus is not None and entry.kind != "server":
            raise fail(f"{where}.bus", 'only server PSUs (kind = "server") share a 12 V bus')
        if entry.count > 1 and entry.bus is None:
            raise fail(
                f"{where}.count",
                'several PSUs in one entry must share a bus (bus = "12v-parallel");'
                " give ATX PSUs one [[psu]] entry each",
            )
        if entry.redundant >= entry.count:
            raise fail(
                f"{where}.redundant",
                f"{entry.redundant} unit(s) in reserve of {entry.count}: at least one must"
                " carry the load",
            )
        if entry.atx3 and entry.kind != "atx":
            raise fail(f"{where}.atx3", "ATX 3.0 ratings apply to ATX PSUs only")
        if entry.circuit >= circuits:
            raise fail(
                f"{where}.circuit",
                f"circuit {entry.circuit} does not exist ([wall] circuits = {circuits};"
                " circuits count from 0)",
            )
        (bus_entries if entry.bus else solo).append(p)
    # groups in file order of their first entry
    firsts = sorted(([bus_entries[0]] if bus_entries else []) + solo)
    groups_entries = [
        tuple(bus_entries) if bus_entries and first == bus_entries[0] else (first,)
        for first in firsts
    ]
    for members in groups_entries:
        for p in members[1:]:
            ep = f.psu[p]
            for key in ("feeds", "system"):
                if getattr(ep, key) is not None:
                    raise fail(
                        f"psu[{p}].{key}",
                        f"PSUs on one bus share the load: give {key} on psu[{members[0]}] only",
                    )
    # which GPUs each group feeds
    feeds: list[list[int] | str] = []
    for members in groups_entries:
        given = f.psu[members[0]].feeds
        if given is None:
            given = "all" if len(groups_entries) == 1 else "rest"
        feeds.append(given)
    if sum(1 for x in feeds if x == "all") and len(groups_entries) > 1:
        p = groups_entries[next(i for i, x in enumerate(feeds) if x == "all")][0]
        raise fail(f"psu[{p}].feeds", '"all" with several PSU groups: say which GPUs each feeds')
    rest_groups = [i for i, x in enumerate(feeds) if x == "rest"]
    if len(rest_groups) > 1:
        p = groups_entries[rest_groups[1]][0]
        raise fail(
            f"psu[{p}].feeds",
            'only one PSU group can feed "rest": give the others a list of GPU indices',
        )
    owner: dict[int, int] = {}
    for g, x in enumerate(feeds):
        if isinstance(x, list):
            for i in x:
                p = groups_entries[g][0]
                if i >= n_gpus:
                    raise fail(
                        f"psu[{p}].feeds",
                        f"GPU {i} does not exist (the build has {n_gpus}; indices from 0)",
                    )
                if i in owner:
                    raise fail(
                        f"psu[{p}].feeds",
                        f"GPU {i} is already fed by psu[{groups_entries[owner[i]][0]}]",
                    )
                owner[i] = g
    gpu_lists: list[tuple[int, ...]] = []
    for x in feeds:
        if x == "all":
            gpu_lists.append(tuple(range(n_gpus)))
        elif x == "rest":
            gpu_lists.append(tuple(i for i in range(n_gpus) if i not in owner))
        else:
            assert isinstance(x, list)
            gpu_lists.append(tuple(sorted(x)))
    if groups_entries and not rest_groups and len(owner) < n_gpus and len(feeds) > 1:
        missing = [i for i in range(n_gpus) if i not in owner]
        raise fail("psu", f'no PSU feeds GPU {", ".join(map(str, missing))} (use feeds = "rest")')
    # which group feeds the CPU, board and the rest
    flagged = [g for g, m in enumerate(groups_entries) if f.psu[m[0]].system]
    if len(flagged) > 1:
        p = groups_entries[flagged[1]][0]
        raise fail(f"psu[{p}].system", "only one PSU group feeds the system")
    system_group = flagged[0] if flagged else 0
    groups: list[PsuGroup] = []
    for g, members in enumerate(groups_entries):
        first = f.psu[members[0]]
        efficiency = first.efficiency
        if efficiency is None:
            efficiency = DEFAULT_EFFICIENCY
        watts = tuple(f.psu[p].watts for p in members for _ in range(f.psu[p].count))
        groups.append(
            PsuGroup(
                index=g,
                entries=members,
                label="+".join(f"psu[{p}]" for p in members),
                model=first.model,
                watts_each=watts,
                kind=first.kind,
                atx3=first.atx3,
                parallel=first.bus is not None,
                efficiency=efficiency,
                gpus=gpu_lists[g],
                system=g == system_group,
                circuit=first.circuit,
                unit_circuits=tuple(
                    f.psu[p].circuit for p in members for _ in range(f.psu[p].count)
                ),
                redundant=sum(f.psu[p].redundant for p in members),
            )
        )
    return groups
