"""Faithfulness tests of Sixt et al. (2020), one module each: :mod:`.csc` (cosine
similarity convergence), :mod:`.sanity` (cascading / independent parameter
randomisation), :mod:`.random_logit`; map similarity (:mod:`.similarity`: SSIM,
Spearman, L1) and bootstrap statistics (:mod:`.stats`).

The tests themselves are :func:`liecheck.csc`, :func:`liecheck.sanity` and
:func:`liecheck.random_logit`; this package does not re-export them under the names of
their modules.
"""

from .csc import baseline
from .sanity import cascade_maps, parametrised_layers
from .similarity import normalize, prepare, similarity, ssim, ssim_score
from .stats import bootstrap_median, summarize

__all__ = [
           "baseline",
           "bootstrap_median",
           "cascade_maps",
           "normalize",
           "parametrised_layers",
           "prepare",
           "similarity",
           "ssim",
           "ssim_score",
           "summarize",
]

