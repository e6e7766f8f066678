"""Pointwise nonlinearities ``y = f(x)``, one class each.

Every class has ``fn(x)`` (the function, with the node's own settings) and
``derivative(x)`` (``f'(x)``; by default computed exactly with autograd on ``fn``).
Their sign behaviour: ReLU-like ops (ReLU, ReLU6 / Hardtanh with ``min >= 0``,
sigmoid, hardsigmoid, softplus, abs) are non-negative for every input; the others
(LeakyReLU, ELU, SiLU, GELU, Hardswish, Mish, tanh) map ``x >= 0`` to ``f(x) >= 0``,
so they keep a non-negative input non-negative.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..fxutil import call_arguments
from .base import Op, UnsupportedOperation, register


class Pointwise(Op):
    """Base class: an elementwise nonlinearity of one activation."""

    name = "pointwise"

    def fn(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """``f'(x)``, exactly (autograd through :meth:`fn`; at kinks, autograd's choice)."""
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            (d,) = torch.autograd.grad(self.fn(xi).sum(), xi)
        return d

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)

    @classmethod
    def from_fx(cls, fxn, module, info):
        return cls(**settings(fxn, module, cls.defaults()))

    @classmethod
    def defaults(cls) -> dict:
        """The settings of the op and their defaults (the ``__init__`` keywords)."""
        return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.defaults())
        return f"{type(self).__name__}({kw})"


def settings(fxn: fx.Node, module: nn.Module | None, defaults: dict) -> dict:
    """The op's settings: the module's attributes, or the function call's arguments
    (:func:`~liecheck.engine.fxutil.call_arguments`)."""
    if module is not None:
        return {k: getattr(module, k) for k in defaults}
    return call_arguments(fxn, defaults)


@register
class ReLU(Pointwise):
    """``max(0, x)``."""

    name = "relu"
    modules = (nn.ReLU,)
    functions = (F.relu, torch.relu, torch.relu_, F.relu_)
    methods = ("relu", "relu_")

    def __init__(self, claimed: bool = False):
        self.claimed = claimed

    @classmethod
    def from_fx(cls, fxn, module, info):
        return cls()

    def fn(self, x):
        return torch.relu(x)

    def derivative(self, x):
        return (x > 0).to(x.dtype)

    def nonneg(self, inputs):
        # an op only *declared* to be a ReLU (register_op) gets no sign claim
        return not self.claimed


@register
class Hardtanh(Pointwise):
    """``clamp(x, min_val, max_val)``: ``nn.Hardtanh``, ``nn.ReLU6``, ``F.relu6``,
    ``torch.clamp`` / ``clip`` with constant bounds."""

    name = "clamp"
    modules = (nn.Hardtanh,)
    functions = (F.hardtanh, F.relu6, torch.clamp, torch.clip)
    methods = ("clamp", "clip")

    def __init__(self, min_val: float | None = -1.0, max_val: float | None = 1.0):
        self.min_val, self.max_val = min_val, max_val

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            return cls(module.min_val, module.max_val)
        if fxn.target is F.relu6:
            return cls(0.0, 6.0)
        if fxn.target is F.hardtanh:
            return cls(**settings(fxn, None, cls.defaults()))
        s = settings(fxn, None, {"min": None, "max": None})
        if s["min"] is None and s["max"] is None:
            raise UnsupportedOperation(f"node '{fxn.name}': clamp without bounds")
        return cls(s["min"], s["max"])

    def fn(self, x):
        return torch.clamp(x, self.min_val, self.max_val)

    def nonneg(self, inputs):
        lo, hi = self.min_val, self.max_val
        if lo is not None and lo >= 0:
            return True
        return bool(inputs) and all(inputs) and (hi is None or hi >= 0)


@register
class LeakyReLU(Pointwise):
    name = "leaky_relu"
    modules, functions = (nn.LeakyReLU,), (F.leaky_relu,)

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def fn(self, x):
        return F.leaky_relu(x, self.negative_slope)


@register
class ELU(Pointwise):
    name = "elu"
    modules, functions = (nn.ELU,), (F.elu,)

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fn(self, x):
        return F.elu(x, self.alpha)


@register
class SiLU(Pointwise):
    name = "silu"
    modules, functions = (nn.SiLU,), (F.silu,)

    def fn(self, x):
        return F.silu(x)


@register
class GELU(Pointwise):
    name = "gelu"
    modules, functions = (nn.GELU,), (F.gelu,)

    def __init__(self, approximate: str = "none"):
        self.approximate = approximate

    def fn(self, x):
        return F.gelu(x, approximate=self.approximate)


@register
class Hardswish(Pointwise):
    name = "hardswish"
    modules, functions = (nn.Hardswish,), (F.hardswish,)

    def fn(self, x):
        return F.hardswish(x)


@register
class Mish(Pointwise):
    name = "mish"
    modules, functions = (nn.Mish,), (F.mish,)

    def fn(self, x):
        return F.mish(x)


@register
class Tanh(Pointwise):
    name = "tanh"
    modules, functions, methods = (nn.Tanh,), (torch.tanh, F.tanh), ("tanh",)

    def fn(self, x):
        return torch.tanh(x)


class _Positive(Pointwise):
    """Ops whose output is non-negative for every input."""

    def nonneg(self, inputs):
        return True


@register
class Sigmoid(_Positive):
    name = "sigmoid"
    modules, functions, methods = (nn.Sigmoid,), (torch.sigmoid, F.sigmoid), ("sigmoid",)

    def fn(self, x):
        return torch.sigmoid(x)


@register
class Hardsigmoid(_Positive):
    name = "hardsigmoid"
    modules, functions = (nn.Hardsigmoid,), (F.hardsigmoid,)

    def fn(self, x):
        return F.hardsigmoid(x)


@register
class Softplus(_Positive):
    name = "softplus"
    modules, functions = (nn.Softplus,), (F.softplus,)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta, self.threshold = beta, threshold

    def fn(self, x):
        return F.softplus(x, self.beta, self.threshold)


@register
class Abs(_Positive):
    name = "abs"
    functions, methods = (torch.abs, torch.absolute), ("abs", "absolute")

    def fn(self, x):
        return torch.abs(x)
