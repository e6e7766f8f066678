"""Normalisations that divide by a data-dependent scale: LayerNorm (module and
``F.layer_norm``, so ConvNeXt's LayerNorm2d too) and GroupNorm.

``y = (x - mean(x)) / std(x) * weight + bias`` over the normalised dimensions (per
sample, per group). The op exposes :meth:`Norm.stats` (mean and std of each sample's
groups) and :meth:`Norm.groups` (the view that puts each group on one axis), which the
identity rule on the division (AttnLRP: ``std`` held constant) and the exact gradient
need.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .base import Op, UnsupportedOperation, register
from .linear import _bound


class Norm(Op):
    """Base class; ``computes`` from its stored weight and bias."""

    computes = True

    def to(self, device):
        new = copy.copy(self)
        new.weight = None if self.weight is None else self.weight.to(device)
        new.bias = None if self.bias is None else self.bias.to(device)
        return new

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(N, groups, elements per group)``."""
        raise NotImplementedError

    def affine(self, xhat: torch.Tensor, bias: bool = True) -> torch.Tensor:
        """``xhat * weight (+ bias)`` in the input's layout."""
        raise NotImplementedError

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """``weight / std`` broadcast to ``x``'s layout (std of each sample's group)."""
        g = self.grouped(x)
        std = torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + self.eps)
        inv = (1 / std).expand_as(g).reshape(x.shape)
        return self.affine(inv, bias=False)

    def center(self, t: torch.Tensor) -> torch.Tensor:
        """``t - mean(t)`` over each group."""
        g = self.grouped(t)
        return (g - g.mean(-1, keepdim=True)).reshape(t.shape)


@register
class LayerNorm(Norm):
    name = "layernorm"
    modules, functions = (nn.LayerNorm,), (F.layer_norm,)

    def __init__(self, normalized_shape, weight, bias, eps):
        self.normalized_shape = tuple(normalized_shape)
        self.weight, self.bias, self.eps = weight, bias, eps

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            w = None if module.weight is None else module.weight.detach()
            b = None if module.bias is None else module.bias.detach()
            return cls(module.normalized_shape, w, b, module.eps)
        a = _bound(fxn, F.layer_norm)
        vals = {}
        for k in ("weight", "bias"):
            v = a.get(k)
            if v is not None and not info.is_constant(v):
                raise UnsupportedOperation(f"node '{fxn.name}': layer_norm with a {k} that "
                                           "depends on the input has no rule")
            vals[k] = None if v is None else info.constants[v.name].detach()
        shape = a["normalized_shape"]
        return cls(shape if isinstance(shape, (list, tuple)) else (shape,), vals["weight"],
                   vals["bias"], a.get("eps", 1e-5))

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def grouped(self, x):
        k = len(self.normalized_shape)
        return x.reshape(*x.shape[:-k], 1, -1)

    def affine(self, xhat, bias=True):
        y = xhat if self.weight is None else xhat * self.weight
        return y + self.bias if bias and self.bias is not None else y


@register
class GroupNorm(Norm):
    name = "groupnorm"
    modules, functions = (nn.GroupNorm,), ()

    def __init__(self, num_groups, weight, bias, eps):
        self.num_groups, self.weight, self.bias, self.eps = num_groups, weight, bias, eps

    @classmethod
    def from_fx(cls, fxn, module, info):
        w = None if module.weight is None else module.weight.detach()
        b = None if module.bias is None else module.bias.detach()
        return cls(module.num_groups, w, b, module.eps)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def grouped(self, x):
        return x.reshape(x.shape[0], self.num_groups, -1)

    def _view(self, t, x):
        return t.view(1, -1, *([1] * (x.dim() - 2)))

    def affine(self, xhat, bias=True):
        y = xhat if self.weight is None else xhat * self._view(self.weight, xhat)
        return y + self._view(self.bias, xhat) if bias and self.bias is not None else y
