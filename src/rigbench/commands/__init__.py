"""CLI commands, one module per area; each defines a Typer `app` whose commands the root
adds at top level (see rigbench.cli)."""
