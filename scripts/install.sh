#!/usr/bin/env bash
# Create .venv (if needed) and install attnlab into it with the given extras, pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-data}"
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[${extras}]"
