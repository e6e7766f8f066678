"""The paper's figures, drawn from a run store's tables and arrays.

Every function returns a list of :class:`Figure` (title, caption, PNG bytes);
models or methods a run did not cover simply give no figure.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from ..store import RunStore, unit_id


@dataclass
class Figure:
    number: str          # the paper's figure number, e.g. "5a-d"
    title: str
    caption: str
    png: bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _label(method: str) -> str:
    from ..methods import get_method
    try:
        return get_method(method).paper_name
    except ValueError:
        return method


def _models(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["model"])) if not df.empty else []


def figure_csc(store: RunStore) -> list[Figure]:
    """Figures 5a-d (median CSC per layer from the logits), 5e-g (histogram at the
    first conv), 9 (several start layers per method) and 6c (CMP methods)."""
    from ..plots.faithfulness import csc_curve, csc_histogram
    from ..reproduce.summary import logits_start

    csc = store.read("csc")
    out = []
    for model in _models(csc):
        d = csc[csc["model"] == model]
        st = logits_start(d)
        out.append(Figure("5a-d", f"CSC, {model}, from the logits",
                          "1 - median |cos| per layer (log axis, converged methods at the "
                          "top); dashed: the random baseline.",
                          png(csc_curve(d, start=st, log=True, title=f"{model}: CSC from {st}"))))
        out.append(Figure("5e-g", f"CSC histogram at the first conv, {model}",
                          "share of |cos| values in the paper's bins at the first conv layer.",
                          png(csc_histogram(d, start=st))))
        cmp = d[d["method"].str.startswith("lrp_cmp")]
        if not cmp.empty:
            out.append(Figure("6c", f"CSC of LRP-CMP, {model}",
                              "LRP-CMP: epsilon on dense layers, alpha-beta on convs.",
                              png(csc_curve(cmp, start=st, log=True,
                                            title=f"{model}: CSC of LRP-CMP"))))
        if d["start"].nunique() > 1:
            for method in dict.fromkeys(d["method"]):
                dm = d[d["method"] == method]
                out.append(Figure("9", f"CSC from several start layers, {model}, "
                                  f"{_label(method)}", "one curve per start layer.",
                                  png(csc_curve(dm, log=True,
                                                title=f"{model}: {_label(method)}"))))
    return out


def figure_random_logit(store: RunStore) -> list[Figure]:
    """Figure 4a (8a for ResNet-50): SSIM between target-class and random-class maps."""
    from ..plots.faithfulness import random_logit_boxplot

    rl = store.read("random_logit")
    out = []
    for model in _models(rl):
        num = "8a" if model == "resnet50" else "4a"
        out.append(Figure(num, f"Random logit, {model}",
                          "SSIM between the map of the explained class and of a random other "
                          "class; near 1 = the explanation ignores the class.",
                          png(random_logit_boxplot(rl[rl["model"] == model],
                                                   title=f"{model}: random logit"))))
    return out


def figure_sanity(store: RunStore) -> list[Figure]:
    """Figures 4b / 8b (all methods) and 6a-b (LRP-CMP): cascading randomisation."""
    from ..plots.faithfulness import sanity_curve

    sa = store.read("sanity")
    out = []
    for model in _models(sa):
        d = sa[sa["model"] == model]
        num = "8b" if model == "resnet50" else "4b"
        out.append(Figure(num, f"Cascading parameter randomisation, {model}",
                          "median SSIM to the trained model's map, layers randomised from the "
                          "last; bands: 99% bootstrap intervals.",
                          png(sanity_curve(d, title=f"{model}: cascading randomisation"))))
        cmp = d[d["method"].str.startswith("lrp_cmp")]
        if not cmp.empty:
            out.append(Figure("6a-b", f"Sanity check of LRP-CMP, {model}", "as Figure 4b.",
                              png(sanity_curve(cmp, title=f"{model}: LRP-CMP"))))
    return out


def figure_sanity_maps(store: RunStore) -> list[Figure]:
    """Figures 1a / 10: the first image's maps at every randomisation step."""
    sa = store.read("sanity")
    out = []
    plt = _plt()
    for model in _models(sa):
        methods = list(dict.fromkeys(sa[sa["model"] == model]["method"]))
        rows = []
        for m in methods:
            name = unit_id("sanity_maps", model, m)
            if store.has_arrays(name):
                a = store.load_arrays(name)
                rows.append((m, a["maps"], list(a["layers"])))
        if not rows:
            continue
        img = _first_image(store, model)
        ncol = max(len(r[1]) for r in rows) + 1
        fig, axes = plt.subplots(len(rows), ncol, figsize=(1.25 * ncol, 1.3 * len(rows)),
                                 squeeze=False)
        for i, (m, maps, layers) in enumerate(rows):
            if img is not None:
                axes[i, 0].imshow(img)
            axes[i, 0].set_ylabel(_label(m), fontsize=7, rotation=0, ha="right", va="center")
            for j, (h, lay) in enumerate(zip(maps, layers)):
                axes[i, j + 1].imshow(h, cmap="bwr", vmin=-1, vmax=1)
                if i == 0:
                    axes[i, j + 1].set_title(lay.split("+")[-1] if j else "trained",
                                             fontsize=6, rotation=45)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.subplots_adjust(wspace=0.05, hspace=0.05)
        out.append(Figure("1a, 10", f"Saliency maps under cascading randomisation, {model}",
                          "columns: trained model, then randomised up to the named layer "
                          "(last layer first); red positive, blue negative.", png(fig, 90)))
    return out


def _first_image(store: RunStore, model: str):
    name = f"images-{model}"
    return store.load_arrays(name)["raw"][0] if store.has_arrays(name) else None


def figure_insensitivity(store: RunStore) -> list[Figure]:
    """Figure 1b-e: maps for two classes, their difference and its L1 norm."""
    ins = store.read("insensitivity")
    out = []
    plt = _plt()
    for model in _models(ins):
        d = ins[ins["model"] == model]
        img = _first_image(store, model)
        fig, axes = plt.subplots(len(d), 4, figsize=(6.4, 1.6 * len(d)), squeeze=False)
        for i, (_, r) in enumerate(d.iterrows()):
            a = store.load_arrays(unit_id("insensitivity", model, r["method"]))
            ma, mb = a["maps"]
            if img is not None:
                axes[i, 0].imshow(img)
            axes[i, 0].set_ylabel(_label(r["method"]), fontsize=7, rotation=0, ha="right",
                                  va="center")
            axes[i, 1].imshow(ma, cmap="viridis", vmin=0, vmax=1)
            axes[i, 2].imshow(mb, cmap="viridis", vmin=0, vmax=1)
            axes[i, 3].imshow(ma - mb, cmap="bwr", vmin=-1, vmax=1)
            axes[i, 3].set_title(f"L1 = {r['l1']:.2g}", fontsize=7)
            if i == 0:
                axes[i, 1].set_title(f"class {r['class_a']}\n" + axes[i, 1].get_title(),
                                     fontsize=7)
                axes[i, 2].set_title(f"class {r['class_b']}", fontsize=7)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        out.append(Figure("1b-e", f"Class insensitivity, {model}",
                          "the first image explained for its class and for the runner-up class "
                          "(both maps normalised to [0, 1]), their difference, and the mean "
                          "absolute difference (L1).", png(fig, 90)))
    return out


def figure_theory(store: RunStore) -> list[Figure]:
    """Figure 7 (matrix-chain simulation) and Figure 3 (singular-value ratios)."""
    from ..theory.figures import plot_chain_figure7, plot_singular_ratios

    out = []
    sim = store.read("simulation")
    if not sim.empty:
        out.append(Figure("7", "Simulated convergence of a matrix chain (appendix B)",
                          "1 - mean |cos| between 32 vectors after each product with "
                          "VGG-16-shaped random matrices; median over repetitions.",
                          png(plot_chain_figure7(sim.drop(columns="chain")))))
    sv = store.read("singular")
    for model in _models(sv):
        d = sv[sv["model"] == model].drop(columns="model")
        out.append(Figure("3", f"sigma1 / sigma2 per layer, {model}",
                          "ratio of the first two singular values of each layer's centre-tap "
                          "matrix (W; A and W*A where patterns were fitted) and of the "
                          "inter-layer matrices.", png(plot_singular_ratios(d))))
    return out


ALL = (figure_insensitivity, figure_sanity_maps, figure_theory, figure_random_logit,
       figure_sanity, figure_csc)
