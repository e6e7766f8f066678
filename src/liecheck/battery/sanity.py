"""Cascading parameter randomisation (the sanity check of Adebayo et al., the paper's
Fig. 4b) in the battery: how similar a method's map stays while the layers are
re-initialised from the last one down.

The computation is :func:`liecheck.sanity` (:mod:`liecheck.metrics.sanity`); this file is
what the tools need around it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..heatmap import heatmap, normalize_signed
from ..layer_names import label_layers, layer_label
from ..metrics.sanity import cascade_maps, sanity
from ..metrics.stats import summarize
from ..plots.faithfulness import sanity_curve, save
from ..plots.figure import Figure, png
from ..plots.run_figures import (
    ROBUST_PERCENTILE,
    SANITY_MAPS_CAPTION,
    colours_sentence,
    models_of,
    sanity_maps_figure,
)
from ..store import unit_id
from ..units import Unit, chunks
from .base import TABLE, FaithfulnessTest, register_test
from .mechanism import similarity_evidence
from .random_logit import INSENSITIVE, similarity_option


class Sanity(FaithfulnessTest):
    name = "sanity"
    keys = ("model", "method", "image", "step")
    heading = "Cascading parameter randomisation: SSIM per image and step"
    command = "sanity"
    help = "cascading parameter randomisation (Fig. 4b)"
    summary_names = {"ssim_sanity_last_layer": "SSIM last layer random",
                     "ssim_sanity_all_layers": "SSIM all layers random"}
    audit_columns = {"ssim_cascade_last": "SSIM cascade (last layer)",
                     "verdict_cascade_last": "verdict"}
    verdict_column, failing = "verdict_cascade_last", "insensitive"
    short = "cascade"
    mechanism, measure = "ignores later layers", "cascade SSIM, last layer random"

    def units(self, s, m, cfg, order):
        return _units(s, m, cfg, order)

    def walks(self, n, n_layers, n_starts, n_vectors):
        return (n_layers + 1) * n + n_layers + 1     # each step, plus the grid image

    def probe(self, ex, model, x, m, plan, cfg, n_layers, factor=1.0):
        """One and two steps of the cascade timed: their difference is a step, the rest
        the setup; the maps of a method of many walks are timed once more and scaled;
        the grid image's maps come on top."""
        from .estimate import timed

        def steps(k):
            return timed(lambda: sanity(ex, x, m, layers=k, seed=cfg.seed,
                                        mode=plan.mode, similarity=plan.similarity))
        t1 = steps(1)
        d = max(steps(2) - t1, 0.0)
        extra = (timed(lambda: ex.attribute(x, m)) * (factor - 1) if factor > 1 else 0.0)
        total = t1 + (n_layers - 1) * d + (n_layers + 1) * extra
        return total / len(x) * (1 + 1 / max(plan.n, 1))

    def plan_words(self, plan, cfg, n_layers):
        return f" x {n_layers + 1} steps"

    def add_arguments(self, p):
        p.add_argument("--mode", default="cascading", choices=("cascading", "independent"),
                       help="randomise the top k layers (cascading) or one layer at a time")
        similarity_option(p)
        p.add_argument("--grid-image", type=int, default=0,
                       help="index of the image shown in the saliency grid (-1: no grid)")

    def plan_settings(self, args):
        return {"mode": args.mode, "similarity": args.similarity}

    def write_outputs(self, store, df, args):
        out = Path(args.out)
        save(sanity_curve(df, seed=args.seed, model=args.model), out / "sanity")
        if args.grid_image != 0:
            if args.grid_image >= 0:
                print("note: the saliency grid shows the first image (the run store keeps its "
                      "maps); --grid-image other than 0 or -1 is not supported")
            return
        fig = sanity_maps_figure(store, args.model,   # the report's Figure 1a
                                 methods=list(dict.fromkeys(df["method"])))
        if fig is not None:
            save(fig, out / "sanity_grid")
            print(f"wrote {out / 'sanity_grid.png'} (the first image; each map scaled by the "
                  f"{ROBUST_PERCENTILE:g}th percentile of its |values|)")

    def figures(self, store):
        return _figure_maps(store) + _figures(store)

    def summary(self, df):
        g = df.groupby(["model", "method"], sort=False)
        first = df[df["step"] == 1].groupby(["model", "method"], sort=False)["score"].median()
        last = g.apply(lambda d: d[d["step"] == d["step"].max()]["score"].median())
        return first.rename("ssim_sanity_last_layer").to_frame().join(
            last.rename("ssim_sanity_all_layers"))

    def evidence(self, df):
        return similarity_evidence(df[df["step"] == 1])

    def aggregates(self, df):
        s = summarize(df, ["model", "method", "step", "layer"], n_resamples=2000)
        return [("Cascading parameter randomisation: median SSIM per step (99% bootstrap "
                 "interval, 2000 resamples)", label_layers(s))]

    def layers(self, df):
        out = {}
        for model, g in df.groupby("model", sort=False):
            g = g.sort_values("step")
            first, last = str(g["layer"].iloc[0]), str(g["layer"].iloc[-1])
            out[model] = (f"last layer {layer_label(model, first)}; all layers = down to "
                          f"{layer_label(model, last)}")
        return out

    def audit(self, ex, model, x, m, target, seed, n_vectors):
        df = sanity(model, x, m, target=target, layers=1, seed=seed)
        v = float(df["score"].median())
        return {"ssim_cascade_last": v,
                "verdict_cascade_last": "insensitive" if v >= INSENSITIVE else "passes",
                TABLE: df}


def _units(s, m, cfg, order: str) -> list[Unit]:
    """Cascading randomisation, one unit per chunk; the first chunk also stores the
    maps of the first image at every step (Figures 1a and 10)."""

    maps_name = unit_id("sanity_maps", s.plan.name, m.name)

    def chunk_compute(a, b):
        def compute():
            x, t, ids = s.part(a, b)
            df = s.with_names(s.tag(sanity(s.model, x, m, target=t, seed=cfg.seed,
                                           image_ids=ids, mode=s.plan.mode,
                                           similarity=s.plan.similarity,
                                           layers=s.plan.cascade)))
            if a > 0:
                return df, {}
            maps, layers = [], []
            for step, names, r in cascade_maps(s.model, s.images.images[:1], m, s.target[:1],
                                               layers=s.plan.cascade, seed=cfg.seed,
                                               mode=s.plan.mode):
                maps.append(normalize_signed(heatmap(r.cpu(), m))[0].numpy()
                            .astype(np.float32))
                layers.append("trained" if step == 0 else "+".join(names))
            return df, {maps_name: {"maps": np.stack(maps), "layers": np.array(layers)}}
        return compute
    n_layers = len([p for p in s.model.modules() if isinstance(p, (torch.nn.Conv2d,
                                                                   torch.nn.Linear))])
    return [Unit("sanity", unit_id(order, "sanity", s.plan.name, m.name, f"c{c:05d}"),
                 f"sanity {s.plan.name} {m.name} [{a}:{b}]", chunk_compute(a, b),
                 cost=((2 if s.plan.cascade == "ends" else n_layers) + 2)
                 * (b - a + (a == 0)) * s.scale,
                 arrays=(maps_name,) if a == 0 else ())
            for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size))]


def _figure_maps(store) -> list[Figure]:
    """Figures 1a / 10: the first image's maps at every randomisation step."""
    sa = store.read("sanity")
    out = []
    for model in models_of(sa):
        fig = sanity_maps_figure(store, model)
        if fig is not None:
            shown = list(dict.fromkeys(sa[sa["model"] == model]["method"]))
            out.append(Figure("1a, 10", f"Saliency maps under cascading randomisation, {model}",
                              SANITY_MAPS_CAPTION.format(p=ROBUST_PERCENTILE,
                                                         colours=colours_sentence(shown)),
                              png(fig, 90)))
    return out


def _figures(store) -> list[Figure]:
    """Figures 4b / 8b (all methods) and 6a-b (LRP-CMP): cascading randomisation."""

    sa = store.read("sanity")
    out = []
    for model in models_of(sa):
        d = sa[sa["model"] == model]
        num = "8b" if model == "resnet50" else "4b"
        out.append(Figure(num, f"Cascading parameter randomisation, {model}",
                          "median SSIM to the trained model's map, layers randomised from the "
                          "last (x axis: the last layer randomised, node name with the "
                          "paper's name); bands: 99% bootstrap intervals. Curves drawn over "
                          "each other are named under the plot.",
                          png(sanity_curve(d, title=f"{model}: cascading randomisation",
                                           model=model))))
        cmp = d[d["method"].str.startswith("lrp_cmp")]
        if not cmp.empty:
            out.append(Figure("6a-b", f"Sanity check of LRP-CMP, {model}", "as Figure 4b.",
                              png(sanity_curve(cmp, title=f"{model}: LRP-CMP", model=model))))
    return out


register_test(Sanity())
