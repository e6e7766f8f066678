"""Cosine similarity convergence (CSC, the paper's section 5) in the battery.

The computation is :func:`liecheck.csc` (:mod:`liecheck.metrics.csc`); this file is
everything else the tools need: the run's units (pooled values per chunk, one merge), the
CLI (``liecheck csc``), the report's figures and verdict column, and the audit.

A method *converges* (in the paper's sense) when the median CSC at the output of the
first conv layer, for relevance started at the logits, reaches :data:`CONVERGED` (the
paper: "all methods show convergence up to at least 0.99 cosine similarity", except
LRP-z and DeepLIFT).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..attribution import Explainer
from ..engine.ops import ReLU
from ..layer_names import layer_label
from ..metrics.csc import csc, csc_rows, csc_values
from ..plots.faithfulness import csc_curve, csc_histogram, save
from ..plots.figure import Figure, png
from ..plots.run_figures import models_of, paper_label
from ..store import RunStore, unit_id
from ..units import Unit, chunks
from .base import TABLE, FaithfulnessTest, register_test
from .mechanism import evidence_frame, evidence_row

CONVERGED = 0.99


def logits_start(csc: pd.DataFrame) -> str:
    """The start at the logits: the one that records the most layers below it."""
    return csc.groupby("start")["layer"].nunique().idxmax()


def first_conv_csc(csc: pd.DataFrame) -> pd.DataFrame:
    """Median CSC at the first conv layer's output, logits start, per (model, method)."""
    if csc.empty:
        return pd.DataFrame(columns=["model", "method", "csc_first_conv", "baseline"])
    rows = []
    for (model, method), g in csc.groupby(["model", "method"], sort=False):
        g = g[g["start"] == logits_start(g)]
        conv = g[g["kind"] == "conv"].sort_values("depth")
        if conv.empty:
            continue
        r = conv.iloc[0]
        rows.append({"model": model, "method": method, "csc_first_conv": float(r["median"]),
                     "baseline": float(r["baseline"]), "first_conv": r["layer"]})
    return pd.DataFrame(rows)


def first_layer_rows(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first conv layer's record (a CNN), or else of the shallowest record
    above the input (a transformer's first block output on its residual stream)."""
    conv = g[g["kind"] == "conv"].sort_values("depth")
    if conv.empty:
        conv = g[(g["kind"] != "input") & (g["depth"] > 0)].sort_values("depth")
    return conv


def first_conv_evidence(csc: pd.DataFrame, start: str | None = None) -> pd.DataFrame:
    """Per (model, method): CSC at the first conv (a transformer: its first block,
    :func:`first_layer_rows`) from ``start`` (default the logits)
    over images (``median_images`` and its interval, :func:`liecheck.metrics.csc.csc_rows`)
    in :meth:`~liecheck.battery.FaithfulnessTest.evidence`'s columns. A table of an
    older run, without those columns, gives NaN (no verdict)."""
    rows = []
    for (model, method), g in csc.groupby(["model", "method"], sort=False):
        g = g[g["start"] == (start if start is not None else logits_start(g))]
        conv = first_layer_rows(g)
        if conv.empty:
            continue
        r = conv.iloc[0]
        rows.append(evidence_row(model, method, *(float(r.get(c, np.nan)) for c in (
            "median_images", "median_low", "median_high"))))
    return evidence_frame(rows)


def first_conv_record(graph) -> str:
    """The first conv layer's output node, or its ReLU's if one follows it."""
    conv = graph.first("conv")
    if conv is None:
        raise ValueError("the model has no conv layer: CSC at the first conv is undefined")
    relu = [c for c in graph.consumers[conv.name] if isinstance(graph.by_name[c].op, ReLU)]
    return relu[0] if relu else conv.name


def verdict(value: float) -> str:
    return "converges" if value >= CONVERGED else "does not converge"


class CSC(FaithfulnessTest):
    name = "csc"
    keys = ("model", "method", "start", "layer")
    extra_tables = {"_csc_values": ("model", "method", "chunk", "start", "layer")}
    heading = "Cosine similarity convergence (CSC) per layer"
    command = "csc"
    help = "cosine similarity convergence (paper section 5, Fig. 5)"
    shown = ("model", "method", "start", "layer", "kind", "channels", "n_values", "median",
             "p5", "p95", "baseline")
    walk_only = True
    summary_names = {"csc_first_conv": "CSC at first conv"}
    audit_columns = {"csc_first_conv": "CSC@conv1", "csc_verdict": "CSC verdict"}
    hidden_audit_columns = ("csc_baseline",)
    verdict_column, failing = "csc_verdict", "converges"
    short = "CSC"
    mechanism, measure, factor = "rank-1 convergence", "CSC at the first layer", 10.0

    def units(self, s, m, cfg, order):
        return _units(s, m, cfg, order)

    def walks(self, n, n_layers, n_starts, n_vectors):
        return n * n_starts * n_vectors

    def probe(self, ex, model, x, m, plan, cfg, n_layers, factor=1.0):
        from .estimate import timed

        starts = plan.start_nodes(ex.graph)
        return timed(lambda: csc_values(ex, x, m, start=starts, n_vectors=cfg.n_vectors,
                                        seed=cfg.seed)) * factor / len(x)

    def plan_words(self, plan, cfg, n_layers):
        return f" x {plan.n_starts} starts x {cfg.n_vectors} vectors"

    def add_arguments(self, p):
        p.add_argument("--start", default="paper",
                       help="comma-separated start nodes/modules (features_0 or features.0), "
                            "'output', or 'paper' (the protocol's start layers)")
        p.add_argument("--n-vectors", type=int, default=5,
                       help="random vectors per image and start layer (default 5, the paper's)")

    def plan_settings(self, args):
        return {"starts": args.start, "n_vectors": args.n_vectors}

    def write_outputs(self, store, df, args):
        starts = list(dict.fromkeys(df["start"]))
        for st in starts:
            tag = str(st).replace(".", "_")
            for log in (False, True):
                save(csc_curve(df, start=st, log=log, threshold=CONVERGED),
                     Path(args.out) / f"csc_{tag}{'_log' if log else ''}")
        save(csc_histogram(df, start=starts[0]), Path(args.out) / "csc_histogram_first_conv")
        if len(starts) > 1:
            for m in df["method"].unique():
                save(csc_curve(df[df.method == m], log=True, threshold=CONVERGED,
                               title=f"CSC of {paper_label(m)} ({m}), several starts"),
                     Path(args.out) / f"csc_starts_{m}")

    def figures(self, store):
        return _figures(store)

    def summary(self, df):
        first = first_conv_csc(df)
        if first.empty:
            return None
        return first.set_index(["model", "method"])[["csc_first_conv"]]

    def evidence(self, df):
        return first_conv_evidence(df)

    def layers(self, df):
        first = first_conv_csc(df)
        return {model: "first conv " + ", ".join(layer_label(model, str(f))
                                                 for f in dict.fromkeys(g["first_conv"]))
                for model, g in (first.groupby("model", sort=False) if not first.empty else ())}

    def audit(self, ex, model, x, m, target, seed, n_vectors):
        rec = first_conv_record(ex.graph)
        df = csc(ex, x, m, start="output", layers=[rec], n_vectors=n_vectors, seed=seed)
        v = float(df["median"].iloc[0])
        return {"csc_first_conv": v, "csc_baseline": float(df["baseline"].iloc[0]),
                "csc_verdict": verdict(v), TABLE: df}


def _units(s, m, cfg, order: str) -> list[Unit]:
    """One unit per chunk (pooled values) and the merge unit (the ``csc`` rows)."""

    def chunk_compute(a, b, c):
        def compute():
            ex = Explainer(s.model)
            starts = s.plan.start_nodes(ex.graph)
            x, _, ids = s.part(a, b)
            df = csc_values(ex, x, m, start=starts, n_vectors=cfg.n_vectors, seed=cfg.seed,
                            image_ids=ids)
            df.insert(1, "chunk", c)
            return s.tag(df), {}
        return compute

    units, needs = [], []
    for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size)):
        name = unit_id(order, "csc", s.plan.name, m.name, f"c{c:05d}")
        needs.append(("_csc_values", name))
        units.append(Unit("_csc_values", name, f"CSC {s.plan.name} {m.name} [{a}:{b}]",
                          chunk_compute(a, b, c),
                          cost=s.plan.n_starts * cfg.n_vectors * (b - a) * s.scale))

    def merge(store: RunStore):
        vals = store.read("_csc_values", units=[u for _, u in needs])
        vals = vals.sort_values("chunk", kind="stable")
        return s.tag(csc_rows(vals.drop(columns=["model", "chunk"]))), {}

    units.append(Unit("csc", unit_id(order, "csc", s.plan.name, m.name),
                      f"CSC {s.plan.name} {m.name} (merge)", merge=merge, cost=0.1,
                      needs=tuple(needs)))
    return units


def _figures(store) -> list[Figure]:
    """Figures 5a-d (median CSC per layer from the logits), 5e-g (histogram at the
    first conv), 9 (several start layers per method) and 6c (CMP methods)."""

    csc = store.read("csc")
    out = []
    for model in models_of(csc):
        d = csc[csc["model"] == model]
        st = logits_start(d)
        name = layer_label(model, st)
        out.append(Figure("5a-d", f"CSC, {model}, from the logits, {name}",
                          f"random relevance started at the logits, {name}; median |cos| "
                          "per layer, on a log axis of 1 - |cos| (converged methods at the "
                          "top, input on the left); dashed: the random baseline; dotted: the "
                          f"verdict's threshold |cos| = {CONVERGED:g} (a method converges when "
                          "its curve is above it at the first conv). Layers: "
                          "liecheck's node name, the paper's name in parentheses. Curves "
                          "drawn over each other are named under the plot.",
                          png(csc_curve(d, start=st, log=True, model=model,
                                        title=f"{model}: CSC from the logits, {name}",
                                        threshold=CONVERGED))))
        out.append(Figure("5e-g", f"CSC histogram at the first conv, {model}",
                          f"share of |cos| values in the paper's bins at the first conv layer, "
                          f"relevance started at the logits, {name}.",
                          png(csc_histogram(d, start=st))))
        cmp = d[d["method"].str.startswith("lrp_cmp")]
        if not cmp.empty:
            out.append(Figure("6c", f"CSC of LRP-CMP, {model}, from the logits, {name}",
                              "LRP-CMP: epsilon on dense layers, alpha-beta on convs.",
                              png(csc_curve(cmp, start=st, log=True, model=model,
                                            title=f"{model}: CSC of LRP-CMP from {name}",
                                            threshold=CONVERGED))))
        if d["start"].nunique() > 1:
            for method in dict.fromkeys(d["method"]):
                dm = d[d["method"] == method]
                out.append(Figure("9", f"CSC from several start layers, {model}, "
                                  f"{paper_label(method)}",
                                  "one curve per start layer (node name, the paper's name in "
                                  "parentheses; a paper layer includes its ReLU).",
                                  png(csc_curve(dm, log=True, model=model,
                                                title=f"{model}: {paper_label(method)}",
                                                threshold=CONVERGED))))
    return out


register_test(CSC())
