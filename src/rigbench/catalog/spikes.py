"""How far a GPU's millisecond power spikes go above its TDP: the catalog's measurement
where it has one, else a sourced assumption per family. `plan` sizes PSUs with it; `burnin`
judges a measured peak against it."""

from __future__ import annotations

from rigbench.catalog.gpus import GpuSpec

# Spike factor of GeForce Ampere GA102 cards (RTX 3080/3090/3090 Ti) when the catalog has no
# measurement: millisecond peaks of about 1.7x board power. Anchored on three owners'
# reports in our seeds (3090s "peaking up to 500 watts" (001), "spikes up to 600W" (002,
# 004) from a 350 W card) and on Igor's Lab's interval measurements of the RTX 3090 FE that
# made NVIDIA's 750 W PSU advice (reported by
# https://hardzone.es/noticias/tarjetas-graficas/nvidia-rtx-3090-fuente-alimentacion-750-vatios/).
# GeForce boards only: workstation GA102 cards (RTX A6000) run a lower, flatter power limit.
GA102_SPIKE_FACTOR = 1.7
# Any other GPU without a measurement: 1.5x. An assumption within the measured range of a
# recent card (RTX 5090 FE, Igor's Lab: 738 W for up to 10 ms = 1.28x and 901 W under 1 ms =
# 1.57x of its 575 W) and seed 001's V100s (>300 W peaks at a 200 W limit: >=1.5x), far
# below the 3x for 100 us that PCIe CEM 5.0 allows a card.
DEFAULT_SPIKE_FACTOR = 1.5


def spike_factor(spec: GpuSpec) -> tuple[float, str]:
    """How far one GPU's millisecond spikes go above its TDP, and why we think so."""
    if spec.transient_peak_w is not None and spec.tdp_w:
        k = spec.transient_peak_w / spec.tdp_w
        return k, (
            f"catalog: {spec.transient_peak_w:g} W measured at {spec.tdp_w:g} W"
            f" ({spec.source_for('transient_peak_w')})"
        )
    if (
        spec.vendor == "NVIDIA"
        and "GA102" in spec.architecture
        and spec.form_factor == "pcie"
        and spec.name.startswith("GeForce")
    ):
        return GA102_SPIKE_FACTOR, (
            f"assumption: GeForce Ampere (GA102) spikes to ~{GA102_SPIKE_FACTOR:g}x for"
            " milliseconds (owners report 500-600 W from 350 W 3090s; Igor's Lab interval"
            " measurements)"
        )
    return DEFAULT_SPIKE_FACTOR, (
        f"assumption: no spike measurement for the {spec.name}; {DEFAULT_SPIKE_FACTOR:g}x"
        " (measured cards: 1.3-1.6x at 1-10 ms)"
    )
