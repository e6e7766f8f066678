"""Attribution methods: the protocol (:mod:`.protocol`), the registry (:mod:`.registry`),
composites (:mod:`.composites`) and the catalogues, each registered on import:
:mod:`.catalogue` (gradient and LRP families), :mod:`.deeplift`, :mod:`.baselines`
(SmoothGrad, Integrated Gradients, Grad-CAM), :mod:`.contrastive` and :mod:`.patterns`.
Peer methods (Zennit, Captum, any function): :mod:`.peers`.

Users add their own with :func:`register_method`; a :class:`Method` object can be
passed wherever a method name is accepted.
"""

# the catalogues register in this order (the order of `liecheck methods`)
from . import catalogue  # isort: skip
from . import deeplift  # isort: skip
from . import baselines, contrastive, patterns  # isort: skip
from .composites import (
    DEFAULTS,
    GRADIENT_COMPOSITE,
    Composite,
    add_rule,
    every_linear,
    gradient_composite,
    lrp_composite,
)
from .peers import from_captum, from_function, from_zennit
from .protocol import Method
from .registry import get_method, method_names, method_table, register_method

__all__ = [
    "DEFAULTS", "GRADIENT_COMPOSITE", "Composite", "Method", "add_rule", "baselines",
    "catalogue", "contrastive", "deeplift", "every_linear", "from_captum", "from_function",
    "from_zennit", "get_method", "gradient_composite", "lrp_composite", "method_names",
    "method_table", "patterns", "register_method",
]
