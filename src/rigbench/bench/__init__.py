"""Microbenchmarks. Each module exposes NAME, plan(ctx) -> steps, run(ctx, step) -> results."""
