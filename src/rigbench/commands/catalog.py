"""`rigbench catalog`: list and search the hardware catalog (GPUs, CPUs, motherboards)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from rigbench.commands.common import JsonOpt, err, one_line_errors, out, print_json
from rigbench.errors import BadInput
from rigbench.tables import Table

app = typer.Typer()

KINDS = ("gpu", "cpu", "board")


@app.command()
def catalog(
    query: Annotated[
        str | None,
        typer.Argument(
            help='Words every entry shown must match ("3090", "epyc 9004", "x570").',
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Only gpu, cpu or board entries.", metavar="KIND"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List and search the hardware catalog: GPUs (memory, bandwidth, peak TFLOP/s, power,
    links), CPUs (PCIe lanes and generation, TDP) and motherboards (slot layouts), each
    figure with its source (--json)."""
    from rigbench.catalog import (
        closest_board_names,
        closest_cpu_names,
        closest_gpu_names,
        search_boards,
        search_cpus,
        search_gpus,
    )

    with one_line_errors():
        if kind is not None and kind not in KINDS:
            raise BadInput(f"--kind must be one of {', '.join(KINDS)} (got {kind!r})")
        q = query or ""
        want = set(KINDS) if kind is None else {kind}
        gpus = search_gpus(q) if "gpu" in want else []
        cpus = search_cpus(q) if "cpu" in want else []
        boards = search_boards(q) if "board" in want else []

    if as_json:
        print_json(
            {
                "gpus": [_gpu_dict(g) for g in gpus],
                "cpus": [c.model_dump(mode="json") for c in cpus],
                "boards": [b.model_dump(mode="json", by_alias=True) for b in boards],
            }
        )
        return
    if not (gpus or cpus or boards):
        close = []
        if q:
            for finder, k in (
                (closest_gpu_names, "gpu"),
                (closest_cpu_names, "cpu"),
                (closest_board_names, "board"),
            ):
                if k in want:
                    close += finder(q, 2)
        hint = f"; close: {', '.join(close)}" if close else ""
        err.print(escape(f"nothing in the catalog matches {q!r}{hint}"), highlight=False)
        return
    if gpus:
        out.print(_gpu_table(gpus))
    if cpus:
        out.print(_cpu_table(cpus))
    if boards:
        out.print(_board_table(boards))


def _gpu_dict(g: Any) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "vendor": g.vendor,
        "architecture": g.architecture,
        "compute_capability": g.compute_capability,
        "memory_gib": g.memory_gib,
        "memory_type": g.memory_type,
        "memory_bandwidth_gbs": g.memory_bandwidth_gbs,
        "peak_tflops": dict(g.peak_tflops),
        "tdp_w": g.tdp_w,
        "transient_peak_w": g.transient_peak_w,
        "pcie_gen": g.pcie_gen,
        "pcie_width": g.pcie_width,
        "form_factor": g.form_factor,
        "slot_width": g.slot_width,
        "nvlink_version": g.nvlink_version,
        "nvlink_links": g.nvlink_links,
        "nvlink_gbs_per_link": g.nvlink_gbs_per_link,
        "p2p_over_pcie": g.p2p_over_pcie,
        "aliases": list(g.aliases),
        "sources": dict(g.sources),
    }


def _v(x: Any, unit: str = "") -> str:
    return "—" if x is None else f"{x:g}{unit}"


def _gpu_table(gpus: list[Any]) -> Table:
    t = Table(title="GPUs", title_justify="left")
    for col in (
        "name",
        "architecture",
        "memory",
        "GB/s",
        "bf16/fp16",
        "fp32",
        "TDP",
        "PCIe",
        "NVLink",
        "P2P",
    ):
        t.add_column(col, justify="left" if col in ("name", "architecture") else "right")
    for g in gpus:
        half = g.peak_tflops.get("bf16", g.peak_tflops.get("fp16"))
        nvlink = (
            f"{g.nvlink_links} x {g.nvlink_gbs_per_link:g}" if g.nvlink_links is not None else "—"
        )
        pcie = f"Gen{g.pcie_gen} x{g.pcie_width}" if g.pcie_gen else "—"
        if g.form_factor and g.form_factor != "pcie":
            pcie += f" ({g.form_factor.upper()})"
        t.add_row(
            escape(g.name),
            escape(g.architecture),
            f"{g.memory_gib:g} GiB",
            _v(g.memory_bandwidth_gbs),
            _v(half),
            _v(g.peak_tflops.get("fp32")),
            _v(g.tdp_w, " W"),
            pcie,
            nvlink,
            {True: "yes", False: "no", None: "?"}[g.p2p_over_pcie],
        )
    return t


def _cpu_table(cpus: list[Any]) -> Table:
    t = Table(title="CPUs", title_justify="left")
    for col in ("name", "family", "socket", "cores", "TDP", "PCIe", "sockets"):
        t.add_column(col, justify="right" if col in ("cores", "TDP", "sockets") else "left")
    for c in cpus:
        tdp = f"{c.tdp_w:g} W" + (f" ({c.max_power_w:g} max)" if c.max_power_w else "")
        t.add_row(
            escape(c.name),
            escape(c.family),
            escape(c.socket),
            f"{c.cores}/{c.threads}",
            tdp,
            f"Gen{c.pcie_gen} x{c.pcie_lanes}",
            str(c.max_sockets),
        )
    return t


def _board_table(boards: list[Any]) -> Table:
    t = Table(title="Motherboards", title_justify="left", show_lines=True)
    for col in ("name", "socket", "chipset", "slots (electrical; via)"):
        t.add_column(col)
    for b in boards:
        slots = []
        for s in b.slots:
            text = f"{s.name} Gen{s.gen} x{s.width}"
            if s.kind != "pcie":
                text += f" {s.kind.upper()}"
            if s.via != "cpu":
                text += f" via {s.via}"
            for rule in s.shares:
                text += (
                    f" (x{rule.width} with {'/'.join(rule.when)})"
                    if rule.width
                    else (f" (off with {'/'.join(rule.when)})")
                )
            slots.append(text)
        t.add_row(escape(b.name), escape(b.socket), escape(b.chipset), escape("; ".join(slots)))
    return t
