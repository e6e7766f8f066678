"""LRP rules for attention: AttnLRP (Achtibat et al., ICML 2024) and CP-LRP (Ali et al.
2022, attention weights held constant), plus Zennit's generalised Gamma rule on linear
layers (LXT's default map for torchvision ViT uses it).

AttnLRP on the parts of attention:

* softmax ``s = softmax(x)``: first-order Taylor expansion at the input (with its bias),
  ``R_x = x * (R - s * sum(R))``; it equals gradient x input of the softmax, and what
  it does not pass on (``sum(R_x) - sum(R)``) is absorbed;
* the product ``y = a @ b`` of two activations: the z-rule split uniformly,
  ``R_a = a * J_a^T (R / y) / 2`` and ``R_b`` likewise (conservative:
  ``sum R_a + sum R_b = sum R``).

CP-LRP: the softmax passes nothing on (the attention weights are constants) and a
product whose operand is an attention weight (a softmax output, through dropout or
other identities) gives all of the relevance to the other operand by the z-rule.

A library attention function that is one node (``F.scaled_dot_product_attention``,
Swin's window attention) is explained in the gradient-times-input form: relevance
``R`` at the output is ``y * g`` with ``g = R / y``; every rule above (and the z-rule
on linear layers, the identity on reshapes, the absorbed share of a constant added)
maps ``g`` by a modified gradient, so the node's rule is ``R_x = x * (modified
gradient of the function)^T g``: AttnLRP halves the gradient into each operand of a
product of two activations, CP-LRP stops it at the softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .base import Rule, cached, divide, stabilize, times, zero_free
from .gradient import over_fan, vjp


def _rep(t: torch.Tensor, fan: int) -> torch.Tensor:
    """``t`` repeated over the relevance's fan (sample ``i`` -> ``i * fan + j``)."""
    return t if fan == 1 else t.repeat_interleave(fan, 0)


def _g(ctx, node, r):
    """``r / y`` with 0 where the node's output ``y`` is 0 (the gradient form of ``r``)."""
    y = ctx.output(node)
    return divide(r, cached(ctx, node, ("gform",), lambda: zero_free(y.clone())))


class SoftmaxTaylor(Rule):
    """AttnLRP's softmax rule: ``R_x = x * (R - s * sum_dim R)``."""

    needs_output = True

    def backward(self, ctx, node, r):
        x, s = ctx.inputs(node)[0], ctx.output(node)
        return [times(x, r - times(s, r.sum(node.op.dim, keepdim=True)))]


class MatmulUniform(Rule):
    """AttnLRP's rule on a product of two activations: the z-rule (``eps``: its
    stabiliser, 0 by default) split half and half between the operands."""

    needs_output = True

    def __init__(self, eps: float = 0.0):
        self.eps = eps

    def backward(self, ctx, node, r):
        a, b = ctx.inputs(node)
        y = ctx.output(node)
        s = divide(r, cached(ctx, node, ("mm", self.eps),
                             lambda: zero_free(stabilize(y, self.eps), fresh=False)), 0.5)
        ga, gb = vjp(node.op.forward, [a, b], s)
        return [times(a, ga), times(b, gb)]


class MatmulConstant(Rule):
    """CP-LRP's rule on a product whose operand ``const`` (0 or 1) is an attention
    weight: that operand is a constant, the other gets all of the relevance (z-rule)."""

    needs_output = True

    def __init__(self, const: int):
        self.const = const

    def backward(self, ctx, node, r):
        ins = ctx.inputs(node)
        keep = 1 - self.const
        s = _g(ctx, node, r)
        const = _rep(ins[self.const], s.shape[0] // ins[0].shape[0]).detach()
        grads = vjp(lambda t: node.op.forward(*((t, const) if keep == 0 else (const, t))),
                    [ins[keep]], s)
        out = [None, None]
        out[keep] = times(ins[keep], grads[0])
        return out


class _HalfGrad(torch.autograd.Function):
    """The identity whose backward halves the gradient."""

    @staticmethod
    def forward(ctx, t):
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        return 0.5 * g


_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
            torch.Tensor.bmm, torch.einsum}
_SOFTMAXES = {F.softmax, torch.softmax, torch.Tensor.softmax}


class _AttentionMode(TorchFunctionMode):
    """Inside a library attention function: AttnLRP halves the gradient into both
    operands of a product of two tensors that carry gradient; CP-LRP detaches the
    softmax's output."""

    def __init__(self, variant: str):
        super().__init__()
        self.variant = variant

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.variant == "cp" and func in _SOFTMAXES:
            return func(*args, **kwargs).detach()
        if self.variant == "attnlrp" and func in _MATMULS:
            ts = [a for a in args if isinstance(a, torch.Tensor)]
            if len(ts) == 2 and all(t.requires_grad for t in ts):
                args = tuple(_HalfGrad.apply(a) if isinstance(a, torch.Tensor) else a
                             for a in args)
        return func(*args, **kwargs)


class AttentionGradientForm(Rule):
    """A library attention function as one node (see the module docstring):
    ``R_x = x * (modified gradient)^T (R / y)`` for each activation input; ``variant``
    ``"attnlrp"`` or ``"cp"``. Constant inputs (weights, biases) absorb their share."""

    needs_output = True

    def __init__(self, variant: str):
        if variant not in ("attnlrp", "cp"):
            raise ValueError(f"variant must be 'attnlrp' or 'cp', not {variant!r}")
        self.variant = variant

    def backward(self, ctx, node, r):
        ins = ctx.inputs(node)
        act = [k for k in range(len(ins)) if not node.constant_inputs[k]]
        g = _g(ctx, node, r)

        batch = ins[act[0]]
        fan = g.shape[0] // batch.shape[0]

        def fn(*ts):
            # weights and bias tables are not repeated over the fan (over_fan)
            full = [over_fan(t.detach(), batch, fan) if node.constant_inputs[k] else None
                    for k, t in enumerate(ins)]
            for k, t in zip(act, ts):
                full[k] = t
            with _AttentionMode(self.variant):
                return node.op.forward(*full)

        grads = vjp(fn, [ins[k] for k in act], g)
        out = [None] * len(ins)
        for k, gk in zip(act, grads):
            out[k] = times(ins[k], gk)
        return out


class SDPAGradientForm(AttentionGradientForm):
    """``F.scaled_dot_product_attention(q, k, v)``: AttnLRP divides the gradient into
    ``q`` and ``k`` by 4 and into ``v`` by 2 (the uniform rule of its two products);
    CP-LRP gives ``q`` and ``k`` nothing."""

    def backward(self, ctx, node, r):
        q, k, v = ctx.inputs(node)
        g = _g(ctx, node, r)
        if self.variant == "cp":
            fan = g.shape[0] // q.shape[0]
            qc, kc = _rep(q, fan).detach(), _rep(k, fan).detach()
            (gv,) = vjp(lambda t: node.op.forward(qc, kc, t), [v], g)
            return [None, None, times(v, gv)]
        gq, gk, gv = vjp(node.op.forward, [q, k, v], g)
        return [times(q, gq / 4), times(k, gk / 4), times(v, gv / 2)]


class Gamma(Rule):
    """Zennit's generalised LRP-gamma (Montavon et al. 2019; Andeol et al. 2021) on a
    linear layer ``z = Wx + b``. Where ``z > 0``: ``R_i = x+_i (w_ij + g w+_ij) + x-_i
    (w_ij + g w-_ij)`` times ``R_j`` over ``z+_j = x+ (W + g W+) + x- (W + g W-) + b + g
    b+``; where ``z < 0`` the mirror image (``W + g W-`` on ``x+``, ``W + g W+`` on ``x-``,
    bias ``b + g b-``); denominators stabilised by ``eps`` times their sign (sign 0: +1).

    Computed with two products less than the four forward and four transposed
    products of the definition: with ``U = x+ W+ + x- W-`` the two denominators are
    ``z + g (U + b+)`` and ``z + g (Wx - U + b-)``, and with ``T0 = W^T (s+ + s-)``,
    ``T1 = W+^T s+ + W-^T s-`` the relevance is ``x+ (T0 + g T1) + x- ((1 + g) T0 - g T1)``.
    """

    needs_output = True

    def __init__(self, gamma: float = 0.25, eps: float = 1e-6):
        self.gamma, self.eps = gamma, eps

    def backward(self, ctx, node, r):
        x, op, g = ctx.inputs(node)[0], node.op, self.gamma
        wp = op.weight.clamp(min=0)  # not op.split(): its cache would hold 2x the weights
        wn = op.weight - wp
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        shape = (r.shape[0],) + tuple(x.shape[1:])

        def dens():
            z = ctx.output(node)
            u = op(xp, wp, None)
            u += op(xn, wn, None)
            b = op.bias
            if b is not None and op.out_dim != -1:
                b = _channels(b, z)
            v = (z - b if b is not None else z.clone()) - u       # x- W+ + x+ W-
            if b is not None:
                u += b.clamp(min=0)
                v += b.clamp(max=0)
            pos = zero_free(stabilize(z + g * u, self.eps))
            neg = zero_free(stabilize(z + g * v, self.eps))
            return pos, neg, (z > 0).to(z.dtype), (z < 0).to(z.dtype)

        pos, neg, mp, mn = cached(ctx, node, ("gamma", g, self.eps), dens)
        sp, sn = divide(times(mp, r), pos), divide(times(mn, r), neg)
        t0 = op.transpose(sp + sn, shape)
        t1 = op.transpose_many([sp, sn], shape, [wp, wn])
        return [times(xp, t0 + g * t1) + times(xn, (1 + g) * t0 - g * t1)]


def _channels(b: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-channel bias shaped to broadcast over ``like`` ``(N, C, ...)``."""
    return b.view(1, -1, *([1] * (like.dim() - 2)))
