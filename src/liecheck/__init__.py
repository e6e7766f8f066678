"""liecheck: modified-backpropagation attributions and tests of their faithfulness.

Implements, and goes beyond, Sixt, Granz & Landgraf (ICML 2020), "When Explanations
Lie: Why Many Modified BP Attributions Fail".

Importing the package registers every method: the core ones in ``methods`` and the
catalogues ``deeplift``, ``patterns``, ``contrastive`` and ``baselines``.
"""

from . import baselines, contrastive, deeplift, patterns, theory
from .attribution import Attribution, Explainer, attribute
from .graph import Graph, UnsupportedOperation, register_op, trace
from .heatmap import heatmap
from .methods import DEFAULTS, Method, get_method, method_names, methods, register_method
from .metrics import csc, random_logit, sanity
from .walk import NonFiniteRelevance, propagate

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS", "Attribution", "Explainer", "Graph", "Method", "NonFiniteRelevance",
    "UnsupportedOperation", "attribute", "baselines", "contrastive", "csc", "deeplift",
    "get_method", "heatmap", "method_names", "methods", "patterns", "propagate", "random_logit",
    "register_method", "register_op", "sanity", "theory", "trace",
]
