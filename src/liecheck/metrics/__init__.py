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


def __getattr__(name: str):
    """``liecheck.metrics.paper_starts`` (its home before 2026-11-27): the paper's start
    layers are an experiment setting and live in :mod:`liecheck.reproduce.paper`;
    imported on first use, so ``metrics`` does not import ``reproduce`` (which imports
    ``metrics``)."""
    if name == "paper_starts":
        from ..reproduce.paper import paper_starts
        return paper_starts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
