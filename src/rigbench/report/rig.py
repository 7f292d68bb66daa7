"""`rigbench info`: the machine as the tool sees it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rigbench.formatting import gib
from rigbench.hw.model import Rig
from rigbench.links import expected_host_link, expected_pair, link_name


def render_rig(rig: Rig, console: Console) -> None:
    s = rig.system
    sys_table = Table(title=f"System ({rig.source})", show_header=False, title_justify="left")
    sys_table.add_column("what", style="bold")
    sys_table.add_column("value")
    rows = [
        ("host", s.hostname),
        ("OS / kernel", f"{s.os or '—'} / {s.kernel or '—'}"),
        (
            "CPU",
            f"{s.cpu_model or '—'} ({s.cpu_cores or '?'} threads,"
            f" {s.cpu_sockets or '?'} socket(s))",
        ),
        ("RAM", gib(s.ram_bytes)),
        ("driver / CUDA (driver)", f"{s.driver_version or '—'} / {s.cuda_driver_version or '—'}"),
        (
            "torch / CUDA (build) / NCCL",
            f"{s.torch_version or '—'} / {s.torch_cuda_version or '—'} / {s.nccl_version or '—'}",
        ),
        ("Python", s.python_version),
    ]
    for k, v in rows:
        sys_table.add_row(k, v or "—")
    console.print(sys_table)
    if not rig.gpus:
        console.print("No NVIDIA GPUs found.")
        return

    gpus = Table(title="GPUs", title_justify="left")
    for col in (
        "#",
        "name",
        "bus id",
        "memory",
        "CC",
        "PCIe now",
        "PCIe max",
        "host link should give",
        "power limit (default)",
        "SM / mem clock MHz",
    ):
        gpus.add_column(col)
    for g in rig.gpus:
        p = g.pcie
        exp = expected_host_link(g)
        power = "—"
        if g.power_limit_w is not None:
            power = f"{g.power_limit_w:.0f} W"
            if g.power_default_limit_w is not None:
                power += f" ({g.power_default_limit_w:.0f} W)"
        clocks = f"{g.sm_clock_mhz or '—'} / {g.mem_clock_mhz or '—'}"
        if g.sm_clock_max_mhz:
            clocks += f" (max {g.sm_clock_max_mhz} / {g.mem_clock_max_mhz or '—'})"
        gpus.add_row(
            str(g.index),
            g.name,
            g.bus_id or "—",
            gib(g.memory_total_bytes),
            g.compute_capability or "—",
            link_name(p.gen_current, p.width_current),
            link_name(p.gen_max, p.width_max)
            + (f" (GPU x{p.gpu_width_max})" if (p.gpu_width_max or 0) > (p.width_max or 0) else ""),
            f"{exp.value:.1f} GB/s" if exp else "—",
            power,
            clocks,
        )
    console.print(gpus)
    if len(rig.gpus) > 1:
        topo = Table(
            title="Topology (NV# = NVLink links; PCIe path as nvidia-smi topo -m) / P2P",
            title_justify="left",
        )
        topo.add_column("")
        for g in rig.gpus:
            topo.add_column(f"GPU{g.index}")
        for a in rig.gpus:
            cells = []
            for b in rig.gpus:
                pair = rig.pair(a.index, b.index)
                if a.index == b.index or pair is None:
                    cells.append("X")
                    continue
                exp = expected_pair(pair, a, b)
                p2p = {"ok": "P2P", "unsupported": "no P2P", "disabled": "P2P off"}.get(
                    pair.p2p, "P2P ?"
                )
                cells.append(f"{pair.topo_code} {p2p}" + (f"\n{exp.value:.0f} GB/s" if exp else ""))
            topo.add_row(f"GPU{a.index}", *cells)
        console.print(topo)
    for g in rig.gpus:
        if g.unavailable:
            missing = ", ".join(sorted(g.unavailable))
            console.print(f"[dim]GPU{g.index}: not reported: {missing}[/dim]")
