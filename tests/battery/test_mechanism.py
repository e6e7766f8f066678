"""Verdicts that name the mechanism (issue 24): each test's evidence against the gradient's,
with 99 % bootstrap intervals over images; no fixed cut-off of the score."""

import numpy as np
import pandas as pd
import pytest

from liecheck.battery.mechanism import (
    NO_REFERENCE,
    PASSES,
    fails,
    flagged,
    mechanisms,
)


def _scores(method: str, values, model: str = "m", step: int | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"model": model, "method": method, "image": np.arange(len(values)),
                       "score": values})
    if step is not None:
        df["step"] = step
    return df


def _uniform(lo, hi, n=40, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, n)


def test_a_method_that_changes_far_less_than_the_gradient_is_named_with_its_test():
    # random logit: the gradient's maps of two classes share SSIM 0.3-0.5 (distance about
    # 0.6), "flat"'s 0.95-0.99 (distance about 0.03 <= 0.6 / 2, intervals apart): flagged;
    # "same" has the gradient's distribution: not flagged
    rl = pd.concat([_scores("gradient", _uniform(0.3, 0.5)),
                    _scores("flat", _uniform(0.95, 0.99, seed=1)),
                    _scores("same", _uniform(0.3, 0.5, seed=2))])
    m = mechanisms({"random_logit": rl})
    assert m.loc[("m", "flat"), "mechanism"].startswith("class-insensitive (random-logit SSIM")
    assert m.loc[("m", "flat"), "flag_random_logit"]
    assert m.loc[("m", "same"), "mechanism"] == PASSES
    assert m.loc[("m", "gradient"), "mechanism"].startswith("reference")
    assert fails(m.loc[("m", "flat"), "mechanism"]) and not fails(PASSES)


def test_separated_but_close_is_not_enough_and_wide_intervals_are_not_enough():
    # "close": distance 0.45 against the gradient's 0.6 (apart, but not half): passes;
    # "noisy": the same mean as "flat" but spread over [0.0, 1.0]: intervals overlap
    rl = pd.concat([_scores("gradient", _uniform(0.38, 0.42)),
                    _scores("close", _uniform(0.53, 0.57, seed=1)),
                    _scores("noisy", _uniform(0.0, 1.0, n=6, seed=3))])
    m = mechanisms({"random_logit": rl})
    assert m.loc[("m", "close"), "mechanism"] == PASSES
    assert m.loc[("m", "noisy"), "mechanism"] == PASSES


def test_the_cascade_reads_the_last_layer_step_and_several_mechanisms_are_all_named():
    grad_last = _uniform(0.2, 0.4)
    both = pd.concat([_scores("gradient", grad_last, step=1),
                      _scores("gradient", _uniform(0.0, 0.1), step=2),
                      _scores("z", _uniform(0.97, 0.99), step=1),
                      _scores("z", _uniform(0.0, 0.1), step=2)])
    rl = pd.concat([_scores("gradient", _uniform(0.3, 0.5)),
                    _scores("z", _uniform(0.95, 0.99, seed=1))])
    m = mechanisms({"sanity": both, "random_logit": rl})
    text = m.loc[("m", "z"), "mechanism"]
    assert "ignores later layers (cascade SSIM, last layer random" in text
    assert "class-insensitive (random-logit SSIM" in text


def test_without_the_gradient_there_is_no_verdict_and_nan_is_not_judged():
    rl = _scores("flat", _uniform(0.95, 0.99))
    assert mechanisms({"random_logit": rl}).loc[("m", "flat"), "mechanism"] == NO_REFERENCE
    row = pd.Series({"distance": np.nan, "distance_low": np.nan, "distance_high": np.nan})
    ref = pd.Series({"distance": 0.5, "distance_low": 0.4, "distance_high": 0.6})
    assert not flagged(row.fillna(1.0), ref, 2.0)


def test_csc_evidence_uses_the_interval_over_images_at_the_first_conv():
    rows = []
    for method, med, lo, hi in (("gradient", 0.70, 0.60, 0.80), ("zplus", 0.999, 0.998, 0.9995),
                                ("eps", 0.95, 0.90, 0.97)):
        for depth, kind in ((0, "input"), (1, "conv"), (2, "conv")):
            rows.append({"model": "m", "method": method, "start": "output", "layer": f"l{depth}",
                         "kind": kind, "depth": depth, "median": med,
                         "median_images": med if depth == 1 else 0.0,
                         "median_low": lo if depth == 1 else 0.0,
                         "median_high": hi if depth == 1 else 0.0})
    m = mechanisms({"csc": pd.DataFrame(rows)})
    # zplus: 1 - 0.999 = 0.001 <= 0.3 / 10 and intervals apart; eps: 0.05 > 0.03
    assert m.loc[("m", "zplus"), "mechanism"].startswith("rank-1 convergence (CSC at the first")
    assert m.loc[("m", "eps"), "mechanism"] == PASSES


def test_a_table_of_an_older_run_without_intervals_gives_no_verdict():
    rows = [{"model": "m", "method": meth, "start": "output", "layer": "l1", "kind": "conv",
             "depth": 1, "median": v} for meth, v in (("gradient", 0.7), ("zplus", 0.9999))]
    m = mechanisms({"csc": pd.DataFrame(rows)})
    assert m.loc[("m", "zplus"), "mechanism"] == NO_REFERENCE


@pytest.mark.parametrize("text,bad", [("passes", False), ("-", False),
                                      ("reference (the model's gradient)", False),
                                      (NO_REFERENCE, False),
                                      ("rank-1 convergence (CSC 0.99 vs gradient 0.5)", True)])
def test_fails_reads_the_text(text, bad):
    assert fails(text) is bad
