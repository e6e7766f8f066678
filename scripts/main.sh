#!/usr/bin/env bash
# Sets everything up and reproduces the paper's experiments on the built-in default
# (the README's first command): installs liecheck and its dependencies (torch 2.14.1,
# torchvision 0.29.1, numpy, scipy, pandas, pyarrow, matplotlib, scikit-image, scikit-learn,
# pillow, tqdm) into the active virtual environment, or into ./.venv when none is active,
# then runs `liecheck reproduce`: the paper's CIFAR network trained on scikit-learn's digits
# (trained once, then cached in ${LIECHECK_CACHE:-~/.cache/liecheck}) plus CSC on a randomly
# initialised VGG-16. Extra arguments go to `liecheck reproduce` (e.g. --out DIR, --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
python -m pip install -q ${LIECHECK_PIP_ARGS:-} -e .
liecheck reproduce "$@"
