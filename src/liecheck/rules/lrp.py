"""LRP and Deep Taylor rules for linear layers (conv, dense, BatchNorm, pooling).

Each rule works for every :class:`~liecheck.engine.ops.LinearOp` through ``op(x, w, b)``
and ``op.transpose(g, shape, w)``. Notation: ``x+ = max(0, x)``, ``x- = min(0, x)``,
``W+ = max(0, W)``, ``W- = min(0, W)``, ``b+``, ``b-`` likewise.
"""

from __future__ import annotations

import math

import torch

from ..engine.ops import unbroadcast
from .base import Rule, cached, divide, times, zero_free
from .modified_linear import ONES, Group, ModifiedLinear


class Epsilon(ModifiedLinear):
    """LRP-epsilon (Bach et al. 2015); ``eps = 0`` is LRP-z.

    ``R_i = x_i * sum_j w_ij R_j / (z_j + eps sign(z_j))``, ``z = Wx + b`` (bias kept
    unless ``bias=False``). With ``eps = 0`` this is exactly gradient x input on
    ReLU / max-pool networks; zero denominators give zero relevance.
    """

    needs_output = True

    def __init__(self, eps: float = 0.0, bias: bool = True):
        self.eps, self.bias = eps, bias

    def groups(self, node):
        return [Group(1.0, (("x", "w"),), "b" if self.bias else None)]


class AlphaBeta(ModifiedLinear):
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

    def groups(self, node):
        b = self.bias
        return [Group(self.alpha, (("x+", "w+"), ("x-", "w-")), "b+" if b else None),
                Group(-self.beta, (("x+", "w-"), ("x-", "w+")), "b-" if b else None)]


class ZPlus(AlphaBeta):
    """The z+ rule (paper eq. 5; DTD, LRP-a1b0 without bias): positive contributions
    ``[w_ij x_j]^+`` only, normalised per output; relevance stays non-negative for
    non-negative incoming relevance."""

    def __init__(self):
        super().__init__(alpha=1.0, beta=0.0, bias=False)


class Excitation(ModifiedLinear):
    """Excitation BP (Zhang et al. 2018): ``P(x_i) = sum_j x_i w+_ij / (sum_k x_k w+_kj) P(y_j)``.

    Positive weights only, no bias. On a ReLU-fed layer this is the z+ rule. This
    class is the literal definition, ``x w+`` for any input; Zhang et al. assume
    non-negative inputs. On signed inputs (the pixels at the first conv) ``z = x W+``
    cancels to nearly 0 and the map becomes unstable (see docs/rules.md). The
    ``excitation_bp`` method therefore uses :func:`excitation_rule`, which switches to
    the cancellation-free split there.
    """

    def groups(self, node):
        return [Group(1.0, (("x", "w+"),))]


def excitation_rule(node) -> ModifiedLinear:
    """Excitation BP's rule for ``node``: :class:`Excitation` (``x W+``, Zhang et al.) when
    the input is non-negative (behind a ReLU); otherwise :class:`ZPlus`, whose
    denominator ``x+ W+ + x- W-`` is a sum of non-negative terms (Zennit's
    ``ExcitationBackprop`` without bias). The two agree on non-negative inputs; on
    signed ones the split keeps the relevance non-negative (EBP's probabilities)
    (``benchmarks/excitation_first_layer.py`` measures both)."""
    return Excitation() if node.nonneg_input else ZPlus()


class WSquare(ModifiedLinear):
    """The w^2 rule (Montavon et al. 2017): ``R_i = sum_j w_ij^2 / sum_k w_kj^2 R_j``."""

    needs_inputs = False

    def groups(self, node):
        return [Group(1.0, ((ONES, "w2"),))]


class Flat(ModifiedLinear):
    """The flat rule: every input of a receptive field gets an equal share."""

    needs_inputs = False

    def groups(self, node):
        return [Group(1.0, ((ONES, "1"),))]


class ZBox(ModifiedLinear):
    """The z^B rule (Montavon et al. 2017) for inputs bounded in ``[low, high]``.

    ``z_j = sum_i x_i w_ij - l_i w+_ij - h_i w-_ij`` (no bias);
    ``R_i = (x_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j``. ``low`` / ``high`` are
    scalars, per-channel sequences, tensors broadcastable to the input, or
    ``"input"`` (the default): each sample's own minimum and maximum.
    """

    def __init__(self, low="input", high="input"):
        self.low, self.high = low, high

    def groups(self, node):
        if node.op.weight is None:  # pooling: implicit non-negative weights, x - l
            return [Group(1.0, ((_Bound(self.low, torch.min, -1, shift=True), "w"),))]
        return [Group(1.0, (("x", "w"), (_Bound(self.low, torch.min, -1), "w+"),
                            (_Bound(self.high, torch.max, -1), "w-")))]


class _Bound:
    """z^B's input modifier ``sign * bound`` (``x + sign * bound`` with ``shift``)."""

    def __init__(self, v, fn, sign, shift=False):
        self.v, self.fn, self.sign, self.shift = v, fn, sign, shift

    def __repr__(self):
        return f"bound({self.v!r}, {self.fn.__name__}, {self.sign}, {self.shift})"

    def __call__(self, x):
        b = _bound(self.v, x, self.fn)
        return x - b if self.shift else -b


def _bound(v, x, fn):
    """A z^B bound as a tensor like ``x``: a number, a per-channel sequence, a tensor,
    or ``"input"`` (each sample's own minimum / maximum)."""
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
