#!/usr/bin/env bash
# Sets everything up and runs the test suite (the README's second command): installs liecheck
# with its test extras (pytest, pytest-xdist, ruff, and the peer libraries zennit and captum
# that the agreement tests compare against) into the active virtual environment, or into
# ./.venv when none is active, then runs ruff and pytest on 2 workers.
# The report test opens the HTML report in headless Chromium (Debian's `chromium`);
# as root with apt-get available we install it, otherwise that one test is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
python -m pip install -q ${LIECHECK_PIP_ARGS:-} -e ".[test]"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
        || echo "note: could not install chromium; the browser check will be skipped"
fi
python -m ruff check src tests benchmarks scripts
python -m pytest -q -n 2 --dist loadfile tests
