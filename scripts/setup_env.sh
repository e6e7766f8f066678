# Sourced by scripts/main.sh and scripts/test.sh: picks the Python environment to install into.
# - an active virtual environment (or conda env) is used as it is;
# - otherwise a project-local .venv is created (first run) and activated, so a fresh machine's
#   system Python is never modified. Later: `source .venv/bin/activate` to use `liecheck` directly.
# Extra pip arguments: LIECHECK_PIP_ARGS (e.g. an index URL).
if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ]; then
    if [ ! -x .venv/bin/python ]; then
        echo "setup: creating .venv (Python $(python3 -c 'import sys; print(sys.version.split()[0])'))"
        python3 -m venv .venv
    fi
    # shellcheck disable=SC1091
    source .venv/bin/activate
fi
echo "setup: installing into $(python -c 'import sys; print(sys.prefix)')"
