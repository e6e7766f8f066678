"""The ground-truth benchmark's model: the paper's CIFAR network, adapted to two digits.

Architecture (:func:`two_digits_net`): the layer sequence of the paper's CIFAR
network (appendix D: conv, conv, max-pool, conv, conv, max-pool, dropout, dense,
dropout, dense; 3x3 same-padding convs, each with its own ReLU) at a quarter of its
widths (8, 16, 32, 32 channels, 128 hidden units) so that it trains in about a
minute of CPU time, with a dense layer sized for the ``(3, 32, 64)`` input. It is a
multi-label classifier: ten logits, trained with a sigmoid cross-entropy against
the multi-hot targets of the two digits.

Trained on first use (Adam, learning rate 3e-3, batch 32, 2 epochs over 3000 pairs,
seeded) on two-digit images built from the
digits training split, and cached in ``$LIECHECK_CACHE`` like the built-in digits
model (state dict + JSON with the test accuracy and the settings).
"""

from __future__ import annotations

import json
import time

import torch
from torch import nn

from ..train import cache_dir, fit, save
from .data import HALF, two_digit_images

EPOCHS = 2
LR = 3e-3
N_TRAIN = 3000
N_TEST = 1000
WIDTHS = (8, 16, 32, 32, 128)


def two_digits_net(seed: int | None = 0, widths: tuple[int, ...] = WIDTHS) -> nn.Sequential:
    """The CIFAR-net shape for ``(N, 3, 32, 64)`` inputs, ten multi-label logits.

    Layer names follow the paper's CIFAR network (``conv1`` ... ``fc6``).
    """
    c1, c2, c3, c4, hidden = widths
    state = torch.random.get_rng_state() if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = nn.Sequential()
        for name, layer in [
            ("conv1", nn.Conv2d(3, c1, 3, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(c3, c4, 3, padding=1)), ("relu4", nn.ReLU()),
            ("pool4", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()), ("dropout4", nn.Dropout(0.5)),
            ("fc5", nn.Linear(c4 * (HALF // 4) * (2 * HALF // 4), hidden)),
            ("relu5", nn.ReLU()), ("dropout5", nn.Dropout(0.5)),
            ("fc6", nn.Linear(hidden, 10)),
        ]:
            model.add_module(name, layer)
    finally:
        if state is not None:
            torch.random.set_rng_state(state)
    return model.eval()


@torch.no_grad()
def pair_accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose two largest logits are exactly the two digits' classes."""
    top2 = model.eval()(x).topk(2, dim=1).indices.sort(1).values
    return float((top2 == labels.sort(1).values).all(1).float().mean())


def checkpoint(seed: int = 0, epochs: int = EPOCHS):
    """Cache path of the trained model (the settings are in the name)."""
    return cache_dir() / f"two_digits_net-e{epochs}-n{N_TRAIN}-lr{LR:g}-seed{seed}.pt"


def train_two_digits_net(seed: int = 0, epochs: int = EPOCHS, progress: bool = True,
                         out=None) -> tuple[nn.Module, dict]:
    """Train :func:`two_digits_net` on ``N_TRAIN`` training pairs; returns ``(model, info)``
    with ``test_accuracy`` (:func:`pair_accuracy` on ``N_TEST`` test pairs)."""
    t0 = time.perf_counter()
    train = two_digit_images(N_TRAIN, "train", seed=seed)
    test = two_digit_images(N_TEST, "test", seed=seed)
    model = two_digits_net(seed)
    fit(model, (train.x, train.targets()), epochs, seed, lr=LR, progress=progress,
        desc="train two_digits_net", loss_fn=nn.BCEWithLogitsLoss())
    info = {"model": "two_digits_net", "test_accuracy": pair_accuracy(model, test.x, test.labels),
            "accuracy_definition": "both digits' classes are the two largest logits",
            "train_seconds": round(time.perf_counter() - t0, 2),
            "threads": torch.get_num_threads(),
            "settings": {"epochs": epochs, "seed": seed, "n_train": N_TRAIN, "n_test": N_TEST,
                         "widths": list(WIDTHS), "optimizer": "Adam", "lr": LR,
                         "batch_size": 32, "loss": "BCEWithLogits (multi-hot)",
                         "torch": torch.__version__}}
    if out is not None:
        save(model, info, out)
    return model, info


def load_two_digits_net(seed: int = 0, retrain: bool = False, progress: bool = True
                        ) -> tuple[nn.Module, dict]:
    """The benchmark's model from the cache, trained now if missing; ``(model, info)``."""
    path = checkpoint(seed)
    meta = path.with_suffix(".json")
    if retrain or not (path.exists() and meta.exists()):
        print(f"training the ground-truth model (two_digits_net, {EPOCHS} epochs, seed {seed}); "
              f"cached at {path}")
        train_two_digits_net(seed, progress=progress, out=path)
    model = two_digits_net(seed)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval(), json.loads(meta.read_text())
