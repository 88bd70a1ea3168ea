#!/usr/bin/env bash
# Copy the small outputs of a paper-preset reproduction into docs/paper/PAPER/: the Markdown report,
# the verdicts, each experiment's per-run table (CSV) and the figures (PNG). No run store.
#   bash scripts/ship-paper-results.sh arda2026 [results]
set -euo pipefail
cd "$(dirname "$0")/.."
paper="$1"; src="${2:-results}/$paper/paper"; dst="docs/paper/$paper"
mkdir -p "$dst/figures"
cp "$src/report.md" "$src/report_verdicts.csv" "$dst/"
cp "$src"/figures/*.png "$dst/figures/"
for table in "$src"/*/results.csv; do
    key="$(basename "$(dirname "$table")")"
    mkdir -p "$dst/$key" && cp "$table" "$dst/$key/results.csv"
done
echo "copied into $dst"
