"""Class insensitivity (the paper's Figure 1b-e) in the battery: the first image explained
for its class and for the runner-up class, and the L1 norm of the difference of the two
maps normalised to [0, 1], taken up to the maps' sign (``l1_distance(..., flip=True)``,
as the paper's SSIM takes the better of a map and its inverse, and as the ground-truth
benchmark's L1 between two classes' maps): a rule that starts from the explained
logit's value (LRP) turns its whole map over when the runner-up's logit is negative,
which is the logit's sign, not a class-specific explanation. ``flipped`` says whether
the runner-up's map was inverted to match. A run's experiment and the report's figure;
no CLI command and no audit column of its own (the random-logit test asks the same
question on every image).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..attribution import Explainer
from ..heatmap import heatmap
from ..metrics.similarity import align_sign, l1_distance, prepare, ssim_score
from ..numbers import fmt
from ..plots.figure import Figure, _plt, png
from ..plots.run_figures import (
    LABEL_PT,
    colour_bar_below,
    first_image,
    models_of,
    paper_label,
)
from ..store import unit_id
from ..units import Unit
from .base import FaithfulnessTest, register_test


class Insensitivity(FaithfulnessTest):
    name = "insensitivity"
    keys = ("model", "method")
    heading = "Class insensitivity (Figure 1b-e)"
    shown = ("model", "method", "image", "class_a", "class_b", "l1", "flipped", "ssim")
    summary_names = {"l1_class_difference": "L1 class difference"}

    def units(self, s, m, cfg, order):
        def compute():
            ex = Explainer(s.model)
            x = s.images.images[:1]
            logits = ex.logits(x)[0]
            a = int(s.target[0])
            b = [int(c) for c in logits.argsort(descending=True) if int(c) != a][0]
            r = ex.attribute(x.repeat(2, 1, 1, 1), m, target=torch.tensor([a, b]))
            h = prepare(r.cpu(), m)
            hb = align_sign(h[:1], h[1:])           # the runner-up's map, turned to (c)
            l1 = float(l1_distance(h[:1], hb)[0])    # = l1_distance(..., flip=True)
            flipped = not torch.equal(hb, h[1:].double())
            ss = float(ssim_score(h[:1], h[1:])[0])
            df = pd.DataFrame([{"model": s.plan.name, "method": m.name,
                                "image": s.images.names[0], "class_a": a, "class_b": b,
                                "l1": l1, "flipped": flipped, "ssim": ss}])
            raw = heatmap(r.cpu(), m).numpy().astype(np.float32)
            arrays = {unit_id("insensitivity", s.plan.name, m.name):
                      {"maps": h.numpy().astype(np.float32), "raw": raw,
                       "classes": np.array([a, b])}}
            return df, arrays
        return [Unit("insensitivity", unit_id(order, "insens", s.plan.name, m.name),
                     f"class insensitivity {s.plan.name} {m.name}", compute,
                     cost=2 * s.scale, arrays=(unit_id("insensitivity", s.plan.name, m.name),))]

    def walks(self, n, n_layers, n_starts, n_vectors):
        return 2

    def probe(self, ex, model, x, m, plan, cfg, n_layers, factor=1.0):
        from .estimate import timed

        # two maps per run, not per image
        return 2 * factor * timed(lambda: ex.attribute(x[:1], m)) / max(plan.n, 1)

    def figures(self, store):
        return _figures(store)

    def summary(self, df):
        return df.set_index(["model", "method"])[["l1"]].rename(
            columns={"l1": "l1_class_difference"})


def _figures(store) -> list[Figure]:
    """Figure 1b-e: maps for two classes, their difference and its L1 norm (written
    inside the row's difference panel, so it cannot be read as another row's). Where
    the runner-up's map is the explained one's turned over (its logit negative), (e)
    is the difference to the inverted map (d), the orientation the L1 is taken in,
    and the row's label says so."""

    ins = store.read("insensitivity")
    out = []
    plt = _plt()
    for model in models_of(ins):
        d = ins[ins["model"] == model]
        img = first_image(store, model)
        fig, axes = plt.subplots(len(d), 4, figsize=(7.0, 1.6 * len(d) + 0.4), squeeze=False)
        for i, (_, r) in enumerate(d.iterrows()):
            a = store.load_arrays(unit_id("insensitivity", model, r["method"]))
            ma, mb = a["maps"]
            if img is not None:
                axes[i, 0].imshow(img)
            axes[i, 0].set_ylabel(paper_label(r["method"]), fontsize=LABEL_PT, rotation=0,
                                  ha="right", va="center")
            axes[i, 1].imshow(ma, cmap="viridis", vmin=0, vmax=1)
            axes[i, 2].imshow(mb, cmap="viridis", vmin=0, vmax=1)
            if "flipped" in r and pd.notna(r["flipped"]):   # as the stored L1 was taken
                inverted = bool(r["flipped"])
            else:                                            # a store from before the flag
                inverted = not torch.equal(
                    align_sign(torch.as_tensor(ma)[None], torch.as_tensor(mb)[None])[0],
                    torch.as_tensor(mb).double())
            axes[i, 3].imshow(ma - (1 - mb if inverted else mb), cmap="bwr", vmin=-1, vmax=1)
            label = f"L1 = {fmt(r['l1'])}" + ("\n(d) inverted" if inverted else "")
            axes[i, 3].text(0.5, 0.04, label, transform=axes[i, 3].transAxes,
                            ha="center", va="bottom", fontsize=LABEL_PT, gid="l1-label",
                            bbox={"facecolor": "white", "alpha": 0.85, "lw": 0, "pad": 1.5})
        r0 = d.iloc[0]
        heads = ("image", f"(c) class {r0['class_a']}, explained",
                 f"(d) class {r0['class_b']}, runner-up", "(e) = (c) - (d)")
        for ax, head in zip(axes[0], heads):
            ax.set_title(head, fontsize=LABEL_PT)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.subplots_adjust(wspace=0.3, hspace=0.08)   # room between the column headers
        colour_bar_below(fig, axes[-1, 1], axes[-1, 2], "viridis", (0, 1),
                          {0: "0", 1: "1"}, "(c), (d): map normalised to [0, 1]", "1c-d")
        colour_bar_below(fig, axes[-1, 3], axes[-1, 3], "bwr", (-1, 1),
                          {-1: "-1", 0: "0", 1: "1"}, "(e) = (c) - (d)", "1e")
        out.append(Figure("1b-e", f"Class insensitivity, {model}",
                          f"the first image explained for its class (c, class {r0['class_a']})"
                          f" and for the runner-up class (d, class {r0['class_b']}), both "
                          "maps normalised to [0, 1]; (e) their difference, with its mean "
                          "absolute value (L1) written in each row's panel, taken up to the "
                          "maps' sign: where the runner-up's logit turns a map over, (e) "
                          "compares with the inverted (d) and says so.", png(fig, 90)))
    return out


register_test(Insensitivity())
