"""Composites: which rule each node of the traced graph gets, keyed by op class.

A :class:`Composite` is a stack of maps from op classes (:mod:`liecheck.engine.ops`) to
*rule factories* ``factory(node, graph, params) -> Rule``. A node's rule is found
along its op class's MRO: the first class (most specific first) that any map of the
stack names, the method's own map before the family's. So a map entry for
:class:`~liecheck.engine.ops.Pointwise` covers every pointwise nonlinearity that has no
entry of its own, and an entry for :class:`~liecheck.engine.ops.LinearOp` every linear
layer. An op no map names is refused with :class:`UnsupportedOperation` (the method's
name is added by :meth:`liecheck.methods.Method.rules`): never a silent fall-back.

The family maps (:data:`GRADIENT_RULES`, :data:`LRP_RULES`, :data:`DEEPLIFT_RULES`) are
shared by reference: :func:`add_rule` gives a new op class its rule in a family, and
every method of that family sees it. The choice per op and family is documented in
``docs/rules.md``. :data:`DEFAULTS` holds the hyperparameters of the paper's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..engine import ops
from ..engine.fxutil import UnsupportedOperation
from ..engine.graph import Graph
from ..engine.node import Node
from ..engine.ops import attention as oa
from ..rules import attention as ra
from ..rules import base as rb
from ..rules import deeplift as rd
from ..rules import gradient as rg
from ..rules import lrp as rl

# one place for the hyperparameters of the paper's methods
DEFAULTS: dict[str, Any] = {
    "epsilon": 1e-6,          # lrp_epsilon's stabiliser (Zennit's default)
    "cmp_epsilon": 1e-10,     # LRP-CMP: the epsilon of its dense layers
    "rectgrad_q": 98.0,       # RectGrad percentile (Kim et al. 2019, paper section 2.2)
    "add_eps": 0.0,           # residual-add z-rule stabiliser
}

RuleFactory = Callable[[Node, Graph, dict], rb.Rule]


def fixed(rule: Callable[[], rb.Rule]) -> RuleFactory:
    """A factory that gives every node ``rule()`` (a rule class or a no-argument callable)."""
    return lambda node, graph, p: rule()


def refuse(why: str) -> RuleFactory:
    """A factory that refuses the node: the method has no sound rule for its op."""
    def factory(node: Node, graph: Graph, p: dict) -> rb.Rule:
        raise UnsupportedOperation(f"node '{node.name}' ({node.op.describe()}): {why}")
    return factory


class Composite:
    """A stack of maps op class -> rule factory (see the module docstring).

    ``Composite(own, *family)``: ``own`` (the method's entries) is consulted first.
    Calling it on a graph gives ``{node name: Rule}`` for every node with inputs.
    """

    def __init__(self, *maps: Mapping[type, RuleFactory]):
        self.maps = list(maps)

    def factory(self, op_class: type) -> RuleFactory | None:
        for cls in op_class.__mro__:
            for m in self.maps:
                if cls in m:
                    return m[cls]
        return None

    def __call__(self, graph: Graph, params: dict) -> dict[str, rb.Rule]:
        rules: dict[str, rb.Rule] = {}
        for node in graph.nodes:
            if not node.inputs:  # the input, constants
                continue
            f = self.factory(type(node.op))
            if f is None:
                raise UnsupportedOperation(
                    f"node '{node.name}' ({node.op.describe()}) has no rule in this method's "
                    "composite; give its op class one with liecheck.methods.composites."
                    "add_rule (docs/custom_ops.md) or choose another method.")
            rules[node.name] = f(node, graph, params)
        return rules

    def over(self, own: Mapping[type, RuleFactory]) -> Composite:
        """A composite with ``own`` consulted before this one's maps."""
        return Composite(own, *self.maps)


def _vjp(node: Node, graph: Graph, p: dict) -> rb.Rule:
    if not node.op.computes:
        raise UnsupportedOperation(f"node '{node.name}' ({node.op.describe()}): its op class "
                                   "has no forward() to differentiate and no gradient rule")
    return rg.GradientVJP()


_STRUCTURE: dict[type, RuleFactory] = {
    ops.Reshape: fixed(rb.Reshape),
    ops.Identity: fixed(rb.Pass),
    ops.Rearrange: fixed(rb.Transposed),
    ops.Cat: fixed(rb.CatSplit),
    ops.MaxPool: fixed(rg.MaxPoolSwitch),
    ops.AMax: fixed(rg.GradientVJP),          # winner-take-all: the gradient of max
    ops.Stack: fixed(rb.StackSplit),          # each input its slice
    ops.Mask: fixed(rb.Absorb),               # a comparison: zero derivative
    ops.Where: fixed(rb.WhereSelect),         # selection
}

GRADIENT_RULES: dict[type, RuleFactory] = {
    **_STRUCTURE,
    ops.LinearOp: fixed(rg.GradientLinear),
    ops.ReLU: fixed(rg.GradientReLU),
    ops.Pointwise: fixed(rg.GradientPointwise),
    ops.Add: fixed(rb.AddPass),
    ops.Product: fixed(rg.ProductGradient),
    ops.Op: _vjp,                             # any other op that computes: its exact VJP
}

_WINDOW_Z_ONLY = ("Swin's window attention is one node whose qkv and output projections "
                  "get the z-rule; only the methods with the z-rule on linear layers "
                  "(lrp_z = AttnLRP, cp_lrp) explain it")

LRP_RULES: dict[type, RuleFactory] = {
    **_STRUCTURE,
    ops.PoolingOp: fixed(lambda: rl.Epsilon(0.0)),
    ops.Pointwise: fixed(rb.Pass),            # identity rule on pointwise nonlinearities
    ops.Add: lambda node, graph, p: rb.AddSplit(p.get("add_eps", 0.0)),
    ops.Product: fixed(rl.ProductUniform),    # AttnLRP's uniform rule
    ops.Norm: fixed(rl.NormIdentity),         # identity rule on the division
    oa.Softmax: fixed(ra.SoftmaxTaylor),      # AttnLRP: Taylor at the input
    oa.Matmul: fixed(ra.MatmulUniform),       # AttnLRP: z-rule, uniform split
    oa.SDPA: fixed(lambda: ra.SDPAGradientForm("attnlrp")),
    oa.LibraryFunction: refuse(_WINDOW_Z_ONLY),
}

ATTNLRP_WINDOW: dict[type, RuleFactory] = {
    oa.LibraryFunction: fixed(lambda: ra.AttentionGradientForm("attnlrp"))}


def attention_weight_operand(node: Node, graph: Graph) -> int | None:
    """Which operand (0 or 1) of a product is an attention weight: a softmax output,
    through identities (dropout) only; None if neither."""
    for k, name in enumerate(node.inputs):
        src = graph.by_name[name]
        while isinstance(src.op, ops.Identity) and src.inputs:
            src = graph.by_name[src.inputs[0]]
        if isinstance(src.op, oa.Softmax):
            return k
    return None


def _matmul_cp(node: Node, graph: Graph, p: dict) -> rb.Rule:
    k = attention_weight_operand(node, graph)
    return ra.MatmulUniform() if k is None else ra.MatmulConstant(k)


CP_LRP: dict[type, RuleFactory] = {
    oa.Softmax: fixed(rb.Absorb),             # attention weights held constant
    oa.Matmul: _matmul_cp,
    oa.SDPA: fixed(lambda: ra.SDPAGradientForm("cp")),
    oa.LibraryFunction: fixed(lambda: ra.AttentionGradientForm("cp")),
}
"""CP-LRP (Ali et al. 2022): the entries that hold the attention weights constant."""

DEEPLIFT_RULES: dict[type, RuleFactory] = {
    **_STRUCTURE,
    ops.MaxPool: fixed(rd.DeepLiftMaxPool),
    ops.AMax: refuse("DeepLIFT has no rule for a max reduction (its gradient mode is "
                     "implemented for max pooling only)"),
    ops.Add: fixed(rd.DeepLiftAdd),
    ops.Product: fixed(rd.DeepLiftProduct),
    ops.Norm: refuse("DeepLIFT has no rule for a normalisation by a data-dependent "
                     "standard deviation (no rule keeps summation-to-delta)"),
    ops.Where: refuse("DeepLIFT has no rule for torch.where: its mask differs between the "
                      "input and the reference, so a selection breaks summation-to-delta"),
    oa.Softmax: refuse("DeepLIFT Rescale is defined for pointwise nonlinearities; a "
                       "softmax couples its inputs and has no Rescale rule"),
    oa.Matmul: refuse("DeepLIFT has no rule implemented for the product of two "
                      "activations as a matrix product"),
    oa.LibraryFunction: refuse("DeepLIFT has no rule for an attention function"),
}

FAMILIES = {"gradient": GRADIENT_RULES, "lrp": LRP_RULES, "deeplift": DEEPLIFT_RULES}


def add_rule(op_class: type, **families: RuleFactory) -> None:
    """Give ``op_class`` a rule in method families: ``add_rule(MyOp, gradient=...,
    lrp=..., deeplift=...)``; every method of the family uses it (unless the method
    names the class, or a base of it, itself)."""
    for family, factory in families.items():
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; one of {sorted(FAMILIES)}")
        FAMILIES[family][op_class] = factory


def gradient_composite(own: Mapping[type, RuleFactory] | None = None) -> Composite:
    """The gradient family: the exact derivative of every op, ``own`` entries first."""
    return Composite(own or {}, GRADIENT_RULES)


def lrp_composite(linear: RuleFactory, own: Mapping[type, RuleFactory] | None = None
                  ) -> Composite:
    """The LRP family with ``linear(node, graph, params)`` choosing the rule of every
    conv / dense / BatchNorm / constant-scale layer (pooling gets the z-rule)."""
    return Composite({ops.LinearOp: linear, **(own or {})}, LRP_RULES)


def deeplift_composite(own: Mapping[type, RuleFactory]) -> Composite:
    return Composite(own, DEEPLIFT_RULES)


def every_linear(rule_factory: Callable[[dict], rb.Rule]) -> RuleFactory:
    """A linear-layer chooser that gives every layer ``rule_factory(params)``."""
    return lambda node, graph, p: rule_factory(p)


RELU_ONLY = refuse("this method modifies ReLUs and has no definition for other "
                   "nonlinearities (see docs/rules.md)")

GRADIENT_COMPOSITE = gradient_composite()
