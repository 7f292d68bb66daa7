"""Throughput from a job's own output: a user's regular expression, or a preset for the
formats owners quote most. A metric ending in "/s" is a rate (per joule = rate / mean
watts); any other is an amount of work (per joule = amount / joules).

    m = MetricParser.from_option("ollama")          # or a regex with one capture group
    m.feed("eval rate:            13.33 tokens/s")
    m.result()  # MetricResult(name="ollama", value=13.33, unit="tokens/s", ...)
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from rigbench.errors import BadInput

NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*?)?\s*$")


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    pattern: str
    unit: str  # the unit when the capture group holds only the number
    what: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # `ollama run MODEL --verbose` prints "prompt eval rate:" and then "eval rate:" (the
        # generation rate) after each answer.
        Preset(
            name="ollama",
            pattern=r"^\s*eval rate:\s*([0-9.]+)\s*tokens/s",
            unit="tokens/s",
            what="ollama run --verbose: eval rate (generation)",
        ),
        # llama.cpp's llama-bench markdown table: "| ... | tg128 | 131.42 ± 0.59 |"; only the
        # token-generation rows (tgN), not prompt processing (ppN).
        Preset(
            name="llama-bench",
            pattern=r"\|\s*tg\d+[^|]*\|\s*([0-9.]+)\s*±\s*[0-9.]+\s*\|\s*$",
            unit="tokens/s",
            what="llama-bench: token generation (tgN rows)",
        ),
        # Hugging Face Trainer: "'train_samples_per_second': 45.6" in its metrics dict, or
        # "train_samples_per_second =     45.6" in its log_metrics table.
        Preset(
            name="hf-trainer",
            pattern=r"train_samples_per_second['\"]?\s*[:=]\s*([0-9.]+)",
            unit="samples/s",
            what="Hugging Face Trainer: train_samples_per_second",
        ),
    )
}


@dataclass(kw_only=True, slots=True)
class MetricResult:
    name: str  # the preset's name, or "custom"
    pattern: str
    unit: str | None
    values: list[float] = field(default_factory=list)
    value: float | None = None  # the mean of the rates, or the last amount
    is_rate: bool = True
    per_joule: float | None = None  # unit (without "/s") per joule
    per_kwh: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricParser:
    """Matches the job's output lines against one pattern (a user's) or every preset."""

    def __init__(self, presets: list[Preset], custom: re.Pattern[str] | None = None) -> None:
        self._presets = [(p, re.compile(p.pattern)) for p in presets]
        self._custom = custom
        self._found: dict[str, tuple[str, str | None, list[float]]] = {}

    @classmethod
    def from_option(cls, option: str | None) -> MetricParser:
        """`--metric`: a preset's name, a regex with one capture group, or None (every
        preset is tried)."""
        if option is None:
            return cls(list(PRESETS.values()))
        if option in PRESETS:
            return cls([PRESETS[option]])
        try:
            pattern = re.compile(option)
        except re.error as exc:
            raise BadInput(
                f"--metric {option!r} is not a valid regular expression: {exc}"
            ) from None
        if pattern.groups != 1:
            raise BadInput(
                f"--metric needs exactly one capture group, around the number (and its unit): "
                f"{option!r} has {pattern.groups} (presets: {', '.join(PRESETS)})"
            )
        return cls([], pattern)

    def feed(self, line: str) -> None:
        if self._custom is not None:
            m = self._custom.search(line)
            if m and m.group(1) is not None:
                parsed = NUMBER_UNIT.match(m.group(1))
                if parsed:
                    unit = parsed.group(2)
                    if unit is None:  # "(\d+) tokens/s": the unit right after the group
                        after = line[m.end(1) :].split()
                        unit = after[0] if after and "/" in after[0] else None
                    self._add("custom", self._custom.pattern, unit, parsed.group(1))
            return
        for preset, rx in self._presets:
            m = rx.search(line)
            if m:
                self._add(preset.name, preset.pattern, preset.unit, m.group(1))

    def _add(self, name: str, pattern: str, unit: str | None, number: str) -> None:
        try:
            v = float(number)
        except ValueError:
            return
        self._found.setdefault(name, (pattern, unit, []))[2].append(v)

    def result(
        self, *, mean_power_w: float | None = None, energy_j: float | None = None
    ) -> MetricResult | None:
        """The metric found (the first preset that matched), with its per-joule figures."""
        if not self._found:
            return None
        name, (pattern, unit, values) = next(iter(self._found.items()))
        is_rate = bool(unit) and (unit or "").replace(" ", "").endswith("/s")
        value = statistics.fmean(values) if is_rate else values[-1]
        per_j = None
        if is_rate and mean_power_w:
            per_j = value / mean_power_w
        elif not is_rate and energy_j:
            per_j = value / energy_j
        return MetricResult(
            name=name,
            pattern=pattern,
            unit=unit,
            values=values,
            value=value,
            is_rate=is_rate,
            per_joule=per_j,
            per_kwh=per_j * 3.6e6 if per_j is not None else None,
        )
