"""The units of work of a run: one per (experiment, model, method), plus the theory.

Each :class:`Unit` computes a DataFrame (and optionally arrays) that the run store
writes as one file, so a killed run resumes at the first unit not yet written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..store import unit_id
from .setup import Subject

KEYS = {
    "csc": ["model", "method", "start", "layer"],
    "random_logit": ["model", "method", "image"],
    "sanity": ["model", "method", "image", "step"],
    "insensitivity": ["model", "method"],
    "simulation": ["chain", "family", "step"],
    "singular": ["model", "layer", "kind", "part"],
    "groundtruth": ["method"],
}


@dataclass
class Unit:
    table: str
    name: str
    label: str                     # shown in the progress bar
    compute: Callable[[], tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]]
    cost: float = 1.0              # relative cost, for the progress bar's ETA

    @property
    def keys(self) -> list[str]:
        return KEYS[self.table]


def _tag(df: pd.DataFrame, s: Subject) -> pd.DataFrame:
    df = df.copy()
    df.insert(0, "model", s.plan.name)
    return df


def _with_names(df: pd.DataFrame, s: Subject) -> pd.DataFrame:
    df["image_name"] = [s.images.names[i] for i in df["image"]]
    return df


def csc_unit(s: Subject, m, seed: int, n_vectors: int) -> Unit:
    from ..attribution import Explainer
    from ..metrics import csc, paper_starts

    def compute():
        ex = Explainer(s.model)
        starts = (paper_starts(ex.graph, s.plan.name) if s.plan.starts == "paper"
                  else [ex.graph.output])
        df = csc(ex, s.images.images, m, start=starts, n_vectors=n_vectors, seed=seed)
        return _tag(df, s), {}
    n_starts = 5 if s.plan.starts == "paper" else 1
    return Unit("csc", unit_id("csc", s.plan.name, m.name), f"CSC {s.plan.name} {m.name}",
                compute, cost=n_starts * n_vectors * len(s.images) * _scale(s))


def random_logit_unit(s: Subject, m, seed: int) -> Unit:
    from ..metrics import random_logit

    def compute():
        df = random_logit(s.model, s.images.images, m, target=s.target, seed=seed)
        return _with_names(_tag(df, s), s), {}
    return Unit("random_logit", unit_id("rl", s.plan.name, m.name),
                f"random logit {s.plan.name} {m.name}", compute,
                cost=2 * len(s.images) * _scale(s))


def sanity_unit(s: Subject, m, seed: int) -> Unit:
    """Cascading randomisation over all images, plus the maps of the first image at
    every step (Figures 1a and 10)."""
    from ..heatmap import heatmap, normalize_signed
    from ..metrics import cascade_maps, sanity

    def compute():
        df = _with_names(_tag(sanity(s.model, s.images.images, m, target=s.target, seed=seed),
                              s), s)
        maps, layers = [], []
        for step, names, r in cascade_maps(s.model, s.images.images[:1], m, s.target[:1],
                                           seed=seed):
            maps.append(normalize_signed(heatmap(r.cpu(), m))[0].numpy().astype(np.float32))
            layers.append("trained" if step == 0 else "+".join(names))
        arrays = {unit_id("sanity_maps", s.plan.name, m.name):
                  {"maps": np.stack(maps), "layers": np.array(layers)}}
        return df, arrays
    n_layers = len([p for p in s.model.modules() if isinstance(p, (torch.nn.Conv2d,
                                                                   torch.nn.Linear))])
    return Unit("sanity", unit_id("sanity", s.plan.name, m.name),
                f"sanity {s.plan.name} {m.name}", compute,
                cost=(n_layers + 2) * (len(s.images) + 1) * _scale(s))


def insensitivity_unit(s: Subject, m) -> Unit:
    """Figure 1b-e: explain the first image for its target class a and for the
    runner-up class b; L1 of the difference of the two maps normalised to [0, 1]."""
    from ..attribution import Explainer
    from ..heatmap import heatmap
    from ..metrics.similarity import l1_distance, prepare, ssim_score

    def compute():
        ex = Explainer(s.model)
        x = s.images.images[:1]
        logits = ex.logits(x)[0]
        a = int(s.target[0])
        order = [int(c) for c in logits.argsort(descending=True) if int(c) != a]
        b = order[0]
        r = ex.attribute(x.repeat(2, 1, 1, 1), m, target=torch.tensor([a, b]))
        h = prepare(r.cpu(), m)
        l1 = float(l1_distance(h[:1], h[1:])[0])
        ss = float(ssim_score(h[:1], h[1:])[0])
        df = pd.DataFrame([{"model": s.plan.name, "method": m.name, "image": s.images.names[0],
                                "class_a": a, "class_b": b, "l1": l1, "ssim": ss}])
        raw = heatmap(r.cpu(), m).numpy().astype(np.float32)
        arrays = {unit_id("insensitivity", s.plan.name, m.name):
                  {"maps": h.numpy().astype(np.float32), "raw": raw,
                   "classes": np.array([a, b])}}
        return df, arrays
    return Unit("insensitivity", unit_id("insens", s.plan.name, m.name),
                f"class insensitivity {s.plan.name} {m.name}", compute, cost=2 * _scale(s))


def simulation_unit(repeats: int, seed: int) -> Unit:
    from ..theory import simulate_chain
    from ..theory.chain import ALPHAS, BASE_FAMILIES

    def compute():
        fams = list(BASE_FAMILIES) + [f"alpha{a}-beta{a - 1}" for a in ALPHAS]
        df = simulate_chain(fams, repeats=repeats, seed=seed)
        df.insert(0, "chain", "vgg16 shapes")
        return df, {}
    return Unit("simulation", unit_id("simulation", repeats, seed),
                "simulation (appendix B, Figure 7)", compute, cost=repeats * 40)


def learned_chain_unit(s: Subject, repeats: int, seed: int) -> Unit:
    from ..theory import simulate_chain

    def compute():
        df = simulate_chain(["learned", "relu-learned"], model=s.model, repeats=repeats,
                            seed=seed)
        df.insert(0, "chain", f"{s.plan.name} weights")
        return df, {}
    return Unit("simulation", unit_id("simulation-learned", s.plan.name, repeats, seed),
                f"simulation with {s.plan.name}'s weights", compute, cost=repeats)


def singular_unit(s: Subject) -> Unit:
    from ..theory import singular_ratios

    def compute():
        pats = None
        for m in s.methods:
            p = m.params.get("patterns")
            if p is not None:
                pats = getattr(p, "patterns", p)
                break
        df = singular_ratios(s.model, patterns=pats)
        df["shape"] = df["shape"].astype(str)
        return _tag(df, s), {}
    return Unit("singular", unit_id("singular", s.plan.name), f"Figure 3 {s.plan.name}",
                compute, cost=20 * _scale(s))


def groundtruth_unit(n: int, methods: list[str], seed: int) -> Unit:
    """The ground-truth class-sensitivity benchmark (two digits side by side), with the
    benchmark model's test accuracy and the image counts as columns."""
    from ..groundtruth import two_digits

    def compute():
        df, per = two_digits(methods, n=n, seed=seed, raw=True, n_resamples=2000)
        df.insert(1, "model_accuracy", df.attrs.get("model_accuracy"))
        df.insert(2, "n_drawn", df.attrs.get("n_drawn"))
        arrays = {unit_id("groundtruth_items", n, seed): {
            c: per[c].to_numpy() for c in ("method", "image", "side", "mass_accuracy",
                                           "pointing", "l1_class_diff")}}
        return df, arrays
    return Unit("groundtruth", unit_id("groundtruth", n, seed),
                "ground-truth class sensitivity (two digits)", compute,
                cost=2 * n * len(methods) / 8)


def _scale(s: Subject) -> float:
    """Relative cost of one walk on this model (cifar_net at 32x32 = 1)."""
    base = {"cifar_net": 1.0, "vgg16": 180.0, "resnet50": 45.0}.get(s.plan.name, 10.0)
    return base * (s.plan.size / 224) ** 2 if s.plan.name != "cifar_net" else base


def plan_units(subjects: list[Subject], cfg) -> list[Unit]:
    """Every unit of the run, in order: per model the experiments per method, then the
    theory (simulation, learned chains, Figure 3)."""
    units: list[Unit] = []
    for s in subjects:
        exps = s.plan.experiments
        for m in s.methods:
            if "csc" in exps and m.walkable:
                units.append(csc_unit(s, m, cfg.seed, cfg.n_vectors))
            if "random_logit" in exps:
                units.append(random_logit_unit(s, m, cfg.seed))
            if "sanity" in exps:
                units.append(sanity_unit(s, m, cfg.seed))
            if "insensitivity" in exps:
                units.append(insensitivity_unit(s, m))
    gt = cfg.extra.get("groundtruth")
    if gt:
        units.append(groundtruth_unit(gt["n"], list(gt["methods"]), cfg.seed))
    if cfg.theory:
        units.append(simulation_unit(cfg.simulation_repeats, cfg.seed))
        for s in subjects:
            if s.source.get("kind") != "random":
                units.append(learned_chain_unit(s, cfg.simulation_repeats, cfg.seed))
                units.append(singular_unit(s))
    return units
