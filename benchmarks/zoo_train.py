"""Train every family of the zoo (or those named) and print each one's test accuracy.

    python benchmarks/zoo_train.py                      # all 21, cached in $LIECHECK_CACHE/zoo
    python benchmarks/zoo_train.py --families vit,swin --retrain

The weights are cached, so ``liecheck zoo`` and ``liecheck.zoo.battery`` find them; a
family already cached is only loaded (pass ``--retrain`` to train it again).
"""

from __future__ import annotations

import argparse
import time

import torch

from liecheck.zoo import FAMILIES, load_family


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    names = list(FAMILIES) if a.families == "all" else a.families.split(",")
    print(f"{'family':16s} {'params':>8s} {'test acc':>8s} {'train s':>8s}")
    for name in names:
        t0 = time.perf_counter()
        _, info = load_family(name, a.seed, retrain=a.retrain, progress=False)
        print(f"{name:16s} {info['parameters'] / 1e6:7.2f}M {info['test_accuracy']:8.3f} "
              f"{info['train_seconds']:8.1f}   ({time.perf_counter() - t0:.0f} s now)",
              flush=True)


if __name__ == "__main__":
    main()
