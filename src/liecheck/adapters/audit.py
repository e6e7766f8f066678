"""Audit Zennit composites and Captum methods with the paper's three tests.

For each method, on one model and its images:

* **CSC at the first conv**: median |cos| at the output of the first conv layer's
  ReLU (the paper's Keras layers include their ReLU) for random vectors injected at
  the logits. The paper's verdict: the method *converges* when it reaches 0.99
  (:data:`liecheck.report.summary.CONVERGED`), and then its maps can no longer
  depend on the explained class.
* **random logit**: median SSIM between the maps of the target and of a random
  other class.
* **cascade after the last layer**: median SSIM between the trained model's map and
  the map after re-initialising the last layer (the first step of the sanity check).

For both SSIM tests the verdict is *insensitive* at :data:`INSENSITIVE` = 0.9 or
above. The paper reports two clusters (section 5, Fig. 4): converging methods "very
close to 1", "the rest of the field (SSIM between 0.4 and 0.8)"; 0.9 lies in the gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attribution import Explainer
from ..engine.ops import ReLU
from ..heatmap import heatmap, to_rgb
from ..methods import get_method
from ..methods.peers.base import require
from ..methods.peers.captum import from_captum
from ..methods.peers.zennit import from_zennit
from ..methods.protocol import Method
from ..metrics.csc import csc
from ..metrics.random_logit import other_classes, random_logit
from ..metrics.sanity import cascade_maps, sanity
from ..report.summary import CONVERGED

INSENSITIVE = 0.9
ZENNIT_COMPOSITES = ("EpsilonPlus", "EpsilonPlusFlat", "EpsilonAlpha2Beta1",
                     "EpsilonAlpha2Beta1Flat", "EpsilonGammaBox", "ExcitationBackprop",
                     "GuidedBackprop", "DeconvNet", "BetaSmooth")
# gradient-type composites: heatmaps reduce channels by max |.| (as the paper draws them), as
# liecheck's guided_bp / deconv and Captum's GuidedBackprop / Deconvolution adapters do
ZENNIT_GRADIENT_TYPE = ("GuidedBackprop", "DeconvNet", "BetaSmooth")
CAPTUM_METHODS = ("Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution", "LRP",
                  "DeepLift", "IntegratedGradients")


def zennit_method(name: str, images) -> Method:
    """``from_zennit`` for a composite of ``zennit.composites`` by class name, with the
    ``SequentialMergeBatchNorm`` canonizer (a no-op without BatchNorm). EpsilonGammaBox
    gets the images' range as its box; gradient-type composites the max |.| reduction."""

    zc = require("zennit.composites")
    from zennit.canonizers import SequentialMergeBatchNorm

    cls = getattr(zc, name, None)
    if not isinstance(cls, type) or not issubclass(cls, require("zennit.core").Composite):
        raise ValueError(f"zennit.composites has no composite '{name}'; choose from "
                         f"{', '.join(ZENNIT_COMPOSITES)}")
    kw = {"canonizers": [SequentialMergeBatchNorm()]}
    if name == "EpsilonGammaBox":
        x = getattr(images, "images", images)
        kw.update(low=float(x.min()), high=float(x.max()))
    reduce = "maxabs" if name in ZENNIT_GRADIENT_TYPE else "sum"
    return from_zennit(cls(**kw), name=f"zennit:{name}", reduce=reduce)


def captum_method(name: str) -> Method:
    """``from_captum`` for a class of ``captum.attr`` by name."""

    cls = getattr(require("captum.attr"), name, None)
    if not isinstance(cls, type):
        raise ValueError(f"captum.attr has no class '{name}'; e.g. {', '.join(CAPTUM_METHODS)}")
    return from_captum(cls, name=f"captum:{name}")


def first_conv_record(graph) -> str:
    """The first conv layer's output node, or its ReLU's if one follows it."""
    conv = graph.first("conv")
    if conv is None:
        raise ValueError("the model has no conv layer: CSC at the first conv is undefined")
    relu = [c for c in graph.consumers[conv.name] if isinstance(graph.by_name[c].op, ReLU)]
    return relu[0] if relu else conv.name


def _try(fn):
    try:
        return fn(), ""
    except (ValueError, TypeError, RuntimeError) as exc:
        return None, str(exc).split("\n")[0]


def audit_method(model, images, m: Method, target=None, seed: int = 0, n_vectors: int = 5,
                 explainer=None) -> dict:
    """The three tests for one method; a test that does not apply or fails to run
    leaves its value empty and its reason in ``note``."""

    ex = explainer or Explainer(model)
    x = getattr(images, "images", images)
    row = {"method": m.name, "family": m.family}
    notes = []
    rec = first_conv_record(ex.graph)
    df, why = _try(lambda: csc(ex, x, m, start="output", layers=[rec], n_vectors=n_vectors,
                               seed=seed))
    if df is not None and len(df):
        row.update(csc_first_conv=float(df["median"].iloc[0]),
                   csc_baseline=float(df["baseline"].iloc[0]))
        row["csc_verdict"] = ("converges" if row["csc_first_conv"] >= CONVERGED
                              else "does not converge")
    else:
        row.update(csc_first_conv=np.nan, csc_baseline=np.nan, csc_verdict="not applicable")
        notes.append(f"CSC: {why}")
    rl, why = _try(lambda: random_logit(ex, x, m, target=target, seed=seed))
    row["ssim_random_logit"] = float(rl["score"].median()) if rl is not None else np.nan
    if rl is None:
        notes.append(f"random logit: {why}")
    sa, why = _try(lambda: sanity(model, x, m, target=target, layers=1, seed=seed))
    row["ssim_cascade_last"] = float(sa["score"].median()) if sa is not None else np.nan
    if sa is None:
        notes.append(f"cascade: {why}")
    for k in ("ssim_random_logit", "ssim_cascade_last"):
        v = row[k]
        row[k.replace("ssim", "verdict")] = ("not applicable" if np.isnan(v) else
                                             "insensitive" if v >= INSENSITIVE else "passes")
    verdicts = [row["csc_verdict"] == "converges", row["verdict_random_logit"] == "insensitive",
                row["verdict_cascade_last"] == "insensitive"]
    ran = [row["csc_verdict"], row["verdict_random_logit"], row["verdict_cascade_last"]]
    complete = all(v != "not applicable" for v in ran)
    row["paper_verdict"] = ("fails" if any(verdicts) else
                            "passes" if complete else "passes (partly run)")
    row["note"] = "; ".join(notes)
    return row


def audit(model, images, methods: list[Method], target=None, seed: int = 0,
          n_vectors: int = 5, progress: bool = False, on_row=None) -> pd.DataFrame:
    """The audit table: one row per method (see the module docstring).

    Parameters
    ----------
    model : the network (never modified).
    images : ``(N, C, H, W)`` tensor or an ImageSet.
    methods : liecheck methods, e.g. from :func:`zennit_method` / :func:`captum_method`
        or registry names.
    target : classes (default: the predictions).
    on_row : called with the table so far after each method (e.g. to save it).

    Returns
    -------
    ``DataFrame``: ``method, family, csc_first_conv, csc_baseline, csc_verdict,
    ssim_random_logit, verdict_random_logit, ssim_cascade_last, verdict_cascade_last,
    paper_verdict, note``.
    """

    ex = Explainer(model)
    rows = []
    for m in methods:
        m = get_method(m)
        if progress:
            print(f"auditing {m.name}", flush=True)
        rows.append(audit_method(model, images, m, target, seed, n_vectors, explainer=ex))
        if on_row is not None:
            on_row(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """The audit table as GitHub markdown."""
    cols = ["method", "csc_first_conv", "csc_verdict", "ssim_random_logit",
            "verdict_random_logit", "ssim_cascade_last", "verdict_cascade_last",
            "paper_verdict"]
    head = ["method", "CSC@conv1", "CSC verdict", "SSIM random logit", "verdict",
            "SSIM cascade (last layer)", "verdict", "paper's verdict"]

    def fmt(v):
        if isinstance(v, float):
            return "-" if np.isnan(v) else (f"{v:.4f}" if v >= 0.99 else f"{v:.3f}")
        return str(v)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    notes = [f"- {r['method']}: {r['note']}" for _, r in df.iterrows() if r["note"]]
    return "\n".join(lines + ([""] + notes if notes else []))


def figure(model, images, methods: list[Method], target=None, seed: int = 0, image: int = 0):
    """One row per method: the map of the target class, of a random other class and
    after re-initialising the last layer (red positive, blue negative)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    x = getattr(images, "images", images)[image:image + 1]
    ex = Explainer(model)
    t = ex.targets(x, None if target is None else target[image:image + 1])
    other = other_classes(t, ex.logits(x).shape[1], seed)
    fig, axes = plt.subplots(len(methods), 3, figsize=(6.6, 2.2 * len(methods)), squeeze=False)
    for i, m in enumerate(methods):
        maps = [lambda m=m: ex.attribute(x, m, target=t),
                lambda m=m: ex.attribute(x, m, target=other),
                lambda m=m: [r for s, _, r in cascade_maps(model, x, m, t, layers=1, seed=seed)
                             if s == 1][0]]
        cols = (f"class {int(t[0])}", f"random class {int(other[0])}", "last layer randomised")
        for j, make in enumerate(maps):
            ax = axes[i, j]
            ax.axis("off")
            ax.set_title((f"{m.name}\n" if j == 0 else "\n") + cols[j], fontsize=8)
            r, why = _try(make)
            if r is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", fontsize=8)
                continue
            ax.imshow(to_rgb(heatmap(r.detach().cpu(), m))[0])
    fig.tight_layout()
    return fig
