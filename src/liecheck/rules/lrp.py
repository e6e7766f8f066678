"""LRP and Deep Taylor rules for linear layers (conv, dense, BatchNorm, pooling).

Each rule works for every :class:`~liecheck.engine.ops.LinearOp` through ``op(x, w, b)``
and ``op.transpose(g, shape, w)``. Notation: ``x+ = max(0, x)``, ``x- = min(0, x)``,
``W+ = max(0, W)``, ``W- = min(0, W)``, ``b+``, ``b-`` likewise.
"""

from __future__ import annotations

import math

import torch

from ..engine.ops import unbroadcast
from .base import Rule, cached, divide, ratio, safe_divide, stabilize, times, zero_free


class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015); ``eps = 0`` is LRP-z.

    ``R_i = x_i * sum_j w_ij R_j / (z_j + eps sign(z_j))``, ``z = Wx + b`` (bias kept
    unless ``bias=False``). With ``eps = 0`` this is exactly gradient x input on
    ReLU / max-pool networks; zero denominators give zero relevance.
    """

    def __init__(self, eps: float = 0.0, bias: bool = True):
        self.eps, self.bias = eps, bias

    needs_output = True

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op

        def den():
            z = ctx.output(node) if self.bias or op.bias is None else op(x, bias=None)
            return zero_free(stabilize(z, self.eps), fresh=False)

        s = divide(r, cached(ctx, node, ("eps", self.eps, self.bias), den))
        return [times(x, op.transpose(s, _rshape(x, r)))]


def _rshape(x: torch.Tensor, r: torch.Tensor) -> tuple:
    """The shape of ``x`` with the relevance batch of ``r``."""
    return (r.shape[0],) + tuple(x.shape[1:])


def _split_bias(op, bias: bool):
    if not bias or op.bias is None:
        return None, None
    return op.bias.clamp(min=0), op.bias.clamp(max=0)


class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015), for any alpha, beta.

    activator ``z+ = x+ W+ + x- W- + b+``, inhibitor ``z- = x+ W- + x- W+ + b-``;
    ``R_i = alpha * (contribution_i to z+) / z+ * R - beta * (contribution_i to z-) / z- * R``.
    Zero denominators are replaced by 1 (their contributions are all zero).

    This is the formulation of Bach et al. and Zennit. The paper's reference code
    (iNNvestigate 1.0.8) put the *whole* bias ``b`` into both denominators (an
    iNNvestigate bug, its issues #273 and #116); liecheck splits it into ``b+`` and
    ``b-``. ``bias=False`` drops the bias entirely (the z+ rule of paper eq. 5).
    ``alpha - beta != 1`` is allowed (the rule is then not conservative); negative or
    non-finite weights ``alpha``, ``beta`` are refused.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, bias: bool = True):
        if not (math.isfinite(alpha) and math.isfinite(beta) and alpha >= 0 and beta >= 0):
            raise ValueError(f"alpha-beta rule: alpha and beta must be finite and >= 0 (the "
                             f"weights of the activator and the inhibitor), got alpha={alpha}, "
                             f"beta={beta}")
        self.alpha, self.beta, self.bias = alpha, beta, bias

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        shape = _rshape(x, r)
        bp, bn = _split_bias(op, self.bias)
        neg_w = op.has_negative_weights
        use_inh = self.beta != 0 and (neg_w or not node.nonneg_input)
        # W- is needed for the inhibitor, or for x- W- when the input can be negative
        need_wn = op.weight is not None and neg_w and (use_inh or not node.nonneg_input)
        wp, wn = op.split() if need_wn else (
            op.pos() if op.weight is not None else None, None)
        a, b = self.alpha, -self.beta
        key = ("ab", self.bias)
        if node.nonneg_input:
            # x- = 0: activator x W+ + b+, inhibitor x W- + b-
            if use_inh and wn is not None:
                return [times(x, op.transpose_stacked(
                    self._stacked_ratio(ctx, node, x, r, wp, wn, bp, bn), shape, [wp, wn]))]
            sa = ratio(ctx, node, key, lambda: op(x, wp, bp), r, a)
            return [times(x, op.transpose(sa, shape, wp))]
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        if wn is None:  # pooling: implicit non-negative weights
            sa = ratio(ctx, node, key + ("a",),
                       lambda: op(xp) + (bp if bp is not None else 0), r, a)
            out = times(xp, op.transpose(sa, shape))
            if use_inh:
                si = ratio(ctx, node, key + ("i",),
                           lambda: op(xn) + (bn if bn is not None else 0), r, b)
                out = out + times(xn, op.transpose(si, shape))
            return [out]
        if use_inh:
            def za():
                a1, i1 = op.forward_many(xp, [wp, wn], [bp, bn])
                a2, i2 = op.forward_many(xn, [wn, wp])
                ctx_inh[0] = i1 + i2
                return a1 + a2

            ctx_inh: list = [None]
            sa = ratio(ctx, node, key + ("a",), za, r, a)
            si = ratio(ctx, node, key + ("i",), lambda: ctx_inh[0], r, b)
            return [times(xp, op.transpose_many([sa, si], shape, [wp, wn]))
                    + times(xn, op.transpose_many([sa, si], shape, [wn, wp]))]

        def z_act():
            za = op(xp, wp, bp)
            za += op(xn, wn, None)
            return za

        sa = ratio(ctx, node, key + ("a",), z_act, r, a)
        return [times(xp, op.transpose(sa, shape, wp)) + times(xn, op.transpose(sa, shape, wn))]

    def _stacked_ratio(self, ctx, node, x, r, wp, wn, bp, bn) -> torch.Tensor:
        """``[a r / (x W+ + b+), b r / (x W- + b-)]`` stacked on dim 1, one fused call."""
        op = node.op
        a, b = self.alpha, -self.beta
        if ctx.memo is None and x.shape[0] == r.shape[0]:
            z = op.forward_stacked(x, [wp, wn], [bp, bn])  # divided in place
            d = op.out_dim
            k = z.shape[d] // 2
            safe_divide(r, z.narrow(d, 0, k), a, reuse_z=True)
            safe_divide(r, z.narrow(d, k, k), b, reuse_z=True)
            return z
        den = cached(ctx, node, ("ab", self.bias, "stacked"),
                     lambda: zero_free(op.forward_stacked(x, [wp, wn], [bp, bn])))
        d = op.out_dim
        k = den.shape[d] // 2
        s = r.new_empty((r.shape[0],) + tuple(den.shape[1:]))
        divide(r, den.narrow(d, 0, k), a, into=s.narrow(d, 0, k))
        divide(r, den.narrow(d, k, k), b, into=s.narrow(d, k, k))
        return s


class ZPlus(AlphaBeta):
    """The z+ rule (paper eq. 5; DTD, LRP-a1b0 without bias): positive contributions
    ``[w_ij x_j]^+`` only, normalised per output; relevance stays non-negative for
    non-negative incoming relevance."""

    def __init__(self):
        super().__init__(alpha=1.0, beta=0.0, bias=False)


class Excitation(Rule):
    """Excitation BP (Zhang et al. 2018): ``P(x_i) = sum_j x_i w+_ij / (sum_k x_k w+_kj) P(y_j)``.

    Positive weights only, no bias. On a ReLU-fed layer this is the z+ rule. This
    class is the literal definition, ``x w+`` for any input; Zhang et al. assume
    non-negative inputs. On signed inputs (the pixels at the first conv) ``z = x W+``
    cancels to nearly 0 and the map becomes unstable (VGG-16: the map moves by 62 %
    when ``1e-6 sign(z)`` is added to ``z``). The ``excitation_bp`` method therefore
    uses :func:`excitation_rule`, which switches to the cancellation-free split there.
    """

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        wp = op.pos() if op.weight is not None else None
        den = cached(ctx, node, ("excitation",), lambda: zero_free(op(x, wp, None)))
        return [times(x, op.transpose(divide(r, den), _rshape(x, r), wp))]


def excitation_rule(node) -> Rule:
    """Excitation BP's rule for ``node``: :class:`Excitation` (``x W+``, Zhang et al.) when
    the input is non-negative (behind a ReLU); otherwise :class:`ZPlus`, whose
    denominator ``x+ W+ + x- W-`` is a sum of non-negative terms (Zennit's
    ``ExcitationBackprop`` without bias). The two agree on non-negative inputs; on
    signed ones the split keeps the relevance non-negative (EBP's probabilities) and
    moves by 6e-6 where ``x W+`` moves by 0.62 under a ``1e-6`` stabiliser
    (``benchmarks/excitation_first_layer.py``, random VGG-16)."""
    return Excitation() if node.nonneg_input else ZPlus()


class WSquare(Rule):
    """The w^2 rule (Montavon et al. 2017): ``R_i = sum_j w_ij^2 / sum_k w_kj^2 R_j``."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        op = node.op
        shape = ctx.shape(node.inputs[0])
        w2 = op.weight ** 2 if op.weight is not None else None
        ones = torch.ones((1,) + tuple(shape[1:]), dtype=r.dtype, device=r.device)
        z = op(ones, w2, None)
        return [op.transpose(safe_divide(r, z), shape, w2)]


class Flat(Rule):
    """The flat rule: every input of a receptive field gets an equal share."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        op = node.op
        shape = ctx.shape(node.inputs[0])
        w1 = torch.ones_like(op.weight) if op.weight is not None else None
        ones = torch.ones((1,) + tuple(shape[1:]), dtype=r.dtype, device=r.device)
        z = op(ones, w1, None)
        return [op.transpose(safe_divide(r, z), shape, w1)]


class ZBox(Rule):
    """The z^B rule (Montavon et al. 2017) for inputs bounded in ``[low, high]``.

    ``z_j = sum_i x_i w_ij - l_i w+_ij - h_i w-_ij`` (no bias);
    ``R_i = (x_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j``. ``low`` / ``high`` are
    scalars, per-channel sequences, tensors broadcastable to the input, or
    ``"input"`` (the default): each sample's own minimum and maximum.
    """

    def __init__(self, low="input", high="input"):
        self.low, self.high = low, high

    def _bound(self, v, x, fn):
        if isinstance(v, str):
            if v != "input":
                raise ValueError(f"bound must be a number, a tensor or 'input', not {v!r}")
            return fn(x.reshape(x.shape[0], -1), dim=1).values.view(-1, *[1] * (x.dim() - 1)
                                                                   ).expand_as(x)
        if isinstance(v, (int, float)):  # no host-to-device copy per node
            return torch.full_like(x, v)
        t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
        if t.dim() == 1 and x.dim() == 4:
            t = t.view(1, -1, 1, 1)
        return t.expand_as(x)

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        lo = self._bound(self.low, x, torch.min)
        hi = self._bound(self.high, x, torch.max)
        shape = _rshape(x, r)
        if op.weight is None:  # pooling: implicit non-negative weights, W+ = W, W- = 0
            den = cached(ctx, node, ("zbox",), lambda: zero_free(op(x - lo, None, None)))
            return [times(x - lo, op.transpose(divide(r, den), shape))]
        wp, wn = op.split()
        den = cached(ctx, node, ("zbox",), lambda: zero_free(
            op(x, None, None) - op(lo, wp, None) - op(hi, wn, None)))
        s = divide(r, den)
        return [times(x, op.transpose(s, shape)) - times(lo, op.transpose(s, shape, wp))
                - times(hi, op.transpose(s, shape, wn))]


class ProductUniform(Rule):
    """The product ``a * b`` of two activations, uniform rule (AttnLRP, Achtibat et al.
    2024): each factor receives half of the relevance (summed over the dimensions it
    was broadcast along). Conservative: the halves add up to the incoming relevance."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        half = 0.5 * r
        return [unbroadcast(half, ctx.shape(i)) for i in node.inputs]


class ProductSignal(Rule):
    """The product ``a * b`` of two activations, signal-takes-all rule: the factor with
    more elements (the signal of a squeeze-excitation gate ``gate * x``; the first
    factor when both have the same shape) receives all the relevance, the gate none
    (Pahde et al. 2023 for squeeze-excitation). Conservative."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        sa, sb = (ctx.shape(i) for i in node.inputs)
        na, nb = math.prod(sa), math.prod(sb)
        if nb > na:
            return [None, unbroadcast(r, sb)]
        return [unbroadcast(r, sa), None]


class NormIdentity(Rule):
    """LayerNorm / GroupNorm with the identity rule on the division (AttnLRP): the
    standard deviation is held constant, so ``y = (x - mean x) * (w / std) + b`` is
    linear in ``x``, and the z-rule runs through it:
    ``R_x = x * C^T (w / std * R / y)``, ``C`` the centring ``t - mean(t)`` of each
    group. With ``b = 0`` the input's total equals the output's."""

    needs_output = True

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        y = ctx.output(node)
        den = cached(ctx, node, ("norm",), lambda: zero_free(y.clone()))
        scale = cached(ctx, node, ("norm_scale",), lambda: op.scale(x))
        s = times(scale, divide(r, den))
        return [times(x, op.center(s))]
