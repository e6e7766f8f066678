"""Faithfulness tests of Sixt et al. (2020): CSC, parameter randomisation (sanity
check), random logit; map similarity (SSIM, Spearman, L1) and bootstrap statistics."""

from .csc import baseline, csc
from .random_logit import random_logit
from .sanity import cascade_maps, parametrised_layers, sanity
from .similarity import normalize, prepare, similarity, ssim, ssim_score
from .stats import bootstrap_median, summarize

__all__ = [
           "baseline",
           "bootstrap_median",
           "cascade_maps",
           "csc",
           "normalize",
           "parametrised_layers",
           "prepare",
           "random_logit",
           "sanity",
           "similarity",
           "ssim",
           "ssim_score",
           "summarize",
]
