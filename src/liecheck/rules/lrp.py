"""LRP and Deep Taylor rules for linear layers (conv, dense, BatchNorm, pooling).

Each rule works for every :class:`~liecheck.ops.LinearOp` through ``op(x, w, b)``
and ``op.transpose(g, shape, w)``. Notation: ``x+ = max(0, x)``, ``x- = min(0, x)``,
``W+ = max(0, W)``, ``W- = min(0, W)``, ``b+``, ``b-`` likewise.
"""

from __future__ import annotations

import torch

from .base import Rule, safe_divide, stabilize


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
        z = ctx.output(node) if self.bias or op.bias is None else op(x, bias=None)
        s = safe_divide(r, stabilize(z, self.eps))
        return [x * op.transpose(s, x.shape)]


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
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, bias: bool = True):
        if alpha - beta != 1:
            # allowed, but not conservative; kept silent: the paper's variants all have it
            pass
        self.alpha, self.beta, self.bias = alpha, beta, bias

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        shape = x.shape
        bp, bn = _split_bias(op, self.bias)
        neg_w = op.has_negative_weights
        use_inh = self.beta != 0 and (neg_w or not node.nonneg_input)
        # W- is needed for the inhibitor, or for x- W- when the input can be negative
        need_wn = op.weight is not None and neg_w and (use_inh or not node.nonneg_input)
        wp, wn = op.split() if need_wn else (
            op.pos() if op.weight is not None else None, None)
        a, b = self.alpha, -self.beta
        if node.nonneg_input:
            # x- = 0: activator x W+ + b+, inhibitor x W- + b-
            if use_inh and wn is not None:
                z = op.forward_stacked(x, [wp, wn], [bp, bn])
                k = z.shape[1] // 2
                safe_divide(r, z[:, :k], a, reuse_z=True)
                safe_divide(r, z[:, k:], b, reuse_z=True)
                return [x * op.transpose_stacked(z, shape, [wp, wn])]
            za = op(x, wp, bp)
            return [x * op.transpose(safe_divide(r, za, a, reuse_z=True), shape, wp)]
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        if wn is None:  # pooling: implicit non-negative weights
            za = op(xp) + (bp if bp is not None else 0)
            out = xp * op.transpose(safe_divide(r, za, a, reuse_z=True), shape)
            if use_inh:
                zi = op(xn) + (bn if bn is not None else 0)
                out = out + xn * op.transpose(safe_divide(r, zi, b, reuse_z=True), shape)
            return [out]
        if use_inh:
            a1, i1 = op.forward_many(xp, [wp, wn], [bp, bn])
            a2, i2 = op.forward_many(xn, [wn, wp])
            sa = safe_divide(r, a1 + a2, a, reuse_z=True)
            si = safe_divide(r, i1 + i2, b, reuse_z=True)
            return [xp * op.transpose_many([sa, si], shape, [wp, wn])
                    + xn * op.transpose_many([sa, si], shape, [wn, wp])]
        za = op(xp, wp, bp)
        za += op(xn, wn, None)
        sa = safe_divide(r, za, a, reuse_z=True)
        return [xp * op.transpose(sa, shape, wp) + xn * op.transpose(sa, shape, wn)]


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
        z = op(x, wp, None)
        return [x * op.transpose(safe_divide(r, z), x.shape, wp)]


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
        t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
        if t.dim() == 1 and x.dim() == 4:
            t = t.view(1, -1, 1, 1)
        return t.expand_as(x)

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        lo = self._bound(self.low, x, torch.min)
        hi = self._bound(self.high, x, torch.max)
        if op.weight is None:  # pooling: implicit non-negative weights, W+ = W, W- = 0
            z = op(x - lo, None, None)
            return [(x - lo) * op.transpose(safe_divide(r, z), x.shape)]
        wp, wn = op.split()
        z = op(x, None, None) - op(lo, wp, None) - op(hi, wn, None)
        s = safe_divide(r, z)
        return [x * op.transpose(s, x.shape) - lo * op.transpose(s, x.shape, wp)
                - hi * op.transpose(s, x.shape, wn)]
