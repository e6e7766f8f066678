"""Reference maps of the ground-truth benchmark, accepted there as method names.

* ``occlusion`` (Zeiler & Fergus 2014): a blank patch (the value of a blank
  background pixel) slides over the image; each patch's pixels get the drop of the
  explained logit when the patch is blanked. It is faithful to the model by
  construction: it reads only the model's outputs. The default patches (4x4,
  stride 4) tile the image without overlap, so no patch covers both digits.
* ``random``: a seeded ``N(0, 1)`` map; its positive mass splits evenly between the
  two halves on average (relevance mass accuracy about 0.5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

REFERENCES = ("occlusion", "random")


@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, fill: float = 0.0, patch: int = 4,
              stride: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """Occlusion maps of every logit.

    Parameters
    ----------
    model : the network (only called, never modified).
    x : ``(N, C, H, W)`` inputs.
    fill : the value a blanked pixel gets (in the model's input space).
    patch, stride : patch side and step (default ``stride = patch``: no overlap).

    Returns
    -------
    ``(N, K, H, W)``: for each of the ``K`` logits, the mean over the patches that
    cover a pixel of ``logit(x) - logit(x with the patch blanked)``.
    """
    stride = stride or patch
    n, _, h, w = x.shape
    tops = range(0, h - patch + 1, stride)
    lefts = range(0, w - patch + 1, stride)
    boxes = [(t, left) for t in tops for left in lefts]
    base = model(x)                                       # (N, K)
    k = base.shape[1]
    total = torch.zeros(n, k, h, w, dtype=base.dtype)
    count = torch.zeros(h, w, dtype=base.dtype)
    for t, left in boxes:
        count[t:t + patch, left:left + patch] += 1
    for i in range(n):
        for b0 in range(0, len(boxes), batch_size):
            chunk = boxes[b0:b0 + batch_size]
            xo = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
            for j, (t, left) in enumerate(chunk):
                xo[j, :, t:t + patch, left:left + patch] = fill
            drop = base[i:i + 1] - model(xo)                # (P, K)
            for j, (t, left) in enumerate(chunk):
                total[i, :, t:t + patch, left:left + patch] += drop[j].view(k, 1, 1)
    return total / count.clamp(min=1)


def random_maps(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``(n, 1, H, W)`` seeded ``N(0, 1)`` maps (the same for the same seed)."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 7]).generate_state(1)[0]))
    return torch.randn(n, 1, height, width, generator=g)
