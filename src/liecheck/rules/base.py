"""The rule interface and the structural rules shared by every method.

A rule maps the relevance at a node's output to relevance at each of its inputs:
``rule.backward(ctx, node, r) -> list[Tensor | None]`` (one entry per input; ``None``
means no relevance flows there). ``ctx`` is the walk (:class:`liecheck.walk.Walk`):
``ctx.inputs(node)``, ``ctx.output(node)``, ``ctx.shape(name)``, ``ctx.state``.

Rules use plain batched tensor ops, no autograd hooks, so they stay differentiable.
``needs_inputs`` / ``needs_output`` tell the forward pass which activations to keep.
"""

from __future__ import annotations

import torch


class Rule:
    """Base class. Subclasses implement :meth:`backward`."""

    needs_inputs = True
    needs_output = False

    def backward(self, ctx, node, r: torch.Tensor) -> list[torch.Tensor | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


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
        sizes = [ctx.shape(i)[node.op] for i in node.inputs]
        return list(r.split(sizes, dim=node.op))


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
        s = safe_divide(r, stabilize(z, self.eps))
        return [x * s for x in xs]


class AddPass(Rule):
    """Residual addition under the gradient: each summand gets the full signal."""

    needs_inputs = False

    def backward(self, ctx, node, r):
        return [r for _ in node.inputs]
