"""Benchmark modules (`plan`/`run`) that exist only for the tests."""
