"""The units of work of a run.

Per (experiment, model, method) the images are cut into chunks of
``cfg.chunk_size``; each chunk is one :class:`Unit` whose result the run store
writes as one file, so a killed run loses at most the chunk in progress and the
chunks can be shared out among processes (:mod:`liecheck.reproduce.distributed`).
Every random choice is keyed by the image's number in the whole set (and the layer),
never by the chunk, so the numbers do not depend on how the images were cut.

CSC's statistics (medians, percentiles) need all values: its chunks store the
pooled ``1 - |cos|`` values (internal table ``_csc_values``) and a *merge* unit,
run once every chunk is done, writes the ``csc`` rows. Random-logit and sanity rows
are per image, so their chunks write the final tables directly. Class
insensitivity and the theory are single units.

Experiments are pluggable: :data:`EXPERIMENT_UNITS` maps a name (as listed in
``ModelPlan.experiments``) to a function ``(subject, method, cfg, order) -> units``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..attribution import Explainer
from ..groundtruth import two_digits
from ..heatmap import heatmap, normalize_signed
from ..metrics.csc import csc_rows, csc_values
from ..metrics.random_logit import random_logit
from ..metrics.sanity import cascade_maps, sanity
from ..metrics.similarity import l1_distance, prepare, ssim_score
from ..store import RunStore, unit_id
from ..theory import simulate_chain, singular_ratios
from ..theory.chain import ALPHAS, BASE_FAMILIES
from .setup import Subject

KEYS = {
    "csc": ["model", "method", "start", "layer"],
    "_csc_values": ["model", "method", "chunk", "start", "layer"],
    "random_logit": ["model", "method", "image"],
    "sanity": ["model", "method", "image", "step"],
    "insensitivity": ["model", "method"],
    "simulation": ["chain", "family", "step"],
    "singular": ["model", "layer", "kind", "part"],
    "groundtruth": ["method"],
}

Result = tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]


@dataclass
class Unit:
    """One unit of work: ``compute()`` (or, for a merge unit, ``merge(store)``, run
    after every other unit) returns the rows of ``table`` and the arrays to store."""

    table: str
    name: str
    label: str                     # shown in the progress bar
    compute: Callable[[], Result] | None = None
    cost: float = 1.0              # relative cost, for the progress bar and sharing out
    arrays: tuple[str, ...] = ()   # names of the arrays it stores (checked on resume)
    merge: Callable[[RunStore], Result] | None = None
    needs: tuple[tuple[str, str], ...] = ()   # (table, unit) a merge unit reads
    method: str | None = None      # the method it runs (None: theory, ground truth)

    @property
    def keys(self) -> list[str]:
        return KEYS[self.table]


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the images ``0 ... n-1`` in consecutive chunks."""
    if size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {size}")
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _tag(df: pd.DataFrame, s: Subject) -> pd.DataFrame:
    df = df.copy()
    df.insert(0, "model", s.plan.name)
    return df


def _with_names(df: pd.DataFrame, s: Subject) -> pd.DataFrame:
    df["image_name"] = [s.images.names[i] for i in df["image"]]
    return df


def _part(s: Subject, a: int, b: int):
    """Images, targets and image numbers of the chunk ``[a, b)``."""
    return s.images.images[a:b], s.target[a:b], np.arange(a, b)


def csc_units(s: Subject, m, cfg, order: str) -> list[Unit]:
    """One unit per chunk (pooled values) and the merge unit (the ``csc`` rows)."""

    def chunk_compute(a, b, c):
        def compute():
            ex = Explainer(s.model)
            starts = s.plan.start_nodes(ex.graph)
            x, _, ids = _part(s, a, b)
            df = csc_values(ex, x, m, start=starts, n_vectors=cfg.n_vectors, seed=cfg.seed,
                            image_ids=ids)
            df.insert(1, "chunk", c)
            return _tag(df, s), {}
        return compute

    n_starts = s.plan.n_starts
    units, needs = [], []
    for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size)):
        name = unit_id(order, "csc", s.plan.name, m.name, f"c{c:05d}")
        needs.append(("_csc_values", name))
        units.append(Unit("_csc_values", name, f"CSC {s.plan.name} {m.name} [{a}:{b}]",
                          chunk_compute(a, b, c),
                          cost=n_starts * cfg.n_vectors * (b - a) * _scale(s)))

    def merge(store: RunStore):
        vals = store.read("_csc_values", units=[u for _, u in needs])
        vals = vals.sort_values("chunk", kind="stable")
        return _tag(csc_rows(vals.drop(columns=["model", "chunk"])), s), {}

    units.append(Unit("csc", unit_id(order, "csc", s.plan.name, m.name),
                      f"CSC {s.plan.name} {m.name} (merge)", merge=merge, cost=0.1,
                      needs=tuple(needs)))
    return units


def random_logit_units(s: Subject, m, cfg, order: str) -> list[Unit]:

    def chunk_compute(a, b):
        def compute():
            x, t, ids = _part(s, a, b)
            df = random_logit(s.model, x, m, target=t, seed=cfg.seed, image_ids=ids,
                              similarity=s.plan.similarity)
            return _with_names(_tag(df, s), s), {}
        return compute
    return [Unit("random_logit", unit_id(order, "rl", s.plan.name, m.name, f"c{c:05d}"),
                 f"random logit {s.plan.name} {m.name} [{a}:{b}]", chunk_compute(a, b),
                 cost=2 * (b - a) * _scale(s))
            for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size))]


def sanity_units(s: Subject, m, cfg, order: str) -> list[Unit]:
    """Cascading randomisation, one unit per chunk; the first chunk also stores the
    maps of the first image at every step (Figures 1a and 10)."""

    maps_name = unit_id("sanity_maps", s.plan.name, m.name)

    def chunk_compute(a, b):
        def compute():
            x, t, ids = _part(s, a, b)
            df = _with_names(_tag(sanity(s.model, x, m, target=t, seed=cfg.seed,
                                         image_ids=ids, mode=s.plan.mode,
                                         similarity=s.plan.similarity), s), s)
            if a > 0:
                return df, {}
            maps, layers = [], []
            for step, names, r in cascade_maps(s.model, s.images.images[:1], m, s.target[:1],
                                               seed=cfg.seed, mode=s.plan.mode):
                maps.append(normalize_signed(heatmap(r.cpu(), m))[0].numpy()
                            .astype(np.float32))
                layers.append("trained" if step == 0 else "+".join(names))
            return df, {maps_name: {"maps": np.stack(maps), "layers": np.array(layers)}}
        return compute
    n_layers = len([p for p in s.model.modules() if isinstance(p, (torch.nn.Conv2d,
                                                                   torch.nn.Linear))])
    return [Unit("sanity", unit_id(order, "sanity", s.plan.name, m.name, f"c{c:05d}"),
                 f"sanity {s.plan.name} {m.name} [{a}:{b}]", chunk_compute(a, b),
                 cost=(n_layers + 2) * (b - a + (a == 0)) * _scale(s),
                 arrays=(maps_name,) if a == 0 else ())
            for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size))]


def insensitivity_units(s: Subject, m, cfg, order: str) -> list[Unit]:
    """Figure 1b-e: explain the first image for its target class a and for the
    runner-up class b; L1 of the difference of the two maps normalised to [0, 1]."""

    def compute():
        ex = Explainer(s.model)
        x = s.images.images[:1]
        logits = ex.logits(x)[0]
        a = int(s.target[0])
        b = [int(c) for c in logits.argsort(descending=True) if int(c) != a][0]
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
    return [Unit("insensitivity", unit_id(order, "insens", s.plan.name, m.name),
                 f"class insensitivity {s.plan.name} {m.name}", compute, cost=2 * _scale(s),
                 arrays=(unit_id("insensitivity", s.plan.name, m.name),))]


def simulation_unit(repeats: int, seed: int) -> Unit:

    def compute():
        fams = list(BASE_FAMILIES) + [f"alpha{a}-beta{a - 1}" for a in ALPHAS]
        df = simulate_chain(fams, repeats=repeats, seed=seed)
        df.insert(0, "chain", "vgg16 shapes")
        return df, {}
    return Unit("simulation", unit_id("simulation", repeats, seed),
                "simulation (appendix B, Figure 7)", compute, cost=repeats * 40)


def learned_chain_unit(s: Subject, repeats: int, seed: int) -> Unit:

    def compute():
        df = simulate_chain(["learned", "relu-learned"], model=s.model, repeats=repeats,
                            seed=seed)
        df.insert(0, "chain", f"{s.plan.name} weights")
        return df, {}
    return Unit("simulation", unit_id("simulation-learned", s.plan.name, repeats, seed),
                f"simulation with {s.plan.name}'s weights", compute, cost=repeats)


def singular_unit(s: Subject) -> Unit:

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


# experiment name -> (subject, method, cfg, order) -> units; add new experiments here
EXPERIMENT_UNITS: dict[str, Callable[..., list[Unit]]] = {
    "csc": csc_units,
    "random_logit": random_logit_units,
    "sanity": sanity_units,
    "insensitivity": insensitivity_units,
}


def plan_units(subjects: list[Subject], cfg) -> list[Unit]:
    """Every unit of the run, in order: per model and method the experiments' units,
    then the theory (simulation, learned chains, Figure 3). Unit names start with the
    (model, method) position, so a table's files sort in plan order."""
    units: list[Unit] = []
    for i, s in enumerate(subjects):
        for j, m in enumerate(s.methods):
            for exp, build in EXPERIMENT_UNITS.items():
                if exp not in s.plan.experiments or (exp == "csc" and not m.walkable):
                    continue
                for u in build(s, m, cfg, f"{i:02d}{j:03d}"):
                    u.method = m.name
                    units.append(u)
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
