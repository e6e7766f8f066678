"""Patterns for PatternNet and PatternAttribution (Kindermans et al. 2018).

:func:`fit` streams data through a traced model and estimates, for every conv and
dense layer (node) with weight ``W`` (rows ``w_i``), input ``x`` and output
``y_i = w_i^T x + b_i``, the signal pattern (paper eq. 9 / appendix C eq. 37)::

    a_i = (E[x y_i] - E[x] E[y_i]) / (w_i^T E[x y_i] - w_i^T E[x] E[y_i])

``kind="linear"`` takes the expectations over all samples (the linear estimator
``S_a``); ``kind="relu"`` (default) only over samples with ``y_i > 0`` (the positive
half of the two-component estimator ``S_a+-``, the one that matters behind a ReLU).
Conv layers are treated patch-wise (``F.unfold``): every output position is a
sample. Statistics accumulate in float64 (``dtype=``). A neuron with a zero denominator (never
active, or no variance) gets a zero pattern.

Layers are the nodes of the traced graph, so a BatchNorm folded into its conv
gives the pattern of the folded layer. The :class:`PatternSet` records the node
names and weight shapes; using it on a different model fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import graph as g
from ..engine import ops
from ..engine.node import Node
from ..engine.ops import ConvOp
from ..models.checkpoint import read
from ..rules import gradient as rg
from ..rules.pattern import SubstitutedTranspose
from .composites import gradient_composite, refuse
from .protocol import Method
from .registry import register_method

FORMAT = "liecheck.patterns/1"


@dataclass(eq=False)
class PatternSet:
    """Patterns per node: ``patterns[node] `` has the shape of the node's weight.

    Attributes
    ----------
    patterns : node name -> pattern tensor ``A`` (same shape as ``W``).
    kind : ``"relu"`` or ``"linear"``.
    shapes : node name -> weight shape, for the mismatch check.
    counts : node name -> number of samples (patches) seen per output neuron.
    """

    patterns: dict[str, torch.Tensor]
    kind: str
    shapes: dict[str, tuple] = field(default_factory=dict)
    counts: dict[str, torch.Tensor] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        """Save as plain tensors and strings (loadable with ``weights_only=True``)."""
        torch.save({"format": FORMAT, "kind": self.kind, "nodes": list(self.patterns),
                    "patterns": {k: v.cpu() for k, v in self.patterns.items()},
                    "shapes": {k: list(v) for k, v in self.shapes.items()},
                    "counts": {k: v.cpu() for k, v in self.counts.items()}}, path)

    @classmethod
    def load(cls, path: str | Path) -> PatternSet:
        d = read(path, "pattern file")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{path} is not a liecheck pattern file (format {FORMAT})")
        return cls({k: d["patterns"][k] for k in d["nodes"]}, d["kind"],
                   {k: tuple(v) for k, v in d["shapes"].items()}, dict(d["counts"]))

    def check(self, graph: g.Graph) -> None:
        """Raise ``ValueError`` naming the layers that do not match ``graph``."""
        want = {n.name: tuple(n.op.weight.shape) for n in graph.linear_nodes()}
        missing = [k for k in want if k not in self.patterns]
        extra = [k for k in self.patterns if k not in want]
        wrong = [f"{k}: pattern {tuple(self.patterns[k].shape)} vs weight {want[k]}"
                 for k in want if k in self.patterns
                 and tuple(self.patterns[k].shape) != want[k]]
        if missing or extra or wrong:
            raise ValueError(
                "these patterns were fitted for another model: "
                + (f"layers without pattern {missing}; " if missing else "")
                + (f"patterns for unknown layers {extra}; " if extra else "")
                + (f"shape mismatch {wrong}; " if wrong else "")
                + "fit patterns for this model with liecheck.patterns.fit(model, data).")

    def __repr__(self) -> str:  # short, and unique per object (rule-cache key)
        return f"PatternSet(kind={self.kind!r}, layers={len(self.patterns)}, id={id(self):x})"


class _Stats:
    """Running sums for one layer: per output neuron i over its samples s."""

    def __init__(self, k: int, d: int, dtype: torch.dtype):
        z = {"dtype": dtype}
        self.n = torch.zeros(k, **z)
        self.sx = torch.zeros(k, d, **z)
        self.sy = torch.zeros(k, **z)
        self.sxy = torch.zeros(k, d, **z)

    def add(self, x: torch.Tensor, y: torch.Tensor, kind: str) -> None:
        """``x (S, D)`` inputs, ``y (S, K)`` outputs."""
        x, y = x.to(self.sx.dtype), y.to(self.sx.dtype)
        mask = (y > 0).to(y.dtype) if kind == "relu" else torch.ones_like(y)
        self.n += mask.sum(0).cpu()
        self.sx += (mask.T @ x).cpu()
        self.sy += (mask * y).sum(0).cpu()
        self.sxy += ((mask * y).T @ x).cpu()

    def pattern(self, w: torch.Tensor) -> torch.Tensor:
        n = self.n.clamp(min=1)[:, None]
        cov = self.sxy / n - (self.sx / n) * (self.sy[:, None] / n)   # cov[x, y_i], (K, D)
        denom = (cov * w.to(cov.dtype).cpu().reshape(cov.shape)).sum(1, keepdim=True)
        ok = (denom.abs() > 1e-12) & (self.n[:, None] > 1)
        return torch.where(ok, cov / torch.where(ok, denom, torch.ones_like(denom)),
                           torch.zeros_like(cov))


def _samples(node: Node, x: torch.Tensor, y: torch.Tensor):
    """``(S, D)`` input samples and ``(S, K)`` outputs of a conv (patches) / dense node."""
    op = node.op
    if isinstance(op, ConvOp):
        if op.groups != 1:
            raise ValueError(f"patterns for grouped convolutions are not supported "
                             f"(node '{node.name}', groups={op.groups})")
        cols = F.unfold(x, op.weight.shape[2:], dilation=op.dilation, padding=op.padding,
                        stride=op.stride)                       # (N, D, L)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1]), \
            y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])
    return x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)


def _batches(data) -> Iterable[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        yield data
        return
    for b in data:
        yield b[0] if isinstance(b, (tuple, list)) else b


@torch.no_grad()
def fit(model: nn.Module | g.Graph, data, kind: str = "relu", device=None,
        max_batches: int | None = None, dtype: torch.dtype = torch.float64) -> PatternSet:
    """Estimate the patterns of every conv and dense layer of ``model``.

    Parameters
    ----------
    model : the network (deep-copied, never modified) or a traced graph.
    data : a tensor batch ``(N, ...)``, or an iterable of batches / ``(x, y)`` pairs
        (e.g. a ``DataLoader``), in the model's input space.
    kind : ``"relu"`` (positive-output samples only) or ``"linear"`` (all samples).
    device : where to run (default: the model's device).
    max_batches : stop after this many batches.
    dtype : accumulator precision. Two ``(out, in)`` accumulators per layer are held
        on the CPU: 1.6 GB for VGG-16's fc1 in float64, half in ``torch.float32``.

    Returns
    -------
    :class:`PatternSet` keyed by node name.
    """
    if kind not in ("relu", "linear"):
        raise ValueError(f"kind must be 'relu' or 'linear', not {kind!r}")
    graph = model if isinstance(model, g.Graph) else g.trace(model)
    if device is None:
        p = next(graph.module.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    graph.to(device)
    layers = graph.linear_nodes(("conv", "dense"))
    if not layers:
        raise ValueError("the model has no conv or dense layer to fit patterns for")
    keep = {n.name for n in layers} | {n.inputs[0] for n in layers}
    stats: dict[str, _Stats] = {}
    seen = 0
    for i, xb in enumerate(_batches(data)):
        if max_batches is not None and i >= max_batches:
            break
        acts = graph.forward(xb.to(device), keep=lambda n: n.name in keep)
        for node in layers:
            xs, ys = _samples(node, acts[node.inputs[0]], acts[node.name])
            if node.name not in stats:
                stats[node.name] = _Stats(ys.shape[1], xs.shape[1], dtype)
            stats[node.name].add(xs, ys, kind)
        seen += 1
    if seen == 0:
        raise ValueError("no data: `data` yielded no batch")
    pats = {n.name: stats[n.name].pattern(n.op.weight).reshape(n.op.weight.shape).float()
            for n in layers}
    return PatternSet(pats, kind, {n.name: tuple(n.op.weight.shape) for n in layers},
                      {n.name: stats[n.name].n.clone() for n in layers})


def _pattern_composite(combine):
    def linear(node, graph, params):
        ps = params.get("patterns")
        if ps is None:
            raise ValueError("this method needs patterns: pass patterns=liecheck.patterns."
                             "fit(model, data) (or PatternSet.load(path))")
        if not isinstance(ps, PatternSet):
            raise TypeError(f"patterns must be a liecheck.patterns.PatternSet, not "
                            f"{type(ps).__name__}")
        if node.layer not in ("conv", "dense"):  # BatchNorm, scales, pooling: no pattern
            return rg.GradientLinear()
        ps.check(graph)
        a = ps.patterns[node.name]
        return SubstitutedTranspose(combine(a, node.op.weight.to(a.device, a.dtype)))

    # PatternNet / PatternAttribution are defined on linear layers and ReLUs (the patterns
    # are fitted for ReLU networks): other nonlinearities and normalisations are refused
    return gradient_composite({ops.LinearOp: linear, ops.Pointwise: _NOT_RELU,
                               ops.Norm: _NOT_RELU, ops.Product: _NOT_RELU})


_NOT_RELU = refuse("PatternNet and PatternAttribution are defined for networks of linear "
                   "layers, ReLUs and pooling (their patterns are fitted for ReLU outputs)")


_CITE = ("Kindermans et al. 2018, Learning how to explain neural networks: PatternNet and "
         "PatternAttribution (ICLR)")
METHODS = [
    Method("patternnet", "PatternNet",
           "gradient walk with the signal pattern A in place of W, ReLU gated by the "
           "forward pass (eq. 10); needs patterns=", _pattern_composite(lambda a, w: a),
           start="logit", params={"patterns": None}, family="pattern", citation=_CITE),
    Method("patternattribution", "PatternAttribution",
           "gradient walk with A (*) W in place of W, ReLU gated by the forward pass "
           "(eq. 11); needs patterns=", _pattern_composite(lambda a, w: a * w),
           start="logit", params={"patterns": None}, family="pattern", citation=_CITE),
]

for _m in METHODS:
    register_method(_m)
