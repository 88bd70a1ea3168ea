#!/usr/bin/env bash
# Install attnlab into .venv and run the quick reproduction of Arda et al. (about 15 minutes on
# 2 CPU cores): figures, tables, verdicts and an HTML report under results/arda2026/quick/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh data
. .venv/bin/activate
attnlab reproduce arda2026 --preset quick --out results
