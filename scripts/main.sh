#!/usr/bin/env bash
# Sets everything up and reproduces the paper's experiments on the built-in default
# (the README's first command): the paper's CIFAR network trained on scikit-learn's
# digits (trained once, ~1 minute, then cached in ${LIECHECK_CACHE:-~/.cache/liecheck}),
# plus CSC on a randomly initialised VGG-16. Budget: about 5 minutes on 2 CPU cores.
# Extra arguments go to `liecheck reproduce` (e.g. --model vgg16 --weights IMAGENET1K_V1).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e .
liecheck reproduce "$@"
