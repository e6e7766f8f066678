"""Summary statistics: medians with seeded bootstrap confidence intervals.

The paper reports the median over 200 images per layer with 99% bootstrap
intervals (Efron 1979; Sixt et al. 2020, Figure 4b). :func:`bootstrap_median`
draws ``n_resamples`` resamples with replacement (vectorised numpy, seeded) and
returns the percentile interval of the resampled medians.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def bootstrap_mean(values, confidence: float = 0.99, n_resamples: int = 10_000,
                   seed: int = 0, chunk: int = 1000) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval (as
    :func:`bootstrap_median`, with the mean as the statistic; for shares and rates)."""
    return bootstrap_median(values, confidence, n_resamples, seed, chunk, statistic=np.mean)


def bootstrap_median(values, confidence: float = 0.99, n_resamples: int = 10_000,
                     seed: int = 0, chunk: int = 1000, statistic=np.median
                     ) -> tuple[float, float, float]:
    """Median of ``values`` and its percentile bootstrap interval.

    Parameters
    ----------
    values : 1-D array-like; NaNs are dropped.
    confidence : coverage of the interval (0.99 = the paper's 99%).
    n_resamples : number of bootstrap resamples (10 000 in the paper's protocol).
    seed : seed of the resampling (``numpy.random.default_rng``).
    statistic : ``f(array, axis=...)``; ``np.median`` (default) or ``np.mean``.

    Returns
    -------
    ``(median, low, high)``; all NaN for an empty input, the value itself for one value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    med = float(statistic(v))
    if v.size == 1:
        return (med, med, med)
    rng = np.random.default_rng(seed)
    meds = np.empty(n_resamples)
    for s in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - s)
        idx = rng.integers(0, v.size, size=(k, v.size))
        meds[s:s + k] = statistic(v[idx], axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(meds, [alpha, 1 - alpha])
    return (med, float(low), float(high))


def summarize(df: pd.DataFrame, by: Sequence[str], value: str = "score",
              confidence: float = 0.99, n_resamples: int = 10_000, seed: int = 0
              ) -> pd.DataFrame:
    """Median of ``value`` per group of ``by`` with a bootstrap interval.

    Returns one row per group: the ``by`` columns, ``n``, ``median``, ``ci_low``,
    ``ci_high`` (groups keep their order of first appearance).
    """
    rows = []
    for key, grp in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        med, lo, hi = bootstrap_median(grp[value].to_numpy(), confidence, n_resamples, seed)
        rows.append({**dict(zip(by, key)), "n": int(grp[value].notna().sum()),
                     "median": med, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)
