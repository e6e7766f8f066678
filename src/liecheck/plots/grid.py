"""Heatmap grid: one row per image, the image then one column per method."""

from __future__ import annotations

import numpy as np

from ..heatmap import heatmap, to_rgb


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    s = size * 256 / 224 / min(h, w)
    pil = Image.fromarray(img).resize((max(size, round(w * s)), max(size, round(h * s))))
    a = np.asarray(pil)
    top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    return a[top:top + size, left:left + size]


def heatmap_grid(raw_images, names, maps: dict, methods, target=None):
    """Figure with the images and each method's heatmap (red positive, blue negative,
    each map scaled by its absolute maximum, as in the paper's appendix).

    ``maps``: method name -> ``(N, C, H, W)`` relevance. Non-finite maps raise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    n, k = len(names), len(methods)
    fig, axes = plt.subplots(n, k + 1, figsize=(2.2 * (k + 1), 2.3 * n), squeeze=False)
    for i in range(n):
        size = next(iter(maps.values())).shape[-1]
        axes[i, 0].imshow(_centre_crop(raw_images[i], size) if raw_images else
                          np.zeros((size, size, 3)))
        title = names[i] + (f"\nclass {target[i]}" if target is not None else "")
        axes[i, 0].set_title(title, fontsize=9)
        for j, m in enumerate(methods):
            h = heatmap(maps[m.name][i:i + 1], m)
            axes[i, j + 1].imshow(to_rgb(h)[0])
            if i == 0:
                axes[i, j + 1].set_title(m.paper_name, fontsize=9)
    for a in axes.flat:
        a.axis("off")
    fig.tight_layout()
    return fig
