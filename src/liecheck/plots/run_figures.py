"""Figures drawn from a run store's tables and arrays: the helpers every test of the
battery draws its report figures with (:mod:`liecheck.battery`), the saliency grid of
the cascade (Figure 1a / 10) and the theory's figures (3, 7).

Every ``figure_*`` function returns a list of :class:`Figure` (title, caption, PNG
bytes); models or methods a run did not cover simply give no figure.
"""

from __future__ import annotations

import pandas as pd

from ..layer_names import layer_label
from ..methods import get_method
from ..store import RunStore, unit_id
from .faithfulness import paper_label
from .figure import Figure, _plt, png

LABEL_PT = 9              # every label of a report figure is at least this size
ROBUST_PERCENTILE = 99.0  # Figure 1a's colour scale (per map)
DIGITS_RANK1 = ("The built-in model's inputs are scikit-learn digits copied into all three "
                "RGB channels, so the first layer's pattern A (fitted on those inputs) has "
                "three identical input channels and is rank 1 at the centre tap.")


def models_of(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["model"])) if not df.empty else []


SANITY_MAPS_CAPTION = (
    "columns: trained model, then randomised down to the named layer (last layer first). "
    "{colours} Each map is scaled by the {p:g}th percentile of its "
    "absolute values and clipped to [-1, 1] (the colour bar), so a few hot pixels cannot take "
    "the whole colour scale (the paper scaled by the absolute maximum). LRP a1b0, DTD and "
    "Excitation BP propagate the explained logit's value with its sign (z+ rule): when "
    "randomising a layer makes the logit negative the whole map turns from red to blue while "
    "its pattern stays, which is the paper's point (section 4: only the sign can change).")


def _reduce(method: str) -> str:
    """How ``method``'s maps are reduced over channels (``"sum"`` when not registered)."""
    try:
        return get_method(method).reduce
    except ValueError:
        return "sum"


def colours_sentence(methods) -> str:
    """Which rows of a map figure are signed and which are magnitudes (the methods
    whose maps are reduced by the maximum of |value| over channels can never be blue)."""
    mags = [paper_label(m) for m in methods if _reduce(m) == "maxabs"]
    signed = [paper_label(m) for m in methods if _reduce(m) != "maxabs"]
    parts = []
    if signed:
        parts.append(("The rows of " + ", ".join(signed) if mags else "Every row")
                     + " show signed maps (sum over channels): red positive, blue negative.")
    if mags:
        parts.append(("The rows of " + ", ".join(mags) if signed else "Every row")
                     + " show magnitudes (the maximum of |value| over channels, as the paper "
                       "draws gradient-type methods): white to red, never blue.")
    return " ".join(parts)


def sanity_maps_figure(store: RunStore, model: str, methods: list[str] | None = None):
    """Figure 1a / 10 of ``model`` from the store (the first image's maps at every
    randomisation step, one row per method; ``methods``: these only), with a colour
    bar, or ``None`` if no maps were kept. Used by the report and by ``liecheck sanity``."""

    sa = store.read("sanity")
    plt = _plt()
    if methods is None:
        methods = list(dict.fromkeys(sa[sa["model"] == model]["method"]))
    rows = []
    for m in methods:
        name = unit_id("sanity_maps", model, m)
        if store.has_arrays(name):
            a = store.load_arrays(name)
            rows.append((m, a["maps"], list(a["layers"])))
    if not rows:
        return None
    img = first_image(store, model)
    ncol = max(len(r[1]) for r in rows) + 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.1 * ncol + 1.4, 1.1 * len(rows)),
                             squeeze=False)
    for i, (m, maps, layers) in enumerate(rows):
        if img is not None:
            axes[i, 0].imshow(img)
        axes[i, 0].set_ylabel(paper_label(m), fontsize=LABEL_PT, rotation=0, ha="right",
                              va="center")
        for j, (h, lay) in enumerate(zip(maps, layers)):
            axes[i, j + 1].imshow(robust_scale(h), cmap="bwr", vmin=-1, vmax=1)
            if i == 0:
                axes[i, j + 1].set_title(
                    layer_label(model, str(lay).split("+")[-1]) if j else "trained",
                    fontsize=LABEL_PT, rotation=60, ha="left", va="bottom")
    if img is not None:
        axes[0, 0].set_title("image", fontsize=LABEL_PT, rotation=60, ha="left",
                             va="bottom")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _colour_bar(fig, list(axes.flat), "bwr", (-1, 1),
                {-1: "-p99", 0: "0", 1: "+p99"}, "map / 99th percentile\nof |map| (clipped)",
                "1a")
    return fig


def colour_bar_below(fig, left, right, cmap: str, lims, ticks: dict, label: str, gid: str):
    """A horizontal colour bar under the axes ``left`` ... ``right`` of the bottom row
    (placed after the layout is fixed; ``bbox_inches="tight"`` keeps it)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    a, b = left.get_position(), right.get_position()
    h_in = fig.get_figheight()
    cax = fig.add_axes([a.x0, a.y0 - 0.22 / h_in, b.x1 - a.x0, 0.1 / h_in])
    bar = fig.colorbar(ScalarMappable(Normalize(*lims), cmap), cax=cax, orientation="horizontal")
    bar.set_ticks(list(ticks), labels=list(ticks.values()), fontsize=LABEL_PT)
    bar.set_label(label, fontsize=LABEL_PT)
    cax.set_gid(f"colour-bar-{gid}")
    return bar


def _colour_bar(fig, axes, cmap: str, lims, ticks: dict, label: str, gid: str):
    """A vertical colour bar right of ``axes`` (``ticks``: value -> label)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(*lims), cmap), ax=axes, fraction=0.04,
                       pad=0.02, aspect=15, shrink=0.9)
    bar.set_ticks(list(ticks), labels=list(ticks.values()), fontsize=LABEL_PT)
    bar.set_label(label, fontsize=LABEL_PT)
    bar.ax.set_gid(f"colour-bar-{gid}")
    return bar


def robust_scale(h, percentile: float | None = None):
    """``h / q`` clipped to [-1, 1], ``q`` the ``percentile`` of ``|h|`` (default
    :data:`ROBUST_PERCENTILE`); a map that is zero stays zero."""
    import numpy as np

    q = float(np.percentile(np.abs(h), percentile or ROBUST_PERCENTILE))
    if q <= 0:
        q = float(np.abs(h).max()) or 1.0
    return np.clip(h / q, -1, 1)


def first_image(store: RunStore, model: str):
    name = f"images-{model}"
    return store.load_arrays(name)["raw"][0] if store.has_arrays(name) else None


def figure_theory(store: RunStore) -> list[Figure]:
    """Figure 7 (matrix-chain simulation) and Figure 3 (singular-value ratios)."""
    from ..theory.figures import DEGENERATE, plot_chain_figure7, plot_singular_ratios

    out = []
    sim = store.read("simulation")
    if not sim.empty:
        reps = store.manifest().get("settings", {}).get("simulation_repeats")
        learned = sim[sim["chain"] != "vgg16 shapes"]
        sim = sim.assign(family=[f if c == "vgg16 shapes" else f"{f} ({c.split()[0]})"
                                 for f, c in zip(sim["family"], sim["chain"])])
        own = ""
        if not learned.empty:
            own = (f" learned / relu-learned: the {learned['chain'].iloc[0].split()[0]} "
                   "model's own conv centre taps and dense weights "
                   f"({int(learned['step'].max())} products), without / with a ReLU.")
        learned_style = (" The learned curves are dashed with open markers and drawn over "
                         "the others: they start near 10^0, with vanilla and relu."
                         if own else "")
        out.append(Figure("7", "Simulated convergence of a matrix chain (appendix B)",
                          "1 - mean |cos| over the pairs of 32 random vectors after each "
                          "product with VGG-16-shaped random matrices of each family; line: "
                          f"median over {reps or 'the'} repetitions (the paper: 20), band: "
                          "25th-75th percentile." + own + " The floor near 1e-15 is float64 "
                          "resolution; curves that coincide (positive, stochastic) are drawn "
                          "with different markers." + learned_style,
                          png(plot_chain_figure7(sim.drop(columns="chain")))))
    sv = store.read("singular")
    models = store.manifest().get("models", {})
    for model in models_of(sv):
        d = sv[sv["model"] == model].drop(columns="model")
        why = ""
        if "digits" in (models.get(model, {}).get("note") or ""):
            why = DIGITS_RANK1
        fig = plot_singular_ratios(d, degenerate_note=why or None, model=model)
        out.append(Figure("3", f"sigma1 / sigma2 per layer, {model}",
                          "ratio of the first two singular values of each layer's centre-tap "
                          "matrix (W; A and W*A where patterns were fitted) and of the "
                          f"inter-layer matrices. Ratios above {DEGENERATE:.0e} (sigma2 "
                          "numerically zero: a rank-1 matrix) are drawn hatched up to the top "
                          "of the axis and labelled 'rank 1'. " + why, png(fig)))
    return out


# the figures that belong to no single test of the battery (each test draws its own:
# liecheck.battery)
ALL = (figure_theory,)
