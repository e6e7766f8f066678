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


KEY_LABELS = {"sum": "signed: sum over channels,\nred +, blue -, white 0",
              "maxabs": "magnitude: max over channels\nof |value| (never blue)"}


def colour_key(cax, how: str, fontsize: float = 9) -> None:
    """Draw the colour bar of :func:`liecheck.heatmap.to_rgb` for maps reduced by
    ``how`` into ``cax``: ``"sum"`` spans blue (-max) to red (+max); ``"maxabs"`` (a
    magnitude, never negative) only white (0) to red (max)."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    bwr = matplotlib.colormaps["bwr"]
    if how == "maxabs":
        sm = ScalarMappable(Normalize(0, 1), ListedColormap(bwr(np.linspace(0.5, 1, 128))))
        ticks, names = [0, 1], ["0", "max"]
    else:
        sm = ScalarMappable(Normalize(-1, 1), bwr)
        ticks, names = [-1, 0, 1], ["-max", "0", "+max"]
    bar = cax.figure.colorbar(sm, cax=cax, orientation="horizontal")
    bar.set_ticks(ticks, labels=names, fontsize=fontsize)
    bar.set_label(KEY_LABELS.get(how, how), fontsize=fontsize)
    cax.set_gid(f"colour-key-{how}")


def heatmap_grid(raw_images, names, maps: dict, methods, target=None, note: str | None = None):
    """Figure with the images and each method's heatmap, each map scaled by its
    absolute maximum (as in the paper's appendix), and under each column a colour bar
    saying what its colours mean: signed methods (channel sum) red positive, blue
    negative; gradient-type methods (``reduce="maxabs"``: the maximum of |value| over
    the channels) a magnitude from white to red, never blue.

    ``maps``: method name -> ``(N, C, H, W)`` relevance. Non-finite maps raise.
    ``note`` (e.g. that the model has random weights) is written under the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, k = len(names), len(methods)
    fig, axes = plt.subplots(n + 1, k + 1, figsize=(2.2 * (k + 1), 2.3 * n + 0.9),
                             squeeze=False,
                             gridspec_kw={"height_ratios": [1.0] * n + [0.07]})
    size = next(iter(maps.values())).shape[-1]
    for i in range(n):
        axes[i, 0].imshow(_centre_crop(raw_images[i], size) if raw_images else
                          np.zeros((size, size, 3)))
        title = names[i] + (f"\nclass {target[i]}" if target is not None else "")
        axes[i, 0].set_title(title, fontsize=9)
        for j, m in enumerate(methods):
            h = heatmap(maps[m.name][i:i + 1], m)
            axes[i, j + 1].imshow(to_rgb(h)[0])
            if i == 0:
                axes[i, j + 1].set_title(m.paper_name, fontsize=9)
    for a in axes[:n].flat:
        a.axis("off")
    axes[n, 0].axis("off")
    axes[n, 0].text(0.5, 0.0, "colour keys: each map\nscaled by its own\nmaximum |value|",
                    ha="center", va="top", fontsize=9, transform=axes[n, 0].transAxes)
    for j, m in enumerate(methods):
        colour_key(axes[n, j + 1], m.reduce)
    fig.tight_layout()
    if note:
        import textwrap

        width = max(40, int(fig.get_figwidth() * 72 / (0.6 * 9)))
        fig.text(0.01, 0.0, "\n".join(textwrap.wrap(note, width)), ha="left", va="top",
                 fontsize=9, gid="grid-note")
    return fig
