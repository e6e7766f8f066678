"""The rule interface and the structural rules shared by every method.

A rule maps the relevance at a node's output to relevance at each of its inputs:
``rule.backward(ctx, node, r) -> list[Tensor | None]`` (one entry per input; ``None``
means no relevance flows there). ``ctx`` is the walk (:class:`liecheck.engine.walk.Walk`):
``ctx.inputs(node)``, ``ctx.output(node)``, ``ctx.shape(name)``, ``ctx.memo``.

Rules use plain batched tensor ops, no autograd hooks, so they stay differentiable.
``needs_inputs`` / ``needs_output`` tell the forward pass which activations to keep.
"""

from __future__ import annotations

import torch

from ..engine.ops import unbroadcast
from ..engine.rule import Rule  # noqa: F401  (the interface, declared by the engine)


def safe_divide(r: torch.Tensor, z: torch.Tensor, scale: float = 1.0,
                reuse_z: bool = False) -> torch.Tensor:
    """``scale * r / z`` with 0 where ``z == 0`` (there every contribution to z is 0 too).

    ``reuse_z=True`` says ``z`` is a temporary of the caller: the result is written
    into it (saves one full-size allocation per layer). Ignored while autograd
    records (second-order use stays exact).
    """
    if reuse_z and not (torch.is_grad_enabled() and (r.requires_grad or z.requires_grad)):
        z.masked_fill_(z == 0, 1)
        out = torch.div(r, z, out=z)
        return out.mul_(scale) if scale != 1 else out
    out = r / torch.where(z == 0, torch.ones_like(z), z)
    return out * scale if scale != 1 else out


def inplace_ok(*ts: torch.Tensor) -> bool:
    """Whether a rule may overwrite its temporaries (not while autograd records them)."""
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in ts))


def fan_of(a: torch.Tensor, r: torch.Tensor) -> int:
    """Relevance samples per activation sample (``r`` has ``fan`` times ``a``'s batch)."""
    return r.shape[0] // a.shape[0]


def times(a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``a * r`` for a forward-pass tensor ``a`` ``(N, ...)`` and relevance ``r``
    ``(N * fan, ...)``: ``a[i]`` multiplies the ``fan`` samples ``r[i * fan + j]``."""
    fan = fan_of(a, r)
    if fan == 1:
        return a * r
    return (a.unsqueeze(1) * r.unflatten(0, (-1, fan))).flatten(0, 1)


def cached(ctx, node, key, fn):
    """``fn()``, computed once per node and ``key`` for all walks over one forward
    pass (``ctx.memo``); without a memo simply ``fn()``."""
    memo = ctx.memo
    if memo is None:
        return fn()
    k = (node.name, key)
    v = memo.get(k)
    if v is None:
        v = memo[k] = fn()
    return v


def zero_free(z: torch.Tensor, fresh: bool = True) -> torch.Tensor:
    """``z`` with zeros replaced by 1 (in place if ``fresh``: the caller owns ``z``)."""
    if fresh and inplace_ok(z):
        return z.masked_fill_(z == 0, 1)
    return torch.where(z == 0, torch.ones_like(z), z)


def divide(r: torch.Tensor, den: torch.Tensor, scale: float = 1.0,
           into: torch.Tensor | None = None) -> torch.Tensor:
    """``scale * r / den`` for a zero-free ``den`` ``(N, ...)`` broadcast over the
    relevance's fan (see :func:`times`); ``into``: write the result there."""
    fan = fan_of(den, r)
    if fan == 1:
        out = r / den if into is None else torch.div(r, den, out=into)
    else:
        rv, dv = r.unflatten(0, (-1, fan)), den.unsqueeze(1)
        out = (rv / dv if into is None
               else torch.div(rv, dv, out=into.unflatten(0, (-1, fan)))).flatten(0, 1)
    if scale == 1:
        return out
    return out.mul_(scale) if inplace_ok(out) else out * scale


def ratio(ctx, node, key, z_fn, r: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale * r / z`` (0 where ``z == 0``) for the fresh forward-pass tensor
    ``z = z_fn()``. A single walk overwrites ``z``; walks sharing a forward pass
    compute its zero-free form once (``ctx.memo``) and broadcast it over the fan."""
    if ctx.memo is None:
        z = z_fn()
        if z.shape[0] == r.shape[0]:
            return safe_divide(r, z, scale, reuse_z=True)
        return divide(r, zero_free(z), scale)
    return divide(r, cached(ctx, node, key, lambda: zero_free(z_fn())), scale)


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + eps * sign(z)`` with sign(0) = +1 (the epsilon rule's stabiliser)."""
    if eps == 0:
        return z
    return z + eps * (2 * (z >= 0).to(z.dtype) - 1)


class Pass(Rule):
    """Relevance passes unchanged (ReLU under LRP, identity, dropout in eval)."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [r]


class Reshape(Rule):
    """Flatten / view / reshape: reshape the relevance back to the input's shape."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [r.reshape(ctx.shape(node.inputs[0]))]


class CatSplit(Rule):
    """``torch.cat``: each input gets its slice of the relevance."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        dim = node.op.dim
        sizes = [ctx.shape(i)[dim] for i in node.inputs]
        return list(r.split(sizes, dim=dim))


class AddSplit(Rule):
    """Residual addition, relevance split in proportion to each summand (z-rule).

    ``R_i = x_i / (sum_j x_j + eps sign) * R``; with ``eps = 0`` where the sum is 0
    the relevance is dropped (it is 0 under conservative rules anyway).
    """

    def __init__(self, eps: float = 0.0):
        self.eps = eps

    needs_output = True

    def backward(self, ctx, node, r):
        xs = ctx.inputs(node)  # with `x + constant`, the constant keeps its share
        z = ctx.output(node)
        den = cached(ctx, node, ("add", self.eps),
                     lambda: zero_free(stabilize(z, self.eps), fresh=False))
        s = divide(r, den)
        consts = node.constant_inputs or (False,) * len(xs)
        return [None if c else unbroadcast(times(x, s), ctx.shape(i))
                for x, i, c in zip(xs, node.inputs, consts)]


class AddPass(Rule):
    """Residual addition under the gradient: each summand gets the full signal
    (summed over the dimensions it was broadcast along)."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        consts = node.constant_inputs or (False,) * len(node.inputs)
        return [None if c else unbroadcast(r, ctx.shape(i))
                for i, c in zip(node.inputs, consts)]


class StackSplit(Rule):
    """``torch.stack``: each input gets its slice of the relevance."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return list(r.unbind(node.op.dim))


class Absorb(Rule):
    """No relevance (or gradient) flows to the inputs: comparisons (zero derivative)."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [None for _ in node.inputs]


class WhereSelect(Rule):
    """``torch.where(mask, a, b)``: each element's relevance (or gradient) goes to the
    branch it was taken from; the mask gets none."""

    def backward(self, ctx, node, r):
        mask = ctx.inputs(node)[0]
        out = [None]
        for side, name in zip(node.op.branches, node.inputs[1:]):
            keep = mask if side == "a" else ~mask
            out.append(unbroadcast(times(keep.to(r.dtype), r), ctx.shape(name)))
        return out


class Transposed(Rule):
    """Rearrangements (permute, transpose, indexing, chunk, roll, pad, ...): the op's
    exact transpose moves the relevance back (the same under every method)."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [node.op.transpose(r, ctx.shape(node.inputs[0]))]
