"""The ground-truth benchmark's figure: the three measures per method, with intervals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..methods import get_method


def _label(method: str) -> str:
    """The paper's name of a registered method; the references as they are."""

    try:
        return get_method(method).paper_name
    except ValueError:
        return method


def plot_two_digits(summary: pd.DataFrame, path: str | Path | None = None):
    """Three horizontal bar panels (mass accuracy, pointing, L1 between the two classes'
    maps up to their sign), methods sorted by mass accuracy, 99 % bootstrap intervals as error bars;
    the chance levels (0.5) dashed. Saved as ``path.png`` and ``path.svg`` if given.

    Returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = summary.sort_values("mass_accuracy")
    fig, axes = plt.subplots(1, 3, figsize=(11, 0.3 * len(df) + 1.6), sharey=True)
    titles = {"mass_accuracy": "relevance mass accuracy", "pointing": "pointing game",
              "l1_class_diff": "L1 between the two classes'\nmaps, up to sign"}
    for ax, col in zip(axes, titles):
        err = [df[col] - df[f"{col}_low"], df[f"{col}_high"] - df[col]]
        colors = ["0.5" if m in ("occlusion", "random") else "C0" for m in df["method"]]
        ax.barh([_label(m) for m in df["method"]], df[col], xerr=err, color=colors,
                capsize=2)
        if col != "l1_class_diff":
            ax.axvline(0.5, ls="--", color="k", lw=0.8, label="chance")
            ax.set_xlim(0, 1)
        ax.set_title(titles[col], fontsize=10)
    acc = summary.attrs.get("model_accuracy")
    n = int(summary["n_images"].iloc[0]) if len(summary) else 0
    sup = f"two digits side by side, {n} test images; dashed: chance (0.5)"
    if acc is not None:
        sup += f"; model test accuracy (both digits) {acc:.3f}"
    fig.suptitle(sup, fontsize=10)
    fig.tight_layout()
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "svg"):
            fig.savefig(p.with_suffix(f".{ext}"), dpi=120)
    return fig
