"""What a run's stored telemetry holds, per GPU, whatever state the run ended in: how many
samples over how long, and the peaks and means a reader asks for first."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rigbench.store import Store


@dataclass(kw_only=True, slots=True)
class StoredTelemetry:
    """One GPU's recorded samples in a run (t in seconds since sampling began)."""

    gpu: int
    name: str
    samples: int
    first_t_s: float | None
    last_t_s: float | None
    power_peak_w: float | None  # instantaneous where the GPU reports it, else averaged
    power_mean_w: float | None
    temp_gpu_peak_c: float | None
    temp_mem_peak_c: float | None
    sm_clock_mean_mhz: float | None
    events: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored_telemetry(store: Store, run_id: int) -> list[StoredTelemetry]:
    """Per GPU the run recorded, a summary of its samples; [] for a run without telemetry."""
    gpus = store.db.execute(
        "SELECT gpu, name FROM telemetry_gpus WHERE run_id = ? ORDER BY gpu", (run_id,)
    ).fetchall()
    out = []
    for gpu, name in gpus:
        row = store.db.execute(
            "SELECT count(*), min(t), max(t), max(coalesce(power_instant_w, power_avg_w)),"
            " avg(coalesce(power_instant_w, power_avg_w)), max(temp_gpu_c), max(temp_mem_c),"
            " avg(sm_clock_mhz) FROM telemetry_samples WHERE run_id = ? AND gpu = ?",
            (run_id, gpu),
        ).fetchone()
        events = store.db.execute(
            "SELECT count(*) FROM telemetry_events WHERE run_id = ? AND gpu = ?", (run_id, gpu)
        ).fetchone()[0]
        out.append(
            StoredTelemetry(
                gpu=gpu,
                name=name,
                samples=row[0],
                first_t_s=row[1],
                last_t_s=row[2],
                power_peak_w=row[3],
                power_mean_w=row[4],
                temp_gpu_peak_c=row[5],
                temp_mem_peak_c=row[6],
                sm_clock_mean_mhz=row[7],
                events=events,
            )
        )
    return out
