"""Gradient-family rules: plain gradient, Deconv, Guided BP, RectGrad, max-pool switches."""

from __future__ import annotations

import math

import torch

from ..engine.ops import unbroadcast
from .base import Rule, cached, fan_of, times


class GradientLinear(Rule):
    """Multiply by the transposed weight: ``W^T r``."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [node.op.transpose(r, ctx.shape(node.inputs[0]))]


class GradientReLU(Rule):
    """ReLU derivative: ``r * 1[h > 0]`` (mask read from the ReLU's output)."""

    needs_inputs = False
    needs_output = True

    def backward(self, ctx, node, r):
        return [_gate(r, ctx.output(node))]


def _gate(r: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``r * 1[out > 0]`` (fused), ``out`` broadcast over the relevance's fan."""
    fan = fan_of(out, r)
    if fan == 1:
        return torch.ops.aten.threshold_backward(r, out, 0)
    return torch.ops.aten.threshold_backward(r.unflatten(0, (-1, fan)), out.unsqueeze(1),
                                             0).flatten(0, 1)


class DeconvReLU(Rule):
    """Deconv (Zeiler & Fergus 2014): ReLU on the backward signal, forward mask dropped."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [r.clamp(min=0)]


class GuidedReLU(Rule):
    """Guided BP (Springenberg et al. 2014, paper eq. 14): ``[M r]^+``."""

    needs_inputs = False
    needs_output = True

    def backward(self, ctx, node, r):
        return [_gate(r.clamp(min=0), ctx.output(node))]


def per_sample_percentile(t: torch.Tensor, q: float) -> torch.Tensor:
    """numpy-style (linear interpolation) ``q``-th percentile of each sample of ``t``.

    Returns shape ``(N, 1, ..., 1)`` broadcastable against ``t``. Uses ``kthvalue``
    so that it has no size limit (``torch.quantile`` refuses > 2**24 elements).
    """
    flat = t.reshape(t.shape[0], -1)
    n = flat.shape[1]
    pos = (n - 1) * q / 100.0
    lo, frac = math.floor(pos), pos - math.floor(pos)
    v_lo = flat.kthvalue(lo + 1, dim=1).values
    if frac > 0 and lo + 2 <= n:
        v_hi = flat.kthvalue(lo + 2, dim=1).values
        v_lo = v_lo + frac * (v_hi - v_lo)
    return v_lo.view(-1, *([1] * (t.dim() - 1)))


class RectGradReLU(Rule):
    """RectGrad (Kim et al. 2019): at each ReLU output keep the gradient only where
    ``a * g`` is strictly above its per-sample ``q``-th percentile (default 98)."""

    needs_inputs = False
    needs_output = True

    def __init__(self, q: float = 98.0):
        self.q = q

    def backward(self, ctx, node, r):
        a = ctx.output(node)
        ag = times(a, r)
        tau = per_sample_percentile(ag, self.q)
        fan = fan_of(a, r)
        if fan == 1:
            return [r * ((ag > tau) & (a > 0))]
        keep = (ag > tau).unflatten(0, (-1, fan)) & (a > 0).unsqueeze(1)
        return [r * keep.flatten(0, 1)]


class MaxPoolSwitch(Rule):
    """Max pooling, winner-take-all: relevance goes to the arg-max of each window
    (the max-pool gradient; overlapping windows add up)."""

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        p = node.op.params
        idx = ctx.pool_indices(node)
        if idx is None:  # not recorded in the forward pass
            _, idx = torch.nn.functional.max_pool2d(x, return_indices=True, **p)
        fan = fan_of(x, r)
        if fan > 1:  # the switches are per image; the input is only read for its shape
            idx = idx.repeat_interleave(fan, 0)
            x = x.new_empty((r.shape[0],) + tuple(x.shape[1:]))
        g = torch.ops.aten.max_pool2d_with_indices_backward(
            r, x, _pair(p["kernel_size"]), _pair(p["stride"] or p["kernel_size"]),
            _pair(p["padding"]), _pair(p["dilation"]), p["ceil_mode"], idx)
        return [g]


def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


class GradientPointwise(Rule):
    """The derivative of a pointwise nonlinearity: ``r * f'(x)`` (``f'`` from the op,
    exact; computed once per forward pass)."""

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        d = cached(ctx, node, ("derivative",), lambda: node.op.derivative(x))
        return [times(d, r)]


def over_fan(t: torch.Tensor, x: torch.Tensor, fan: int) -> torch.Tensor:
    """``t`` repeated over the relevance's fan (sample ``i`` -> ``i * fan + j``) if it
    carries the activation ``x``'s batch (same rank, same first dimension); a weight, a
    bias or a bias table is returned as it is."""
    if fan == 1 or t.dim() != x.dim() or t.shape[0] != x.shape[0]:
        return t
    return t.repeat_interleave(fan, 0)


def vjp(fn, inputs: list[torch.Tensor], r: torch.Tensor) -> list[torch.Tensor]:
    """The exact vector-Jacobian product ``r^T d fn(inputs) / d inputs`` by autograd; the
    inputs that carry the batch (``N``: the first input's rank and first dimension) are
    repeated over the relevance's fan (batch ``N * fan``); weights among the inputs (a
    library function's constants) are not."""
    fan = fan_of(inputs[0], r)
    if fan > 1:
        inputs = [over_fan(t, inputs[0], fan) for t in inputs]
    graph = torch.is_grad_enabled() and r.requires_grad
    with torch.enable_grad():
        ins = [t.detach().requires_grad_(True) for t in inputs]
        out = fn(*ins)
        gs = torch.autograd.grad(out, ins, r, allow_unused=True, create_graph=graph)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, ins)]


class GradientVJP(Rule):
    """The exact gradient of any op that computes from its inputs (``op.forward``):
    autograd's vector-Jacobian product (LayerNorm, amax, a user's op class)."""

    def backward(self, ctx, node, r):
        return vjp(node.op.forward, ctx.inputs(node), r)


class ProductGradient(Rule):
    """The product ``a * b`` of two activations: ``r * b`` to ``a``, ``r * a`` to ``b``
    (summed over the dimensions each was broadcast along)."""

    def backward(self, ctx, node, r):
        a, b = ctx.inputs(node)
        sa, sb = (ctx.shape(i) for i in node.inputs)
        return [unbroadcast(times(b, r), sa), unbroadcast(times(a, r), sb)]
