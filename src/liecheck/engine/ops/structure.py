"""Node types that route, rearrange or combine activations: the input, constants,
additions, concatenation, max pooling and max reductions, products of two
activations, and the rearrangements (reshape, identity, permute, transpose,
indexing, chunk / split, roll, padding) whose transpose moves relevance back exactly."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..fxutil import bind, call_arguments, dims_of, is_number, refuse_batch_dims
from .base import Op, UnsupportedOperation, register
from .linear import _MUL_FUNCS, _MUL_METHODS, _bound, unbroadcast


class Input(Op):
    """The model's input (the placeholder)."""

    name, routes = "input", 0


class Constant(Op):
    """A tensor that does not depend on the input (a parameter or buffer read directly,
    ``get_attr``); relevance that reaches it is absorbed, like a bias's."""

    name, routes, computes = "constant", 0, True

    def __init__(self, value: torch.Tensor):
        self.value = value.detach()

    def forward(self):
        return self.value

    def to(self, device):
        return Constant(self.value.to(device))

    def nonneg(self, inputs):
        return bool((self.value >= 0).all())


class DerivedConstant(Constant):
    """A tensor computed from constants only (``class_token.expand(n, -1, -1)``, a
    relative position bias gathered from its table): evaluated by its fx call on every
    forward pass, so it follows the parameters it reads; it receives no relevance."""

    name, computes = "constant", False

    def __init__(self, value: torch.Tensor | None = None):
        self.value = value

    def to(self, device):
        return self

    def nonneg(self, inputs):
        return self.value is not None and bool((self.value >= 0).all())


@register
class Add(Op):
    """``a + b`` (``+``, ``+=``, ``torch.add``; subtraction is rewritten as ``a + (-1) * b``)
    of activations, constant tensors and numbers."""

    name, routes = "add", None
    functions = (operator.add, operator.iadd, torch.add)
    methods = ("add", "add_", "__add__", "__iadd__", "__radd__")

    def __init__(self, numbers: Sequence = ()):
        self.numbers = list(numbers)

    @classmethod
    def from_fx(cls, fxn, module, info):
        if "alpha" in fxn.kwargs:
            raise UnsupportedOperation(f"node '{fxn.name}': add with alpha")
        return cls([a for a in fxn.args if not isinstance(a, fx.Node)])

    def nonneg(self, inputs):
        # `x + c` with a negative constant c can go negative
        return bool(inputs) and all(inputs) and all(
            is_number(c) and c >= 0 for c in self.numbers)


@register
class Cat(Op):
    """``torch.cat``: each input gets its slice."""

    name, routes, computes = "cat", None, True
    functions = (torch.cat, torch.concat, torch.concatenate)
    what, new_dims = "concatenation", 0   # for messages; dims the output adds

    def __init__(self, dim: int = 0, node: str = ""):
        self.dim, self.node = dim, node

    def join(self, xs):
        return torch.cat(xs, self.dim)

    def forward(self, *xs):
        refuse_batch_dims(self.node, self.what, self.dim, xs[0].dim() + self.new_dims)
        return self.join(xs)

    @classmethod
    def from_fx(cls, fxn, module, info):
        dim = call_arguments(fxn, {"dim": 0})["dim"]
        if dim == 0:
            raise UnsupportedOperation(f"node '{fxn.name}': {cls.what} along the batch "
                                       "dimension mixes samples and has no rule")
        return cls(dim, fxn.name)

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)


@register
class MaxPool(Op):
    """``nn.MaxPool2d`` and ``F.max_pool2d``: winner-take-all at the arg-max."""

    name = "maxpool"
    modules, functions = (nn.MaxPool2d,), (F.max_pool2d,)

    def __init__(self, params: dict):
        self.params = params

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            if module.return_indices:
                raise UnsupportedOperation("MaxPool2d(return_indices=True) is not supported")
            return cls({"kernel_size": module.kernel_size, "stride": module.stride,
                        "padding": module.padding, "dilation": module.dilation,
                        "ceil_mode": module.ceil_mode})
        b = _bound(fxn, F.max_pool2d)
        b.pop("input", None)
        if b.pop("return_indices", False):
            raise UnsupportedOperation(f"node '{fxn.name}': max_pool2d(return_indices=True)")
        p = {"kernel_size": b["kernel_size"], "stride": b.get("stride") or b["kernel_size"],
             "padding": b.get("padding", 0), "dilation": b.get("dilation", 1),
             "ceil_mode": b.get("ceil_mode", False)}
        return cls(p)

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)


@register
class AMax(Op):
    """``torch.amax`` / ``x.amax(dims)`` over non-batch dimensions: winner-take-all
    (the gradient: ties share equally)."""

    name, computes = "amax", True
    functions, methods = (torch.amax,), ("amax",)

    def __init__(self, dims: tuple, keepdim: bool, node: str = ""):
        self.dims, self.keepdim, self.node = dims, keepdim, node

    @classmethod
    def from_fx(cls, fxn, module, info):
        a = call_arguments(fxn, {"dim": (), "keepdim": False})
        dims = dims_of(a["dim"])
        if not dims or 0 in dims or not all(isinstance(d, int) for d in dims):
            raise UnsupportedOperation(f"node '{fxn.name}': amax needs constant dimensions "
                                       "that leave the batch alone")
        return cls(dims, bool(a["keepdim"]), fxn.name)

    def forward(self, x):
        refuse_batch_dims(self.node, "amax", self.dims, x.dim())
        return x.amax(self.dims, keepdim=self.keepdim)

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)


@register
class Product(Op):
    """``a * b`` of two activations (broadcasting allowed): gates (squeeze-excitation,
    ``x * sigmoid(x)``). A product with a constant is :class:`~.linear.Scale` or
    :class:`~.linear.ConstScale`, not this."""

    name, routes = "product", None
    functions, methods = _MUL_FUNCS, _MUL_METHODS

    @classmethod
    def from_fx(cls, fxn, module, info):
        acts = [a for a in fxn.args if info.is_activation(a)]
        if len(acts) != 2 or len(fxn.args) != 2 or fxn.kwargs:
            return None
        return cls()

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)


@register
class Stack(Cat):
    """``torch.stack``: each input gets its slice of the relevance."""

    name, functions = "stack", (torch.stack,)
    what, new_dims = "stacking", 1

    def join(self, xs):
        return torch.stack(xs, self.dim)


_COMPARE_FUNCS = (operator.gt, operator.ge, operator.lt, operator.le, torch.gt, torch.ge,
                  torch.lt, torch.le)


@register
class Mask(Op):
    """A comparison ``x > c`` (``>=``, ``<``, ``<=``, with a number or a tensor): a boolean
    mask. Its derivative is zero, so no relevance or gradient flows through it; it only
    selects (:class:`Where`, a product with the mask)."""

    name, routes = "mask", None
    functions = _COMPARE_FUNCS
    methods = ("gt", "ge", "lt", "le", "__gt__", "__ge__", "__lt__", "__le__")

    def nonneg(self, inputs):
        return True


@register
class Where(Op):
    """``torch.where(mask, a, b)`` with a :class:`Mask` condition: a selection; the
    relevance (or gradient) of each element goes to the branch it was taken from
    (``a`` or ``b``, an activation, a constant or a number)."""

    name, routes = "where", None
    functions, methods = (torch.where,), ("where",)

    def __init__(self, numbers: tuple = (), branches: tuple = ("a", "b")):
        self.numbers, self.branches = numbers, branches

    @classmethod
    def from_fx(cls, fxn, module, info):
        if len(fxn.args) != 3 or fxn.kwargs or not isinstance(fxn.args[0], fx.Node):
            raise UnsupportedOperation(f"node '{fxn.name}': where needs (condition, a, b)")
        a, b = fxn.args[1:]
        return cls(tuple(v for v in (a, b) if not isinstance(v, fx.Node)),
                   tuple(side for side, v in (("a", a), ("b", b)) if isinstance(v, fx.Node)))

    def nonneg(self, inputs):
        # the condition is inputs[0]; the branches that are activations follow
        return bool(inputs) and all(inputs) and all(is_number(c) and c >= 0
                                                    for c in self.numbers)


# ------------------------------------------------------------------ rearrangements
class Rearrange(Op):
    """Ops that move, select or copy values without arithmetic; linear, with
    :meth:`transpose` moving relevance (or a gradient) back exactly."""

    def transpose(self, r: torch.Tensor, in_shape: tuple) -> torch.Tensor:
        raise NotImplementedError

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs)


@register
class Reshape(Rearrange):
    """Flatten / view / reshape / (un)squeeze: the relevance is reshaped back."""

    name = "reshape"
    modules = (nn.Flatten, nn.Unflatten)
    functions = (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze)
    methods = ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as",
               "reshape_as")

    def transpose(self, r, in_shape):
        return r.reshape(in_shape)


@register
class Identity(Rearrange):
    """The identity: ``nn.Identity``, dropout in eval, ``clone``, ``contiguous``."""

    name = "identity"
    modules = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
               nn.AlphaDropout)
    functions = (torch.clone, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
                 torch.dropout, F.alpha_dropout)
    methods = ("contiguous", "clone", "detach")

    @classmethod
    def from_fx(cls, fxn, module, info):
        if fxn.op == "call_function" and "dropout" in getattr(fxn.target, "__name__", ""):
            _check_dropout(fxn)
        return cls()

    def transpose(self, r, in_shape):
        return r


try:  # torchvision's stochastic depth (a leaf function of torch.fx): identity in eval
    from torchvision.ops import stochastic_depth as _stochastic_depth
except ImportError:  # pragma: no cover - torchvision is a dependency
    _stochastic_depth = None


@register
class StochasticDepth(Identity):
    """``torchvision.ops.stochastic_depth(x, p, mode, training)``: the identity when
    ``training`` is False (eval), else refused (random)."""

    name = "identity"
    modules, methods = (), ()
    functions = (_stochastic_depth,) if _stochastic_depth is not None else ()

    @classmethod
    def from_fx(cls, fxn, module, info):
        b = bind(fxn)
        training = b.arguments.get("training", True) if b is not None else True
        p = b.arguments.get("p", 1.0) if b is not None else 1.0
        if training is not False and p != 0:
            raise UnsupportedOperation(
                f"node '{fxn.name}': stochastic_depth(..., training={training!r}) drops "
                "samples at random; liecheck explains the eval model (training=False)")
        return cls()


def _check_dropout(fxn: fx.Node) -> None:
    """A functional dropout is the identity in eval mode, unless ``training=True``."""
    bound = bind(fxn)
    if bound is not None:
        training = bound.arguments.get("training", True)
        p = bound.arguments.get("p", 0.5)
    else:  # torch.dropout(input, p, train)
        training = fxn.args[2] if len(fxn.args) > 2 else fxn.kwargs.get("train", True)
        p = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("p", 0.5)
    if training is False or p == 0:
        return
    name = getattr(fxn.target, "__name__", fxn.target)
    raise UnsupportedOperation(
        f"node '{fxn.name}': {name}(..., training={training!r}) drops units at random even "
        "when the model is in eval mode (training=True is F.dropout's default), so the model "
        "is random and cannot be explained. Pass training=self.training (then liecheck "
        "explains the eval model, where dropout is the identity), or use nn.Dropout.")


class View(Rearrange):
    """A view ``v(x)`` that selects or reorders elements without repeating any (permute,
    transpose, basic indexing, chunk / split / narrow): the transpose writes the
    relevance into a zero tensor through the same view."""

    computes = True
    node = ""    # the node's name, for messages
    batch_dims: tuple = ()  # dims (maybe negative) that must not be the batch dimension

    def view(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x):
        refuse_batch_dims(self.node, self.name, self.batch_dims, x.dim())
        return self.view(x)

    def transpose(self, r, in_shape):
        z = r.new_zeros(in_shape)
        self.view(z).copy_(r)
        return z


def _constant_args(fxn: fx.Node, what: str) -> tuple[list, dict]:
    args, kwargs = list(fxn.args[1:]), dict(fxn.kwargs)
    if fxn.all_input_nodes[1:]:
        raise UnsupportedOperation(
            f"node '{fxn.name}': {what} with arguments computed at run time "
            f"({', '.join(a.name for a in fxn.all_input_nodes[1:])}) has no rule; use "
            "constant arguments")
    return args, kwargs


def _named(op: View, fxn: fx.Node, batch_dims: Sequence) -> View:
    """``op`` told its node's name and the dims it must not apply to the batch (checked
    now where non-negative, on the first forward where negative)."""
    op.node, op.batch_dims = fxn.name, tuple(batch_dims)
    if 0 in op.batch_dims:
        refuse_batch_dims(fxn.name, op.name, op.batch_dims, 1)
    return op


@register
class Permute(View):
    name = "permute"
    functions, methods = (torch.permute,), ("permute",)

    def __init__(self, dims: tuple):
        self.dims = tuple(dims)

    @classmethod
    def from_fx(cls, fxn, module, info):
        args, kwargs = _constant_args(fxn, "permute")
        dims = tuple(kwargs.get("dims", args[0] if len(args) == 1 else args))
        if dims[0] % len(dims) != 0:
            raise UnsupportedOperation(f"node '{fxn.name}': a permute that moves the batch "
                                       "dimension mixes samples and has no rule")
        return cls(dims)

    def view(self, x):
        return x.permute(self.dims)


@register
class Transpose(View):
    name = "transpose"
    functions, methods = (torch.transpose, torch.swapaxes, torch.swapdims), (
        "transpose", "swapaxes", "swapdims")

    def __init__(self, dim0: int, dim1: int):
        self.dim0, self.dim1 = dim0, dim1

    @classmethod
    def from_fx(cls, fxn, module, info):
        a = call_arguments(fxn, {"dim0": None, "dim1": None})
        return _named(cls(a["dim0"], a["dim1"]), fxn, (a["dim0"], a["dim1"]))

    def view(self, x):
        return x.transpose(self.dim0, self.dim1)


@register
class Select(View):
    """Basic indexing ``x[:, 0]``, ``x[..., 1:3]`` (the batch untouched); ``narrow``; and one
    part of ``chunk`` / ``split`` (``a, b = x.chunk(2, 1)``)."""

    name = "select"
    functions, methods = (operator.getitem, torch.narrow), ("narrow",)

    def __init__(self, how: str, args: tuple, index: Any = None):
        self.how, self.args, self.index = how, args, index

    @classmethod
    def from_fx(cls, fxn, module, info):
        src = fxn.args[0]
        split = (_splitter(src) if fxn.target is operator.getitem and isinstance(src, fx.Node)
                 and src.op in ("call_method", "call_function") else None)
        if split is not None:
            how, args = split
            return _named(cls(how, args, fxn.args[1]), fxn, (args[1],))
        if not info.is_tensor(src):
            return None
        args, kwargs = _constant_args(fxn, "indexing")
        if fxn.target is operator.getitem:
            idx = args[0] if isinstance(args[0], tuple) else (args[0],)
            ok = all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in idx)
            if not ok or not idx or idx[0] is not Ellipsis and idx[0] != slice(None):
                raise UnsupportedOperation(
                    f"node '{fxn.name}': indexing {args[0]!r} has no rule: only basic "
                    "indexing (integers, slices, None, ...) that keeps the batch dimension "
                    "whole (x[:, ...]) is supported")
            if idx[0] is Ellipsis and len([i for i in idx if i is not None]) > 1:
                raise UnsupportedOperation(
                    f"node '{fxn.name}': indexing {args[0]!r} starting with '...' may index "
                    "the batch dimension; write it as x[:, ...]")
            return cls("getitem", (idx,))
        a = call_arguments(fxn, {"dim": None, "start": None, "length": None})
        return _named(cls("narrow", (a["dim"], a["start"], a["length"])), fxn, (a["dim"],))

    def view(self, x):
        if self.how == "getitem":
            return x[self.args[0]]
        if self.how == "narrow":
            return x.narrow(*self.args)
        parts = x.chunk(*self.args) if self.how == "chunk" else x.split(*self.args)
        return parts[self.index]


def _splitter(fxn: fx.Node) -> tuple[str, tuple] | None:
    """``("chunk" | "split", args)`` for a chunk / split call on a tensor, else None."""
    t = fxn.target
    if t in ("chunk", torch.chunk):
        how = "chunk"
    elif t in ("split", torch.split):
        how = "split"
    else:
        return None
    size = {"chunk": "chunks", "split": "split_size_or_sections"}[how]
    if how == "split" and "split_size" in fxn.kwargs:  # Tensor.split's keyword
        size = "split_size"
    a = call_arguments(fxn, {size: None, "dim": 0})
    if a["dim"] == 0:
        raise UnsupportedOperation(f"node '{fxn.name}': {how} along the batch dimension "
                                   "mixes samples and has no rule")
    return how, (a[size], a["dim"])


SPLITTERS = ("chunk", "split", torch.chunk, torch.split)


@register
class Roll(Rearrange):
    name, computes = "roll", True
    functions, methods = (torch.roll,), ("roll",)

    def __init__(self, shifts, dims, node: str = ""):
        self.shifts, self.dims, self.node = shifts, dims, node

    @classmethod
    def from_fx(cls, fxn, module, info):
        a = call_arguments(fxn, {"shifts": None, "dims": None})
        if a["dims"] is None:
            raise UnsupportedOperation(f"node '{fxn.name}': roll without dims rolls the "
                                       "batch too; pass dims")
        if 0 in dims_of(a["dims"]):
            refuse_batch_dims(fxn.name, "roll", a["dims"], 1)
        return cls(a["shifts"], a["dims"], fxn.name)

    def forward(self, x):
        refuse_batch_dims(self.node, "roll", self.dims, x.dim())
        return torch.roll(x, self.shifts, self.dims)

    def transpose(self, r, in_shape):
        neg = ([-s for s in self.shifts] if isinstance(self.shifts, (list, tuple))
               else -self.shifts)
        return torch.roll(r, neg, self.dims)


@register
class Pad(Rearrange):
    """``F.pad`` in every mode (constant, reflect, replicate, circular): each output is a
    copy of an input or the constant ``value`` (whose share, like a bias's, is
    absorbed); the transpose sums the copies back (exact adjoint, via autograd)."""

    name, computes = "pad", True
    functions = (F.pad,)

    def __init__(self, pad: tuple, mode: str = "constant", value: float | None = None):
        self.pad, self.mode, self.value = tuple(pad), mode, value

    @classmethod
    def from_fx(cls, fxn, module, info):
        _constant_args(fxn, "pad")
        b = _bound(fxn, F.pad)
        return cls(b["pad"], b.get("mode", "constant"), b.get("value"))

    def forward(self, x):
        return F.pad(x, self.pad, self.mode, self.value)

    def nonneg(self, inputs):
        return bool(inputs) and all(inputs) and (self.mode != "constant" or not self.value
                                                 or self.value >= 0)

    def transpose(self, r, in_shape):
        if self.mode == "constant":
            return F.pad(r, [-p for p in self.pad])
        with torch.enable_grad():
            z = r.new_zeros(in_shape, requires_grad=True)
            (g,) = torch.autograd.grad(F.pad(z, self.pad, self.mode), z, r)
        return g


__all__ = ["Add", "AMax", "Cat", "Constant", "DerivedConstant", "Identity", "Input", "MaxPool",
           "Pad", "Permute",
           "Product", "Rearrange", "Reshape", "Roll", "Select", "Transpose", "View",
           "unbroadcast"]
