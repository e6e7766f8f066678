"""Figures of the theory toolkit (matplotlib, Agg backend).

* :func:`plot_chain`: Figure 7a/7b, 1 - median |cos| on a log axis against the
  number of matrix products, quartile band per family;
* :func:`plot_singular_ratios`: Figure 3, sigma1/sigma2 bars per layer;
* :func:`plot_spectrum`: sigma1/sigma2 of derivation matrices against depth,
  with CSC next to it.

Each returns the :class:`~matplotlib.figure.Figure` and, given ``path`` (without
or with a suffix), saves it as PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..layer_names import layer_label
from ..methods import get_method
from ..plots.style import cos_axis, method_styles

FLOOR = 1e-16  # 1 - cos below this is drawn at the floor (float64 resolution)
DEGENERATE = 1e6  # sigma1/sigma2 above this: sigma2 is numerically zero (rank 1)
MIN_FONT = 9


def save(fig: Figure, path: str | Path | None) -> list[Path]:
    """Save ``fig`` as ``<path>.png`` and ``<path>.svg``; returns the files written."""
    if path is None:
        return []
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    stem = p.with_suffix("") if p.suffix in (".png", ".svg", ".pdf") else p
    out = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(out[0], dpi=150, bbox_inches="tight")
    fig.savefig(out[1], bbox_inches="tight")
    return out


def plot_chain(df: pd.DataFrame, families=None, title: str | None = None,
               path: str | Path | None = None, ax=None) -> Figure:
    """1 - |cos| (median, band p25-p75) per step on a log axis (paper Figure 7).

    ``df`` is :func:`~liecheck.theory.simulate_chain`'s table. Every family has its own
    marker; the families of a model's own weights (``learned``, ``relu-learned``) are
    dashed, with larger open markers, and drawn over the random families, whose
    curves they meet near 10^0.
    """
    fams = list(dict.fromkeys(df["family"])) if families is None else list(families)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
    else:
        fig = ax.figure
    markers = ("o", "s", "^", "D", "v", "P", "X")
    for i, f in enumerate(fams):
        d = df[df["family"] == f].sort_values("step")
        if d.empty:
            raise ValueError(f"family '{f}' is not in the table")
        y = np.clip(1 - d["median"].to_numpy(), FLOOR, None)
        # distinct markers, drawn smaller for later families: coinciding curves
        # (positive and stochastic) stay visible. A model's own weights (learned,
        # relu-learned: short chains that start near 10^0, where vanilla and relu lie)
        # are drawn on top, dashed, with larger open markers, so they are not hidden.
        own = "learned" in f
        style = ({"ls": "--", "lw": 1.8, "ms": 7, "mfc": "none", "mew": 1.5, "zorder": 4}
                 if own else {"ms": max(6 - 0.5 * i, 3), "zorder": 2})
        line, = ax.semilogy(d["step"], y, marker=markers[i % len(markers)], label=f,
                            gid=f"chain-{f}", **style)
        lo = np.clip(1 - d["p75"].to_numpy(), FLOOR, None)
        hi = np.clip(1 - d["p25"].to_numpy(), FLOOR, None)
        ax.fill_between(d["step"], lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("matrix products")
    ax.set_ylabel("1 - mean |cos| (median of repeats)")
    ax.grid(True, which="major", alpha=0.4)
    ax.legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    save(fig, path)
    return fig


def plot_chain_figure7(df: pd.DataFrame, path: str | Path | None = None) -> Figure:
    """Both panels: (a) the base families and learned weights, (b) alpha-beta."""
    fams = list(dict.fromkeys(df["family"]))
    ab = [f for f in fams if f.startswith("alpha")]
    base = [f for f in fams if f not in ab]
    n = int(bool(base)) + int(bool(ab))
    fig, axes = plt.subplots(1, max(n, 1), figsize=(5.0 * max(n, 1), 3.6), squeeze=False)
    i = 0
    if base:
        plot_chain(df, base, "(a) matrix families", ax=axes[0, i])
        i += 1
    if ab:
        plot_chain(df, ab, r"(b) $\alpha W^+ + \beta W^-$", ax=axes[0, i])
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_singular_ratios(df: pd.DataFrame, path: str | Path | None = None,
                         degenerate_note: str | None = None, model: str | None = None
                         ) -> Figure:
    """Figure 3: sigma1/sigma2 per layer for W, A, W*A (layer and inter-layer panels).

    ``df`` is :func:`~liecheck.theory.singular_ratios`'s table. A ratio above
    :data:`DEGENERATE` (sigma2 numerically zero: a rank-1 matrix) would squash the
    log axis, so it is drawn hatched up to the top of the axis (the axis ends there)
    and labelled "rank 1" inside the bar;
    ``degenerate_note`` (e.g. why the matrix is rank 1) is written under the panels
    when such a bar exists. ``model`` adds the paper's layer names to the ticks.
    """

    parts = [p for p in ("layer", "inter") if (df["part"] == p).any()]
    fig, axes = plt.subplots(1, len(parts), figsize=(6.0 * len(parts), 4.0), squeeze=False)
    kinds = [k for k in ("A", "W", "W*A") if (df["kind"] == k).any()]
    ratios = df["ratio"].to_numpy(dtype=float)
    finite = ratios[np.isfinite(ratios) & (ratios <= DEGENERATE)]
    top = 10 ** np.ceil(np.log10(max(finite.max() if finite.size else 10.0, 10.0)) + 0.5)
    any_degenerate = False
    for ax, part in zip(axes[0], parts):
        d = df[df["part"] == part]
        layers = list(dict.fromkeys(d["layer"]))
        if part == "inter":                 # T_l joins layer l and the next layer
            order = (df[df["part"] == "layer"].drop_duplicates("layer")
                     .set_index("index")["layer"])
            nxt = {lay: order.get(i + 1) for lay, i in
                   d.drop_duplicates("layer").set_index("layer")["index"].items()}
        width = 0.8 / max(len(kinds), 1)
        for j, kind in enumerate(kinds):
            dk = d[d["kind"] == kind].set_index("layer").reindex(layers)
            r = dk["ratio"].to_numpy(dtype=float)
            bad = ~np.isfinite(r) | (r > DEGENERATE)
            bad &= ~np.isnan(r)
            x = np.arange(len(layers)) + (j - (len(kinds) - 1) / 2) * width
            bars = ax.bar(x, np.where(bad, top, r), width, color=f"C{j}")
            for k in np.flatnonzero(bad):
                any_degenerate = True
                bars[k].set_hatch("//")
                bars[k].set_edgecolor("black")
                bars[k].set_gid("rank1-bar")
                ax.text(x[k], 0.97, f"rank 1 ({r[k]:.0e})", ha="center", va="top",
                        fontsize=MIN_FONT, rotation=90, transform=ax.get_xaxis_transform(),
                        bbox={"facecolor": "white", "alpha": 0.85, "lw": 0, "pad": 1.0})
        ax.set_xticks(np.arange(len(layers)))
        names = [layer_label(model, str(v)) if model else str(v) for v in layers]
        if part == "inter":
            names = [f"{a} → {layer_label(model, str(nxt[v])) if model else nxt[v]}"
                     if nxt.get(v) is not None else a for a, v in zip(names, layers)]
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=MIN_FONT)
        ax.tick_params(axis="y", labelsize=MIN_FONT)
        ax.set_yscale("log")
        ax.set_ylim(top=top)              # a rank-1 bar (height top) ends at the axis top
        ax.set_ylabel(r"$\sigma_1 / \sigma_2$")
        ax.set_title("per layer (centre taps)" if part == "layer"
                     else r"inter-layer $T_l = \sqrt{S_l} V_l U_{l+1} \sqrt{S_{l+1}}$",
                     fontsize=10)
        ax.grid(True, axis="y", alpha=0.4)
    from matplotlib.patches import Patch

    handles = [Patch(color=f"C{j}", label=k) for j, k in enumerate(kinds)]
    if any_degenerate:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="rank 1 (clipped)"))
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       fontsize=MIN_FONT, frameon=False, title="matrix",
                       title_fontsize=MIN_FONT)
    fig.tight_layout()
    if any_degenerate:
        note = (f"hatched: sigma1/sigma2 > {DEGENERATE:.0e} (sigma2 ~ 0, rank 1), drawn up to "
                "the top of the axis")
        if degenerate_note:
            note += ". " + degenerate_note
        import textwrap
        fig.text(0.01, -0.02, "\n".join(textwrap.wrap(note, 110)), ha="left", va="top",
                 fontsize=MIN_FONT, gid="degenerate-note")
    save(fig, path)
    return fig


def plot_spectrum(df: pd.DataFrame, path: str | Path | None = None,
                  model: str | None = None) -> Figure:
    """sigma1/sigma2 of the derivation matrix (left) and CSC (right) against depth.

    ``df`` is :func:`~liecheck.theory.spectrum_table`'s table (several methods
    may be concatenated); ``model`` (``vgg16``, ``cifar_net``, ``resnet50``) adds the
    paper's layer names to the ticks.
    """
    has_csc = "csc_median" in df and df["csc_median"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_csc else 1, figsize=(10 if has_csc else 5, 3.6),
                             squeeze=False)

    def paper(method: str) -> str:
        try:
            return get_method(method).paper_name
        except ValueError:
            return method

    styles = method_styles(df["method"])
    for method, d in df.groupby("method", sort=False):
        g = d.groupby(["depth", "layer"], sort=True).median(numeric_only=True).reset_index()
        axes[0, 0].semilogy(g["depth"], g["ratio"], label=paper(method), **styles[method])
        if has_csc:
            axes[0, 1].semilogy(g["depth"], np.clip(1 - g["csc_median"], FLOOR, None),
                                label=paper(method), **styles[method])
    layers = df.drop_duplicates("depth").sort_values("depth")
    for ax in axes[0]:
        ax.set_xticks(layers["depth"])
        ax.set_xticklabels([layer_label(model, str(v)) if model else str(v)
                            for v in layers["layer"]], rotation=60, ha="right",
                           fontsize=MIN_FONT)
        ax.set_xlabel("start layer (node)")
        ax.grid(True, alpha=0.4)
    axes[0, -1].legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       frameon=False)
    axes[0, 0].set_ylabel(r"$\sigma_1 / \sigma_2$ of $J$ (median over images)")
    if has_csc:
        cos_axis(axes[0, 1])
        axes[0, 1].set_ylabel("CSC at the input: median |cos|\n(log scale of 1 - |cos|)")
    fig.tight_layout()
    save(fig, path)
    return fig
