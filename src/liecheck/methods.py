"""The method registry: every named attribution method and its hyperparameters.

A :class:`Method` says how one attribution runs, in this order (the *method
protocol*; every API and metric runs a method through it, see :mod:`liecheck.run`):

1. :meth:`Method.forward_batch`: the batch the forward pass runs (DeepLIFT: ``[x; x0]``);
2. :meth:`Method.walk_context`: what the rules see of that forward pass;
3. :meth:`Method.start_relevance`: the relevance at the logits (``start``);
4. the walk: :meth:`Method.rules` (the *composite*: a rule per node of the traced graph);
5. :meth:`Method.finish`: the walk's result at the recorded nodes (DeepLIFT: multipliers
   -> contributions; :meth:`Method.finish_reads` names the activations it reads);
6. :meth:`Method.postprocess`: the map at the input (``post="x_input"``: times the input).

A method whose map is not one walk (SmoothGrad, Integrated Gradients, Grad-CAM,
contrastive LRP) overrides :meth:`Method.attribute` (or passes ``attribute_fn``).
All hyperparameters of the paper's methods live in :data:`DEFAULTS` and in the
entries of :func:`_builtin` below.

Users add their own with :func:`register_method`; a :class:`Method` object can be
passed wherever a method name is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch

from . import graph as g
from .rules import base as rb
from .rules import gradient as rg
from .rules import lrp as rl
from .run import MethodRun
from .walk import Walk, relevance_shapes

# one place for the hyperparameters of the paper's methods
DEFAULTS: dict[str, Any] = {
    "epsilon": 1e-6,          # lrp_epsilon's stabiliser (Zennit's default)
    "cmp_epsilon": 1e-10,     # LRP-CMP: epsilon on dense layers (PROTOCOL.md)
    "rectgrad_q": 98.0,       # RectGrad percentile (Kim et al. 2019, paper section 2.2)
    "add_eps": 0.0,           # residual-add z-rule stabiliser
}


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

    def rules(self, graph: g.Graph, **params) -> dict[str, rb.Rule]:
        """The composite on ``graph``: node name -> rule (step 4 of the protocol)."""
        p = {**self.params, **params}
        return self.composite(graph, p)

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

    def walk_context(self, graph: g.Graph, x: torch.Tensor, xf: torch.Tensor, acts: dict,
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

    def finish_reads(self, graph: g.Graph, record: Iterable[str]) -> set[str]:
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
            run = MethodRun.forward(graph, self, params, explainer.rules(self, params), x,
                                    [[graph.input]])
            return run.attribute(given)


# ------------------------------------------------------------------ composites
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


def _all(rule_factory):
    return lambda node, graph, p: rule_factory(p)


def _cmp(alpha, beta):
    def pick(node, graph, p):
        if node.layer == "dense":
            return rl.Epsilon(p["cmp_epsilon"])
        return rl.AlphaBeta(alpha, beta)
    return pick


def _dtd(node, graph, p):
    if node is graph.first("conv") or (graph.first("conv") is None
                                       and node is graph.linear_nodes()[0]):
        return rl.ZBox(p.get("low", "input"), p.get("high", "input"))
    if node is graph.last("dense"):
        return rl.WSquare()
    return rl.ZPlus()


GRADIENT_COMPOSITE = composite(_all(lambda p: rg.GradientLinear()), lrp=False)


def _builtin() -> list[Method]:
    d = DEFAULTS
    grad = dict(family="gradient", start="onehot", reduce="maxabs")
    add = {"add_eps": d["add_eps"]}  # residual additions of the LRP composites
    return [
        Method("gradient", "Gradient", "plain gradient of the explained logit (Simonyan 2014)",
               GRADIENT_COMPOSITE, citation="Simonyan et al. 2014", **grad),
        Method("gradient_x_input", "Gradient x Input", "gradient times the input",
               GRADIENT_COMPOSITE, start="onehot", post="x_input", family="gradient",
               citation="Shrikumar et al. 2016"),
        Method("lrp_z", "LRP-z", "z-rule with bias everywhere (= gradient x input on ReLU nets)",
               composite(_all(lambda p: rl.Epsilon(0.0))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_epsilon", "LRP-epsilon", "epsilon rule with bias everywhere",
               composite(_all(lambda p: rl.Epsilon(p["epsilon"]))),
               params={"epsilon": d["epsilon"], **add}, citation="Bach et al. 2015"),
        Method("lrp_a1b0", "LRP a1b0", "alpha-beta, alpha=1 beta=0 (z+ with positive bias)",
               composite(_all(lambda p: rl.AlphaBeta(1, 0))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_a2b1", "LRP a2b1", "alpha-beta, alpha=2 beta=1",
               composite(_all(lambda p: rl.AlphaBeta(2, 1))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_a5b4", "LRP a5b4", "alpha-beta, alpha=5 beta=4",
               composite(_all(lambda p: rl.AlphaBeta(5, 4))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_cmp_a1b0", "LRP CMP a1b0",
               "epsilon (1e-10) on dense layers, alpha-beta a1b0 on conv layers",
               composite(_cmp(1, 0)), params={"cmp_epsilon": d["cmp_epsilon"], **add},
               citation="Kohlbrenner et al. 2019"),
        Method("lrp_cmp_a2b1", "LRP CMP a2b1",
               "epsilon (1e-10) on dense layers, alpha-beta a2b1 on conv layers",
               composite(_cmp(2, 1)), params={"cmp_epsilon": d["cmp_epsilon"], **add},
               citation="Kohlbrenner et al. 2019"),
        Method("dtd", "DTD", "Deep Taylor: z^B on the first conv, z+ after ReLUs, w^2 on the "
               "final dense layer", composite(_dtd),
               params={"low": "input", "high": "input", **add}, citation="Montavon et al. 2017"),
        Method("excitation_bp", "Excitation BP",
               "z+ with positive weights, relevance as probabilities (starts at 1); "
               "signed inputs: x+ W+ + x- W- (stable; as Zennit)",
               composite(lambda node, graph, p: rl.excitation_rule(node)), start="onehot",
               params=dict(add),
               citation="Zhang et al. 2018"),
        Method("deconv", "Deconv", "ReLU on the backward signal, forward mask dropped",
               composite(_all(lambda p: rg.GradientLinear()), relu=lambda p: rg.DeconvReLU(),
                         lrp=False), linear_in_relevance=False,
               citation="Zeiler & Fergus 2014", **grad),
        Method("guided_bp", "Guided BP", "forward ReLU mask and ReLU on the backward signal",
               composite(_all(lambda p: rg.GradientLinear()), relu=lambda p: rg.GuidedReLU(),
                         lrp=False), linear_in_relevance=False,
               citation="Springenberg et al. 2014", **grad),
        Method("rectgrad", "RectGrad",
               "keep the gradient where activation x gradient is above its 98th percentile",
               composite(_all(lambda p: rg.GradientLinear()),
                         relu=lambda p: rg.RectGradReLU(p["rectgrad_q"]), lrp=False),
               params={"rectgrad_q": d["rectgrad_q"]}, linear_in_relevance=False,
               citation="Kim et al. 2019", **grad),
    ]


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method, overwrite: bool = False) -> Method:
    """Add a method to the registry so every API, metric and the CLI accept its name.

    A name that is taken is refused unless ``overwrite=True`` (registering the very
    same object again changes nothing). liecheck's own catalogues register without
    ``overwrite``, so they never replace a method of yours.
    """
    if not isinstance(method, Method):
        raise TypeError("register_method expects a liecheck.Method")
    old = _REGISTRY.get(method.name)
    if old is method:
        return method
    if old is not None and not overwrite:
        raise ValueError(f"a method named '{method.name}' is registered already "
                         f"({old.paper_name}); pass overwrite=True to replace it")
    _REGISTRY[method.name] = method
    return method


for _m in _builtin():
    register_method(_m)


def get_method(method: str | Method) -> Method:
    """Look up a method by name (or return a :class:`Method` unchanged).

    ``"package.module:attr"`` imports a user's method object.
    """
    if isinstance(method, Method):
        return method
    if isinstance(method, str) and ":" in method:
        import importlib
        mod, _, attr = method.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import method '{method}': {exc}") from exc
        if not isinstance(obj, Method):
            raise ValueError(f"'{method}' is a {type(obj).__name__}, not a liecheck.Method")
        return obj
    try:
        return _REGISTRY[method]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(str(method), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown method '{method}'.{hint} Run `liecheck methods` for the "
                         "list.") from None


def methods() -> pd.DataFrame:
    """The registry as a table: name, paper name, family, description, citation."""
    rows = [dict(name=m.name, paper_name=m.paper_name, family=m.family,
                 description=m.description, citation=m.citation) for m in _REGISTRY.values()]
    return pd.DataFrame(rows)


def method_names() -> list[str]:
    return list(_REGISTRY)


# ------------------------------------------------------------- peer adapters
def from_zennit(composite, attributor=None, **kwargs) -> Method:
    """A Zennit composite as a method; see :func:`liecheck.adapters.zennit.from_zennit`."""
    from .adapters.zennit import from_zennit as adapt
    return adapt(composite, attributor, **kwargs)


def from_captum(attr_class, **kwargs) -> Method:
    """A Captum class as a method; see :func:`liecheck.adapters.captum.from_captum`."""
    from .adapters.captum import from_captum as adapt
    return adapt(attr_class, **kwargs)


def from_function(fn, **kwargs) -> Method:
    """``fn(model, inputs, target) -> maps`` as a method; see
    :func:`liecheck.adapters.function.from_function`."""
    from .adapters.function import from_function as adapt
    return adapt(fn, **kwargs)
