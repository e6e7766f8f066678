#!/usr/bin/env bash
# Sets everything up and runs the test suite (the README's second command): installs liecheck
# with its test extras (pytest, pytest-xdist, ruff, and the peer libraries zennit and captum
# that the agreement tests compare against) into the active virtual environment, or into
# ./.venv when none is active, then runs ruff and pytest on 2 workers.
# It installs no system package. The report test opens the HTML report in headless Chromium
# when one is installed (chromium, chromium-browser or google-chrome on PATH) and is skipped
# otherwise, as this script says before the tests start. CI installs Chromium in its own
# set-up (.ci/run), not here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
python -m pip install -q ${LIECHECK_PIP_ARGS:-} -e ".[test]"
browser=""
for b in chromium chromium-browser google-chrome chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$(command -v "$b"); break; fi
done
if [ -n "$browser" ]; then
    echo "test: the report's browser check uses $browser"
else
    echo "test: no Chromium on PATH (chromium, chromium-browser, google-chrome): the browser" \
         "check of the report (tests/report/test_report.py::test_report_renders_in_headless_chromium)" \
         "will be SKIPPED; install Chromium to run it (on Debian/Ubuntu: apt-get install chromium)"
fi
python -m ruff check src tests benchmarks scripts
python -m pytest -q -n 2 --dist loadfile tests
