"""scikit-learn's handwritten digits as 32x32 RGB images for the paper's CIFAR network.

The 1797 digits (8x8, grey values 0..16, shipped with scikit-learn, no download)
are scaled to [0, 1], resized to 32x32 (bilinear), repeated over 3 channels and
normalised with the training split's mean and standard deviation. The split is
stratified and seeded, so the same seed gives the same test images everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .images import ImageSet

SIZE = 32
CLASSES = tuple(str(i) for i in range(10))


@dataclass
class DigitsSplit:
    """Train/test tensors ``(N, 3, 32, 32)`` (normalised) with labels ``(N,)``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    test_index: np.ndarray        # indices into sklearn's load_digits() of the test images
    mean: float
    std: float
    seed: int


def _to_rgb32(images: np.ndarray) -> torch.Tensor:
    """``(N, 8, 8)`` grey values 0..16 -> ``(N, 3, 32, 32)`` in [0, 1]."""
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).repeat(1, 3, 1, 1)


def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> DigitsSplit:
    """The seeded, stratified train/test split of scikit-learn's digits.

    Returns normalised tensors; ``mean``/``std`` are those of the training images
    (one scalar each, the three channels are identical).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    idx = np.arange(len(d.target))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed,
                              stratify=d.target)
    x = _to_rgb32(d.images)
    mean, std = float(x[tr].mean()), float(x[tr].std())
    x = (x - mean) / std
    y = torch.as_tensor(d.target, dtype=torch.long)
    return DigitsSplit(x[tr], y[tr], x[te], y[te], te, mean, std, seed)


def digits_test_images(n: int | None = None, seed: int = 0) -> ImageSet:
    """The first ``n`` test images of the seeded split (test order is already random),
    with labels and raw ``(32, 32, 3)`` uint8 pictures for plotting."""
    s = load_digits_split(seed)
    k = len(s.y_test) if n is None else n
    if k > len(s.y_test):
        raise ValueError(f"asked for {k} digits test images, the split has {len(s.y_test)}")
    x = s.x_test[:k]
    raw = ((x * s.std + s.mean).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    names = [f"digit{int(i):04d}" for i in s.test_index[:k]]
    return ImageSet(x.clone(), names, [int(v) for v in s.y_test[:k]], list(raw))
