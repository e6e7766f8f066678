#!/usr/bin/env bash
# Sets everything up and runs the test suite (the README's second command).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test]"
python -m pytest -q -n 2 --dist loadfile tests
