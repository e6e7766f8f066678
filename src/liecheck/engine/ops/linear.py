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

import inspect
import math
import operator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.utils import _pair

from ..fxutil import bind, call_arguments, dims_of, is_number, refuse_batch_dims
from .base import Op, UnsupportedOperation, register

_USE_OWN = object()


class LinearOp(Op):
    """Base class of the linear node types; see the module docstring."""

    has_negative_weights = True
    computes = True
    name = "linear"
    out_dim = 1  # the output's channel dimension (dense layers: the last)

    def forward(self, x):
        return self(x)

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
            return torch.cat(self._forward_each(x, weights, biases), dim=self.out_dim)
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
        return list(y.split([w.shape[0] for w in weights], dim=self.out_dim))

    def _forward_each(self, x, weights, biases):
        biases = biases or [None] * len(weights)
        return [self(x, w, b) for w, b in zip(weights, biases)]

    def transpose_stacked(self, g, x_shape, weights):
        """``transpose_many`` with the signals already stacked along dim 1 (as
        ``forward_stacked`` returns them): no ``torch.cat`` of the signals."""
        if self._fusable(weights):
            return self.transpose(g, x_shape, self._stacked(weights))
        gs = list(g.split([w.shape[0] for w in weights], dim=self.out_dim))
        return self._transpose_each(gs, x_shape, weights)

    def transpose_many(self, gs, x_shape, weights):
        """``sum(op.transpose(g, x_shape, w) for g, w in zip(gs, weights))``, fused."""
        if self._fusable(weights):
            return self.transpose_stacked(torch.cat(gs, dim=self.out_dim), x_shape, weights)
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


@register
@dataclass(eq=False)
class ConvOp(LinearOp):
    """``nn.Conv2d`` (zero padding; other padding modes: :class:`PaddedConvOp`)."""

    name, layer, modules = "conv", "conv", (nn.Conv2d,)
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    @classmethod
    def from_fx(cls, fxn, module, info):
        return cls.from_module(module)

    @classmethod
    def from_module(cls, m: nn.Conv2d) -> ConvOp:
        if isinstance(m.padding, str):
            raise TypeError(f"padding='{m.padding}' is not supported; use explicit padding")
        w, b = m.weight.detach(), None if m.bias is None else m.bias.detach()
        if m.padding_mode != "zeros":
            return PaddedConvOp(w, b, m.stride, (0, 0), m.dilation, m.groups,
                                m._reversed_padding_repeated_twice, m.padding_mode)
        return cls(w, b, m.stride, m.padding, m.dilation, m.groups)

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
class PaddedConvOp(ConvOp):
    """``nn.Conv2d`` with ``padding_mode`` reflect, replicate or circular: the padding
    ``P`` (each padded value a copy of an input) then a convolution without padding,
    ``W P``. Its transpose is ``P^T W^T``; since ``P`` copies, ``(W P)+ = W+ P``, so
    every rule that substitutes weights stays exact."""

    pad: tuple = ()
    mode: str = "reflect"

    def __call__(self, x, weight=None, bias=_USE_OWN):
        return super().__call__(F.pad(x, self.pad, self.mode), weight, bias)

    def transpose(self, g, x_shape, weight=None):
        padded = (*x_shape[:2], x_shape[2] + self.pad[2] + self.pad[3],
                  x_shape[3] + self.pad[0] + self.pad[1])
        gp = super().transpose(g, padded, weight)
        with torch.enable_grad():
            z = gp.new_zeros(x_shape, requires_grad=True)
            (gx,) = torch.autograd.grad(F.pad(z, self.pad, self.mode), z, gp)
        return gx


@register
@dataclass(eq=False)
class DenseOp(LinearOp):
    """``nn.Linear`` and ``F.linear`` with a constant weight and bias (on the last
    dimension of any input)."""

    name, layer, modules = "dense", "dense", (nn.Linear,)
    functions = (F.linear,)
    out_dim = -1
    weight: torch.Tensor
    bias: torch.Tensor | None

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            return cls(module.weight, module.bias)
        a = _bound(fxn, F.linear)
        w, b = a.get("weight"), a.get("bias")
        if not info.is_activation(a.get("input")) or not info.is_constant(w) or (
                b is not None and not info.is_constant(b)):
            raise UnsupportedOperation(f"node '{fxn.name}': F.linear needs an activation "
                                       "as input and a constant weight and bias")
        wv, bv = info.constants[w.name], None if b is None else info.constants[b.name]
        if wv is None or (b is not None and bv is None):
            raise UnsupportedOperation(f"node '{fxn.name}': F.linear's weight is known only "
                                       "at run time")
        return cls(wv, bv)

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


@register
@dataclass(eq=False)
class AffineOp(LinearOp):
    """Per-channel affine map y = scale * x + shift (eval-mode BatchNorm).

    ``weight`` is the diagonal (``scale``) so that W+ / W- splits work unchanged.
    """

    name, layer, modules = "affine", "affine", (nn.BatchNorm1d, nn.BatchNorm2d)
    scale: torch.Tensor
    shift: torch.Tensor

    @classmethod
    def from_fx(cls, fxn, module, info):
        return cls.from_batchnorm(module)

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
        return replace(self, scale=self.scale.to(device), shift=self.shift.to(device))

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


class PoolingOp(LinearOp):
    """Linear ops with implicit non-negative weights and no bias (average pooling,
    means): ``op(x, weight, bias)`` ignores ``weight``."""

    layer = "pool"
    has_negative_weights = False
    weight = None
    bias = None

    def to(self, device):
        return self

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)


@register
@dataclass(eq=False)
class AvgPoolOp(PoolingOp):
    """``nn.AvgPool2d`` and ``F.avg_pool2d``."""

    name, modules, functions = "avgpool", (nn.AvgPool2d,), (F.avg_pool2d,)
    kernel_size: tuple
    stride: tuple
    padding: tuple
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            return cls.from_module(module)
        b = _bound(fxn, F.avg_pool2d)
        k = _pair(b["kernel_size"])
        stride = b.get("stride") or k
        return cls(k, _pair(stride), _pair(b.get("padding", 0)), b.get("ceil_mode", False),
                   b.get("count_include_pad", True), b.get("divisor_override"))

    @classmethod
    def from_module(cls, m: nn.AvgPool2d) -> AvgPoolOp:
        k = nn.modules.utils._pair(m.kernel_size)
        s = nn.modules.utils._pair(m.stride if m.stride is not None else m.kernel_size)
        return cls(k, s, nn.modules.utils._pair(m.padding), m.ceil_mode, m.count_include_pad,
                   m.divisor_override)

    def __call__(self, x, weight=None, bias=_USE_OWN):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def transpose(self, g, x_shape, weight=None):
        x = g.new_empty(x_shape)
        return torch.ops.aten.avg_pool2d_backward(
            g, x, list(self.kernel_size), list(self.stride), list(self.padding), self.ceil_mode,
            self.count_include_pad, self.divisor_override)


@register
@dataclass(eq=False)
class AdaptiveAvgPoolOp(PoolingOp):
    """``nn.AdaptiveAvgPool2d`` and ``F.adaptive_avg_pool2d``."""

    name = "avgpool"
    modules, functions = (nn.AdaptiveAvgPool2d,), (F.adaptive_avg_pool2d,)
    output_size: tuple | int

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            return cls(module.output_size)
        return cls(_bound(fxn, F.adaptive_avg_pool2d)["output_size"])

    def __call__(self, x, weight=None, bias=_USE_OWN):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def transpose(self, g, x_shape, weight=None):
        x = g.new_empty(x_shape)
        return torch.ops.aten._adaptive_avg_pool2d_backward(g, x)


# argument names of functions whose builtins have no Python signature
_SIGNATURES = {
    F.avg_pool2d: ("input", "kernel_size", "stride", "padding", "ceil_mode",
                   "count_include_pad", "divisor_override"),
    F.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                   "return_indices"),
    F.linear: ("input", "weight", "bias"),
}


def _bound(fxn: fx.Node, fn) -> dict:
    """The call's arguments by name (defaults left out), refused if they do not bind."""
    names = _SIGNATURES.get(fn)
    if names is not None:
        if len(fxn.args) > len(names) or set(fxn.kwargs) - set(names):
            raise UnsupportedOperation(f"node '{fxn.name}': cannot read the arguments of "
                                       f"{getattr(fn, '__name__', fn)}")
        return {**dict(zip(names, fxn.args)), **fxn.kwargs}
    b = bind(fxn) if fxn.op == "call_function" and fxn.target is fn else None
    if b is None:
        try:
            b = inspect.signature(fn).bind(*fxn.args, **fxn.kwargs)
        except (TypeError, ValueError) as exc:
            raise UnsupportedOperation(f"node '{fxn.name}': cannot read the arguments of "
                                       f"{getattr(fn, '__name__', fn)} ({exc})") from exc
    return dict(b.arguments)


@register
@dataclass(eq=False)
class MeanOp(PoolingOp):
    """``x.mean(dims)``, ``torch.mean``, ``x.sum(dims)``, ``torch.sum`` over non-batch
    dimensions: a linear op with the non-negative weights ``1 / count`` (or 1)."""

    name = "mean"
    functions, methods = (torch.mean, torch.sum), ("mean", "sum")
    dims: tuple
    keepdim: bool
    average: bool
    node: str = ""  # the node's name, for messages

    @classmethod
    def from_fx(cls, fxn, module, info):
        a = call_arguments(fxn, {"dim": None, "keepdim": False, "dtype": None})
        fname = fxn.target if isinstance(fxn.target, str) else fxn.target.__name__
        dims = dims_of(a["dim"])
        if a["dim"] is None or a["dtype"] is not None or not all(
                isinstance(d, int) for d in dims):
            raise UnsupportedOperation(
                f"node '{fxn.name}': {fname}() needs explicit constant dimensions that "
                "leave the batch alone (e.g. x.mean((2, 3))); a reduction over the batch or "
                "with dtype= has no rule.")
        if 0 in dims:  # negative dims are checked on the first forward (ndim known)
            refuse_batch_dims(fxn.name, f"{fname}()", dims, 1)
        return cls(dims, bool(a["keepdim"]), fname == "mean", fxn.name)

    def forward(self, x):
        refuse_batch_dims(self.node, "a reduction", self.dims, x.dim())
        return self(x)

    def __call__(self, x, weight=None, bias=_USE_OWN):
        if self.average:
            return x.mean(self.dims, keepdim=self.keepdim)
        return x.sum(self.dims, keepdim=self.keepdim)

    def transpose(self, g, x_shape, weight=None):
        dims = sorted(d % len(x_shape) for d in self.dims)
        if not self.keepdim:
            for d in dims:
                g = g.unsqueeze(d)
        g = g.expand(x_shape)
        if self.average:
            count = math.prod(x_shape[d] for d in dims)
            return g / count
        return g.contiguous()


_MUL_FUNCS = (operator.mul, torch.mul, torch.multiply)
_MUL_METHODS = ("mul", "multiply", "__mul__", "__rmul__")
_DIV_FUNCS = (operator.truediv, torch.div, torch.divide, torch.true_divide)
_DIV_METHODS = ("div", "divide", "true_divide", "__truediv__")
_NEG_FUNCS = (operator.neg, torch.neg, torch.negative)
_NEG_METHODS = ("neg", "negative", "__neg__")


@register
@dataclass(eq=False)
class Scale(AffineOp):
    """``c * x``, ``x / d``, ``-x`` for a constant number: a diagonal linear layer with
    one shared scale (``layer="affine"``)."""

    name = "scale"
    modules = ()
    functions = _MUL_FUNCS + _DIV_FUNCS + _NEG_FUNCS
    methods = _MUL_METHODS + _DIV_METHODS + _NEG_METHODS

    @classmethod
    def from_fx(cls, fxn, module, info):
        c = scale_factor(fxn, info)
        if c is None:
            return None
        t = torch.tensor([c], dtype=info.dtype)
        return cls(t, torch.zeros_like(t))


def scale_factor(fxn: fx.Node, info) -> float | None:
    """``c`` if ``fxn`` computes ``c * x`` (``x * c``, ``c * x``, ``x / d``, ``-x``) for one
    activation ``x`` and a constant number; None if the call involves another tensor
    (a product of two tensors, a constant tensor); raises for other arguments."""
    t, args, kwargs = fxn.target, fxn.args, dict(fxn.kwargs)
    tensors = [a for a in fxn.all_input_nodes if info.is_tensor(a)]
    neg = t in _NEG_FUNCS or t in _NEG_METHODS
    div = t in _DIV_FUNCS or t in _DIV_METHODS
    if div and len(args) == 2 and info.is_activation(args[1]):
        raise UnsupportedOperation(
            f"node '{fxn.name}': division by the activation '{args[1].name}' has no rule: "
            "only multiplication or true division of one tensor by a finite, nonzero "
            "constant (a number or a model parameter / buffer), or the product of two "
            "activations, is supported.")
    if len(tensors) != 1 or not info.is_activation(tensors[0]):
        return None
    first_is_tensor = args and args[0] is tensors[0]
    c = None
    if neg and len(args) == 1 and not kwargs:
        c = -1.0
    elif not neg and not div and len(args) == 2 and not kwargs:
        const = args[1] if first_is_tensor else args[0]
        c = float(const) if is_number(const) else None
    elif (div and len(args) == 2 and first_is_tensor
          and kwargs.get("rounding_mode") is None and set(kwargs) <= {"rounding_mode"}
          and is_number(args[1]) and args[1] != 0):
        c = 1.0 / args[1]
    if c is None or not math.isfinite(c):
        name = getattr(t, "__name__", t)
        raise UnsupportedOperation(
            f"node '{fxn.name}': {fxn.op} '{name}' on '{tensors[0].name}' has no rule: only "
            "multiplication or true division of one tensor by a finite, nonzero constant "
            "(a number or a model parameter / buffer), or the product of two activations, "
            "is supported.")
    return c


@register
@dataclass(eq=False)
class ConstScale(LinearOp):
    """``w * x`` or ``x / w`` for a constant tensor ``w`` (a parameter or buffer, e.g.
    ConvNeXt's layer scale) broadcast against the activation ``x``: a diagonal linear
    layer (``layer="affine"``) whose weight is ``w``."""

    name, layer = "scale", "affine"
    functions = _MUL_FUNCS + _DIV_FUNCS
    methods = _MUL_METHODS + _DIV_METHODS
    weight: torch.Tensor
    bias = None

    @classmethod
    def from_fx(cls, fxn, module, info):
        if fxn.kwargs or len(fxn.args) != 2:
            return None
        a, b = fxn.args
        div = fxn.target in _DIV_FUNCS or fxn.target in _DIV_METHODS
        if info.is_activation(a) and info.is_constant(b):
            w = info.constants[b.name]
        elif info.is_constant(a) and info.is_activation(b) and not div:
            w = info.constants[a.name]
        else:
            return None
        if w is None:  # a constant known only at run time: not a fixed weight
            return None
        w = w.detach()
        if div:
            if not bool((w != 0).all()):
                raise UnsupportedOperation(f"node '{fxn.name}': division by a constant "
                                           "tensor that holds zeros")
            w = 1 / w
        return cls(w)

    def to(self, device):
        return replace(self, weight=self.weight.to(device))

    def __call__(self, x, weight=None, bias=_USE_OWN):
        w = self.weight if weight is None else weight
        b = None if bias is _USE_OWN else bias
        y = x * w
        return y if b is None else y + b

    def transpose(self, g, x_shape, weight=None):
        w = self.weight if weight is None else weight
        return unbroadcast(g * w, x_shape)


def unbroadcast(t: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Sum ``t`` over the dimensions that broadcasting added or expanded from ``shape``."""
    shape = tuple(shape)
    if tuple(t.shape) == shape:
        return t
    lead = t.dim() - len(shape)
    if lead:
        t = t.sum(tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and t.shape[i] != 1)
    return t.sum(dims, keepdim=True) if dims else t


@register
@dataclass(eq=False)
class InterpolateOp(PoolingOp):
    """``F.interpolate`` / ``nn.Upsample`` in the modes whose weights are non-negative
    (nearest, nearest-exact, (bi/tri)linear, area): a linear op with implicit
    non-negative weights; the transpose is its exact adjoint (autograd). Bicubic has
    negative weights and is refused."""

    name = "interpolate"
    modules, functions = (nn.Upsample,), (F.interpolate,)
    size: tuple | int | None = None
    scale_factor: tuple | float | None = None
    mode: str = "nearest"
    align_corners: bool | None = None

    _MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            a = {k: getattr(module, k) for k in ("size", "scale_factor", "mode", "align_corners")}
        else:
            a = call_arguments(fxn, {"size": None, "scale_factor": None, "mode": "nearest",
                                     "align_corners": None, "recompute_scale_factor": None,
                                     "antialias": False})
            if a.pop("recompute_scale_factor") or a.pop("antialias"):
                raise UnsupportedOperation(f"node '{fxn.name}': interpolate with "
                                           "recompute_scale_factor or antialias has no rule")
        if a["mode"] not in cls._MODES:
            raise UnsupportedOperation(
                f"node '{fxn.name}': interpolate mode '{a['mode']}' has negative weights; "
                f"supported modes: {', '.join(cls._MODES)}")
        return cls(a["size"], a["scale_factor"], a["mode"], a["align_corners"])

    def __call__(self, x, weight=None, bias=_USE_OWN):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def transpose(self, g, x_shape, weight=None):
        with torch.enable_grad():
            z = g.new_zeros(x_shape, requires_grad=True)
            (gx,) = torch.autograd.grad(self(z), z, g)
        return gx
