"""Audit Zennit composites and Captum methods with the paper's three tests (every test
of the battery that has an audit verdict, :mod:`liecheck.battery`; a test you register
adds its columns).

For each method, on one model and its images:

* **CSC at the first conv**: median |cos| at the output of the first conv layer's
  ReLU (the paper's Keras layers include their ReLU) for random vectors injected at
  the logits. The paper's verdict: the method *converges* when it reaches 0.99
  (:data:`liecheck.battery.csc.CONVERGED`), and then its maps can no longer
  depend on the explained class.
* **random logit**: median SSIM between the maps of the target and of a random
  other class.
* **cascade after the last layer**: median SSIM between the trained model's map and
  the map after re-initialising the last layer (the first step of the sanity check).

For both SSIM tests the verdict is *insensitive* at
:data:`liecheck.battery.random_logit.INSENSITIVE` = 0.9 or
above. The paper reports two clusters (section 5, Fig. 4): converging methods "very
close to 1", "the rest of the field (SSIM between 0.4 and 0.8)"; 0.9 lies in the gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attribution import Explainer
from ..battery import NOT_APPLICABLE, tests
from ..battery.base import TABLE
from ..battery.mechanism import NO_REFERENCE, REFERENCE, mechanisms
from ..heatmap import heatmap, to_rgb
from ..methods import get_method
from ..methods.peers.base import require
from ..methods.peers.captum import from_captum
from ..methods.peers.zennit import from_zennit
from ..methods.protocol import Method
from ..metrics.random_logit import other_classes
from ..metrics.sanity import cascade_maps

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


def _try(fn):
    try:
        return fn(), ""
    except (ValueError, TypeError, RuntimeError) as exc:
        return None, str(exc).split("\n")[0]


def audit_method(model, images, m: Method, target=None, seed: int = 0, n_vectors: int = 5,
                 explainer=None) -> dict:
    """Every audited test of the battery for one method (CSC at the first conv, random
    logit, the cascade's last layer, and tests you registered); a test that does not
    apply or fails to run leaves its values empty and its reason in ``note``."""

    ex = explainer or Explainer(model)
    x = getattr(images, "images", images)
    row = {"method": m.name, "family": m.family}
    notes, fails, ran, frames = [], [], [], {}
    for test in tests():
        if not test.audited:
            continue
        cols, why = _try(lambda test=test: test.audit(ex, model, x, m, target, seed,
                                                      n_vectors))
        if cols is None:
            cols = test.audit_empty()
            notes.append(f"{test.command or test.name}: {why}")
        frame = cols.pop(TABLE, None)
        if frame is not None:
            frames[test.name] = frame.assign(model="model", method=m.name)
        row.update(cols)
        v = row[test.verdict_column]
        ran.append(v != NOT_APPLICABLE)
        fails.append(test.failing is not None and v == test.failing)
    row["paper_verdict"] = ("fails" if any(fails) else
                            "passes" if all(ran) else "passes (partly run)")
    row["note"] = "; ".join(notes)
    row[TABLE] = frames
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
    paper_verdict, note, mechanism``. ``paper_verdict`` applies the paper's fixed
    cut-offs (CSC 0.99, SSIM 0.9); ``mechanism`` names the failures every test shows
    against the model's gradient on the same images, with 99 % bootstrap intervals
    (:mod:`liecheck.battery.mechanism`; the gradient is audited too when it is not among
    ``methods``).
    """

    ex = Explainer(model)
    rows, frames = [], {}
    for m in methods:
        m = get_method(m)
        if progress:
            print(f"auditing {m.name}", flush=True)
        row = audit_method(model, images, m, target, seed, n_vectors, explainer=ex)
        for name, f in row.pop(TABLE).items():
            frames.setdefault(name, []).append(f)
        rows.append(row)
        if on_row is not None:
            on_row(pd.DataFrame(rows))
    df = pd.DataFrame(rows)
    if REFERENCE not in df["method"].values and any(t.mechanism for t in tests()):
        if progress:
            print(f"auditing {REFERENCE} (the reference of the mechanism verdicts)", flush=True)
        ref = audit_method(model, images, get_method(REFERENCE), target, seed, n_vectors,
                           explainer=ex)
        for name, f in ref.pop(TABLE).items():
            frames.setdefault(name, []).append(f)
    mech = mechanisms({k: pd.concat(v, ignore_index=True) for k, v in frames.items()})
    df["mechanism"] = [mech["mechanism"].get(("model", n), NO_REFERENCE) if not mech.empty
                       else NO_REFERENCE for n in df["method"]]
    return df


def markdown(df: pd.DataFrame) -> str:
    """The audit table as GitHub markdown."""
    named = {"method": "method"}
    for test in tests():
        named.update(test.audit_columns)
    named["paper_verdict"] = "paper's verdict"
    named["mechanism"] = "verdict (mechanism shown, against the gradient)"
    cols = [c for c in named if c in df.columns]
    head = [named[c] for c in cols]

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
