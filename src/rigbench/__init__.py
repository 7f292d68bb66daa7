"""rigbench: plan, doctor, benchmark and burn in self-built deep-learning machines."""

__version__ = "0.1.0"
