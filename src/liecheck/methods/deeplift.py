"""DeepLIFT (Shrikumar et al. 2017) as walks of the engine: methods and references.

Methods (registered on import):

* ``deeplift_rescale``: Rescale rule at ReLUs, eq. 13 at linear layers;
* ``deeplift_revealcancel``: RevealCancel rule at ReLUs;
* ``deeplift_ablation``: Rescale with the cross terms of eq. 13 dropped (paper
  section 2.4, *DeepLIFT Ablation*; see :class:`~liecheck.rules.deeplift.DeepLiftLinear`).

Max pooling propagates the gradient (as the ``deeplift`` package used by the paper
did); residual additions and average pooling are linear layers.  The attribution
is the contribution ``m * (x - x0)``; its sum is ``f_k(x) - f_k(x0)`` on networks
without max pooling.

Reference (``reference=`` parameter): ``None`` / ``"zeros"`` (default, zeros in
the model's input space, the paper's choice), ``"blur"`` (a Gaussian blur of the
input with ``blur_sigma`` pixels, default 10, reflect padding; deterministic), a
number, or a tensor broadcastable to the input.

Walks with injected relevance (CSC).  ``Explainer.walk(x, method, inject=...,
record=...)`` treats the injected tensors as multipliers (sent as both ``m+`` and
``m-``, like the reference code's CSC) and, by default, returns *contributions*
``m * dh`` at the recorded nodes (``record_as="multipliers"`` returns the
multipliers).  :func:`contributions` is the same as a function.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..engine import graph as g
from ..engine import ops
from ..engine.walk import Walk, relevance_shapes
from ..rules import base as rb
from ..rules import deeplift as rd
from .composites import deeplift_composite, fixed
from .protocol import Method
from .registry import register_method

DEEPLIFT_DEFAULTS = {"reference": None, "blur_sigma": 10.0, "record_as": "contributions",
                     "negative_weight": "pos"}


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` images, ``sigma`` in pixels.

    Kernel radius ``ceil(3 sigma)`` (clipped to the image size), reflect padding.
    """
    if sigma <= 0:
        return x.clone()
    if x.dim() != 4:
        raise ValueError(f"reference='blur' needs (N, C, H, W) images, got shape {tuple(x.shape)}")
    out = x
    for dim in (2, 3):
        size = x.shape[dim]
        radius = min(int(torch.tensor(3.0 * sigma).ceil()), size - 1)
        if radius <= 0:
            continue
        t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        c = x.shape[1]
        if dim == 2:
            w = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
            out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), w, groups=c)
        else:
            w = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
            out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="reflect"), w, groups=c)
    return out


def make_reference(x: torch.Tensor, reference=None, blur_sigma: float = 10.0) -> torch.Tensor:
    """The reference input ``x0`` (same shape as ``x``); see the module docstring."""
    if reference is None or (isinstance(reference, str) and reference == "zeros"):
        return torch.zeros_like(x)
    if isinstance(reference, str):
        if reference == "blur":
            return gaussian_blur(x, blur_sigma)
        raise ValueError(f"reference must be None, 'zeros', 'blur', a number or a tensor, "
                         f"not {reference!r}")
    ref = torch.as_tensor(reference, dtype=x.dtype, device=x.device)
    try:
        return ref.expand_as(x).clone()
    except RuntimeError:
        raise ValueError(f"reference of shape {tuple(ref.shape)} does not broadcast to the "
                         f"input's shape {tuple(x.shape)}") from None


@dataclass
class DeepLiftMethod(Method):
    """A :class:`~liecheck.methods.Method` whose forward batch is ``[x; x0]``: the rules
    see both streams, the walk carries ``N``-sample multipliers (or ``2N``-sample pairs
    between a RevealCancel ReLU and its input), and :meth:`finish` turns multipliers
    into contributions."""

    def forward_batch(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        ref = make_reference(x, params.get("reference"), params.get("blur_sigma", 10.0))
        return torch.cat([x, ref])

    def walk_context(self, graph: g.Graph, x: torch.Tensor, xf: torch.Tensor, acts: dict,
                     shapes: dict, fan: int = 1, memo: dict | None = None) -> Walk:
        """Relevance shapes and logits of the ``x`` half of the stacked batch."""
        n = x.shape[0]
        return Walk(graph, xf, acts, relevance_shapes(shapes, n * fan),
                    acts[graph.output][:n], fan, memo)

    def finish_reads(self, graph: g.Graph, record) -> set[str]:
        """Activations :meth:`finish` reads for the recorded nodes ``record``."""
        need: set[str] = set()
        for k in record:
            if k not in ("output", graph.input):
                need |= {k} | _split_needs(graph, k)
        return need

    def finish(self, ctx: Walk, recorded: dict, params: dict) -> dict:
        """Multipliers -> contributions at the recorded nodes (``record_as``)."""
        mode = params.get("record_as", "contributions")
        if mode not in ("contributions", "multipliers"):
            raise ValueError(f"record_as must be 'contributions' or 'multipliers', not {mode!r}")
        graph = ctx.graph
        out = dict(recorded)
        for k in recorded:
            if k == "output":
                continue
            r = recorded[k]
            act = ctx.x if k == graph.input else ctx.act(k)
            if rd.is_pair(r, act, ctx.fan):  # only inner linear / add nodes can hold pairs
                r = rd.collapse(r, *rd.split_delta(ctx, k))
            out[k] = rb.times(rd.delta(act), r) if mode == "contributions" else r
        return out


def _split_needs(graph: g.Graph, name: str) -> set[str]:
    """Activations :func:`~liecheck.rules.deeplift.split_delta` reads for ``name``."""
    node = graph.by_name[name]
    if isinstance(node.op, ops.LinearOp):
        return {node.inputs[0]}
    if isinstance(node.op, ops.Add):
        out = set(node.inputs)
        for i in node.inputs:
            out |= _split_needs(graph, i)
        return out
    return {name}


def contributions(explainer, x: torch.Tensor, method: str | Method, record, inject=None,
                  target=None, **params) -> dict[str, torch.Tensor]:
    """DeepLIFT contributions ``m * (h(x) - h(x0))`` at the ``record`` nodes.

    Parameters
    ----------
    explainer : a :class:`~liecheck.Explainer`.
    x : input batch ``(N, ...)``.
    method : a DeepLIFT method name or object.
    record : node / module names.
    inject : optional ``{node: multipliers}`` (``N``-sample tensors of the node's
        output shape), e.g. random vectors for CSC; default: start at the logit.
    **params : ``reference=``, ``blur_sigma=``, ...

    Returns
    -------
    dict node name -> contributions of the node's output shape (``N`` samples), plus
    ``"output"`` -> the logits of ``x``.
    """
    return explainer.walk(x, method, inject=inject, record=record, target=target,
                          record_as="contributions", **params)


def _composite(pointwise_rule, cross: bool = True):
    def linear(node, graph, params: dict) -> rb.Rule:
        return rd.DeepLiftLinear(cross=cross, negative_weight=params.get("negative_weight", "pos"))

    # every linear layer (pooling too) gets eq. 13; every pointwise nonlinearity the
    # method's rule; additions, products and max pooling the family's (DEEPLIFT_RULES)
    return deeplift_composite({ops.LinearOp: linear, ops.Pointwise: fixed(pointwise_rule)})


_CITE = ("Shrikumar, Greenside & Kundaje 2017, Learning Important Features Through "
         "Propagating Activation Differences (ICML)")
_COMMON = {"start": "onehot", "post": None, "reduce": "sum", "family": "deeplift",
           "citation": _CITE}

METHODS = [
    DeepLiftMethod("deeplift_rescale", "DeepLIFT Rescale",
                   "finite differences to a reference (default zeros): Rescale at ReLUs, "
                   "eq. 13 at linear layers, gradient at max pooling",
                   _composite(rd.Rescale), params=dict(DEEPLIFT_DEFAULTS), **_COMMON),
    DeepLiftMethod("deeplift_revealcancel", "DeepLIFT RevealCancel",
                   "DeepLIFT with positive and negative parts kept apart at ReLUs "
                   "(RevealCancel)", _composite(rd.RevealCancelReLU),
                   params=dict(DEEPLIFT_DEFAULTS), **_COMMON),
    DeepLiftMethod("deeplift_ablation", "DeepLIFT Ablation",
                   "DeepLIFT Rescale without the cross terms of eq. 13 (paper section 2.4)",
                   _composite(rd.Rescale, cross=False), params=dict(DEEPLIFT_DEFAULTS),
                   **_COMMON),
]

for _m in METHODS:
    register_method(_m)
