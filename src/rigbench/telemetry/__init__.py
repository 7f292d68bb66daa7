"""GPU telemetry over time: a sampler thread at a fixed rate, peaks and aggregates, batched
recording to SQLite, and a Prometheus text endpoint. The readings come from hw.telemetry."""
