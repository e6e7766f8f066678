"""liecheck: modified-backpropagation attributions and tests of their faithfulness.

Implements, and goes beyond, Sixt, Granz & Landgraf (ICML 2020), "When Explanations
Lie: Why Many Modified BP Attributions Fail".
"""

from .attribution import Attribution, Explainer, attribute
from .graph import Graph, UnsupportedOperation, register_op, trace
from .heatmap import heatmap
from .methods import DEFAULTS, Method, get_method, method_names, methods, register_method
from .walk import NonFiniteRelevance, propagate

# --- method catalogues beyond the core (each registers its methods on import) ---
# (one import line per module, e.g. `from . import deeplift as _deeplift  # noqa: F401`)
from . import deeplift as _deeplift  # noqa: F401
from . import patterns as _patterns  # noqa: F401
from . import contrastive as _contrastive  # noqa: F401
from . import baselines as _baselines  # noqa: F401

# --- faithfulness metrics and theory (public functions) ---
from .metrics import csc, random_logit, sanity  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "Attribution", "Explainer", "attribute", "Graph", "UnsupportedOperation", "register_op",
    "trace", "heatmap", "DEFAULTS", "Method", "get_method", "method_names", "methods",
    "register_method", "NonFiniteRelevance", "propagate",
]
