"""Figures of the faithfulness tests (Sixt et al. 2020, Figures 4, 5, 8, 9).

Each function takes the tidy table of a metric (:func:`liecheck.csc`,
:func:`liecheck.sanity`, :func:`liecheck.random_logit`) and returns a matplotlib
``Figure`` (Agg backend); :func:`save` writes it as PNG and SVG.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from ..layer_names import layer_label
from ..methods import get_method
from ..metrics.csc import HIST_COLUMNS, PAPER_BINS
from ..metrics.stats import summarize
from .style import (
    LEGEND_IN,
    MIN_FONT,
    coinciding,
    cos_axis,
    legend_outside,
    line_style,
    method_styles,
    note_coinciding,
    threshold_line,
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def paper_label(method: str) -> str:
    """The method's paper name (the name itself when it is not registered)."""

    try:
        return get_method(method).paper_name
    except ValueError:
        return method


def _model(df: pd.DataFrame, model: str | None) -> str:
    if model is None and "model" in df and len(df):
        return str(df["model"].iloc[0])
    return model or ""


def save(fig, path: str | Path, formats=("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``path.png`` and ``path.svg`` (suffix of ``path`` ignored)."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = base.with_suffix("." + fmt)
        fig.savefig(p, dpi=150, bbox_inches="tight")
        out.append(p)
    return out


def random_logit_boxplot(df: pd.DataFrame, title: str = "random logit"):
    """Figure 4a: one box per method of the SSIM between the target-class map and a
    random other class's map (1 = the explanation ignores the explained class)."""
    plt = _plt()
    methods = list(dict.fromkeys(df["method"]))
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(methods), 3.2))
    ax.boxplot([df.loc[df.method == m, "score"].dropna() for m in methods],
               orientation="vertical",
               showfliers=True, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(methods) + 1), [paper_label(m) for m in methods], rotation=60,
                  ha="right", fontsize=MIN_FONT)
    measure = df["measure"].iloc[0] if "measure" in df and len(df) else "score"
    ax.set_ylabel(measure.upper() if measure == "ssim" else measure)
    ax.set_ylim(min(0.0, float(df["score"].min())) if len(df) else 0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def sanity_curve(df: pd.DataFrame, confidence: float = 0.99, n_resamples: int = 10_000,
                 seed: int = 0, title: str = "cascading parameter randomisation",
                 model: str | None = None):
    """Figures 4b / 8b: median score per randomisation step (last layer first) with
    a bootstrap band per method. The trained model is not a step. Layers are named
    by their node and, where known, the paper's name (``model``: default the table's
    ``model`` column)."""
    plt = _plt()
    model = _model(df, model)
    s = summarize(df, ["method", "step", "layer"], "score", confidence, n_resamples, seed)
    steps = s.drop_duplicates("step").sort_values("step")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(steps) + 2.5) + LEGEND_IN, 3.8))
    curves = {}
    styles = method_styles(s["method"])
    for m, g in s.groupby("method", sort=False):
        g = g.sort_values("step")
        st = styles[m]
        ax.plot(g["step"], g["median"], ms=4, label=paper_label(m), **st)
        ax.fill_between(g["step"], g["ci_low"], g["ci_high"], alpha=0.15, color=st["color"])
        curves[paper_label(m)] = g["median"].to_numpy()
    ax.set_xticks(steps["step"], [layer_label(model, str(v)) for v in steps["layer"]],
                  rotation=60, ha="right", fontsize=MIN_FONT)
    ax.set_xlabel("randomised down to (from the top)")
    measure = str(df["measure"].iloc[0]) if len(df) else "score"
    ax.set_ylabel(f"median {measure.upper() if measure == 'ssim' else measure}")
    ax.set_ylim(min(0.0, float(s["ci_low"].min())), 1.02)
    ax.set_title(f"{title} ({int(confidence * 100)}% bootstrap bands)", fontsize=10)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    note_coinciding(fig, coinciding(curves, tol=0.01))
    return fig


def csc_curve(df: pd.DataFrame, start: str | None = None, log: bool = False,
              title: str | None = None, model: str | None = None,
              threshold: float | None = None):
    """Figures 5a-d / 9: median CSC per recorded layer (input left) per method, or per
    start layer when the table holds one method and several starts; the random
    baseline dashed. ``log=True`` plots ``1 - median`` on a log axis. Layers and
    starts show the paper's name next to the node's (``model``: default the table's
    ``model`` column). A method has the colour and marker of its registry position
    (:func:`~liecheck.plots.style.method_styles`). ``threshold`` (the verdict's
    ``|cos|``, :data:`liecheck.battery.csc.CONVERGED`) is drawn as a dotted line."""
    plt = _plt()
    model = _model(df, model)
    d = df if start is None else df[df["start"] == start]
    hue = "start" if d["method"].nunique() == 1 and d["start"].nunique() > 1 else "method"
    if hue == "method" and d["start"].nunique() > 1:
        d = d[d["start"] == d["start"].iloc[0]]
    layers = d.drop_duplicates("depth").sort_values("depth")
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(layers) + 2.5) + LEGEND_IN, 3.8))
    tiny = 1e-16
    logits = _logits_node(df)
    curves = {}
    styles = method_styles(d["method"]) if hue == "method" else {}
    for i, (key, g) in enumerate(d.groupby(hue, sort=False)):
        g = g.sort_values("depth")
        y = (1 - g["median"]).clip(lower=tiny) if log else g["median"]
        label = (paper_label(key) if hue == "method" else
                 f"start {layer_label(model, str(key), logits)}")
        ax.plot(g["depth"], y, ms=4, **(styles.get(key) or line_style(i)), label=label)
        curves[label] = np.log10(y.to_numpy()) if log else y.to_numpy()
    base = layers["baseline"]
    ax.plot(layers["depth"], (1 - base) if log else base, "k--", lw=1, label="random baseline")
    curves["random baseline"] = np.log10(1 - base.to_numpy()) if log else base.to_numpy()
    # node names (features_1), as in the title and the tables; the paper's in parentheses
    ticks = ["input" if k == "input" else layer_label(model, str(n))
             for n, k in zip(layers["layer"], layers["kind"])]
    ax.set_xticks(layers["depth"], ticks, rotation=60, ha="right", fontsize=MIN_FONT)
    if log:
        ax.set_yscale("log")
        cos_axis(ax, threshold)
        ax.set_ylabel("median |cos| (log scale of 1 - |cos|)")
    else:
        ax.set_ylim(0, 1.02)
        if threshold is not None:
            threshold_line(ax, threshold, threshold)
        ax.set_ylabel("median |cos|")
    st = (layer_label(model, str(d["start"].iloc[0]), logits) if hue == "method" and len(d)
          else "several starts")
    ax.set_title(title or f"CSC from {st}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    legend_outside(ax)
    fig.tight_layout()
    # "coincide" = within 1% of the axis height (about a line width); curves shorter
    # than the rest (a lower start) never coincide with a full one
    lo, hi = sorted(ax.get_ylim())
    note_coinciding(fig, coinciding(curves, tol=0.01 * (np.log10(hi / lo) if log else hi - lo)))
    return fig


def _logits_node(df: pd.DataFrame) -> str | None:
    """The start that records the most layers below it: the logits."""
    if df.empty or "start" not in df:
        return None
    return str(df.groupby("start")["layer"].nunique().idxmax())


def csc_histogram(df: pd.DataFrame, layer: str | None = None, start: str | None = None):
    """Figures 5e-g: share of |cos| values per paper bin (0.9, 0.99, 0.999, 0.9999) at
    one layer (default: the first conv), one bar group per method."""
    plt = _plt()
    d = df if start is None else df[df["start"] == start]
    if start is None and d["start"].nunique() > 1:
        d = d[d["start"] == d["start"].iloc[0]]
    if layer is None:
        convs = d[d["kind"] == "conv"]
        layer = convs.sort_values("depth")["layer"].iloc[0] if len(convs) else d["layer"].iloc[0]
    d = d[(d["layer"] == layer) | (d["module"] == layer)]
    edges = ["0"] + [str(b) for b in PAPER_BINS] + ["1"]
    names = [f"[{a}, {b})" for a, b in pairwise(edges)]
    fig, ax = plt.subplots(figsize=(5.5 + LEGEND_IN, 3.4))
    k = len(d)
    width = 0.8 / max(k, 1)
    styles = method_styles(d["method"])
    for i, (_, row) in enumerate(d.iterrows()):
        counts = np.array([row[c] for c in HIST_COLUMNS], dtype=float)
        frac = counts / max(counts.sum(), 1)
        ax.bar(np.arange(len(names)) + (i - (k - 1) / 2) * width, frac, width,
               label=paper_label(row["method"]), color=styles[row["method"]]["color"])
    ax.set_xticks(range(len(names)), names, fontsize=MIN_FONT, rotation=20)
    ax.set_xlabel("|cos| bin")
    ax.set_ylabel("share of positions x pairs")
    model = _model(df, None)
    ax.set_title(f"{model + ': ' if model else ''}CSC histogram at "
                 f"{layer_label(model, str(layer))}", fontsize=10)
    legend_outside(ax)
    fig.tight_layout()
    return fig
