"""Bootstrap medians: coverage of the median, narrowing, seeding, SciPy agreement."""

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from liecheck.metrics.stats import bootstrap_median, summarize


def test_interval_contains_median_and_narrows():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200, 2000):
        v = rng.normal(size=n)
        med, lo, hi = bootstrap_median(v, n_resamples=2000)
        assert med == np.median(v)
        assert lo <= med <= hi
        widths.append(hi - lo)
    # the median's standard error shrinks like 1 / sqrt(n)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]


def test_seeded_and_matches_scipy_percentile_bootstrap():
    v = np.random.default_rng(1).normal(size=200)
    a = bootstrap_median(v, seed=3)
    assert a == bootstrap_median(v, seed=3)
    assert a != bootstrap_median(v, seed=4)
    ref = bootstrap((v,), np.median, confidence_level=0.99, n_resamples=10_000,
                    method="percentile", random_state=0).confidence_interval
    # two independent Monte-Carlo estimates of the same interval
    assert abs(a[1] - ref.low) < 0.05 and abs(a[2] - ref.high) < 0.05


def test_nan_and_degenerate_inputs():
    assert np.isnan(bootstrap_median([np.nan])[0])
    assert bootstrap_median([2.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_median([1.0, np.nan, 1.0]) == (1.0, 1.0, 1.0)


def test_summarize_groups_in_order():
    df = pd.DataFrame({"method": ["b"] * 5 + ["a"] * 5, "score": np.r_[np.arange(5), 10 +
                                                                        np.arange(5)]})
    s = summarize(df, ["method"], n_resamples=500)
    assert list(s["method"]) == ["b", "a"]
    assert list(s["median"]) == [2.0, 12.0] and list(s["n"]) == [5, 5]
    assert (s["ci_low"] <= s["median"]).all() and (s["median"] <= s["ci_high"]).all()
