"""The zoo's figure: one panel per test, families down, methods across, each cell the
number with a frame where the test flags the method (:mod:`liecheck.battery.mechanism`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PANELS = (  # column, flag column, title
    ("csc_logits", "flag_csc", "CSC at the first layer\n(from the logits; 1 = parallel)"),
    ("ssim_random_logit", "flag_random_logit", "random-logit SSIM\n(1 = ignores the class)"),
    ("ssim_cascade_last", "flag_sanity", "cascade SSIM, last layer random\n"
                                         "(1 = ignores it)"),
    ("l1_class_diff", "flag_two_digits", "ground truth: L1 between the two\n"
                                         "digits' maps (0 = same map)"),
)


def plot_zoo(df: pd.DataFrame, path: str | Path | None = None):
    """Draw :func:`liecheck.zoo.run.table`'s numbers; save ``path.png`` if given. A black
    frame marks a cell whose test shows its mechanism; a grey cell was not measured (the
    method is refused on the family, or the test does not apply)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = df[~df["method"].isin(("occlusion", "random"))]
    models = list(dict.fromkeys(d["model"]))
    methods = list(dict.fromkeys(d["method"]))
    panels = [p for p in PANELS if p[0] in d]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.5,
                                                      0.32 * len(models) + 2.2),
                             sharey=True, squeeze=False)
    acc = d.groupby("model", sort=False)["model_accuracy"].first() \
        if "model_accuracy" in d else None
    for ax, (col, flag, title) in zip(axes[0], panels):
        grid = np.full((len(models), len(methods)), np.nan)
        hits = np.zeros_like(grid, dtype=bool)
        for _, r in d.iterrows():
            i, j = models.index(r["model"]), methods.index(r["method"])
            grid[i, j] = r[col]
            hits[i, j] = bool(r.get(flag, False)) if flag in d else False
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("0.85")
        hi = 1.0 if col != "l1_class_diff" else max(0.3, np.nanmax(grid) if
                                                      np.isfinite(grid).any() else 0.3)
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=hi, aspect="auto")
        for i in range(len(models)):
            for j in range(len(methods)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                            color="white" if grid[i, j] < 0.6 * hi else "black")
                if hits[i, j]:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.4,
                                               ec="black"))
        ax.set_xticks(range(len(methods)), methods, rotation=90, fontsize=6.5)
        ax.set_title(title, fontsize=8)
    labels = [f"{m} ({acc[m]:.2f})" if acc is not None and acc[m] == acc[m] else m
              for m in models]
    axes[0, 0].set_yticks(range(len(models)), labels, fontsize=6.5)
    fig.suptitle("The battery over the zoo (family, test accuracy in brackets); a frame: "
                 "the test shows its mechanism against the gradient", fontsize=9)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path.with_suffix(".png"), dpi=130)
    return fig
