"""Linear operations of the canonical graph, as plain batched tensor functions.

Every linear layer (conv, dense, stand-alone BatchNorm, average pooling) is a
:class:`LinearOp` with

* ``op(x, weight=None, bias=False)``: the layer with its own or a substituted
  weight (``W+``, ``W**2``, a pattern, ...), with or without (a substituted) bias;
* ``op.transpose(g, x_shape, weight=None)``: multiplication with the transposed
  weight (the backward-data pass), again with its own or a substituted weight.

Rules are written once against this interface and work for every layer type.
``forward_stacked`` / ``transpose_stacked`` (and the list forms ``forward_many`` /
``transpose_many``) run several weights as one call with stacked weights
(alpha-beta's ``[W+, W-]``); the ``[W+, W-]`` stack is built once and cached.
Pooling ops have no weight tensor: their implicit weights are non-negative
(``has_negative_weights`` is False), so the ``W-`` terms vanish.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

_USE_OWN = object()


class LinearOp:
    """Base class; see the module docstring."""

    has_negative_weights = True

    def __call__(self, x, weight=None, bias=_USE_OWN):
        raise NotImplementedError

    def transpose(self, g, x_shape, weight=None):
        raise NotImplementedError

    def to(self, device):
        new = replace(self)
        if new.weight is not None:
            new.weight = new.weight.to(device)
        if new.bias is not None:
            new.bias = new.bias.to(device)
        return new

    def _fusable(self, weights) -> bool:
        """Whether stacked weights can run as one call (subclasses say)."""
        return False

    def forward_stacked(self, x, weights, biases=None) -> torch.Tensor:
        """``torch.cat(forward_many(x, weights, biases), dim=1)``: one tensor of shape
        ``(N, sum of the weights' output channels, ...)``, one call where fusable.
        Rules may modify it in place (it is a fresh tensor)."""
        if not self._fusable(weights):
            return torch.cat(self._forward_each(x, weights, biases), dim=1)
        b = None
        if biases is not None and any(bb is not None for bb in biases):
            b = torch.cat([bb if bb is not None else w.new_zeros(w.shape[0])
                           for bb, w in zip(biases, weights)])
        return self(x, self._stacked(weights), b)

    def forward_many(self, x, weights, biases=None):
        """``[op(x, w, b) for w, b in zip(weights, biases)]``, fused where possible."""
        if not self._fusable(weights):
            return self._forward_each(x, weights, biases)
        y = self.forward_stacked(x, weights, biases)
        return list(y.split([w.shape[0] for w in weights], dim=1))

    def _forward_each(self, x, weights, biases):
        biases = biases or [None] * len(weights)
        return [self(x, w, b) for w, b in zip(weights, biases)]

    def transpose_stacked(self, g, x_shape, weights):
        """``transpose_many`` with the signals already stacked along dim 1 (as
        ``forward_stacked`` returns them): no ``torch.cat`` of the signals."""
        if self._fusable(weights):
            return self.transpose(g, x_shape, self._stacked(weights))
        gs = list(g.split([w.shape[0] for w in weights], dim=1))
        return self._transpose_each(gs, x_shape, weights)

    def transpose_many(self, gs, x_shape, weights):
        """``sum(op.transpose(g, x_shape, w) for g, w in zip(gs, weights))``, fused."""
        if self._fusable(weights):
            return self.transpose_stacked(torch.cat(gs, dim=1), x_shape, weights)
        return self._transpose_each(gs, x_shape, weights)

    def _transpose_each(self, gs, x_shape, weights):
        out = None
        for g, w in zip(gs, weights):
            t = self.transpose(g, x_shape, w)
            out = t if out is None else out + t
        return out

    # weight splits, cached: rules ask for them on every call. The cache belongs to
    # one weight tensor at one version: replacing ``op.weight`` or modifying it in
    # place (e.g. parameter randomisation) recomputes the splits.
    def _weight_cache(self) -> dict:
        w = self.weight
        try:
            version = w._version
        except RuntimeError:  # inference tensors have no version counter
            version = None
        c = self.__dict__.get("_wcache")
        if c is None or c["w"] is not w or c["version"] != version:
            c = {"w": w, "version": version}
            self.__dict__["_wcache"] = c
        return c

    def pos(self) -> torch.Tensor:
        """``W+ = max(0, W)`` (cached; a view into the ``[W+; W-]`` stack once built)."""
        c = self._weight_cache()
        if "pos" not in c:
            c["pos"] = self.weight.clamp(min=0)
        return c["pos"]

    def neg(self) -> torch.Tensor:
        """``W- = min(0, W)`` (a view into the cached ``[W+; W-]`` stack)."""
        return self.split()[1]

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W+, W-)`` as two views of one cached ``[W+; W-]`` stack, so that fused
        calls with ``[W+, W-]`` use the stack directly (no copy per call)."""
        c = self._weight_cache()
        if "pos_neg" not in c:
            w = self.weight
            stack = torch.cat([w.clamp(min=0), w.clamp(max=0)])
            k = w.shape[0]
            c["pos_neg"], c["pos"], c["neg"] = stack, stack[:k], stack[k:]
        return c["pos"], c["neg"]

    def _stacked(self, weights) -> torch.Tensor:
        """``torch.cat(weights)``, or the cached stack for exactly ``[W+, W-]``."""
        if self.weight is not None and len(weights) == 2:
            c = self._weight_cache()
            if ("pos_neg" in c and weights[0] is c["pos"] and weights[1] is c["neg"]):
                return c["pos_neg"]
        return torch.cat(weights)


def _bias(op: LinearOp, bias):
    return op.bias if bias is _USE_OWN else bias


def _conv2d_input(x_shape, weight, g, stride, padding, dilation, groups) -> torch.Tensor:
    """``torch.nn.grad.conv2d_input`` without its hidden copy: that passes an expanded
    one-element "input", which ``convolution_backward`` first makes contiguous (a
    full-size fill on every call). The input's values are never read for the input
    gradient, so an uninitialised contiguous tensor gives the same result."""
    dummy = g.new_empty(x_shape)
    return torch.ops.aten.convolution_backward(
        g, dummy, weight, None, _pair(stride), _pair(padding), _pair(dilation), False, [0],
        groups, (True, False, False))[0]


@dataclass(eq=False)
class ConvOp(LinearOp):
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    @classmethod
    def from_module(cls, m: nn.Conv2d) -> ConvOp:
        if isinstance(m.padding, str):
            raise TypeError(f"padding='{m.padding}' is not supported; use explicit padding")
        return cls(m.weight.detach(), None if m.bias is None else m.bias.detach(),
                   m.stride, m.padding, m.dilation, m.groups)

    def __call__(self, x, weight=None, bias=_USE_OWN):
        w = self.weight if weight is None else weight
        return F.conv2d(x, w, _bias(self, bias), self.stride, self.padding, self.dilation,
                        self.groups)

    def transpose(self, g, x_shape, weight=None):
        w = self.weight if weight is None else weight
        return _conv2d_input(x_shape, w, g, self.stride, self.padding, self.dilation,
                             self.groups)

    def _fusable(self, weights) -> bool:
        return self.groups == 1 and all(w is not None for w in weights)

    def fold(self, bn: AffineOp) -> ConvOp:
        w = self.weight * bn.scale.view(-1, 1, 1, 1)
        b = bn.shift if self.bias is None else self.bias * bn.scale + bn.shift
        return replace(self, weight=w, bias=b)


@dataclass(eq=False)
class DenseOp(LinearOp):
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __post_init__(self):
        self.weight = self.weight.detach()
        self.bias = None if self.bias is None else self.bias.detach()

    def __call__(self, x, weight=None, bias=_USE_OWN):
        w = self.weight if weight is None else weight
        return F.linear(x, w, _bias(self, bias))

    def transpose(self, g, x_shape, weight=None):
        w = self.weight if weight is None else weight
        return (g @ w).reshape(x_shape)

    def _fusable(self, weights) -> bool:
        return all(w is not None for w in weights)

    def fold(self, bn: AffineOp) -> DenseOp:
        w = self.weight * bn.scale.view(-1, 1)
        b = bn.shift if self.bias is None else self.bias * bn.scale + bn.shift
        return DenseOp(w, b)


@dataclass(eq=False)
class AffineOp(LinearOp):
    """Per-channel affine map y = scale * x + shift (eval-mode BatchNorm).

    ``weight`` is the diagonal (``scale``) so that W+ / W- splits work unchanged.
    """

    scale: torch.Tensor
    shift: torch.Tensor

    @classmethod
    def from_batchnorm(cls, m: nn.BatchNorm1d | nn.BatchNorm2d) -> AffineOp:
        if m.running_var is None:
            raise TypeError(f"BatchNorm without running statistics ({m}) is not supported")
        scale = torch.rsqrt(m.running_var + m.eps)
        shift = -m.running_mean * scale
        if m.affine:
            scale = scale * m.weight
            shift = shift * m.weight + m.bias
        return cls(scale.detach(), shift.detach())

    @property
    def weight(self):
        return self.scale

    @property
    def bias(self):
        return self.shift

    def to(self, device):
        return AffineOp(self.scale.to(device), self.shift.to(device))

    def _view(self, t, x):
        return t.view(1, -1, *([1] * (x.dim() - 2)))

    def __call__(self, x, weight=None, bias=_USE_OWN):
        w = self.scale if weight is None else weight
        b = self.shift if bias is _USE_OWN else bias
        y = x * self._view(w, x)
        return y if b is None else y + self._view(b, x)

    def transpose(self, g, x_shape, weight=None):
        w = self.scale if weight is None else weight
        return g * self._view(w, g)


@dataclass(eq=False)
class AvgPoolOp(LinearOp):
    kernel_size: tuple
    stride: tuple
    padding: tuple
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None
    has_negative_weights = False
    weight = None  # implicit non-negative weights
    bias = None

    @classmethod
    def from_module(cls, m: nn.AvgPool2d) -> AvgPoolOp:
        k = nn.modules.utils._pair(m.kernel_size)
        s = nn.modules.utils._pair(m.stride if m.stride is not None else m.kernel_size)
        return cls(k, s, nn.modules.utils._pair(m.padding), m.ceil_mode, m.count_include_pad,
                   m.divisor_override)

    def to(self, device):
        return self

    def __call__(self, x, weight=None, bias=_USE_OWN):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def transpose(self, g, x_shape, weight=None):
        x = g.new_empty(x_shape)
        return torch.ops.aten.avg_pool2d_backward(
            g, x, list(self.kernel_size), list(self.stride), list(self.padding), self.ceil_mode,
            self.count_include_pad, self.divisor_override)


@dataclass(eq=False)
class AdaptiveAvgPoolOp(LinearOp):
    output_size: tuple | int
    has_negative_weights = False
    weight = None  # implicit non-negative weights
    bias = None

    def to(self, device):
        return self

    def __call__(self, x, weight=None, bias=_USE_OWN):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def transpose(self, g, x_shape, weight=None):
        x = g.new_empty(x_shape)
        return torch.ops.aten._adaptive_avg_pool2d_backward(g, x)
