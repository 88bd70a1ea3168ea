#!/usr/bin/env bash
# Install attnlab into .venv and run the quick reproduction of both papers (about 7 minutes on
# 2 CPU cores, as two worker processes of one torch thread each): verdicts, figures, tables and
# an HTML report per paper under results/PAPER/quick/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh data
. .venv/bin/activate
attnlab reproduce all --preset quick --out results --workers 2 --threads 1
