#!/usr/bin/env bash
# Download, into .whl/ (git-ignored), the wheels that the GPU machine's image lacks for attnlab:
# pydantic and its needs, for CPython 3.12 on manylinux x86_64 (that image's python3), at the
# versions constraints.txt pins. scripts/gpu-check.sh installs them there with --no-deps.
#   bash scripts/gpu-wheels.sh            (PYTHON=python3 by default; needs pip and the network)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
# The image already has torch, numpy, pandas, pyarrow, scipy, matplotlib, scikit-learn, typer,
# rich, pyyaml, pytest, pytest-timeout and hypothesis; typing_extensions is carried because
# pydantic needs a recent one and the image's version is not known.
packages=(pydantic pydantic_core annotated-types typing-inspection typing_extensions)
pins=()
for name in "${packages[@]}"; do
    pin="$(grep -i -E "^${name//[-_]/[-_]}==" constraints.txt || true)"
    [ -n "$pin" ] || { echo "gpu-wheels: $name is not pinned in constraints.txt" >&2; exit 2; }
    pins+=("$pin")
done
rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
ls .whl
