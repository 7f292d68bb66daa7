"""Build the write-up (`Document`) from stored runs, an optional plan and cost analysis.

Every section of `document.SECTIONS` is always there; one with nothing to show says so in
one line. Verdicts are the stored ones (a result's `judgement` when it has one, else its
status); nothing is judged here.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from rigbench import __version__
from rigbench.privacy import scrub, scrub_argv
from rigbench.records import SEVERITY_RANK, utc_now
from rigbench.report import charts
from rigbench.report.collect import ReportInput, RunData
from rigbench.report.document import (
    SECTIONS,
    Block,
    Cell,
    Chart,
    Document,
    Facts,
    Section,
    Table,
    Text,
    Tone,
)
from rigbench.report.format import gib, num, size

MICRO = ("gemm", "memory", "hostlink", "p2p", "collectives")
WORKLOADS = ("train", "infer", "nbody")
VERDICT_TONE: dict[str, Tone] = {
    "normal": "ok",
    "below_normal": "warning",
    "fault": "error",
    "no_reference": "info",
}
STATUS_TONE: dict[str, Tone] = {"ok": "ok", "failed": "error", "skipped": "skipped"}
# The params that tell apart results of one benchmark and metric (a label's parts, in order).
LABEL_PARAMS = (
    "op",
    "dtype",
    "host_memory",
    "engine",
    "model",
    "batch",
    "context",
    "world_size",
    "parallel",
    "compile",
)


def build_document(
    data: ReportInput,
    *,
    plan: Any = None,
    build: Any = None,
    cost: Any = None,
    cost_note: str | None = None,
    include_ids: bool = False,
    title: str | None = None,
    comparison: dict[str, Any] | None = None,
) -> Document:
    """`plan` is a plan.PlanReport and `build` its plan.Build (with --build); `cost` a
    plan.cost.CostReport, or `cost_note` why there is none; `comparison` a
    judge.compare.Comparison.to_dict() (with --against)."""
    ctx = _Context(include_ids)
    makers = {
        "machine": lambda: _machine(data, ctx),
        "build": lambda: _build(plan, build),
        "benchmarks": lambda: _benchmarks(data, ctx),
        "workloads": lambda: _workloads(data, ctx),
        "doctor": lambda: _doctor(data),
        "burnin": lambda: _burnin(data, ctx, build),
        "comparison": lambda: _comparison(comparison),
        "cost": lambda: _cost(cost, cost_note),
        "provenance": lambda: _provenance(data, ctx),
    }
    sections = []
    for sid, heading in SECTIONS:
        blocks, empty = makers[sid]()
        sections.append(Section(id=sid, title=heading, blocks=blocks, empty=empty))
    if title is None:
        title = f"rigbench report: {plan.rig}" if plan is not None else "rigbench report"
    return Document(
        title=title,
        generated_at=utc_now(),
        sections=sections,
        meta={"rigbench": __version__, "runs": [d.run.id for d in data.runs]},
    )


class _Context:
    def __init__(self, include_ids: bool) -> None:
        self.include_ids = include_ids
        self._names: set[str] = set()

    def clean(self, value: Any) -> Any:
        return value if self.include_ids else scrub(value)

    def argv(self, argv: list[str]) -> list[str]:
        return argv if self.include_ids else scrub_argv(argv)

    def chart(self, name: str, title: str, svg: bytes) -> Chart:
        base, k = name, 2
        while name in self._names:
            name, k = f"{base}-{k}", k + 1
        self._names.add(name)
        return Chart(name=name, title=title, svg=svg)


Made = tuple[list[Block], str | None]


# --- helpers ----------------------------------------------------------------------------------


def _verdict(r: dict[str, Any]) -> Cell:
    j = r.get("judgement")
    if j:
        text = j.get("verdict", "?").replace("_", " ")
        if j.get("cause"):
            text += f" ({j['cause']})"
        return Cell(text, VERDICT_TONE.get(j.get("verdict", ""), ""))
    status = r.get("status", "ok")
    if status == "ok":  # measured and checked, but nothing judged it against a reference
        return Cell("measured, not judged")
    return Cell(status, STATUS_TONE.get(status, ""))


def _healthy(r: dict[str, Any]) -> str:
    j = r.get("judgement") or {}
    lo, hi, typical = j.get("low"), j.get("high"), j.get("typical")
    if lo is None and hi is None and typical is None:
        return "—"
    text = f"{num(lo)}–{num(hi)}" if lo is not None and hi is not None else ""
    if typical is not None:
        text += f" (typical {num(typical)})" if text else f"typical {num(typical)}"
    return text


def _note(r: dict[str, Any]) -> str:
    parts = []
    j = r.get("judgement") or {}
    for key in ("note", "source"):
        if j.get(key):
            parts.append(str(j[key]))
    if r.get("message"):
        parts.append(str(r["message"]))
    conditions = r.get("conditions")
    if conditions:
        parts.append(_conditions_text(conditions))
    if r.get("basis"):
        parts.append(str(r["basis"]))
    return "; ".join(parts)


def _conditions_text(c: Any) -> str:
    """What the GPUs ran under, short: per GPU mean SM clock, mean power against the limit,
    peak temperature, PCIe link, throttling and other processes, where recorded."""
    if not isinstance(c, dict) or not isinstance(c.get("gpus"), list):
        return f"conditions: {_short(c)}"
    per_gpu = []
    for g in c["gpus"]:
        if not isinstance(g, dict):
            continue
        bits = []
        if g.get("sm_clock_mean_mhz") is not None:
            bits.append(f"SM {num(g['sm_clock_mean_mhz'])} MHz")
        if g.get("power_mean_w") is not None:
            limit = g.get("power_limit_w")
            bits.append(f"{num(g['power_mean_w'])} W" + (f" of {num(limit)} W" if limit else ""))
        if g.get("temp_max_c") is not None:
            bits.append(f"{num(g['temp_max_c'])} °C")
        if g.get("temp_mem_max_c") is not None:
            bits.append(f"VRAM {num(g['temp_mem_max_c'])} °C")
        if g.get("pcie_gen") is not None:
            bits.append(f"PCIe Gen{g['pcie_gen']} x{g.get('pcie_width', '?')}")
        throttled = [k for k, v in (g.get("throttle") or {}).items() if v]
        if throttled:
            bits.append("throttled: " + ", ".join(map(str, throttled)))
        if g.get("other_processes"):
            bits.append(f"{g['other_processes']} other process(es)")
        per_gpu.append(f"GPU {g.get('gpu', '?')}: " + ", ".join(bits) if bits else "")
    text = "; ".join(p for p in per_gpu if p) or "none recorded"
    source = f" ({c['source']})" if c.get("source") else ""
    return f"conditions{source}: {text}"


def _label(r: dict[str, Any]) -> str:
    p = r.get("params") or {}
    parts = [
        "→".join(r.get("devices") or [])
        if r["benchmark"] == "p2p"
        else ",".join(r.get("devices") or [])
    ]
    for key in LABEL_PARAMS:
        if key in p and p[key] is not None:
            parts.append(
                f"{key}={p[key]}" if key in ("batch", "context", "world_size") else str(p[key])
            )
    if "bytes" in p and r["benchmark"] in ("hostlink", "collectives", "memory", "p2p"):
        parts.append(size(int(p["bytes"])))
    return " ".join(x for x in parts if x)


def _reference(r: dict[str, Any]) -> float | None:
    return r.get("expected") or r.get("peak")


def _ratio(r: dict[str, Any]) -> str:
    ratio = r.get("ratio")
    return "—" if ratio is None else f"{100 * ratio:.0f}%"


def result_table(results: list[dict[str, Any]], caption: str | None = None) -> Table:
    rows = []
    for r in results:
        ref = _reference(r)
        kind = "expected" if r.get("expected") else "peak" if r.get("peak") else ""
        rows.append(
            [
                Cell(r["metric"]),
                Cell(_label(r)),
                Cell(num(r.get("value")) if r.get("value") is not None else "—", numeric=True),
                Cell(r.get("unit") or ""),
                Cell(f"{num(ref)} ({kind})" if ref else "—", numeric=True),
                Cell(_ratio(r), numeric=True),
                Cell(_healthy(r), numeric=True),
                _verdict(r),
                Cell(_note(r)),
            ]
        )
    return Table(
        headers=[
            "metric",
            "what",
            "median",
            "unit",
            "expected / peak",
            "ratio",
            "healthy range",
            "verdict",
            "notes",
        ],
        rows=rows,
        caption=caption,
    )


def _bars_of(ctx: _Context, name: str, title: str, results: list[dict[str, Any]]) -> Chart:
    unit = next((r["unit"] for r in results if r.get("unit")), "")
    return ctx.chart(
        name,
        title,
        charts.bars(
            [_label(r) for r in results],
            [r.get("value") for r in results],
            [_reference(r) for r in results],
            unit,
            title,
            reference_label="expected / peak",
        ),
    )


def _gpu_order(labels: set[str]) -> list[str]:
    def key(s: str) -> tuple[str, int]:
        digits = "".join(ch for ch in s if ch.isdigit())
        return (s.rstrip("0123456789"), int(digits) if digits else -1)

    return sorted(labels, key=key)


# --- sections ---------------------------------------------------------------------------------


def _machine(data: ReportInput, ctx: _Context) -> Made:
    if not data.runs:
        return [], "No runs stored: run rigbench bench, doctor or burnin first."
    latest = data.runs[-1].run
    m = ctx.clean(latest.machine)
    v = latest.versions
    facts = [
        ("hostname", str(m.get("hostname") or "—")) if ctx.include_ids else None,
        ("CPU", f"{m.get('cpu') or '—'} ({m.get('cpu_cores') or '?'} cores)"),
        ("RAM", gib(m.get("ram_bytes"))),
        ("OS", str(m.get("os") or "—")),
        ("kernel", str(m.get("kernel") or "—")),
        ("backend", latest.backend),
        ("driver", str(v.get("driver") or "—")),
        ("CUDA (driver)", str(v.get("cuda_driver") or "—")),
        ("torch", f"{v.get('torch') or '—'} (CUDA {v.get('torch_cuda') or '—'})"),
        ("NCCL", str(v.get("nccl") or "—")),
    ]
    blocks: list[Block] = [Facts([f for f in facts if f is not None])]
    kinds = {_machine_kind(d.run.machine) for d in data.runs}
    if len(kinds) > 1:
        blocks.insert(
            0,
            Text(
                f"These runs come from {len(kinds)} different machines; shown is run "
                f"#{latest.id}'s. Compare figures across machines with care.",
                "warning",
            ),
        )
    gpus = m.get("gpus") or []
    if gpus:
        headers = ["index", "name", "bus id"] + (["UUID"] if ctx.include_ids else [])
        rows = [
            [Cell(str(g.get("index"))), Cell(str(g.get("name"))), Cell(str(g.get("bus_id") or "—"))]
            + ([Cell(str(g.get("uuid") or "—"))] if ctx.include_ids else [])
            for g in gpus
        ]
        blocks.append(Table(headers=headers, rows=rows, caption="GPUs"))
        topo = m.get("topology") or {}
        if topo:
            idx = [int(g["index"]) for g in gpus]
            rows = []
            for a in idx:
                row = [Cell(f"GPU{a}")]
                for b in idx:
                    code = "X" if a == b else topo.get(f"{min(a, b)}-{max(a, b)}", "—")
                    row.append(Cell(str(code)))
                rows.append(row)
            blocks.append(
                Table(
                    headers=[""] + [f"GPU{b}" for b in idx],
                    rows=rows,
                    caption="How each pair is connected (as nvidia-smi topo -m)",
                )
            )
    else:
        blocks.append(Text("No NVIDIA GPUs in this run: benchmarks ran on the CPU."))
    return blocks, None


def _machine_kind(m: dict[str, Any]) -> tuple[Any, ...]:
    return (m.get("cpu"), m.get("ram_bytes"), tuple(g.get("name") for g in m.get("gpus") or []))


def _build(plan: Any, build: Any) -> Made:
    if plan is None:
        return [], "No build file given (rigbench report --build BUILD.toml adds the parts list)."
    blocks: list[Block] = [Text(f"{plan.rig} ({Path(plan.path).name})")]
    parts: list[list[Cell]] = []
    for g in plan.gpus:
        parts.append(
            [
                Cell(f"GPU {g.get('index')}"),
                Cell(str(g.get("model"))),
                Cell(
                    f"{num(g.get('power_w'))} W, {g.get('link') or '—'}, slot "
                    f"{g.get('slot') or '—'}, NVLink {g.get('nvlink') or '—'}"
                ),
            ]
        )
    if build is not None:
        if getattr(build, "cpu", None) is not None:
            parts.append([Cell("CPU"), Cell(build.cpu.name), Cell(f"× {build.cpu_count}")])
        if getattr(build, "board", None) is not None:
            parts.append([Cell("motherboard"), Cell(build.board.name), Cell("")])
        for p in getattr(build, "psus", ()):
            watts = " + ".join(f"{w:.0f} W" for w in p.watts_each)
            feeds = ", ".join(map(str, p.gpus)) or "—"
            parts.append(
                [
                    Cell(f"PSU {p.label}"),
                    Cell(p.model or f"{p.kind.upper()} {watts}"),
                    Cell(
                        f"{watts}, feeds GPUs {feeds}"
                        + (" and the system" if p.system else "")
                        + (", ATX 3.0" if p.atx3 else "")
                    ),
                ]
            )
        wall = getattr(build, "wall", None)
        if wall is not None:
            parts.append(
                [
                    Cell("wall"),
                    Cell(f"{wall.volts:.0f} V × {wall.amps:.0f} A"),
                    Cell(f"{wall.circuits} circuit(s), continuous factor {wall.continuous_factor}"),
                ]
            )
    blocks.append(Table(headers=["part", "model", "details"], rows=parts, caption="Parts list"))
    blocks.append(_findings_table(list(plan.findings), "Plan findings"))
    if plan.predictions:
        blocks.append(
            Table(
                headers=["prediction", "value", "unit", "basis"],
                rows=[
                    [Cell(p.what), Cell(num(p.value), numeric=True), Cell(p.unit), Cell(p.basis)]
                    for p in plan.predictions
                ],
                caption="What the rig should reach",
            )
        )
    return blocks, None


def _short(v: Any) -> str:
    if isinstance(v, float):
        return num(v, 2)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    return str(v)


def _findings_table(findings: list[Any], caption: str) -> Table:
    ordered = sorted(findings, key=lambda f: SEVERITY_RANK.get(f.severity, 9))
    rows = []
    for f in ordered:
        evidence = ", ".join(f"{k}={_short(v)}" for k, v in (f.evidence or {}).items())
        rows.append(
            [
                Cell(f.severity, f.severity),
                Cell(f.id),
                Cell(f.title),
                Cell(f.why or ""),
                Cell(f.fix or ""),
                Cell(evidence),
                Cell(f.source or ""),
            ]
        )
    return Table(
        headers=["severity", "id", "finding", "why", "fix", "evidence", "source"],
        rows=rows,
        caption=caption,
    )


def _benchmarks(data: ReportInput, ctx: _Context) -> Made:
    blocks: list[Block] = []
    for bench in MICRO:
        results = ctx.clean(data.results(bench))
        if not results:
            continue
        blocks.append(Text(bench, tone="info"))
        blocks.append(result_table(results, caption=bench))
        measured = [r for r in results if r.get("value") is not None or r["status"] == "failed"]
        if bench == "p2p":
            blocks.extend(_p2p_charts(ctx, results))
        elif bench == "collectives":
            blocks.extend(_collective_charts(ctx, results))
        elif measured:
            by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in measured:
                by_metric[r["metric"]].append(r)
            for metric, rs in by_metric.items():
                blocks.append(
                    _bars_of(
                        ctx,
                        f"{bench}-{metric}",
                        f"{bench} {metric}: measured against expected / peak",
                        rs,
                    )
                )
    if not blocks:
        return [], "No benchmark results in these runs (rigbench bench measures them)."
    return blocks, None


def _p2p_charts(ctx: _Context, results: list[dict[str, Any]]) -> list[Block]:
    out: list[Block] = []
    gpus = _gpu_order({d for r in results for d in r.get("devices") or []})
    if len(gpus) < 2:
        return out
    at = {g: i for i, g in enumerate(gpus)}
    for metric, unit in (("unidir", "GB/s"), ("bidir", "GB/s"), ("latency", "µs")):
        rs = [r for r in results if r["metric"] == metric and len(r.get("devices") or []) == 2]
        if not rs:
            continue
        matrix: list[list[float | None]] = [[None] * len(gpus) for _ in gpus]
        notes = [[""] * len(gpus) for _ in gpus]
        for r in rs:
            a, b = r["devices"]
            i, j = at[a], at[b]
            if r.get("value") is not None:
                matrix[i][j] = r["value"]
                if r.get("ratio") is not None:
                    notes[i][j] = f"{100 * r['ratio']:.0f}%"
            else:
                notes[i][j] = r["status"]
            if metric == "bidir":
                matrix[j][i], notes[j][i] = matrix[i][j], notes[i][j]
        title = f"p2p {metric} ({unit}; % of expected; row → column)"
        out.append(
            ctx.chart(
                f"p2p-{metric}", title, charts.heatmap(matrix, gpus, gpus, unit, title, notes)
            )
        )
    return out


def _collective_charts(ctx: _Context, results: list[dict[str, Any]]) -> list[Block]:
    rs = [r for r in results if r["metric"] == "busbw" and (r.get("params") or {}).get("bytes")]
    if not rs:
        return []
    ops = list(dict.fromkeys(r["params"]["op"] for r in rs))
    sizes = sorted({int(r["params"]["bytes"]) for r in rs})
    matrix: list[list[float | None]] = [[None] * len(sizes) for _ in ops]
    notes = [[""] * len(sizes) for _ in ops]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in rs:
        i, j = ops.index(r["params"]["op"]), sizes.index(int(r["params"]["bytes"]))
        if r.get("value") is not None:
            matrix[i][j] = r["value"]
            if r.get("ratio") is not None:
                notes[i][j] = f"{100 * r['ratio']:.0f}%"
            xs, ys = series.setdefault(r["params"]["op"], ([], []))
            xs.append(float(r["params"]["bytes"]))
            ys.append(r["value"])
        else:
            notes[i][j] = r["status"]
    expected = {r.get("expected") for r in rs if r.get("expected")}
    refs = {f"expected {num(e)} GB/s": float(e) for e in expected if e is not None}
    title = "collectives busbw (GB/s; % of expected) by operation and message size"
    out: list[Block] = [
        ctx.chart(
            "collectives-busbw-matrix",
            title,
            charts.heatmap(matrix, ops, [size(s) for s in sizes], "GB/s", title, notes),
        )
    ]
    line_title = "collectives busbw against message size"
    out.append(
        ctx.chart(
            "collectives-busbw-size",
            line_title,
            charts.lines(
                series,
                "message size (bytes)",
                "busbw (GB/s)",
                line_title,
                logx=True,
                logy=True,
                references=refs,
            ),
        )
    )
    return out


def _workloads(data: ReportInput, ctx: _Context) -> Made:
    blocks: list[Block] = []
    train = ctx.clean(data.results("train"))
    if train:
        blocks.append(Text("train", tone="info"))
        blocks.append(result_table(train, caption="train: tokens/s, MFU, scaling, communication"))
        blocks.extend(_scaling_chart(ctx, train))
    infer = ctx.clean(data.results("infer"))
    if infer:
        blocks.append(Text("infer", tone="info"))
        blocks.append(result_table(infer, caption="infer: prefill and decode against the roofline"))
        decode = [r for r in infer if r["metric"] == "decode_tokens_per_s"]
        if decode:
            blocks.append(
                _bars_of(ctx, "infer-decode", "decode tokens/s against the roofline", decode)
            )
    nbody = ctx.clean(data.results("nbody"))
    if nbody:
        blocks.append(Text("nbody", tone="info"))
        blocks.append(result_table(nbody, caption="nbody"))
    if not blocks:
        return [], (
            "No workload results in these runs "
            "(rigbench bench --only train,infer,nbody measures them)."
        )
    energy = [
        r
        for d in data.runs
        for r in d.results
        if "energy_per_token" in r["metric"] or "joules_per_token" in r["metric"]
    ]
    if energy:
        blocks.append(result_table(ctx.clean(energy), caption="energy per token"))
    else:
        blocks.append(Text("Energy per token: not measured in these runs."))
    return blocks, None


def _scaling_chart(ctx: _Context, train: list[dict[str, Any]]) -> list[Block]:
    rates = [r for r in train if r["metric"] == "tokens_per_s" and r.get("value")]
    groups: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rates:
        p = r.get("params") or {}
        name = f"{p.get('parallel', '?')}" + (" compiled" if p.get("compile") else "")
        groups[name][int(p.get("world_size", 1))] = r["value"]
    series = {k: (sorted(v), [v[w] for w in sorted(v)]) for k, v in groups.items() if len(v) > 1}
    if not series:
        return []
    ideal = {}
    for k, v in groups.items():
        if 1 in v and len(v) > 1:
            ws = sorted(v)
            ideal[f"{k}: N × one device"] = ([float(w) for w in ws], [w * v[1] for w in ws])
    title = "training throughput from 1 to N devices"
    return [
        ctx.chart(
            "train-scaling",
            title,
            charts.lines(
                {k: ([float(x) for x in xs], ys) for k, (xs, ys) in series.items()},
                "devices",
                "tokens/s",
                title,
                ideal=ideal,
            ),
        )
    ]


def _doctor(data: ReportInput) -> Made:
    runs = [d for d in data.runs if d.findings]
    if not runs:
        return [], "No doctor findings in these runs (rigbench doctor checks the rig)."
    blocks: list[Block] = []
    for d in runs:
        counts: dict[str, int] = defaultdict(int)
        for f in d.findings:
            counts[f.severity] += 1
        summary = ", ".join(f"{counts[s]} {s}" for s in SEVERITY_RANK if counts[s])
        blocks.append(Text(f"run #{d.run.id} ({d.run.command}, {d.run.started_at}): {summary}"))
        blocks.append(_findings_table(d.findings, f"findings of run #{d.run.id}"))
    return blocks, None


def _burnin(data: ReportInput, ctx: _Context, build: Any = None) -> Made:
    blocks: list[Block] = []
    for d in data.runs:
        rig = next(
            (r for r in d.results if r["benchmark"] == "burnin" and r["metric"] == "rig_verdict"),
            None,
        )
        if rig is None and not (d.run.command == "monitor" and d.telemetry):
            continue
        blocks.extend(_burnin_run(d, rig, ctx, build))
    if not blocks:
        return [], "No burn-in in these runs (rigbench burnin loads the GPUs and judges them)."
    return blocks, None


def _burnin_run(
    d: RunData, rig: dict[str, Any] | None, ctx: _Context, build: Any = None
) -> list[Block]:
    out: list[Block] = []
    params = (rig or {}).get("params") or {}
    totals = params.get("totals") or {}
    if rig is not None:
        verdict = "PASS" if rig.get("status") == "ok" else "FAIL"
        tone: Tone = "ok" if verdict == "PASS" else "error"
        interrupted = " (interrupted)" if params.get("interrupted") else ""
        out.append(Text(f"burn-in run #{d.run.id}: rig verdict {verdict}{interrupted}", tone))
    else:
        out.append(Text(f"monitor run #{d.run.id}: recorded telemetry (no load, no verdict)"))
    channels = {int(g["gpu"]): g for g in (d.telemetry.gpus if d.telemetry else [])}
    per_gpu = [r for r in d.results if r["benchmark"] == "burnin" and r["metric"] == "verdict"]
    if per_gpu:
        rows = []
        for r in per_gpu:
            p = r.get("params") or {}
            gpu_index = _index(r.get("devices") or [])
            limit = (
                channels.get(gpu_index, {}).get("power_limit_w") if gpu_index is not None else None
            )
            reasons = "; ".join(x["message"] for x in p.get("reasons") or [])
            rows.append(
                [
                    Cell(",".join(r.get("devices") or [])),
                    Cell(str(p.get("name") or "")),
                    Cell(
                        "pass" if r.get("status") == "ok" else "FAIL",
                        "ok" if r.get("status") == "ok" else "error",
                    ),
                    Cell(num(p.get("gemm_tflops_median")), numeric=True),
                    Cell(
                        num(p.get("power_peak_w"))
                        + (" (1 s avg)" if p.get("power_peak_kind") == "average" else ""),
                        numeric=True,
                    ),
                    Cell(num(p.get("power_mean_w")), numeric=True),
                    Cell(num(limit), numeric=True),
                    Cell(num(p.get("temp_gpu_peak_c")), numeric=True),
                    Cell(reasons),
                ]
            )
        out.append(
            Table(
                headers=[
                    "device",
                    "name",
                    "verdict",
                    "matmul TFLOP/s",
                    "peak W",
                    "mean W",
                    "power limit W",
                    "peak °C",
                    "reasons",
                ],
                rows=rows,
                caption="per GPU (peak W: instantaneous where the GPU reports it)",
            )
        )
    if totals:
        out.append(
            Facts(
                [
                    ("duration", f"{num(totals.get('duration_s'))} s"),
                    ("total GPU power peak", f"{num(totals.get('power_peak_w'))} W"),
                    ("total GPU power mean", f"{num(totals.get('power_mean_w'))} W"),
                    (
                        f"largest rise in {num(totals.get('power_rise_window_s'))} s",
                        f"{num(totals.get('power_rise_w'))} W",
                    ),
                    ("idle→full steps", str(totals.get("idle_to_full_steps", "—"))),
                    (
                        "all_reduce busbw (median)",
                        f"{num(totals.get('allreduce_busbw_gbps_median'))} GB/s",
                    ),
                ],
                title="rig totals",
            )
        )
    rig_reasons: list[dict[str, Any]] = params.get("reasons") or []
    limits = [x for x in rig_reasons if x.get("code") in ("psu", "circuit", "build")]
    if limits:
        out.append(_limits_table(limits, "peaks against the PSUs and circuits of the build"))
    elif build is not None and d.telemetry and d.telemetry.samples:
        out.append(
            _limits_table(
                _limits_from_telemetry(build, d),
                "peaks of this run against the PSUs and circuits of the report's build",
            )
        )
    else:
        out.append(
            Text(
                "PSUs and circuits: not compared (burnin --build BUILD.toml, or report --build "
                "on a run with GPU telemetry, compares them)."
            )
        )
    other = [x for x in rig_reasons if x not in limits]
    if other:
        out.append(
            Table(
                headers=["what", "severity", "reason"],
                rows=[
                    [
                        Cell(x["code"]),
                        Cell(x["severity"], _reason_tone(x["severity"])),
                        Cell(x["message"]),
                    ]
                    for x in other
                ],
                caption="rig reasons",
            )
        )
    if d.telemetry and d.telemetry.samples:
        out.append(_telemetry_chart(d, totals, channels, ctx))
    else:
        out.append(Text("No telemetry samples stored (no NVIDIA GPU was sampled)."))
    return out


def _limits_table(reasons: list[dict[str, Any]], caption: str) -> Table:
    """Burn-in reasons (code, severity, message) of the PSUs and circuits, one row each."""
    return Table(
        headers=["what", "severity", "measured against the limit"],
        rows=[
            [
                Cell(x["code"]),
                Cell(x["severity"], _reason_tone(x["severity"])),
                Cell(x["message"]),
            ]
            for x in reasons
        ],
        caption=caption,
    )


def _limits_from_telemetry(build: Any, d: RunData) -> list[dict[str, Any]]:
    """The burn-in's PSU and circuit comparison (burnin.build) over this run's telemetry,
    as the reasons a burn-in stores."""
    from rigbench.burnin.build import reasons
    from rigbench.burnin.verdict import reason_dict

    assert d.telemetry is not None
    ticks: dict[float, dict[int, float]] = defaultdict(dict)
    for gpu, cols in d.telemetry.columns.items():
        for t, inst, avg in zip(
            cols["t"], cols["power_instant_w"], cols["power_avg_w"], strict=True
        ):
            watts = inst if inst is not None else avg
            if watts is not None:
                ticks[t][gpu] = float(watts)
    return [reason_dict(f) for f in reasons(build, dict(ticks), sorted(d.telemetry.columns))]


def _reason_tone(severity: str) -> Tone:
    return {"fail": "error", "warn": "warning", "info": "info"}.get(severity, "")  # type: ignore[return-value]


def _index(devices: list[str]) -> int | None:
    digits = "".join(ch for ch in (devices[0] if devices else "") if ch.isdigit())
    return int(digits) if digits else None


def _telemetry_chart(
    d: RunData, totals: dict[str, Any], channels: dict[int, dict[str, Any]], ctx: _Context
) -> Chart:
    assert d.telemetry is not None
    series = {}
    limits: dict[str, float] = {}
    for gpu, cols in sorted(d.telemetry.columns.items()):
        power = [
            i if i is not None else a
            for i, a in zip(cols["power_instant_w"], cols["power_avg_w"], strict=True)
        ]
        name = channels.get(gpu, {}).get("name", "")
        series[f"GPU {gpu} {name}".strip()] = {
            "t": cols["t"],
            "power_w": power,
            "sm_clock_mhz": cols["sm_clock_mhz"],
            "temp_gpu_c": cols["temp_gpu_c"],
            "temp_mem_c": cols["temp_mem_c"],
        }
        limit = channels.get(gpu, {}).get("power_limit_w")
        if limit:
            limits.setdefault(f"power limit {num(limit)} W", float(limit))
    phases = [(p["kind"], p["start_s"], p["end_s"]) for p in totals.get("phases") or []]
    events = [
        (e.t, f"GPU {e.gpu}: " + (f"Xid {e.code}" if e.kind == "xid" else e.kind))
        for e in d.telemetry.events
    ]
    title = f"run #{d.run.id}: power, SM clock and temperature ({d.telemetry.samples} samples)"
    return ctx.chart(
        f"burnin-{d.run.id}", title, charts.telemetry(series, phases, events, title, limits)
    )


def _comparison(c: dict[str, Any] | None) -> Made:
    if c is None:
        return [], "No comparison asked (rigbench report RUN --against OTHER_RUN|reference)."
    rows = c.get("rows") or []
    differing = [r for r in rows if r.get("beyond_noise")]
    blocks: list[Block] = [
        Text(
            f"{c.get('a')} against {c.get('b')}: {len(differing)} of {len(rows)} figures differ "
            "beyond noise (highlighted)",
            "warning" if differing else "ok",
        )
    ]
    for w in c.get("warnings") or []:
        blocks.append(Text(f"setup differs: {w}", "warning"))
    table_rows = []
    for r in rows:
        beyond = r.get("beyond_noise")
        tone: Tone = "warning" if beyond else ""
        variant = " ".join(f"{k}={v}" for k, v in (r.get("variant") or {}).items())
        rel = r.get("rel")
        table_rows.append(
            [
                Cell(f"{r.get('benchmark')} {r.get('metric')}", tone),
                Cell(" ".join(x for x in (",".join(r.get("devices") or []), variant) if x)),
                Cell(num(r.get("a")), numeric=True),
                Cell(num(r.get("b")), numeric=True),
                Cell(r.get("unit") or ""),
                Cell(num(r.get("diff")), tone, numeric=True),
                Cell("—" if rel is None else f"{100 * rel:+.1f}%", tone, numeric=True),
                Cell(num(r.get("noise")), numeric=True),
                Cell({True: "yes", False: "no"}.get(beyond, "—"), tone),
                Cell(r.get("note") or ""),
            ]
        )
    blocks.append(
        Table(
            headers=[
                "figure",
                "what",
                str(c.get("a")),
                str(c.get("b")),
                "unit",
                "difference",
                "relative",
                "noise",
                "beyond noise",
                "note",
            ],
            rows=table_rows,
            caption="side by side (difference: second minus first)",
        )
    )
    return blocks, None


def _cost(cost: Any, note: str | None) -> Made:
    if cost is None:
        return [], note or (
            "No cost inputs (give --build with [costs] and [usage]; rigbench cost explains them)."
        )
    i = cost.inputs
    be = cost.break_even_hours
    blocks: list[Block] = [
        Facts(
            [
                ("price", f"{i.price_usd:,.2f} USD"),
                ("cloud per hour", f"{i.cloud_per_hour_usd:,.2f} USD"),
                ("electricity per hour", f"{i.electricity_per_hour_usd:,.3f} USD"),
                (
                    "break-even",
                    "never (electricity costs more than the cloud)"
                    if be is None
                    else f"{be:,.0f} hours of use",
                ),
                ("use, then investing", f"{i.use_years} years, then {i.invest_years} years"),
            ],
            title="inputs and break-even",
        )
    ]
    rows = []
    for level in cost.levels:
        years = "never" if level.break_even_years is None else f"{level.break_even_years:.1f}"
        for o in level.outcomes:
            rows.append(
                [
                    Cell(f"{level.hours_per_year:,.0f}", numeric=True),
                    Cell(years, numeric=True),
                    Cell(f"{o.return_pct:g} %", numeric=True),
                    Cell(
                        f"{o.npv_at_purchase_usd:,.0f}",
                        "ok" if o.npv_at_purchase_usd >= 0 else "warning",
                        numeric=True,
                    ),
                    Cell(f"{o.value_at_end_of_use_usd:,.0f}", numeric=True),
                    Cell(f"{o.value_at_end_of_investing_usd:,.0f}", numeric=True),
                ]
            )
    blocks.append(
        Table(
            headers=[
                "hours a year",
                "break-even (years)",
                "return",
                "NPV at purchase (USD)",
                f"value at year {cost.end_of_use_year}",
                f"value at year {cost.end_of_investing_year}",
            ],
            rows=rows,
            caption="owning against renting (positive: owning is ahead)",
        )
    )
    tokens = [(level.hours_per_year, t) for level in cost.levels for t in level.tokens]
    if tokens:
        blocks.append(
            Table(
                headers=[
                    "hours a year",
                    "what",
                    "tokens/s",
                    "owning USD / M tokens",
                    "cloud USD / M tokens",
                ],
                rows=[
                    [
                        Cell(f"{h:,.0f}"),
                        Cell(t.what),
                        Cell(num(t.tokens_per_s)),
                        Cell(f"{t.owning_per_million_usd:,.3f}"),
                        Cell(f"{t.cloud_per_million_usd:,.3f}"),
                    ]
                    for h, t in tokens
                ],
                caption="cost per million tokens",
            )
        )
    return blocks, None


def _git_commit() -> str | None:
    """The commit of the rigbench source tree, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _provenance(data: ReportInput, ctx: _Context) -> Made:
    blocks: list[Block] = [
        Facts(
            [
                ("report by", f"rigbench {__version__}"),
                ("commit", _git_commit() or "unknown (not a git checkout)"),
                ("written", utc_now()),
            ]
        )
    ]
    if not data.runs:
        blocks.append(Text("No runs in this report."))
        return blocks, None
    rows = []
    for d in data.runs:
        r, v = d.run, d.run.versions
        origin = "measured here"
        if d.origin:
            o = d.origin
            origin = (
                f"imported from {o.get('file', '?')} (run #{o.get('run_id', '?')} there, "
                f"rigbench {o.get('rigbench', '?')})"
            )
        rows.append(
            [
                Cell(f"#{r.id}"),
                Cell(r.command),
                Cell("rigbench " + " ".join(ctx.argv(r.argv))),
                Cell(r.status, "ok" if r.status == "complete" else "warning"),
                Cell(r.started_at),
                Cell(r.finished_at or "—"),
                Cell(
                    f"rigbench {v.get('rigbench', '?')}, driver {v.get('driver') or '—'}, "
                    f"CUDA {v.get('cuda_driver') or '—'}, torch {v.get('torch') or '—'}, "
                    f"NCCL {v.get('nccl') or '—'}, Python {v.get('python') or '—'}"
                ),
                Cell(f"{r.backend}; {origin}"),
            ]
        )
    blocks.append(
        Table(
            headers=[
                "run",
                "command",
                "command line",
                "status",
                "started",
                "finished",
                "versions",
                "where",
            ],
            rows=rows,
            caption="runs in this report",
        )
    )
    return blocks, None
