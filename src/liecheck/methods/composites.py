"""Composites: which rule each node of the traced graph gets, built from a rule for the
linear layers and one for the ReLUs; the shared structural rules; :data:`DEFAULTS`, the
hyperparameters of the paper's methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine import graph as g
from ..rules import base as rb
from ..rules import gradient as rg
from ..rules import lrp as rl

# one place for the hyperparameters of the paper's methods
DEFAULTS: dict[str, Any] = {
    "epsilon": 1e-6,          # lrp_epsilon's stabiliser (Zennit's default)
    "cmp_epsilon": 1e-10,     # LRP-CMP: the epsilon of its dense layers
    "rectgrad_q": 98.0,       # RectGrad percentile (Kim et al. 2019, paper section 2.2)
    "add_eps": 0.0,           # residual-add z-rule stabiliser
}


def structural(node: g.Node, lrp: bool, params: dict) -> rb.Rule | None:
    """Rules for the non-linear-layer nodes shared by whole families."""
    if node.kind == g.RESHAPE:
        return rb.Reshape()
    if node.kind == g.IDENTITY:
        return rb.Pass()
    if node.kind == g.CAT:
        return rb.CatSplit()
    if node.kind == g.MAXPOOL:
        return rg.MaxPoolSwitch()
    if node.kind == g.ADD:
        return rb.AddSplit(params.get("add_eps", 0.0)) if lrp else rb.AddPass()
    return None


def composite(linear: Callable[[g.Node, g.Graph, dict], rb.Rule],
              relu: Callable[[dict], rb.Rule] | None = None, lrp: bool = True,
              pool: Callable[[dict], rb.Rule] | None = None,
              kinds: dict[str, Callable[[dict], rb.Rule]] | None = None) -> Callable:
    """Build a composite from a linear-layer rule chooser and a ReLU rule.

    ``linear(node, graph, params)`` picks the rule for conv / dense / BatchNorm
    nodes; pooling nodes get ``pool(params)`` (default: z-rule for LRP methods,
    the transpose for gradient methods); ReLUs get ``relu(params)`` (default:
    pass-through for LRP, the derivative mask for gradient methods). ``kinds``
    maps a node kind (e.g. ``"add"``, ``"maxpool"``) to a rule factory that replaces
    the shared structural rule for that kind.
    """
    kinds = kinds or {}

    def build(graph: g.Graph, params: dict) -> dict[str, rb.Rule]:
        rules: dict[str, rb.Rule] = {}
        for node in graph.nodes:
            if node.kind == g.INPUT:
                continue
            if node.kind in kinds:
                rules[node.name] = kinds[node.kind](params)
                continue
            rule = structural(node, lrp, params)
            if rule is None and node.kind == g.RELU:
                rule = relu(params) if relu else (rb.Pass() if lrp else rg.GradientReLU())
            if rule is None and node.kind == g.LINEAR:
                if node.layer == "pool":
                    rule = pool(params) if pool else (rl.Epsilon(0.0) if lrp
                                                      else rg.GradientLinear())
                else:
                    rule = linear(node, graph, params)
            if rule is None:
                raise TypeError(f"no rule for node '{node.name}' of kind {node.kind}")
            rules[node.name] = rule
        return rules

    return build


def every_linear(rule_factory):
    """A linear-layer chooser that gives every layer ``rule_factory(params)``."""
    return lambda node, graph, p: rule_factory(p)


GRADIENT_COMPOSITE = composite(every_linear(lambda p: rg.GradientLinear()), lrp=False)
