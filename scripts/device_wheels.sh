#!/usr/bin/env bash
# Fetch the wheels a GPU machine without internet needs beside its own torch/typer/rich/
# nvidia-ml-py image: rigbench's remaining dependencies, for CPython 3.12 on x86-64.
# Usage: scripts/device_wheels.sh [DIR]   (default .whl; keep DIR out of git)
set -euo pipefail
dir=${1:-.whl}
mkdir -p "$dir"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${plat[@]}" -d "$dir" \
  platformdirs==4.3.6 pydantic==2.11.7 pydantic-core==2.33.2 annotated-types==0.7.0 \
  typing-inspection==0.4.1
ls "$dir"
