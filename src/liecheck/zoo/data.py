"""The zoo's images: the ground-truth benchmark's two digits side by side, padded to the
square a family takes.

The ``(3, 32, 64)`` two-digit images (:func:`liecheck.groundtruth.two_digit_images`) are
centred in a ``(3, S, S)`` square of blank pixels (the value of an empty background pixel
after normalisation), so every family sees the same digits at the same scale, and the
left digit still lies in the left half of the picture (the ground truth's regions,
:func:`liecheck.groundtruth.half_masks`, apply unchanged).
"""

from __future__ import annotations

import torch.nn.functional as F

from ..groundtruth.data import TwoDigits, two_digit_images


def pad_square(data: TwoDigits, size: int) -> TwoDigits:
    """``data`` with each image centred in a ``size`` x ``size`` square of blank pixels."""
    h, w = data.x.shape[-2:]
    if size < max(h, w):
        raise ValueError(f"a zoo input side of {size} cannot hold the {h}x{w} two-digit images")
    top, left = (size - h) // 2, (size - w) // 2
    blank = -data.mean / data.std if data.std else 0.0
    x = F.pad(data.x, (left, size - w - left, top, size - h - top), value=blank)
    return TwoDigits(x.contiguous(), data.labels, data.source, data.mean, data.std)


def zoo_images(n: int, size: int, split: str = "test", seed: int = 0) -> TwoDigits:
    """``n`` seeded two-digit images of ``split``, padded to ``size`` x ``size``."""
    return pad_square(two_digit_images(n, split, seed), size)
