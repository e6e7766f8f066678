"""One template for every modified-linear rule (LRP-epsilon, alpha-beta, z+, z^B, w^2,
flat, Excitation BP), as Zennit's ``BasicHook`` does it with input, parameter and output
modifiers.

A rule is a list of :class:`Group` s. Group ``g`` has a coefficient ``c_g``, terms
``(input modifier, weight modifier)`` and a bias modifier; its denominator is
``z_g = sum_k op(in_k(x), W_k) + b_g`` (stabilised by ``eps``), and

``R_i = sum_g c_g sum_k in_k(x)_i * [W_k^T (R / z_g)]_i``  (zero where ``z_g == 0``).

Input modifiers: ``"x"``, ``"x+"``, ``"x-"``, :data:`ONES` (the rule does not read the
input: w^2, flat) or any callable ``x -> tensor`` (z^B's bounds). Weight modifiers:
``"w"`` (the layer's own), ``"w+"``, ``"w-"``, ``"w2"``, ``"1"`` (all ones); bias
modifiers ``"b"``, ``"b+"``, ``"b-"`` or ``None``. Terms that vanish on a node are dropped
before any work: ``x-`` behind a non-negative input (ReLU), ``w-`` of an op without
negative weights (pooling), so each node runs the cheapest form of its rule.

Execution (one place for every rule):

* one term: one forward, one transpose (the epsilon rule reuses the layer's output);
* several groups reading the same input (alpha-beta behind a ReLU): one fused forward
  with the stacked weights ``[W+; W-]`` and one fused transpose;
* otherwise the terms are grouped by input: one ``forward_many`` and one
  ``transpose_many`` per distinct input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .base import Rule, cached, divide, ratio, safe_divide, stabilize, times, zero_free

ONES = "1"  # input modifier: a constant input of ones (the rule ignores the activation)

InputModifier = str | Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Group:
    """One denominator: ``coef * R / (sum_k op(in_k(x), W_k) + bias)``."""

    coef: float
    terms: tuple[tuple[InputModifier, str], ...]
    bias: str | None = None


_INPUTS = {"x": lambda x: x, "x+": lambda x: x.clamp(min=0), "x-": lambda x: x.clamp(max=0)}


def _weights(op, names: set[str]) -> dict:
    """The weight modifiers ``names`` of ``op`` (``None``: the op's own weight)."""
    if op.weight is None:  # pooling: implicit non-negative weights
        return {n: None for n in names}
    out = {"w": None}
    if "w-" in names:
        out["w+"], out["w-"] = op.split()  # views of one stack: fused calls use it as is
    elif "w+" in names:
        out["w+"] = op.pos()
    if "w2" in names:
        out["w2"] = op.weight ** 2
    if "1" in names:
        out["1"] = torch.ones_like(op.weight)
    return out


def _bias(op, name):
    if name is None or op.bias is None:
        return None
    return {"b": op.bias, "b+": op.bias.clamp(min=0), "b-": op.bias.clamp(max=0)}[name]


def live_groups(groups, node) -> list[Group]:
    """``groups`` without the terms that vanish on ``node`` (and groups left empty)."""
    op = node.op
    neg_w = op.weight is not None and op.has_negative_weights
    out = []
    for g in groups:
        terms = tuple(t for t in g.terms if not ((t[0] == "x-" and node.nonneg_input)
                                                 or (t[1] == "w-" and not neg_w)))
        if terms and g.coef != 0:
            out.append(Group(g.coef, terms, g.bias))
    return out


class ModifiedLinear(Rule):
    """The template: subclasses give :meth:`groups` (at most a few lines each)."""

    eps = 0.0

    def groups(self, node) -> list[Group]:
        raise NotImplementedError

    def backward(self, ctx, node, r):
        groups = live_groups(self.groups(node), node)
        shape = (r.shape[0],) + tuple(ctx.shape(node.inputs[0])[1:])
        if not groups:  # every term vanishes on this node
            return [r.new_zeros(shape)]
        op = node.op
        w = _weights(op, {t[1] for g in groups for t in g.terms})
        key = (type(self).__name__, repr(sorted(vars(self).items())))
        if all(t[0] == ONES for g in groups for t in g.terms):
            return [self._constant_input(ctx, node, r, groups, w)]
        x = ctx.inputs(node)[0]
        inputs = _Inputs(x, node)
        if len(groups) == 1 and len(groups[0].terms) == 1:
            (g,) = groups
            (i, wn), = g.terms
            s = self._single_ratio(ctx, node, key, x, inputs(i), w[wn], g, r)
            return [times(inputs(i), op.transpose(s, shape, w[wn]))]
        if (len({t[0] for g in groups for t in g.terms}) == 1
                and all(len(g.terms) == 1 for g in groups) and op.weight is not None):
            i = groups[0].terms[0][0]
            ws = [w[g.terms[0][1]] for g in groups]
            s = _stacked_ratio(ctx, node, key, inputs(i), r, ws,
                               [_bias(op, g.bias) for g in groups], [g.coef for g in groups])
            return [times(inputs(i), op.transpose_stacked(s, shape, ws))]
        return [self._by_input(ctx, node, key, inputs, r, groups, w, shape)]

    def _single_ratio(self, ctx, node, key, x, xi, wi, g, r):
        """``coef * r / z`` of a one-term rule; the layer's own output is ``z`` when the
        term is ``(x, w)`` with the full bias (the epsilon rule keeps it)."""
        op = node.op
        own = xi is x and wi is None and (g.bias == "b" or op.bias is None)
        if own and self.needs_output:
            den = cached(ctx, node, key, lambda: zero_free(
                stabilize(ctx.output(node), self.eps), fresh=False))
            return divide(r, den, g.coef)
        z_fn = lambda: stabilize(op(xi, wi, _bias(op, g.bias)), self.eps)  # noqa: E731
        if self.eps != 0:
            den = cached(ctx, node, key, lambda: zero_free(z_fn(), fresh=False))
            return divide(r, den, g.coef)
        return ratio(ctx, node, key, z_fn, r, g.coef)

    def _constant_input(self, ctx, node, r, groups, w):
        """Rules that ignore the activation (w^2, flat): ``z`` from an input of ones."""
        op = node.op
        (g,) = groups
        ((_, wn),) = g.terms
        shape = ctx.shape(node.inputs[0])
        ones = torch.ones((1,) + tuple(shape[1:]), dtype=r.dtype, device=r.device)
        z = op(ones, w[wn], None)
        return op.transpose(safe_divide(r, z, g.coef), shape, w[wn])

    def _by_input(self, ctx, node, key, inputs, r, groups, w, shape):
        """The general form: one ``forward_many`` and one ``transpose_many`` per input."""
        op = node.op
        order: dict = {}  # input modifier -> [(group index, weight name, bias name)]
        for gi, g in enumerate(groups):
            for k, (i, wn) in enumerate(g.terms):
                order.setdefault(i, []).append((gi, wn, g.bias if k == 0 else None))

        def dens():
            zs: list = [None] * len(groups)
            for i, uses in order.items():
                ws = [w[wn] for _, wn, _ in uses]
                bs = [_bias(op, bn) for _, _, bn in uses]
                parts = ([op(inputs(i), ws[0], bs[0])] if len(uses) == 1
                         else op.forward_many(inputs(i), ws, bs))
                for (gi, _, _), p in zip(uses, parts):
                    if zs[gi] is None:
                        zs[gi] = p
                    elif len(uses) == 1:
                        zs[gi] += p
                    else:
                        zs[gi] = zs[gi] + p
            return [stabilize(z, self.eps) for z in zs]

        s = _ratios(ctx, node, key, dens, r, [g.coef for g in groups])
        out = None
        for i, uses in order.items():
            gs, ws = [s[gi] for gi, _, _ in uses], [w[wn] for _, wn, _ in uses]
            t = (op.transpose(gs[0], shape, ws[0]) if len(uses) == 1
                 else op.transpose_many(gs, shape, ws))
            t = times(inputs(i), t)
            out = t if out is None else out + t
        return out


class _Inputs:
    """The input modifiers of one node, each computed once (``x+`` is ``x`` itself behind
    a non-negative input)."""

    def __init__(self, x, node):
        self.x, self.nonneg, self.done = x, node.nonneg_input, {}

    def __call__(self, m: InputModifier) -> torch.Tensor:
        if m not in self.done:
            if m == "x+" and self.nonneg:
                self.done[m] = self.x
            else:
                self.done[m] = (_INPUTS[m] if isinstance(m, str) else m)(self.x)
        return self.done[m]


def _ratios(ctx, node, key, dens_fn, r, coefs) -> list[torch.Tensor]:
    """``[c * r / z for c, z in zip(coefs, dens_fn())]`` (zero where ``z == 0``); the
    denominators are computed once per forward pass (``ctx.memo``)."""
    if ctx.memo is None:
        zs = dens_fn()
        return [safe_divide(r, z, c, reuse_z=True) if z.shape[0] == r.shape[0]
                else divide(r, zero_free(z), c) for z, c in zip(zs, coefs)]
    dens = cached(ctx, node, key, lambda: [zero_free(z) for z in dens_fn()])
    return [divide(r, d, c) for d, c in zip(dens, coefs)]


def _stacked_ratio(ctx, node, key, x, r, ws, bs, coefs) -> torch.Tensor:
    """``[c_g r / (x W_g + b_g)]_g`` stacked along the output channels: one fused call."""
    op = node.op
    d = op.out_dim
    if ctx.memo is None and x.shape[0] == r.shape[0]:
        z = op.forward_stacked(x, ws, bs)  # divided in place
        k = z.shape[d] // len(ws)
        for g, c in enumerate(coefs):
            safe_divide(r, z.narrow(d, g * k, k), c, reuse_z=True)
        return z
    den = cached(ctx, node, key + ("stacked",),
                 lambda: zero_free(op.forward_stacked(x, ws, bs)))
    k = den.shape[d] // len(ws)
    s = r.new_empty((r.shape[0],) + tuple(den.shape[1:]))
    for g, c in enumerate(coefs):
        divide(r, den.narrow(d, g * k, k), c, into=s.narrow(d, g * k, k))
    return s
