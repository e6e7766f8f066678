"""The battery over the zoo: ``liecheck zoo`` and :func:`battery`.

A zoo run is a ``liecheck reproduce`` run (the same run store, resume, progress bar,
Ctrl-C safety and report) whose models are the zoo's families
(:mod:`liecheck.zoo.families`), trained on two digits side by side, and whose images are
recognised two-digit test images, so that besides CSC, the random logit and the cascade
the ground truth applies (:mod:`liecheck.battery.two_digits`). :func:`table` turns the
run store into one row per (model, method) with every number, its 99 % bootstrap
interval and the verdict naming the mechanism (:mod:`liecheck.battery.mechanism`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..battery.csc import first_conv_evidence, logits_start
from ..battery.mechanism import (
    evidence_frame,
    evidence_of,
    evidence_row,
    interval,
    mechanisms,
)
from ..data.images import ImageSet
from ..groundtruth.data import TwoDigits
from ..reproduce.config import ModelPlan, RunConfig
from ..reproduce.setup import Subject, applicable_methods
from .data import zoo_images
from .families import FAMILIES, check_family
from .train import load_family

# the methods of the zoo's table: the gradient (the verdicts' reference) and gradient x
# input, the LRP rules of the paper (z, epsilon, z+ = a1b0, CMP), Excitation BP, DeepLIFT,
# Guided BP and Integrated Gradients
ZOO_METHODS = ("gradient", "gradient_x_input", "lrp_z", "lrp_epsilon", "lrp_a1b0",
               "lrp_cmp_a1b0", "excitation_bp", "deeplift_rescale", "guided_bp",
               "integrated_gradients")
ZOO_TESTS = ("csc", "random_logit", "sanity", "two_digits")


def resolve(names: str | Sequence[str], choices: Sequence[str]) -> list[str]:
    """``"all"`` -> ``choices``; a comma-separated string or a list -> those names."""
    if isinstance(names, str):
        return list(choices) if names == "all" else [n.strip() for n in names.split(",")
                                                     if n.strip()]
    return list(names)


def zoo_config(models: str | Sequence[str] = "all", methods: str | Sequence[str] = ZOO_METHODS,
               n: int = 12, trained: bool = True, seed: int = 0, device: str = "cpu"
               ) -> RunConfig:
    """The run: every named family (default all 21) with ``n`` recognised test images
    each, the named methods, CSC (from the logits and a mid-level start), the random logit,
    the cascade and the ground truth."""
    fams = [check_family(f).name for f in resolve(models, list(FAMILIES))]
    meths = tuple(resolve(methods, ZOO_METHODS))
    if "gradient" not in meths:
        meths = ("gradient",) + meths       # the verdicts' reference
    plans = [ModelPlan(f, "zoo" if trained else "zoo:random", n=n, size=FAMILIES[f].size,
                       methods=meths, starts="logits+mid", experiments=ZOO_TESTS,
                       cascade="ends",
                       note=(f"the zoo's {f} ({FAMILIES[f].blocks}), "
                             + ("trained on two digits" if trained else
                                "seeded RANDOM initialisation")))
             for f in fams]
    return RunConfig(plans, device=device, seed=seed, theory=False, profile="zoo",
                     chunk_size=max(n, 1))


def recognised(model: torch.nn.Module, size: int, n: int, seed: int, trained: bool
               ) -> tuple[TwoDigits, int, int]:
    """``n`` test images whose two largest logits are the two digits' classes (all drawn
    images for an untrained model), how many were drawn for them and how many of those
    the model recognises. A model that recognises none of ``4 n`` drawn images is
    measured on the first ``n`` (:func:`zoo_subject` notes it: its ground truth then
    says little)."""
    draw = n if not trained else 4 * n
    data = zoo_images(draw, size, "test", seed)
    if not trained:
        return data, draw, draw
    with torch.no_grad():
        top2 = model(data.x).topk(2, dim=1).indices.sort(1).values
    keep = torch.nonzero((top2 == data.labels.sort(1).values).all(1))[:, 0][:n]
    found = len(keep)
    if found == 0:              # an untrainable family: measured all the same, and noted
        keep = torch.arange(n)
    idx = keep.numpy()
    return TwoDigits(data.x[keep], data.labels[keep], data.source[idx], data.mean,
                     data.std), draw, found


def _usable(model, x, methods) -> tuple[list, list[str]]:
    """The methods that explain ``x`` on ``model``; the others with their refusal."""
    from ..attribution import Explainer

    ex, ok, notes = Explainer(model), [], []
    for m in methods:
        try:
            r = ex.attribute(x[:1], m)
            if not torch.isfinite(r).all():
                raise ValueError("its map is not finite")
            ok.append(m)
        except (ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            notes.append(f"{m.name} refused: {first}")
    return ok, notes


def zoo_subject(plan: ModelPlan, seed: int, device: str) -> Subject:
    """The :class:`~liecheck.reproduce.setup.Subject` of a zoo family: its model, its
    recognised two-digit test images, the left digit's class as the explained one."""
    trained = plan.weights == "zoo"
    model, info = load_family(plan.name, seed, trained=trained)
    fam = check_family(plan.name)
    data, drawn, found = recognised(model, fam.size, plan.n, seed, trained)
    notes = ([f"{plan.name}: {found} of {drawn} drawn test images recognised, fewer "
              f"than n={plan.n}"] if found < min(plan.n, drawn) else [])
    if found == 0:
        notes.append(f"{plan.name}: the model recognises none of {drawn} drawn test images "
                     f"(test accuracy {info.get('test_accuracy')}); measured on the first "
                     f"{len(data)} anyway, so its ground truth says little")
    images = ImageSet(data.x, [f"pair{i:03d}" for i in range(len(data))],
                      [int(c) for c in data.labels[:, 0]], list(data.raw()))
    methods, more = applicable_methods(plan, model, images)
    methods, refused = _usable(model, data.x, methods)
    source = {"name": plan.name, "weights": info.get("weights"), "kind": info.get("kind"),
              "sha256": None, "test_accuracy": info.get("test_accuracy"),
              "recognised": len(data), "drawn": drawn, "blocks": fam.blocks}
    model = model.to(device).eval()
    images.images = images.images.to(device)
    return Subject(plan, model, source, images, data.labels[:, 0].clone(),
                   "ground truth (the left digit)", methods,
                   notes + more + [f"{plan.name}: {r}" for r in refused], two_digits=data)


def _evidence_columns(ev: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return ev[["value", "low", "high"]].rename(columns={
        "value": prefix, "low": f"{prefix}_low", "high": f"{prefix}_high"})


def table(tables: dict[str, pd.DataFrame], accuracy: dict[str, float] | None = None
          ) -> pd.DataFrame:
    """One row per (model, method) from a zoo run's tables: CSC at the first layer (the
    first conv; a transformer's first block) from the logits and from the mid-level
    start, the random-logit SSIM, the cascade's SSIM with the last and with all layers
    randomised, the ground truth's mass accuracy and L1 between the two classes' maps,
    each with its 99 % bootstrap interval (``_low``, ``_high``), and ``mechanism``."""
    evidence = evidence_of(tables)          # each test's evidence, computed once
    csc = tables.get("csc", pd.DataFrame())
    sanity = tables.get("sanity", pd.DataFrame())
    truth = tables.get("two_digits", pd.DataFrame())
    parts = {
        "csc_logits": evidence.get("csc"),
        "csc_mid": _mid_evidence(csc) if not csc.empty else None,
        "ssim_random_logit": evidence.get("random_logit"),
        "ssim_cascade_last": evidence.get("sanity"),
        "ssim_cascade_all": None if sanity.empty else _intervals(
            sanity, lambda g: g.loc[g["step"] == g["step"].max(), "score"], "median"),
        "mass_accuracy": None if truth.empty else _intervals(
            truth, lambda g: g["mass_accuracy"], "mean"),
        "l1_class_diff": evidence.get("two_digits"),
    }
    parts = [_evidence_columns(ev, prefix) for prefix, ev in parts.items()
             if ev is not None and not ev.empty]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, axis=1)
    mech = mechanisms(tables, evidence)
    if not mech.empty:
        out = out.join(mech, how="left")
    out = out.reset_index()
    if accuracy:
        out.insert(1, "model_accuracy", [accuracy.get(m, np.nan) for m in out["model"]])
    return out


def _mid_evidence(csc: pd.DataFrame) -> pd.DataFrame:
    """CSC at the first conv from each (model, method)'s other start than the logits (the
    mid-level one of ``starts="logits+mid"``)."""
    frames = []
    for _, g in csc.groupby(["model", "method"], sort=False):
        others = [s for s in g["start"].unique() if s != logits_start(g)]
        if others:
            frames.append(first_conv_evidence(g, start=others[0]))
    return pd.concat(frames) if frames else pd.DataFrame()


def _intervals(df: pd.DataFrame, values, stat: str) -> pd.DataFrame:
    """Per (model, method): the median (or mean) of ``values(group)`` with its interval,
    in :func:`~liecheck.battery.mechanism.evidence_row`'s columns."""
    return evidence_frame([evidence_row(model, method, *interval(values(g), stat))
                           for (model, method), g in df.groupby(["model", "method"],
                                                                sort=False)])


def battery(models: str | Sequence[str] = "all", methods: str | Sequence[str] = ZOO_METHODS,
            n: int = 12, trained: bool = True, seed: int = 0, out: str | Path | None = None,
            device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Run the battery over the zoo and return :func:`table`'s DataFrame.

    Parameters
    ----------
    models : families (``"all"``, a comma-separated string or a list; see
        :data:`liecheck.zoo.FAMILIES`).
    methods : registered methods (default :data:`ZOO_METHODS`; the gradient is added, as
        the verdicts' reference).
    n : recognised test images per family.
    trained : the trained families (cached, trained on first use) or their seeded random
        initialisation.
    seed : the seed of training, images, random vectors and randomisation.
    out : the run store (default ``runs/zoo``): an interrupted call resumes there.
    """
    from ..reproduce import run
    from ..store import RunStore

    cfg = zoo_config(models, methods, n, trained, seed, device)
    out = Path(out) if out is not None else Path("runs") / "zoo"
    run(cfg, out, progress=progress)
    store = RunStore(out)
    return table({t: store.read(t) for t in store.tables()}, accuracies(store))


def accuracies(store) -> dict[str, float]:
    """``{family: test accuracy}`` from a zoo run's manifest."""
    models = (store.manifest() or {}).get("models") or {}
    out = {m: (info.get("source") or {}).get("test_accuracy") for m, info in models.items()}
    return {m: (np.nan if v is None else float(v)) for m, v in out.items()}
