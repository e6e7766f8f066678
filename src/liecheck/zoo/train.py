"""Train every family of the zoo on the two-digit images; cache the weights.

Each family (:data:`liecheck.zoo.families.FAMILIES`) is trained as the ground-truth
benchmark's model is (:mod:`liecheck.groundtruth.model`): ten logits, a sigmoid
cross-entropy against the multi-hot targets of the two digits, Adam, batch 32, seeded,
on :data:`N_TRAIN` training pairs padded to the family's square (a family may set its own
learning rate, epochs, loss and a BatchNorm re-estimation: :class:`~.families.Family`).
The test accuracy (both digits' classes are the two largest logits, :data:`N_TEST` test
pairs) is stored beside the weights in ``$LIECHECK_CACHE/zoo/``. Same seed, same machine:
same weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

from ..groundtruth.model import pair_accuracy
from ..train import cache_dir, fit, save
from .data import zoo_images
from .families import build, check_family

N_TRAIN = 4000
N_TEST = 1000
# epochs and learning rates per kind: the transformers learn more slowly from scratch
EPOCHS = {"cnn": 4, "transformer": 12}
LR = {"cnn": 2e-3, "transformer": 1e-3}


def settings(family: str) -> tuple[int, float]:
    """``(epochs, learning rate)`` of ``family``: its own, else its kind's."""
    fam = check_family(family)
    return fam.epochs or EPOCHS[fam.kind], fam.lr or LR[fam.kind]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> None:
    """Re-estimate every BatchNorm's running mean and variance as the plain average over
    the batches of ``x`` (momentum ``None``), the weights unchanged; eval mode after."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for b in range(0, len(x), batch_size):
        model(x[b:b + batch_size])
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.eval()


def checkpoint(family: str, seed: int = 0) -> Path:
    """Cache path of a trained family (its settings are in the name)."""
    epochs, lr = settings(family)
    fam = check_family(family)
    extra = ("-bnrecal" if fam.recalibrate_bn else "") + (
        "-softmax" if fam.loss == "softmax" else "")
    return (cache_dir() / "zoo" /
            f"{family}-e{epochs}-n{N_TRAIN}-lr{lr:g}{extra}-seed{seed}.pt")


def train_family(family: str, seed: int = 0, progress: bool = True,
                 out: str | Path | None = None) -> tuple[nn.Module, dict]:
    """Train ``family`` from its seeded initialisation; ``(model, info)``, where ``info``
    holds ``test_accuracy``, the training time and the settings."""
    fam = check_family(family)
    t0 = time.perf_counter()
    train = zoo_images(N_TRAIN, fam.size, "train", seed)
    test = zoo_images(N_TEST, fam.size, "test", seed)
    model = build(family, seed)
    epochs, lr = settings(family)
    loss = nn.BCEWithLogitsLoss() if fam.loss == "sigmoid" else nn.CrossEntropyLoss()
    target = train.targets() if fam.loss == "sigmoid" else train.targets() / 2
    fit(model, (train.x, target), epochs, seed, lr=lr, progress=progress,
        desc=f"train {family}", loss_fn=loss)
    if fam.recalibrate_bn:
        recalibrate_batchnorm(model, train.x)
    info = {"model": family, "test_accuracy": pair_accuracy(model, test.x, test.labels),
            "accuracy_definition": "both digits' classes are the two largest logits",
            "train_seconds": round(time.perf_counter() - t0, 2),
            "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "settings": {"epochs": epochs, "seed": seed, "n_train": N_TRAIN, "n_test": N_TEST,
                         "input_size": fam.size, "optimizer": "Adam", "lr": lr,
                         "batch_size": 32,
                         "loss": ("BCEWithLogits (multi-hot)" if fam.loss == "sigmoid" else
                                  "softmax cross-entropy (1/2 on each digit's class)"),
                         "blocks": fam.blocks, "recalibrate_bn": fam.recalibrate_bn,
                         "torch": torch.__version__}}
    if out is not None:
        save(model, info, out)
    return model, info


def load_family(family: str, seed: int = 0, trained: bool = True, retrain: bool = False,
                progress: bool = True) -> tuple[nn.Module, dict]:
    """``(model, info)`` in eval mode: the trained family from the cache (trained now
    when missing), or with ``trained=False`` its seeded random initialisation."""
    if not trained:
        return build(family, seed).eval(), {"model": family, "kind": "random",
                                            "weights": f"random(seed={seed})"}
    path = checkpoint(family, seed)
    meta = path.with_suffix(".json")
    if retrain or not (path.exists() and meta.exists()):
        if progress:
            print(f"training the zoo's {family} (seed {seed}); cached at {path}", flush=True)
        train_family(family, seed, progress=progress, out=path)
    model = build(family, seed)
    model.load_state_dict(torch.load(path, weights_only=True))
    info = json.loads(meta.read_text())
    info.update(kind="trained", weights=str(path))
    return model.eval(), info
