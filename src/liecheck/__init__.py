"""liecheck: modified-backpropagation attributions and tests of their faithfulness.

Implements, and goes beyond, Sixt, Granz & Landgraf (ICML 2020), "When Explanations
Lie: Why Many Modified BP Attributions Fail".

Importing the package registers every method (:mod:`liecheck.methods`). The layers,
each importing only those before it: :mod:`liecheck.engine` (trace, walk), ``rules``,
``methods``, the APIs (``attribution``), ``metrics`` and ``theory``, ``reproduce``,
``report``, ``cli``.
"""

import sys

from . import theory
from .attribution import Attribution, Explainer, attribute
from .engine import equivalence, graph, ops, rewrite, walk
from .engine.graph import Graph, UnsupportedOperation, register_op, trace
from .engine.walk import NonFiniteRelevance, propagate
from .heatmap import heatmap
from .methods import (
                      DEFAULTS,
                      Method,
                      baselines,
                      contrastive,
                      deeplift,
                      get_method,
                      method_names,
                      methods,
                      patterns,
                      register_method,
)
from .metrics import csc, random_logit, sanity

__version__ = "0.1.0"

# the module paths before the engine/ and methods/ folders (liecheck <= 0.1 of
# 2026-11-26): ``from liecheck.graph import trace`` and the like keep working
_MOVED = {"graph": graph, "walk": walk, "ops": ops, "rewrite": rewrite,
          "equivalence": equivalence, "deeplift": deeplift, "patterns": patterns,
          "contrastive": contrastive, "baselines": baselines}
for _old, _module in _MOVED.items():
    sys.modules.setdefault(f"{__name__}.{_old}", _module)

__all__ = [
    "DEFAULTS", "Attribution", "Explainer", "Graph", "Method", "NonFiniteRelevance",
    "UnsupportedOperation", "attribute", "baselines", "contrastive", "csc", "deeplift",
    "equivalence", "get_method", "graph", "heatmap", "method_names", "methods", "ops",
    "patterns", "propagate", "random_logit", "register_method", "register_op", "rewrite",
    "sanity", "theory", "trace", "walk",
]
