#!/usr/bin/env bash
# Install attnlab into .venv and run the quick reproduction (a few minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh data
. .venv/bin/activate
attnlab train --config configs/quick.yaml --out results/runs
