"""The random-logit test (the paper's section 4, Fig. 4a) in the battery: how similar the
map of the explained class is to the map of a random other class.

The computation is :func:`liecheck.random_logit` (:mod:`liecheck.metrics.random_logit`);
this file is what the tools need around it. It is the shortest test of the battery: a
model for a new one.
"""

from __future__ import annotations

from pathlib import Path

from ..metrics.random_logit import random_logit
from ..metrics.stats import summarize
from ..plots.faithfulness import random_logit_boxplot, save
from ..plots.figure import Figure, png
from ..plots.run_figures import models_of
from ..store import unit_id
from ..units import Unit, chunks
from .base import TABLE, FaithfulnessTest, register_test
from .mechanism import similarity_evidence

INSENSITIVE = 0.9   # a median SSIM at or above this: the map ignores the class


def similarity_option(p) -> None:
    p.add_argument("--similarity", default="ssim", choices=("ssim", "spearman", "l1"),
                   help="similarity of the maps (default ssim, the paper's)")


class RandomLogit(FaithfulnessTest):
    name = "random_logit"
    keys = ("model", "method", "image")
    heading = "Random logit: SSIM per image"
    command = "random-logit"
    help = "target vs random class maps (Fig. 4a)"
    summary_names = {"ssim_random_logit": "SSIM random logit"}
    audit_columns = {"ssim_random_logit": "SSIM random logit",
                     "verdict_random_logit": "verdict"}
    verdict_column, failing = "verdict_random_logit", "insensitive"
    short = "random logit"
    mechanism, measure = "class-insensitive", "random-logit SSIM"

    def units(self, s, m, cfg, order):
        def chunk_compute(a, b):
            def compute():
                x, t, ids = s.part(a, b)
                df = random_logit(s.model, x, m, target=t, seed=cfg.seed, image_ids=ids,
                                  similarity=s.plan.similarity)
                return s.with_names(s.tag(df)), {}
            return compute
        return [Unit("random_logit", unit_id(order, "rl", s.plan.name, m.name, f"c{c:05d}"),
                     f"random logit {s.plan.name} {m.name} [{a}:{b}]", chunk_compute(a, b),
                     cost=2 * (b - a) * s.scale)
                for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size))]

    def walks(self, n, n_layers, n_starts, n_vectors):
        return 2 * n

    def probe(self, ex, model, x, m, plan, cfg, n_layers, factor=1.0):
        from .estimate import timed

        t = timed(lambda: random_logit(ex, x, m, seed=cfg.seed,
                                       similarity=plan.similarity))
        extra = 2 * (factor - 1) * timed(lambda: ex.attribute(x, m)) if factor > 1 else 0.0
        return (t + extra) / len(x)

    def add_arguments(self, p):
        similarity_option(p)

    def plan_settings(self, args):
        return {"similarity": args.similarity}

    def write_outputs(self, store, df, args):
        save(random_logit_boxplot(df), Path(args.out) / "random_logit")

    def figures(self, store):
        return _figures(store)

    def summary(self, df):
        return (df.groupby(["model", "method"], sort=False)["score"].median()
                .rename("ssim_random_logit").to_frame())

    def evidence(self, df):
        return similarity_evidence(df)

    def aggregates(self, df):
        return [("Random logit: median SSIM (99% bootstrap interval)",
                 summarize(df, ["model", "method"], n_resamples=2000))]

    def audit(self, ex, model, x, m, target, seed, n_vectors):
        df = random_logit(ex, x, m, target=target, seed=seed)
        v = float(df["score"].median())
        return {"ssim_random_logit": v,
                "verdict_random_logit": "insensitive" if v >= INSENSITIVE else "passes",
                TABLE: df}


def _figures(store) -> list[Figure]:
    """Figure 4a (8a for ResNet-50): SSIM between target-class and random-class maps."""

    rl = store.read("random_logit")
    out = []
    for model in models_of(rl):
        num = "8a" if model == "resnet50" else "4a"
        out.append(Figure(num, f"Random logit, {model}",
                          "SSIM between the map of the explained class and of a random other "
                          "class, per image; near 1 = the explanation ignores the class. Box: "
                          "quartiles and median over the images, whiskers 1.5 x IQR, circles "
                          "beyond.",
                          png(random_logit_boxplot(rl[rl["model"] == model],
                                                   title=f"{model}: random logit"))))
    return out


register_test(RandomLogit())
