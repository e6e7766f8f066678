"""The paper's CIFAR-10 network (appendix D of Sixt et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn as nn


def cifar_net(num_classes: int = 10, in_channels: int = 3, seed: int | None = 0) -> nn.Sequential:
    """conv32, conv64, maxpool, conv128, conv128, maxpool, flatten, dropout 0.5,
    fc1024, dropout 0.5, fc10; 3x3 same-padding convs, each with its own ReLU.

    Input ``(N, 3, 32, 32)``. Layer names follow the paper (``conv1`` ... ``fc6``).
    ``seed`` makes the initialisation repeatable (``None``: torch's global RNG).
    """
    gen_state = None
    if seed is not None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    try:
        layers = [
            ("conv1", nn.Conv2d(in_channels, 32, 3, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 64, 3, padding=1)), ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(64, 128, 3, padding=1)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(128, 128, 3, padding=1)), ("relu4", nn.ReLU()),
            ("pool4", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()), ("dropout4", nn.Dropout(0.5)),
            ("fc5", nn.Linear(128 * 8 * 8, 1024)), ("relu5", nn.ReLU()),
            ("dropout5", nn.Dropout(0.5)),
            ("fc6", nn.Linear(1024, num_classes)),
        ]
        model = nn.Sequential()
        for name, layer in layers:
            model.add_module(name, layer)
    finally:
        if gen_state is not None:
            torch.random.set_rng_state(gen_state)
    return model.eval()
