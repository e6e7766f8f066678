"""The units of work of a run: the battery's tests (:mod:`liecheck.battery`, each gives
its own units per model and method) and the theory's (simulation, learned chains,
Figure 3) and the ground-truth benchmark.

Per (test, model, method) the images are cut into chunks of ``cfg.chunk_size``; each
chunk is one :class:`~liecheck.units.Unit` whose result the run store writes as one file,
so a killed run loses at most the chunk in progress and the chunks can be shared out
among processes (:mod:`liecheck.reproduce.distributed`). Every random choice is keyed by
the image's number in the whole set (and the layer), never by the chunk, so the numbers
do not depend on how the images were cut.
"""

from __future__ import annotations

from ..battery import tests
from ..groundtruth import two_digits
from ..store import unit_id
from ..theory import simulate_chain, singular_ratios
from ..theory.chain import ALPHAS, BASE_FAMILIES
from ..units import TABLE_KEYS, Unit
from .setup import Subject

# table name -> the columns that identify a row: the battery's tables (declared when each
# test registers) and the theory's
KEYS = TABLE_KEYS
KEYS.update({"simulation": ["chain", "family", "step"],
             "singular": ["model", "layer", "kind", "part"],
             "groundtruth": ["method"]})


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
        return s.tag(df), {}
    return Unit("singular", unit_id("singular", s.plan.name), f"Figure 3 {s.plan.name}",
                compute, cost=20 * s.scale)


def groundtruth_unit(n: int, methods: list[str], seed: int) -> Unit:
    """The ground-truth class-sensitivity benchmark (two digits side by side), with the
    benchmark model's test accuracy and the image counts as columns."""

    def compute():
        df, per = two_digits(methods, n=n, seed=seed, raw=True, n_resamples=2000)
        df.insert(1, "model_accuracy", df.attrs.get("model_accuracy"))
        df.insert(2, "n_drawn", df.attrs.get("n_drawn"))
        df.insert(3, "n_negative_logit", df.attrs.get("n_negative_logit"))
        arrays = {unit_id("groundtruth_items", n, seed): {
            c: per[c].to_numpy() for c in ("method", "image", "side", "logit",
                                           "mass_accuracy", "pointing", "l1_class_diff")}}
        return df, arrays
    return Unit("groundtruth", unit_id("groundtruth", n, seed),
                "ground-truth class sensitivity (two digits)", compute,
                cost=2 * n * len(methods) / 8)


def plan_units(subjects: list[Subject], cfg) -> list[Unit]:
    """Every unit of the run, in order: per model and method the experiments' units,
    then the theory (simulation, learned chains, Figure 3). Unit names start with the
    (model, method) position, so a table's files sort in plan order."""
    units: list[Unit] = []
    for i, s in enumerate(subjects):
        for j, m in enumerate(s.methods):
            for test in tests():
                if test.name not in s.plan.experiments or (test.walk_only and not m.walkable):
                    continue
                for u in test.units(s, m, cfg, f"{i:02d}{j:03d}"):
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
