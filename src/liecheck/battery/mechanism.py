"""Verdicts that name the mechanism: which of the paper's failures each method shows,
from all tests of the battery together, judged against a reference measured in the same
run.

Each test that can show a failure (:attr:`~liecheck.battery.FaithfulnessTest.mechanism`)
gives, per (model, method), one number with its 99 % bootstrap interval over images, on
a scale where 0 means "the map did not change" (:meth:`~FaithfulnessTest.evidence`):

* CSC, "rank-1 convergence": ``1 - |cos|`` of random relevance vectors at the first conv
  (a transformer: its first block);
* the cascade, "ignores later layers": ``1 - SSIM`` of the map and the map with the last
  layer randomised;
* the random logit and the ground truth, "class-insensitive": ``1 - SSIM`` of the maps of
  two classes, and the L1 distance of the two digits' maps.

**The reference is the model's own gradient**, measured on the same images: it is what
the model computes, so it changes exactly as much as the model does when a layer or the
class changes. A method shows a mechanism when, with 99 % confidence, it changes less
than the gradient (its interval lies wholly below the gradient's) and by a clear margin:
its distance is at most ``1 / factor`` of the gradient's (``factor`` = 10 for CSC, one
decade on the paper's log axis of Figure 5; 2 for the similarity and L1 tests, half the
change). So a verdict depends on no fixed cut-off of the score itself: a network whose
own Jacobian chain converges (a deep trained net) raises the bar with it.

A method can show several mechanisms; each is named with its test and numbers, followed by
the tests it passes (LRP-CMP: rank-1 convergence by CSC, but it passes the random logit,
since its dense layers keep the class). One that shows none, where a reference was
measured, ``passes``; without the gradient in the run there is no verdict (``no reference:
add the gradient to the methods``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..numbers import fmt
from .base import tests

REFERENCE = "gradient"
# the ground truth's reference maps, which are no method and get no verdict
REFERENCE_MAPS = {"occlusion": "occlusion: faithful by construction",
                  "random": "random maps: chance"}
PASSES = "passes"
NO_REFERENCE = "no reference: add the gradient to the methods"


def interval(values, statistic: str = "median", n_resamples: int = 2000
             ) -> tuple[float, float, float]:
    """``(value, low, high)``: the median (or mean) of ``values`` and its 99 % percentile
    bootstrap interval (seed 0)."""
    from ..metrics.stats import bootstrap_mean, bootstrap_median

    fn = bootstrap_median if statistic == "median" else bootstrap_mean
    return fn(np.asarray(values, dtype=np.float64), 0.99, n_resamples, 0)


EVIDENCE_COLUMNS = ["model", "method", "value", "low", "high", "distance", "distance_low",
                    "distance_high"]


def evidence_row(model, method, value: float, low: float, high: float,
                 similarity: bool = True) -> dict:
    """One row of :meth:`~liecheck.battery.FaithfulnessTest.evidence`: the value with its
    interval and the distance from "unchanged" (``1 -`` a similarity, whose interval
    turns over; a distance as it is)."""
    if similarity:
        dist = (1 - value, 1 - high, 1 - low)
    else:
        dist = (value, low, high)
    return dict(zip(EVIDENCE_COLUMNS, (model, method, value, low, high, *dist)))


def evidence_frame(rows: list[dict]) -> pd.DataFrame:
    """:func:`evidence_row` rows indexed by ``(model, method)``."""
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS).set_index(["model", "method"])


def similarity_evidence(df: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """:meth:`~liecheck.battery.FaithfulnessTest.evidence` of a similarity per image
    (SSIM; 1 = unchanged): the median over images and its interval, and ``1 -`` them."""
    return evidence_frame([evidence_row(model, method, *interval(g[value]))
                           for (model, method), g in df.groupby(["model", "method"],
                                                                sort=False)])


def evidence_of(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``{test name: its evidence}`` for every registered test that shows a mechanism and
    whose table is in ``tables`` (computed once; :func:`mechanisms` and the zoo's table
    read it)."""
    out = {}
    for test in tests():
        df = tables.get(test.name)
        if not test.mechanism or df is None or df.empty:
            continue
        ev = test.evidence(df)
        if ev is not None and not ev.empty:
            out[test.name] = ev
    return out


def _finite(row) -> bool:
    return all(np.isfinite(float(row[c])) for c in ("distance", "distance_low",
                                                    "distance_high"))


def flagged(row, ref, factor: float) -> bool:
    """``row`` changes less than the reference ``ref`` with 99 % confidence (intervals
    apart) and by ``factor`` (its distance at most ``ref``'s / ``factor``)."""
    return row["distance_high"] < ref["distance_low"] and \
        row["distance"] <= ref["distance"] / factor


def mechanisms(tables: dict[str, pd.DataFrame],
               evidence: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Per ``(model, method)`` (the index): ``mechanism`` (the text: the failures shown,
    each with its test and numbers, or ``passes``) and one boolean column per
    mechanism's test (``flag_<test>``). ``tables``: the run's tables by test name;
    ``evidence``: :func:`evidence_of` of them, if already computed."""
    words: dict[tuple, dict[str, list[str]]] = {}
    passed: dict[tuple, list[str]] = {}
    judged: dict[tuple, bool] = {}
    flags: dict[str, dict[tuple, bool]] = {}
    evidence = evidence_of(tables) if evidence is None else evidence
    for test in tests():
        ev = evidence.get(test.name)
        if ev is None:
            continue
        col = flags.setdefault(f"flag_{test.name}", {})
        for (model, method), row in ev.iterrows():
            key = (model, method)
            words.setdefault(key, {})
            ref = ev.loc[(model, REFERENCE)] if (model, REFERENCE) in ev.index else None
            if ref is None or not _finite(ref) or not _finite(row):
                judged.setdefault(key, False)
                continue
            judged[key] = True
            if method == REFERENCE or method in REFERENCE_MAPS:
                continue
            hit = flagged(row, ref, test.factor)
            col[key] = hit
            if hit:
                words[key].setdefault(test.mechanism, []).append(
                    f"{test.measure} {fmt(row['value'])} vs gradient {fmt(ref['value'])}")
            else:
                passed.setdefault(key, []).append(test.short)
    out = []
    for key, w in words.items():
        if key[1] == REFERENCE and judged.get(key):
            text = "reference (the model's gradient)"
        elif key[1] in REFERENCE_MAPS:
            text = f"reference ({REFERENCE_MAPS[key[1]]})"
        elif w:
            text = "; ".join(f"{mech} ({'; '.join(ev)})" for mech, ev in w.items()) + (
                f"; passes {', '.join(passed[key])}" if passed.get(key) else "")
        else:
            text = PASSES if judged.get(key) else NO_REFERENCE
        row = {"model": key[0], "method": key[1], "mechanism": text}
        row.update({c: v.get(key, False) for c, v in flags.items()})
        out.append(row)
    if not out:
        return pd.DataFrame(columns=["mechanism"])
    return pd.DataFrame(out).set_index(["model", "method"])


def fails(text: str) -> bool:
    """Whether a :func:`mechanisms` text names a failure (for colouring and counting)."""
    return text not in (PASSES, NO_REFERENCE, "-", "") and not text.startswith("reference")
