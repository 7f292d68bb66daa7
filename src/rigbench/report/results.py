"""Terminal tables of benchmark results, one per benchmark, GPU pairs as matrices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from rich.console import Console
from rich.table import Table

from rigbench.formatting import num, ratio_cell, size, verdict_cell
from rigbench.records import Result


def _spread(r: Result) -> str:
    if r.spread is None or r.spread.n < 2:
        return "—"
    return f"{num(r.spread.p10)}–{num(r.spread.p90)}"


def _reference(r: Result) -> str:
    ref = r.expected if r.expected else r.peak
    return num(ref) if ref else "—"


def _value(r: Result) -> str:
    if r.status == "skipped":
        return "[dim]skipped[/dim]"
    if r.status == "failed":
        return "[red]FAILED[/red]"
    return num(r.value)


def _verdict(r: Result) -> str:
    j = r.judgement
    return verdict_cell(j.verdict, j.cause) if j else "—"


def _healthy(r: Result) -> str:
    """The healthy range the figure was judged against."""
    j = r.judgement
    if j is None or (j.low is None and j.high is None):
        return "—"
    return f"{num(j.low)}–{num(j.high)}"


def _conditions(r: Result) -> str:
    """SM clock, power and the throttle reasons that held the clock, e.g.
    "1470 MHz 690 W cap 100%"; "n/a" where the backend has no readings."""
    c = r.conditions
    if c is None:
        return "—"
    if not c.gpus:
        return "[dim]n/a[/dim]" if c.unavailable else "—"
    parts = []
    for g in c.gpus:
        bits = []
        if g.sm_clock_mean_mhz is not None:
            bits.append(f"{g.sm_clock_mean_mhz:.0f} MHz")
        if g.power_mean_w is not None:
            bits.append(f"{g.power_mean_w:.0f} W")
        if r.benchmark in ("hostlink", "p2p") and g.pcie_gen and g.pcie_width:
            bits.append(f"Gen{g.pcie_gen} x{g.pcie_width}")
        bits += [
            f"{_THROTTLE_SHORT.get(k, k)} {100 * v:.0f}%"
            for k, v in sorted(g.throttle.items(), key=lambda kv: -kv[1])
            if v >= 0.05 and k in _THROTTLE_SHORT
        ]
        if g.other_processes:
            bits.append(f"+{g.other_processes} proc")
        parts.append(" ".join(bits) or "—")
    return "; ".join(parts)


_THROTTLE_SHORT = {
    "sw_power_cap": "cap",
    "hw_slowdown": "hw-slow",
    "sw_thermal": "thermal",
    "hw_thermal": "hw-thermal",
    "hw_power_brake": "brake",
    "applications_clocks": "app-clocks",
}


Column = tuple[str, Callable[[Result], str]]


def param(key: str) -> Callable[[Result], str]:
    return lambda r: str(r.params.get(key, "—"))


def _shape(r: Result) -> str:
    p = r.params
    if "best_m" in p:
        return f"best {p['best_m']}×{p['best_n']}×{p['best_k']}"
    return f"{p['m']}×{p['n']}×{p['k']}" if "m" in p else "—"


def _of_clock(r: Result) -> str:
    """The figure against the peak at the clock observed (peak × clock / max clock)."""
    at = r.params.get("peak_at_clock")
    share = r.params.get("of_peak_at_clock")
    return f"{100 * share:.0f}% of {num(at)}" if at and share else "—"


def _bytes(r: Result) -> str:
    return size(int(r.params["bytes"])) if "bytes" in r.params else "—"


def _device_table(title: str, results: list[Result], key_cols: list[Column]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("device")
    for header, _ in key_cols:
        t.add_column(header)
    unit = next((r.unit for r in results if r.unit), "")
    t.add_column(f"median {unit}", justify="right")
    t.add_column("p10–p90", justify="right")
    t.add_column("expected / peak", justify="right")
    t.add_column("ratio", justify="right")
    t.add_column("healthy", justify="right")
    t.add_column("conditions")
    t.add_column("verdict")
    for r in results:
        t.add_row(
            ",".join(r.devices),
            *[fn(r) for _, fn in key_cols],
            _value(r),
            _spread(r),
            _reference(r),
            ratio_cell(r.ratio),
            _healthy(r),
            _conditions(r),
            _verdict(r),
        )
    return t


def _pair_matrix(
    title: str, results: list[Result], labels: list[str], symmetric: bool = False
) -> Table:
    cells: dict[tuple[str, str], Result] = {}
    for res in results:
        if len(res.devices) == 2:
            cells[(res.devices[0], res.devices[1])] = res
    t = Table(title=title, title_justify="left")
    t.add_column("from \\ to")
    for lab in labels:
        t.add_column(lab, justify="right")
    for src in labels:
        row = []
        for dst in labels:
            r: Result | None = cells.get((src, dst))
            if r is None:
                # bidir is one cell per pair; a failed pair fails both directions
                other = cells.get((dst, src))
                if other is not None and (symmetric or other.status != "ok"):
                    r = other
            if src == dst or r is None:
                row.append("—")
            elif r.status != "ok":
                row.append("[red]FAIL[/red]")
            else:
                extra = f" {ratio_cell(r.ratio)}" if r.ratio is not None else ""
                colour = {"normal": "green", "below_normal": "yellow", "fault": "red"}.get(
                    r.judgement.verdict if r.judgement else "", ""
                )
                cell = f"{num(r.value)}{extra}"
                row.append(f"[{colour}]{cell}[/{colour}]" if colour else cell)
        t.add_row(src, *row)
    return t


# Parameters that say which variant a workload row is, in the order they are shown.
_VARIANT_KEYS = ("world_size", "engine", "dtype", "context", "batch", "compile", "mode", "model")


def _generic_table(title: str, results: list[Result]) -> Table:
    """Any benchmark without a table of its own: one row per figure, each with its unit."""
    t = Table(title=title, title_justify="left")
    for col in ("device", "metric", "variant", "median", "unit", "p10–p90", "expected / peak"):
        t.add_column(col, justify="right" if col in ("median", "p10–p90") else "left")
    t.add_column("ratio", justify="right")
    t.add_column("conditions")
    t.add_column("verdict")
    for r in results:
        variant = " ".join(f"{k}={r.params[k]}" for k in _VARIANT_KEYS if k in r.params)
        t.add_row(
            ",".join(r.devices),
            r.metric,
            variant or "—",
            _value(r),
            r.unit,
            _spread(r),
            _reference(r),
            ratio_cell(r.ratio),
            _conditions(r),
            _verdict(r),
        )
    return t


def render_results(results: Iterable[Result], console: Console) -> None:
    by_bench: dict[str, list[Result]] = defaultdict(list)
    notes: list[Result] = []
    for r in results:
        # a whole benchmark that could not run here is a note, not a table row
        (notes if r.status == "skipped" and not r.devices else by_bench[r.benchmark]).append(r)
    for bench, rs in by_bench.items():
        if bench == "gemm":
            console.print(
                _device_table(
                    "gemm — matmul (burst: single launches at boost; sustained: at the power cap)",
                    rs,
                    [
                        ("metric", lambda r: r.metric),
                        ("M×N×K", _shape),
                        ("of clock ceiling", _of_clock),
                        ("J/TFLOP", lambda r: num(r.params.get("joules_per_tflop"), 2)),
                    ],
                )
            )
        elif bench == "memory":
            console.print(
                _device_table("memory — device copy (read + write)", rs, [("size", _bytes)])
            )
        elif bench == "hostlink":
            console.print(
                _device_table(
                    "hostlink — host⇄device",
                    rs,
                    [
                        ("dir", lambda r: r.metric),
                        ("size", _bytes),
                        ("host memory", param("host_memory")),
                    ],
                )
            )
        elif bench == "p2p":
            labels = sorted({d for r in rs for d in r.devices}, key=lambda s: (len(s), s))
            for metric, title in (
                ("unidir", "p2p unidirectional GB/s (ratio to expected)"),
                ("bidir", "p2p bidirectional GB/s, both directions together"),
                ("latency", "p2p one-way latency, µs"),
            ):
                sub = [r for r in rs if r.metric == metric]
                if sub:
                    console.print(_pair_matrix(title, sub, labels, symmetric=metric == "bidir"))
        elif bench == "collectives":
            t = Table(title="collectives", title_justify="left")
            for col in (
                "op",
                "size",
                "busbw GB/s",
                "algbw GB/s",
                "p50 µs",
                "p99 µs",
                "expected",
                "ratio",
                "verdict",
            ):
                t.add_column(col, justify="right" if col not in ("op", "verdict") else "left")
            for r in rs:
                if r.metric != "busbw" and r.status == "ok":
                    continue
                p = r.params
                t.add_row(
                    str(p.get("op", "—")),
                    size(int(p["bytes"])) if "bytes" in p else "—",
                    _value(r),
                    num(p.get("algbw_gbs")),
                    num(p.get("time_us_p50")),
                    num(p.get("time_us_p99")),
                    _reference(r),
                    ratio_cell(r.ratio),
                    _verdict(r),
                )
            console.print(t)
        else:
            console.print(_generic_table(bench, rs))
    for r in notes:
        console.print(f"[dim]{r.benchmark}: skipped — {r.message}[/dim]")
    problems = [r for rs in by_bench.values() for r in rs if r.status == "failed"]
    for r in problems:
        console.print(f"[red]✗[/red] {r.benchmark} {r.metric} {','.join(r.devices)}: {r.message}")
