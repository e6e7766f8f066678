"""Saliency grids for the cascading randomisation (Sixt et al. 2020, Figures 1a, 10)."""

from __future__ import annotations

import torch

from ..heatmap import heatmap, to_rgb
from ..methods import get_method


def cascade_grid(rows: dict[str, list[tuple[str, torch.Tensor]]], image=None, method_of=None):
    """One row per method, one column per step (trained model first).

    Parameters
    ----------
    rows : method name -> ``[(column label, relevance (C, H, W) or map (H, W)), ...]``,
        e.g. from :func:`liecheck.metrics.cascade_maps` for one image.
    image : optional ``(H, W, 3)`` uint8 picture shown in the first column.
    method_of : ``name -> Method`` for the channel reduction (default: the registry).

    Maps are reduced per the method and coloured red (positive) / blue (negative),
    each scaled by its absolute maximum.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    method_of = method_of or get_method
    ncol = max(len(v) for v in rows.values()) + (image is not None)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.6 * ncol, 1.7 * len(rows)),
                             squeeze=False)
    for i, (name, cols) in enumerate(rows.items()):
        m = method_of(name)
        off = 0
        if image is not None:
            axes[i, 0].imshow(image)
            off = 1
        for j, (label, r) in enumerate(cols):
            h = heatmap(r[None], m) if r.dim() == 3 else r[None]
            axes[i, j + off].imshow(to_rgb(h)[0])
            if i == 0:
                axes[i, j + off].set_title(label, fontsize=7)
        axes[i, 0].set_ylabel(m.paper_name, fontsize=8)
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
        for s in a.spines.values():
            s.set_visible(False)
    fig.tight_layout()
    return fig
