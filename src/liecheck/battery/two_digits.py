"""The ground truth in the battery: on images of two digits side by side (the zoo's,
:mod:`liecheck.zoo`), each image explained for each of its two classes.

Per (image, side): the relevance mass accuracy (the share of the map's positive
relevance on the explained digit), the pointing game and the L1 distance between the
two classes' maps (:func:`liecheck.groundtruth.measure_maps`). It applies only to a run
whose images carry both digits' classes (``Subject.two_digits``); on other models it has
no units. The first method of each model also gets the benchmark's references:
``occlusion`` (faithful by construction) and ``random`` maps.

Its mechanism is "class-insensitive": the two classes' maps differ less than the
gradient's do (:mod:`liecheck.battery.mechanism`).
"""

from __future__ import annotations

import pandas as pd

from ..groundtruth.benchmark import MEASURES, _maps, measure_maps, summarize_measures
from ..groundtruth.data import TwoDigits
from ..store import unit_id
from ..units import Unit, chunks
from .base import FaithfulnessTest, register_test
from .mechanism import evidence_frame, evidence_row, interval

REFERENCE_MAPS = ("occlusion", "random")


class TwoDigitsTest(FaithfulnessTest):
    name = "two_digits"
    keys = ("model", "method", "image", "side")
    heading = "Ground truth: two digits side by side, each explained"
    shown = ("model", "method", "image", "side", "mass_accuracy", "pointing",
             "l1_class_diff")
    summary_names = {"mass_accuracy": "mass accuracy (ground truth)",
                     "l1_class_diff": "L1 between the classes' maps"}
    short = "ground truth"
    mechanism, measure = "class-insensitive", "L1 between the two digits' maps"
    everywhere = False      # only the zoo's images have two digits

    def units(self, s, m, cfg, order):
        data: TwoDigits | None = getattr(s, "two_digits", None)
        if data is None:
            return []
        names = [m.name] + (list(REFERENCE_MAPS) if m is s.methods[0] else [])
        out = []
        for name in names:
            for c, (a, b) in enumerate(chunks(len(data), cfg.chunk_size)):
                out.append(Unit("two_digits", unit_id(order, "gt", s.plan.name, name,
                                                      f"c{c:05d}"),
                                f"ground truth {s.plan.name} {name} [{a}:{b}]",
                                _compute(s, data, m if name == m.name else name, a, b, cfg),
                                cost=(2 if name == m.name else 8) * (b - a) * s.scale))
        return out

    def walks(self, n, n_layers, n_starts, n_vectors):
        return 2 * n

    def summary(self, df):
        return df.groupby(["model", "method"], sort=False)[["mass_accuracy",
                                                           "l1_class_diff"]].mean()

    def figures(self, store):
        return _figures(store)

    def evidence(self, df):
        return evidence_frame([
            evidence_row(model, method, *interval(g.loc[g["side"] == 0, "l1_class_diff"],
                                                  "mean"), similarity=False)
            for (model, method), g in df.groupby(["model", "method"], sort=False)])


def _compute(s, data: TwoDigits, method, a: int, b: int, cfg):
    def compute():
        part = TwoDigits(data.x[a:b], data.labels[a:b], data.source[a:b], data.mean, data.std)
        fill = -data.mean / data.std if data.std else 0.0
        name = method if isinstance(method, str) else method.name
        patterns = None if isinstance(method, str) else method.params.get("patterns")
        # the random maps are seeded by the chunk's first image (a reference, not a result)
        maps, mname = _maps(s.model, part, name, cfg.seed + a, fill, patterns)
        per = measure_maps(maps, b - a, mname)
        per["image"] = per["image"] + a
        per.insert(0, "method", name)
        return s.tag(per[["method", "image", "side", *MEASURES]]), {}
    return compute


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per method of one model: each measure's mean over the explanations (L1: over the
    images) with its 99 % bootstrap interval, as :func:`liecheck.groundtruth.two_digits`
    gives them (for :func:`liecheck.groundtruth.plot_two_digits`)."""
    return pd.DataFrame([{"method": method, "n_images": int(g["image"].nunique()),
                          **summarize_measures(g, n_resamples=2000)}
                         for method, g in df.groupby("method", sort=False)])


def _figures(store) -> list:
    from ..groundtruth.figures import plot_two_digits
    from ..plots.figure import Figure, png

    if "two_digits" not in store.tables():
        return []
    gt = store.read("two_digits")
    models = (store.manifest() or {}).get("models") or {}
    out = []
    for model in dict.fromkeys(gt["model"]):
        summary = summarize(gt[gt["model"] == model])
        acc = ((models.get(model) or {}).get("source") or {}).get("test_accuracy")
        summary.attrs["model_accuracy"] = acc
        out.append(Figure("GT", f"Ground truth on two digits, {model}",
                          "each image's two digits explained in turn: mass accuracy (share "
                          "of the positive relevance on the explained digit), pointing, and "
                          "the L1 distance between the two classes' normalised maps up to "
                          "their sign, with 99% bootstrap intervals over images; occlusion "
                          "(faithful by construction) and random maps (chance) are the "
                          "references.", png(plot_two_digits(summary))))
    return out


register_test(TwoDigitsTest())
