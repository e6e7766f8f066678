"""The method protocol: :class:`Method` says how one attribution runs.

In this order (every API and metric runs a method through it, with
:class:`~liecheck.methods.run.MethodRun`):

1. :meth:`Method.forward_batch`: the batch the forward pass runs (DeepLIFT: ``[x; x0]``);
2. :meth:`Method.walk_context`: what the rules see of that forward pass;
3. :meth:`Method.start_relevance`: the relevance at the logits (``start``);
4. the walk: :meth:`Method.rules` (the *composite*: a rule per node of the traced graph);
5. :meth:`Method.finish`: the walk's result at the recorded nodes (DeepLIFT: multipliers
   -> contributions; :meth:`Method.finish_reads` names the activations it reads);
6. :meth:`Method.postprocess`: the map at the input (``post="x_input"``: times the input).

A method whose map is not one walk (SmoothGrad, Integrated Gradients, Grad-CAM,
contrastive LRP) overrides :meth:`Method.attribute` (or passes ``attribute_fn``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..engine.fxutil import UnsupportedOperation
from ..engine.graph import Graph
from ..engine.walk import Walk, relevance_shapes
from ..rules import base as rb


@dataclass
class Method:
    """A named attribution method.

    Attributes
    ----------
    name : registry name, e.g. ``"lrp_a1b0"``.
    paper_name : the name used in Sixt et al. (2020).
    description : one line.
    composite : ``composite(graph, params) -> {node name: Rule}``.
    start : ``"logit"`` (relevance = one-hot x logit value, LRP-type methods),
        ``"onehot"`` (gradient-type methods) or a callable
        ``start(logits, target, params) -> relevance at the logits``.
    post : ``None`` or ``"x_input"`` (multiply the input relevance by the input).
    reduce : heatmap channel reduction: ``"sum"`` (signed) or ``"maxabs"``.
    params : the method's parameters with their defaults. Their names are the
        keywords a call accepts (``attribute(..., epsilon=1e-3)``); any other keyword
        is refused (:meth:`check_params`).
    citation : reference.
    attribute_fn : for methods that are not one walk (SmoothGrad, Integrated
        Gradients, ...): ``attribute_fn(explainer, x, target, params) -> (N, C, H, W)``.
    walkable : False if CSC does not apply (SmoothGrad).
    """

    name: str
    paper_name: str
    description: str
    composite: Callable | None = None
    start: Any = "logit"
    post: str | None = None
    reduce: str = "sum"
    params: dict = field(default_factory=dict)
    citation: str = ""
    attribute_fn: Callable | None = None
    walkable: bool = True
    linear_in_relevance: bool = True
    family: str = "modified_bp"

    def rules(self, graph: Graph, **params) -> dict[str, rb.Rule]:
        """The composite on ``graph``: node name -> rule (step 4 of the protocol)."""
        p = {**self.params, **params}
        try:
            return self.composite(graph, p)
        except UnsupportedOperation as exc:
            raise UnsupportedOperation(f"method '{self.name}': {exc}") from None

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Refuse keywords that are not parameters of this method (a typo would
        otherwise be ignored silently)."""
        unknown = [k for k in params if k not in self.params]
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise TypeError(f"method '{self.name}' has no parameter "
                            f"{', '.join(repr(k) for k in unknown)}; its parameters are: {valid}")

    def with_params(self, **params) -> Method:
        """A copy with other defaults (only for the method's own parameters)."""
        self.check_params(params)
        return replace(self, params={**self.params, **params})

    # ------------------------------------------------------- the method protocol
    @property
    def map_is_one_walk(self) -> bool:
        """Whether :meth:`attribute` is the single walk from the logits (not overridden)."""
        return self.attribute_fn is None and type(self).attribute is Method.attribute

    def forward_batch(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """The batch the forward pass runs for the explained batch ``x`` (default ``x``)."""
        return x

    def walk_context(self, graph: Graph, x: torch.Tensor, xf: torch.Tensor, acts: dict,
                     shapes: dict, fan: int = 1, memo: dict | None = None) -> Walk:
        """What the rules see of the forward pass of ``xf = forward_batch(x)``: its
        activations ``acts``, the relevance shapes (batch ``len(x) * fan``, from the
        forward shapes ``shapes``) and the logits of ``x``."""
        return Walk(graph, xf, acts, relevance_shapes(shapes, x.shape[0] * fan),
                    acts[graph.output], fan, memo)

    def start_relevance(self, logits: torch.Tensor, target: torch.Tensor,
                        params: dict) -> torch.Tensor:
        """Relevance at the logits ``(N, classes)`` for the classes ``target`` ``(N,)``:
        one-hot (``start="onehot"``), one-hot x logit (``"logit"``) or ``start(...)``."""
        onehot = torch.zeros_like(logits)
        onehot.scatter_(1, target.view(-1, 1), 1.0)
        if callable(self.start):
            return self.start(logits, target, params)
        if self.start == "onehot":
            return onehot
        if self.start == "logit":
            return onehot * logits
        raise ValueError(f"unknown start '{self.start}'")

    def finish_reads(self, graph: Graph, record: Iterable[str]) -> set[str]:
        """Activations :meth:`finish` reads for the recorded nodes (default none)."""
        return set()

    def finish(self, ctx: Walk, recorded: dict, params: dict) -> dict:
        """The walk's result at the recorded nodes (default: unchanged)."""
        return recorded

    def postprocess(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The map from the relevance ``r`` at the input (batch ``len(x) * fan``)."""
        if self.post is None:
            return r
        if self.post == "x_input":
            return rb.times(x, r)
        raise ValueError(f"unknown post '{self.post}'")

    def attribute(self, explainer, x: torch.Tensor, target, params: dict) -> torch.Tensor:
        """The map ``(N, C, H, W)`` of ``x`` on ``explainer`` (default: one walk from the
        logits, read at the input; ``attribute_fn`` when given)."""
        if self.attribute_fn is not None:
            return self.attribute_fn(explainer, x, target, params)
        graph = explainer.graph
        given = explainer.given_targets(x, target)
        with torch.no_grad():
            return explainer.run(x, self, params, [[graph.input]]).attribute(given)
