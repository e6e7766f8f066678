"""liecheck: modified-backpropagation attributions and tests of their faithfulness.

Implements, and goes beyond, Sixt, Granz & Landgraf (ICML 2020), "When Explanations
Lie: Why Many Modified BP Attributions Fail".

The verb is :func:`attribute` (or :class:`Attribution`, Captum-shaped);
:class:`Explainer` traces a model once and shares the trace across maps and tests
(:func:`csc`, :func:`sanity`, :func:`random_logit`). Namespaces: :mod:`liecheck.methods`
(the methods, their rules and the registry), :mod:`liecheck.ops` (the op classes, for
:func:`register_op`), :mod:`liecheck.patterns` (fitting PatternNet / PatternAttribution),
:mod:`liecheck.metrics`, :mod:`liecheck.theory`.

Importing the package registers every method (:mod:`liecheck.methods`). The layers,
each importing only those before it: :mod:`liecheck.engine` (trace, walk), ``rules``,
``methods``, the APIs (``attribution``), ``metrics`` and ``theory``, ``reproduce``,
``report``, ``cli``.
"""

from . import methods, metrics, theory  # noqa: F401  (the namespaces)
from .allocator import keep_freed_memory
from .attribution import Attribution, Explainer, attribute
from .engine import ops  # noqa: F401  (liecheck.ops.ReLU for register_op)
from .engine.graph import Graph, UnsupportedOperation, register_op, trace
from .engine.walk import NonFiniteRelevance
from .heatmap import heatmap
from .methods import (
    DEFAULTS,
    Method,
    get_method,
    method_names,
    method_table,
    patterns,  # noqa: F401  (liecheck.patterns.fit: the documented path)
    register_method,
)
from .metrics.csc import csc
from .metrics.random_logit import random_logit
from .metrics.sanity import sanity

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS", "Attribution", "Explainer", "Graph", "Method", "NonFiniteRelevance",
    "UnsupportedOperation", "attribute", "csc", "get_method", "heatmap", "keep_freed_memory",
    "method_names",
    "method_table", "random_logit", "register_method", "register_op", "sanity", "trace",
]
