"""Heatmaps: channel reduction, normalisation and the paper's colours."""

from __future__ import annotations

import numpy as np
import torch

from .methods import Method, get_method


def reduce_channels(r: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """``(N, C, H, W) -> (N, H, W)``: signed channel sum, or max over channels of |r|."""
    if r.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(r.shape)}")
    if how == "sum":
        return r.sum(1)
    if how == "maxabs":
        return r.abs().amax(1)
    raise ValueError(f"unknown reduction '{how}' (use 'sum' or 'maxabs')")


def heatmap(r: torch.Tensor, method: str | Method | None = None, how: str | None = None
            ) -> torch.Tensor:
    """Channel-reduced map ``(N, H, W)`` as the paper draws its heatmaps: signed sum
    for LRP-type methods, max of abs for gradient-type methods (a magnitude, never
    negative; taken from the method's ``reduce`` unless ``how`` is given). Raises on
    non-finite values. :func:`liecheck.plots.grid.heatmap_grid` draws the colour key
    of each kind."""
    if how is None:
        how = get_method(method).reduce if method is not None else "sum"
    if not torch.isfinite(r).all():
        raise FloatingPointError("relevance contains NaN or inf; refusing to plot it")
    return reduce_channels(r, how)


def normalize_signed(h: torch.Tensor) -> torch.Tensor:
    """Scale each map by its absolute maximum into [-1, 1] (the paper's visualisation)."""
    m = h.reshape(h.shape[0], -1).abs().amax(1).clamp(min=1e-30)
    return h / m.view(-1, *[1] * (h.dim() - 1))


def to_rgb(h: torch.Tensor) -> np.ndarray:
    """``(N, H, W)`` maps -> ``(N, H, W, 3)`` uint8, red positive, blue negative, white 0."""
    import matplotlib

    v = normalize_signed(h).detach().cpu().numpy()
    cmap = matplotlib.colormaps["bwr"]
    return (cmap((v + 1) / 2)[..., :3] * 255).astype(np.uint8)
