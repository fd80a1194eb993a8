#!/usr/bin/env bash
# The whole test suite: installs whatever is missing (tools/setup.sh, idempotent), runs the
# linters, then pytest. Extra arguments go to pytest, e.g. `tools/test.sh -m "not slow"`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/tools/setup.sh"
cd "$repo"
echo "==> ruff"
.venv/bin/ruff check src tests bench nix/lib/expand-lab.py
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
# pytest exits 5 when it collected no tests: that is a failure here, and `exec` passes it on.
exec .venv/bin/python -m pytest "$@"
