#!/usr/bin/env bash
# Install attnlab with its test dependencies into .venv (versions pinned by constraints.txt),
# then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test,data,cluster
. .venv/bin/activate
HYPOTHESIS_PROFILE=ci python -m pytest -q "$@"
