"""Two different digits side by side: the images of the ground-truth benchmark.

Each image is ``(3, 32, 64)``: two of scikit-learn's handwritten digits, each
upscaled to 32x32 exactly as for the built-in digits model
(:mod:`liecheck.data.digits`: 8x8 -> 32x32 bilinear, 3 channels, normalised with
the digits training split's mean and standard deviation), the left one in columns
0..31 and the right one in columns 32..63. The two digits have different classes;
which digit goes left is random. Training pairs come from the digits training
split and test pairs from its test split (seed 0), so no test digit is ever seen
in training. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.digits import load_digits_split

HALF = 32                      # width of one digit; the image is (3, 32, 2 * HALF)


@dataclass
class TwoDigits:
    """Two-digit images with their classes.

    Attributes
    ----------
    x : ``(N, 3, 32, 64)`` float32, normalised.
    labels : ``(N, 2)`` long: the class of the left and of the right digit (different).
    source : ``(N, 2)`` indices into scikit-learn's ``load_digits()`` of the two digits
        (test split; -1 for training pairs).
    mean, std : the normalisation (the digits training split's).
    """

    x: torch.Tensor
    labels: torch.Tensor
    source: np.ndarray
    mean: float
    std: float

    def __len__(self) -> int:
        return len(self.labels)

    def targets(self) -> torch.Tensor:
        """``(N, 10)`` multi-hot targets (1 for both digits' classes)."""
        t = torch.zeros(len(self), 10)
        t.scatter_(1, self.labels, 1.0)
        return t

    def raw(self) -> np.ndarray:
        """``(N, 32, 64, 3)`` uint8 pictures for plotting."""
        x = (self.x * self.std + self.mean).clamp(0, 1)
        return (x * 255).round().byte().permute(0, 2, 3, 1).numpy()


def half_masks(height: int = HALF, width: int = 2 * HALF) -> torch.Tensor:
    """``(2, H, W)`` bool: the left and the right digit's region."""
    m = torch.zeros(2, height, width, dtype=torch.bool)
    m[0, :, : width // 2] = True
    m[1, :, width // 2:] = True
    return m


def two_digit_images(n: int, split: str = "test", seed: int = 0) -> TwoDigits:
    """``n`` seeded two-digit images from the digits ``"train"`` or ``"test"`` split.

    Pairs are drawn independently: a first digit uniformly from the split, a second
    uniformly among the split's digits of another class, and a random side for the
    first (so either class can be on either side).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not '{split}'")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    s = load_digits_split(0)
    x, y = (s.x_train, s.y_train) if split == "train" else (s.x_test, s.y_test)
    index = np.full(len(y), -1) if split == "train" else s.test_index
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    yn = y.numpy()
    first = rng.integers(0, len(yn), size=n)
    second = np.empty(n, dtype=np.int64)
    for i, a in enumerate(first):
        others = np.flatnonzero(yn != yn[a])
        second[i] = others[rng.integers(0, len(others))]
    swap = rng.random(n) < 0.5
    left = np.where(swap, second, first)
    right = np.where(swap, first, second)
    images = torch.cat([x[left], x[right]], dim=3)
    labels = torch.stack([y[left], y[right]], dim=1)
    return TwoDigits(images.contiguous(), labels, np.stack([index[left], index[right]], 1),
                     s.mean, s.std)
