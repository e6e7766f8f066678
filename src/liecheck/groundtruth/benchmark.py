"""The ground-truth class-sensitivity benchmark: does a map point at the explained digit?

Each image shows two digits of different classes; the multi-label model
(:mod:`.model`) recognises both. Explaining one class, a faithful, class-sensitive
map puts its relevance on that class's digit; a method that ignores the explained
class (the paper's claim for converging modified BP methods) gives nearly the same
map for both classes. For every image and each of its two classes:

* ``mass_accuracy``: the share of the map's positive relevance inside the explained
  digit's half (relevance mass accuracy, Arras et al. 2022, CLEVR-XAI);
* ``pointing``: 1 if the map's maximum lies in the explained digit's half, else 0;
* ``l1_class_diff`` (per image): mean absolute difference of the two classes' maps,
  each normalised to [0, 1] as for the paper's Figure 1, up to the maps' sign
  (:func:`liecheck.metrics.similarity.l1_distance` with ``flip=True``, the same
  measure as the battery's class-insensitivity test; 0 = identical maps or one the
  other's negative).

Sign of the explained logit. Positive relevance is read as evidence *for* the explained
class whatever the sign of its logit: where that class's evidence lies (on its digit)
does not depend on the model's net verdict, and occlusion, which only reads the
model, still finds it there for a negative logit. Rules that start from the logit's
value and converge to one map (LRP a1b0, DTD: LRP's conservation makes the map's
total the logit) turn their whole map over when the explained logit is negative: the
map has no positive relevance at all and says nothing about where the class's
evidence is. Such a map gets NaN for *both* ``mass_accuracy`` and ``pointing`` (left
out of the means and counted in ``n_no_positive``; the maximum of a map negative
everywhere is its pixel of least relevance, and taking it would score the explanation
by where the map is faintest); its L1 to the other class's map
is taken up to the sign, so a flip is not counted as class sensitivity. The
per-explanation table holds the explained ``logit``.

The maps are the package's 2-D heatmaps (:func:`liecheck.heatmap.heatmap`: signed
channel sum for LRP-type methods, max |.| over channels for gradient-type ones).
Summaries are means with 99 % percentile-bootstrap intervals over images.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attribution import Explainer
from ..heatmap import heatmap
from ..methods import get_method, method_names
from ..methods import patterns as pt
from ..metrics.similarity import l1_distance, normalize, percentiles_for
from ..metrics.stats import bootstrap_mean
from . import model as two_digits_model
from .data import TwoDigits, half_masks, two_digit_images
from .references import REFERENCES, occlusion, random_maps

MEASURES = ("mass_accuracy", "pointing", "l1_class_diff")


def walkable_methods() -> list[str]:
    """Every registered method that is one backward walk (what ``--methods all`` runs,
    besides the references)."""
    return [n for n in method_names() if get_method(n).walkable]


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """``"all"`` -> every walkable method plus the references; a comma-separated string or
    a list -> those names (references or registered methods), checked."""
    if isinstance(methods, str):
        methods = (walkable_methods() + list(REFERENCES) if methods == "all"
                   else [m.strip() for m in methods.split(",") if m.strip()])
    known = set(method_names()) | set(REFERENCES)
    for m in methods:
        if m not in known:
            close = difflib.get_close_matches(str(m), sorted(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown method '{m}' for the ground-truth benchmark.{hint} Use "
                             f"a registered method (`liecheck methods`) or one of {REFERENCES}")
    return list(methods)


def _maps(model: nn.Module, data: TwoDigits, method: str, seed: int, fill: float,
          patterns=None) -> tuple[torch.Tensor, str | None]:
    """``(2N, H, W)`` maps: rows ``0..N-1`` explain the left digit, ``N..2N-1`` the right."""
    n = len(data)
    x2 = torch.cat([data.x, data.x])
    t2 = torch.cat([data.labels[:, 0], data.labels[:, 1]])
    if method == "occlusion":
        occ = occlusion(model, data.x, fill=fill)                     # (N, K, H, W)
        occ2 = torch.cat([occ, occ])
        return occ2[torch.arange(2 * n), t2], None
    if method == "random":
        h, w = data.x.shape[-2:]
        return random_maps(2 * n, h, w, seed)[:, 0], None

    m = get_method(method)
    if "patterns" in m.params and m.params["patterns"] is None:
        m = m.with_params(patterns=patterns)
    r = Explainer(model).attribute(x2, m, target=t2)
    return heatmap(r.detach().cpu(), m), m.name


def measure_maps(maps: torch.Tensor, n: int, method: str | None = None,
                 logits: torch.Tensor | None = None) -> pd.DataFrame:
    """Per-image measures of ``(2N, H, W)`` maps (left-digit explanations first).

    Returns one row per (image, side): ``image, side`` (0 left, 1 right),
    ``mass_accuracy, pointing`` (both NaN for a map without positive relevance), the
    image's ``l1_class_diff`` (on both rows; up to the maps' sign) and, if ``logits``
    (``(2N,)``, the explained logit of each map) is given, ``logit``.
    """
    masks = half_masks(*maps.shape[-2:])
    maps = maps.double()
    pos = maps.clamp(min=0).flatten(1)
    side = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    own = masks[side].flatten(1)
    total = pos.sum(1)
    nan = torch.full_like(total, float("nan"))
    mass = torch.where(total > 0, (pos * own).sum(1) / total.clamp(min=1e-300), nan)
    pointing = own.gather(1, maps.flatten(1).argmax(1, keepdim=True))[:, 0].double()
    pointing = torch.where(total > 0, pointing, nan)
    lo, hi = percentiles_for(method) if method else (0.5, 99.5)
    norm = normalize(maps, lo, hi)
    l1 = l1_distance(norm[:n], norm[n:], flip=True)
    cols = {"image": np.tile(np.arange(n), 2), "side": side.numpy(),
            "mass_accuracy": mass.numpy(), "pointing": pointing.numpy(),
            "l1_class_diff": torch.cat([l1, l1]).numpy()}
    if logits is not None:
        cols["logit"] = logits.detach().double().cpu().numpy()
    return pd.DataFrame(cols)


def summarize_measures(per: pd.DataFrame, confidence: float = 0.99,
                       n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Each measure of :func:`measure_maps`' rows of one method: its mean over the
    explanations (L1: over the images, one value each) and ``<measure>_low``,
    ``<measure>_high``, its percentile bootstrap interval."""
    out = {}
    for col in MEASURES:
        v = per[col] if col != "l1_class_diff" else per.loc[per["side"] == 0, col]
        mean, low, high = bootstrap_mean(v.to_numpy(), confidence, n_resamples, seed)
        out.update({col: mean, f"{col}_low": low, f"{col}_high": high})
    return out


def two_digits(methods: str | Sequence[str] = "all", n: int = 100, seed: int = 0,
               model: nn.Module | None = None, data: TwoDigits | None = None,
               correct_only: bool = True, raw: bool = False, confidence: float = 0.99,
               n_resamples: int = 10_000):
    """Run the ground-truth class-sensitivity benchmark.

    Parameters
    ----------
    methods : ``"all"`` (every walkable method plus ``occlusion`` and ``random``), a
        comma-separated string or a list of names.
    n : number of test images drawn (two explanations each).
    seed : seed of the image draw, the random maps and the bootstrap.
    model : default: the cached benchmark model (:func:`.model.load_two_digits_net`,
        trained on first use).
    data : default: ``two_digit_images(n, "test", seed)``.
    correct_only : keep only images whose two largest logits are the two digits'
        classes (a map can only be judged against what the model recognises).
    raw : also return the per-(image, side) table.

    Returns
    -------
    DataFrame, one row per method: ``method, n_images``, ``n_no_positive`` (its
    explanations without positive relevance, left out of mass accuracy and pointing)
    and for each of ``mass_accuracy, pointing, l1_class_diff`` the mean and
    ``<measure>_low``, ``<measure>_high`` (bootstrap interval). ``df.attrs`` holds
    ``model_accuracy`` (the model's test accuracy when the cached model is used),
    ``n_drawn`` and ``n_negative_logit`` (explanations whose explained logit is
    negative; the per-item table has each ``logit``).
    With ``raw=True`` a tuple ``(summary, per_item)``.
    """
    names = resolve_methods(methods)
    info: dict = {}
    if model is None:
        model, info = two_digits_model.load_two_digits_net()
    model = model.eval()
    if data is None:
        data = two_digit_images(n, "test", seed)
    n_drawn = len(data)
    if correct_only:
        with torch.no_grad():
            top2 = model(data.x).topk(2, dim=1).indices.sort(1).values
        keep = (top2 == data.labels.sort(1).values).all(1)
        data = TwoDigits(data.x[keep], data.labels[keep], data.source[keep.numpy()],
                         data.mean, data.std)
    if len(data) == 0:
        raise ValueError("no image left to measure (the model recognises none of the drawn "
                         "pairs; pass correct_only=False)")
    with torch.no_grad():
        out = model(data.x)
    logits = torch.cat([out.gather(1, data.labels[:, :1])[:, 0],
                        out.gather(1, data.labels[:, 1:])[:, 0]])
    fill = -data.mean / data.std if data.std else 0.0   # a blank (0) pixel, normalised
    patterns = None
    if any("patterns" in get_method(m).params for m in names if m not in REFERENCES):
        patterns = pt.fit(model, two_digit_images(512, "train", seed).x.split(64), kind="relu")
    items, rows = [], []
    for name in names:
        maps, mname = _maps(model, data, name, seed, fill, patterns)
        per = measure_maps(maps, len(data), mname, logits)
        per.insert(0, "method", name)
        items.append(per)
        row = {"method": name, "n_images": len(data),
               "n_no_positive": int(per["mass_accuracy"].isna().sum())}
        row.update(summarize_measures(per, confidence, n_resamples, seed))
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary.attrs.update(model_accuracy=info.get("test_accuracy"), n_drawn=n_drawn,
                         n_negative_logit=int((logits < 0).sum()), model_info=info)
    return (summary, pd.concat(items, ignore_index=True)) if raw else summary
