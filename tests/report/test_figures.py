"""Visual regression checks of every report figure and CLI plot, by code.

Each figure is drawn from a small fixed run store (the synthetic one of
test_report, plus a rank-1 Figure 3 bar) and checked on the drawn canvas:
no legend box contains a plotted point, every text is at least 9 pt, each row's
L1 label of Figure 1b-e lies inside that row's axes, the column headers of
Figure 1b-e sit on one line, and Figure 3's axis is not squashed by the rank-1 bar.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from test_report import _tiny_store

from liecheck.plots import figure
from liecheck.plots import run_figures as figures
from liecheck.plots.style import MIN_FONT, line_style
from liecheck.report import figure_drawers
from liecheck.reproduce.experiments import KEYS
from liecheck.store import unit_id

RANK1 = 7e15


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """``{figure number: [matplotlib Figure, ...]}`` of every report figure."""
    s = _tiny_store(tmp_path_factory.mktemp("run"))
    s.write("singular", unit_id("sv-rank1"), pd.DataFrame([{
        "model": "cifar_net", "layer": "conv1", "module": "conv1", "index": 0, "kind": "A",
        "part": "layer", "shape": "(32, 3)", "sigma1": 7.0, "sigma2": 1e-15, "ratio": RANK1}]),
        KEYS["singular"])
    s.update(models={"cifar_net": {"note": "trained on scikit-learn digits (built-in)"}})
    out: dict[str, list] = {}
    mp = pytest.MonkeyPatch()
    kept: list = []
    original = figure.png
    for mod in list(sys.modules.values()):   # every module that draws with png
        if getattr(mod, "__name__", "").startswith("liecheck.") and \
                getattr(mod, "png", None) is original:
            mp.setattr(mod, "png", lambda fig, dpi=100: kept.append(fig) or b"")
    try:
        for _, fn in figure_drawers():
            first = len(kept)
            made = fn(s)
            assert len(kept) - first == len(made)   # one drawn figure per report figure
            for f, fig in zip(made, kept[first:]):
                out.setdefault(f.number, []).append(fig)
    finally:
        mp.undo()
    for figs in out.values():
        for fig in figs:
            fig.canvas.draw()
    yield out
    plt.close("all")


def _texts(fig):
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and t.get_window_extent().width > 0]


def _panels(fig):
    """The axes of a figure that show data (its colour bars left out)."""
    return [ax for ax in fig.axes if not str(ax.get_gid() or "").startswith("colour-bar")]


def _points_in_legends(fig) -> list[str]:
    """Labels of plotted lines with a data point inside some legend's box."""
    bad = []
    for ax in fig.axes:
        legends = [lg for lg in (ax.get_legend(), *fig.legends) if lg is not None]
        for lg in legends:
            box = lg.get_window_extent()
            for line in ax.get_lines():
                xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
                xy = xy[np.isfinite(xy).all(1)]
                inside = ((xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1)
                          & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1))
                if inside.any():
                    bad.append(line.get_label())
    return bad


def test_every_report_figure_is_drawn(drawn):
    assert {"1b-e", "1a, 10", "3", "4a", "4b", "5a-d", "5e-g", "6a-b", "6c", "7",
            "9", "GT"} <= set(drawn)


def test_no_legend_covers_a_plotted_point(drawn):
    for num, figs in drawn.items():
        for fig in figs:
            assert _points_in_legends(fig) == [], f"Figure {num}: legend covers data"


def test_every_label_is_at_least_9_pt(drawn):
    for num, figs in drawn.items():
        for fig in figs:
            small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig)
                     if t.get_fontsize() < MIN_FONT]
            assert small == [], f"Figure {num}: text below {MIN_FONT} pt: {small[:5]}"


def test_l1_label_inside_its_own_row(drawn):
    (fig,) = drawn["1b-e"]
    labels = [t for t in _texts(fig) if t.get_gid() == "l1-label"]
    assert len(labels) == 3                      # one per method of the tiny run
    rows = sorted({round(ax.get_window_extent().y0, 1) for ax in _panels(fig)})
    assert len(rows) == len(labels)
    for t in labels:
        box, ax_box = t.get_window_extent(), t.axes.get_window_extent()
        assert ax_box.x0 <= box.x0 and box.x1 <= ax_box.x1
        assert ax_box.y0 <= box.y0 and box.y1 <= ax_box.y1
    # each row holds exactly one label
    assert sorted(round(t.axes.get_window_extent().y0, 1) for t in labels) == rows


def test_class_headers_on_one_line(drawn):
    (fig,) = drawn["1b-e"]
    top = max(ax.get_window_extent().y1 for ax in _panels(fig))
    heads = [ax.title for ax in _panels(fig) if ax.get_window_extent().y1 == top]
    assert len(heads) == 4 and all("\n" not in h.get_text() for h in heads)
    assert len({round(h.get_window_extent().y0, 1) for h in heads}) == 1


def test_rank1_bar_does_not_squash_figure3(drawn):
    (fig,) = drawn["3"]
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert hi < 1e6                                 # the 7e15 bar is clipped, not drawn
    assert any(p.get_hatch() for p in ax.patches)   # ... but marked
    notes = [t.get_text() for t in _texts(fig) if t.get_gid() == "degenerate-note"]
    assert notes and "identical" in notes[0] and "rank 1" in notes[0]


def test_line_styles_distinct_for_every_method():
    from liecheck.methods import method_names

    n = max(len(method_names()), 24)
    styles = {tuple(sorted(line_style(i).items())) for i in range(n)}
    assert len(styles) == n


def test_sanity_plot_with_all_methods_keeps_legend_off_the_data():
    from liecheck.plots.faithfulness import sanity_curve

    rng = np.random.default_rng(0)
    rows = [{"method": f"m{k}", "image": i, "step": s, "layer": f"l{s}", "measure": "ssim",
             "score": float(rng.random())} for k in range(24) for i in range(3)
            for s in range(1, 5)]
    fig = sanity_curve(pd.DataFrame(rows), n_resamples=100)
    fig.canvas.draw()
    assert _points_in_legends(fig) == []
    colours = {(ln.get_color(), ln.get_marker(), ln.get_linestyle()) for ln in fig.axes[0].lines}
    assert len(colours) == 24
    plt.close(fig)


def test_csc_curves_that_coincide_are_named_under_the_plot(drawn):
    """In the tiny run LRP a1b0 and LRP CMP a1b0 have the same CSC medians: one curve
    hides the other, so the figure says so."""
    fig = drawn["5a-d"][0]
    notes = [t.get_text() for t in _texts(fig) if t.get_gid() == "coincide-note"]
    assert len(notes) == 1 and "LRP a1b0 = LRP CMP a1b0" in notes[0].replace("\n", " ")
    assert "Gradient" not in notes[0]                   # a distinct curve is not listed
    # the note lies below every axis, not on the data
    note = next(t for t in _texts(fig) if t.get_gid() == "coincide-note")
    assert note.get_window_extent().y1 <= min(ax.get_window_extent().y0 for ax in fig.axes)


def test_csc_axis_reads_as_cos_values(drawn):
    """The log axis of 1 - |cos| is labelled with |cos| (1 - 10^-2 = 0.99, ...), as the
    paper's, in one format at every decade (no mix of 0.999999 and 1-1e-14)."""
    import re

    ax = drawn["5a-d"][0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "$1-10^{-2}$" in labels and "$1-10^{-3}$" in labels
    assert all(re.fullmatch(r"\$1-10\^\{-?\d+\}\$", lab) for lab in labels), labels


def test_csc_ticks_name_nodes_with_the_papers_names():
    from liecheck.plots.faithfulness import csc_curve

    rows = [dict(model="vgg16", method="gradient", start="classifier_6", layer=lay,
                 module=mod, kind=kind, depth=d, median=0.5, baseline=0.3)
            for d, (lay, mod, kind) in enumerate([("x", None, "input"),
                                                  ("features_1", "features.1", "conv"),
                                                  ("classifier_1", "classifier.1", "dense")])]
    fig = csc_curve(pd.DataFrame(rows), log=True)
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["input", "features_1 (conv1_1)", "classifier_1 (fc1)"]
    plt.close(fig)


def test_inter_layer_bars_name_both_layers(drawn):
    """Figure 3's inter-layer matrix T_l joins two layers; its tick names both."""
    (fig,) = drawn["3"]
    ticks = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert ticks[0] == "l0 → l1" and ticks[1] == "l1 → l2"


def test_spectrum_plot_labels_and_legend():
    """`liecheck spectrum`'s figure: paper method and layer names, 9 pt, legend off the
    data, the CSC panel labelled in |cos|."""
    from liecheck.theory.figures import plot_spectrum

    rows = [dict(method=m, layer=lay, depth=d, image=0, ratio=r, csc_median=c)
            for m, f in (("lrp_a1b0", 1.0), ("gradient", 0.0))
            for d, (lay, r, c) in enumerate([("features_22", 2.0, 1 - 1e-3 ** (1 + f)),
                                             ("classifier_1", 9.0, 1 - 1e-4 ** (1 + f))])]
    fig = plot_spectrum(pd.DataFrame(rows), model="vgg16")
    fig.canvas.draw()
    assert _points_in_legends(fig) == []
    assert [t.get_text() for t in fig.findobj(Text) if t.get_fontsize() < MIN_FONT
            and t.get_visible() and t.get_text().strip()] == []
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["features_22 (conv4_3)", "classifier_1 (fc1)"]
    assert {t.get_text() for t in fig.axes[-1].get_legend().get_texts()} == {"LRP a1b0",
                                                                            "Gradient"}
    assert "$1-10^{-3}$" in [t.get_text() for t in fig.axes[1].get_yticklabels()]
    plt.close(fig)


def _bars(fig, prefix="colour-bar"):
    return [ax for ax in fig.axes if str(ax.get_gid() or "").startswith(prefix)]


def test_explain_grid_has_a_colour_key_per_column():
    """`liecheck explain`: under each method's column a colour bar; a gradient-type
    (max |value|) column's bar runs from 0 to max only (its maps are never blue), a
    signed column's from -max to +max."""
    import torch

    from liecheck.methods import get_method
    from liecheck.plots.grid import heatmap_grid

    methods = [get_method(m) for m in ("gradient", "lrp_a1b0", "guided_bp")]
    maps = {m.name: torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
            for m in methods}
    raw = [np.zeros((8, 8, 3), np.uint8)] * 2
    fig = heatmap_grid(raw, ["a", "b"], maps, methods, note="vgg16 with seeded RANDOM weights")
    fig.canvas.draw()
    assert [t.get_text() for t in _texts(fig) if t.get_gid() == "grid-note"] == [
        "vgg16 with seeded RANDOM weights"]
    keys = _bars(fig, "colour-key")
    assert [ax.get_gid() for ax in keys] == ["colour-key-maxabs", "colour-key-sum",
                                             "colour-key-maxabs"]
    for ax, lo in zip(keys, (0, -1, 0)):
        assert ax.get_xlim() == (lo, 1)
        assert "max over channels" in ax.get_xlabel() or "sum over channels" in ax.get_xlabel()
        # each bar sits under its own column
        col = [a for a in fig.axes if a not in keys and a.get_title()
               and abs(a.get_position().x0 - ax.get_position().x0) < 0.02]
        assert len(col) == 1
    assert "never blue" in keys[0].get_xlabel() and "red +, blue -" in keys[1].get_xlabel()
    assert [t.get_text() for t in _texts(fig) if t.get_fontsize() < MIN_FONT] == []
    plt.close(fig)


def test_saliency_figures_have_colour_bars_and_a_true_caption(drawn):
    (f1a,) = drawn["1a, 10"]
    assert [ax.get_gid() for ax in _bars(f1a)] == ["colour-bar-1a"]
    (f1b,) = drawn["1b-e"]
    bars = _bars(f1b)
    assert sorted(ax.get_gid() for ax in bars) == ["colour-bar-1c-d", "colour-bar-1e"]
    bottom = min(ax.get_window_extent().y0 for ax in _panels(f1b))
    assert all(ax.get_window_extent().y1 < bottom for ax in bars)   # under the panels
    viridis = next(ax for ax in bars if ax.get_gid() == "colour-bar-1c-d")
    assert viridis.get_xlim() == (0, 1)
    # Figure 1a's caption says which rows are magnitudes (never blue) and which are signed
    text = figures.colours_sentence(["gradient", "lrp_a1b0", "guided_bp"])
    assert "The rows of Gradient, Guided BP show magnitudes" in text
    assert "The rows of LRP a1b0 show signed maps" in text and "never blue" in text
    assert "magnitudes" not in figures.colours_sentence(["lrp_a1b0"])


def test_csc_plots_draw_the_verdicts_threshold(drawn):
    from liecheck.battery.csc import CONVERGED

    for num in ("5a-d", "6c", "9"):
        for fig in drawn[num]:
            ax = fig.axes[0]
            (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "threshold"]
            assert np.allclose(line.get_ydata(), 1 - CONVERGED)
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert f"verdict threshold |cos| = {CONVERGED:g}" in legend


def test_figure7_learned_curves_are_not_hidden():
    """The learned chains start near 10^0 where vanilla and relu lie: they are drawn
    over them, dashed, with open markers (here they coincide exactly)."""
    from liecheck.theory.figures import plot_chain_figure7

    rows = [{"family": f, "step": k, "median": 0.0, "p25": 0.0, "p75": 0.0}
            for f in ("vanilla", "relu", "learned (cifar_net)", "relu-learned (cifar_net)")
            for k in range(6)]
    fig = plot_chain_figure7(pd.DataFrame(rows))
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    own = [lines["learned (cifar_net)"], lines["relu-learned (cifar_net)"]]
    base = [lines["vanilla"], lines["relu"]]
    assert min(ln.get_zorder() for ln in own) > max(ln.get_zorder() for ln in base)
    assert all(ln.get_linestyle() == "--" and ln.get_markerfacecolor() == "none"
               for ln in own)
    assert all(ln.get_linestyle() == "-" for ln in base)
    assert own[0].get_marker() != own[1].get_marker()
    plt.close(fig)


def test_figure3_rank1_bars_reach_the_top_of_the_axis(drawn):
    """As the caption says: the clipped rank-1 bar ends where the axis ends."""
    (fig,) = drawn["3"]
    for ax in fig.axes:
        hatched = [p for p in ax.patches if p.get_hatch()]
        if not hatched:
            continue
        top = ax.get_ylim()[1]
        assert all(np.isclose(p.get_y() + p.get_height(), top) for p in hatched)
        label = next(t for t in ax.texts if t.get_text().startswith("rank 1"))
        assert label.get_window_extent().y1 <= ax.get_window_extent().y1 + 1


def test_a_method_keeps_its_colour_across_figures():
    """LRP a1b0 has the same colour and marker whichever methods a figure holds (the
    default report and a `csc` run differ), and every registered method its own colour."""
    from liecheck.methods import method_names
    from liecheck.plots.faithfulness import csc_curve, sanity_curve
    from liecheck.plots.style import method_styles

    def csc_df(methods):
        return pd.DataFrame([dict(model="cifar_net", method=m, start="fc6", layer=lay,
                                  module=lay, kind=kind, depth=d, median=0.5 + 0.1 * i,
                                  baseline=0.1)
                             for i, m in enumerate(methods)
                             for d, (lay, kind) in enumerate([("x", "input"), ("conv1", "conv")])])

    def style(fig, label):
        ln = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == label)
        return ln.get_color(), ln.get_marker()
    a = csc_curve(csc_df(["gradient", "lrp_z", "lrp_a1b0"]), log=True)
    b = csc_curve(csc_df(["lrp_a1b0", "guided_bp"]), log=True)
    sa = pd.DataFrame([{"method": m, "image": 0, "step": s, "layer": f"l{s}",
                        "measure": "ssim", "score": 0.5} for m in ("excitation_bp", "lrp_a1b0")
                       for s in (1, 2)])
    c = sanity_curve(sa, n_resamples=50)
    assert style(a, "LRP a1b0") == style(b, "LRP a1b0") == style(c, "LRP a1b0")
    assert style(a, "Gradient")[0] != style(a, "LRP a1b0")[0]
    names = method_names()
    assert len({s["color"] for s in method_styles(names).values()}) == len(names)
    for f in (a, b, c):
        plt.close(f)
