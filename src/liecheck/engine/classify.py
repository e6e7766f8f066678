"""What each torch.fx node computes: tables from a module type, a function or a tensor
method to a handler that returns the node's :class:`Kind` (kind, operation, layer).

:func:`register_op` extends them with a user's module type or function (after checking
the claim on a probe input; :data:`REGISTERED`, consulted first). Anything that is in
no table fails here, at trace time, with
:class:`~liecheck.engine.rewrite.UnsupportedOperation`.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from .kinds import ADD, CAT, IDENTITY, INPUT, LINEAR, MAXPOOL, META, RELU, RESHAPE
from .ops import AdaptiveAvgPoolOp, AffineOp, AvgPoolOp, ConvOp, DenseOp
from .rewrite import SHAPE_METHODS, UnsupportedOperation, bind, is_number

HOW_TO = ("If it computes exactly an identity, a ReLU (max(0, x)) or a reshape, declare it "
          "with liecheck.register_op(<module type or function>, kind=...) (checked on a "
          "probe input); anything else has no exact rule: rewrite the model with supported "
          "operations (see liecheck.engine.classify.SUPPORTED).")

SUPPORTED = ("Conv2d, Linear, ReLU (module, F.relu, torch.relu, in-place), MaxPool2d, AvgPool2d, "
             "AdaptiveAvgPool2d, BatchNorm1d/2d, Flatten / torch.flatten / view / reshape, "
             "Dropout and Identity (eval), residual + / += / torch.add, - / torch.sub (alpha "
             "allowed), multiplication or division by a constant number, torch.cat")


class Kind(NamedTuple):
    """A node's classification: ``kind``, ``op`` (a LinearOp for linear nodes, max-pool
    parameters, the cat dimension) and ``layer`` (for linear nodes)."""

    kind: str
    op: Any = None
    layer: str | None = None


# the user's entries (register_op): module type or function -> kind; consulted before
# the built-in tables below
REGISTERED: dict[Any, str] = {}


# ------------------------------------------------------------------ modules
def _conv(fxn: fx.Node, m: nn.Conv2d) -> Kind:
    if m.padding_mode != "zeros":
        raise UnsupportedOperation(
            f"node '{fxn.name}' ({fxn.target}): Conv2d with padding_mode="
            f"'{m.padding_mode}' is not supported. {HOW_TO}")
    return Kind(LINEAR, ConvOp.from_module(m), "conv")


def maxpool_params(m: nn.MaxPool2d) -> dict:
    """The pooling parameters of a max-pool node (``F.max_pool2d``'s keywords)."""
    if m.return_indices:
        raise UnsupportedOperation("MaxPool2d(return_indices=True) is not supported")
    return {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
            "dilation": m.dilation, "ceil_mode": m.ceil_mode}


def _fixed(kind: str) -> Callable[..., Kind]:
    return lambda *_: Kind(kind)


# a module matches the entry of its type or of its nearest base class in the table
MODULES: dict[type, Callable[[fx.Node, nn.Module], Kind]] = {
    nn.Conv2d: _conv,
    nn.Linear: lambda fxn, m: Kind(LINEAR, DenseOp(m.weight, m.bias), "dense"),
    nn.BatchNorm1d: lambda fxn, m: Kind(LINEAR, AffineOp.from_batchnorm(m), "affine"),
    nn.BatchNorm2d: lambda fxn, m: Kind(LINEAR, AffineOp.from_batchnorm(m), "affine"),
    nn.ReLU: _fixed(RELU),
    nn.MaxPool2d: lambda fxn, m: Kind(MAXPOOL, maxpool_params(m)),
    nn.AvgPool2d: lambda fxn, m: Kind(LINEAR, AvgPoolOp.from_module(m), "pool"),
    nn.AdaptiveAvgPool2d: lambda fxn, m: Kind(LINEAR, AdaptiveAvgPoolOp(m.output_size), "pool"),
    nn.Flatten: _fixed(RESHAPE),
    nn.Dropout: _fixed(IDENTITY),
    nn.Dropout2d: _fixed(IDENTITY),
    nn.Identity: _fixed(IDENTITY),
}


def classify_module(fxn: fx.Node, m: nn.Module) -> Kind:
    """The kind of a ``call_module`` node: its type's registration (:func:`register_op`,
    the exact type only), else the table entry of its type or nearest base class."""
    if type(m) in REGISTERED:
        return Kind(REGISTERED[type(m)])
    for cls in type(m).__mro__:
        handler = MODULES.get(cls)
        if handler is not None:
            return handler(fxn, m)
    raise UnsupportedOperation(
        f"node '{fxn.name}': module '{fxn.target}' of type {type(m).__name__} has no "
        f"rule. Supported: {SUPPORTED}. {HOW_TO}")


# ------------------------------------------------------- functions and methods
def _add(fxn: fx.Node, *_) -> Kind:
    if "alpha" in fxn.kwargs:
        what = f".{fxn.target}()" if fxn.op == "call_method" else "torch.add"
        raise UnsupportedOperation(f"node '{fxn.name}': {what} with alpha. {HOW_TO}")
    return Kind(ADD)


def _cat(fxn: fx.Node, *_) -> Kind:
    return Kind(CAT, fxn.kwargs.get("dim", fxn.args[1] if len(fxn.args) > 1 else 0))


def _dropout(fxn: fx.Node, *_) -> Kind:
    """A functional dropout: the identity in eval mode, unless ``training=True``."""
    bound = bind(fxn)
    if bound is not None:
        training = bound.arguments.get("training", True)
        p = bound.arguments.get("p", 0.5)
    else:  # torch.dropout(input, p, train)
        training = fxn.args[2] if len(fxn.args) > 2 else fxn.kwargs.get("train", True)
        p = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("p", 0.5)
    if training is False or p == 0:
        return Kind(IDENTITY)
    name = getattr(fxn.target, "__name__", fxn.target)
    raise UnsupportedOperation(
        f"node '{fxn.name}': {name}(..., training={training!r}) drops units at random even "
        "when the model is in eval mode (training=True is F.dropout's default), so the model "
        "is random and cannot be explained. Pass training=self.training (then liecheck "
        "explains the eval model, where dropout is the identity), or use nn.Dropout.")


def _functional_maxpool(fxn: fx.Node, *_) -> Kind:
    raise UnsupportedOperation(
        f"node '{fxn.name}': functional F.max_pool2d; use nn.MaxPool2d. {HOW_TO}")


def _adaptive_pool(fxn: fx.Node, *_) -> Kind:
    size = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs["output_size"]
    return Kind(LINEAR, AdaptiveAvgPoolOp(size), "pool")


def _table(*groups: tuple[tuple, Any]) -> dict:
    return {key: handler for keys, handler in groups for key in keys}


FUNCTIONS: dict[Callable, Callable[[fx.Node], Kind]] = _table(
    ((F.relu, torch.relu, torch.relu_, F.relu_), _fixed(RELU)),
    ((operator.add, operator.iadd, torch.add), _add),
    ((torch.cat,), _cat),
    ((torch.flatten, torch.reshape), _fixed(RESHAPE)),
    ((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, torch.dropout), _dropout),
    ((torch.clone,), _fixed(IDENTITY)),
    ((F.max_pool2d,), _functional_maxpool),
    ((F.adaptive_avg_pool2d,), _adaptive_pool),
    ((getattr, operator.getitem, operator.mul, operator.floordiv, operator.sub,
      operator.truediv, len), _fixed(META)),
)

METHODS: dict[str, Callable[[fx.Node], Kind]] = _table(
    (("relu", "relu_"), _fixed(RELU)),
    (("add", "add_", "__add__", "__iadd__"), _add),
    (("view", "reshape", "flatten"), _fixed(RESHAPE)),
    (("contiguous", "clone", "detach"), _fixed(IDENTITY)),
    (tuple(SHAPE_METHODS), _fixed(META)),
)

# multiplication / division by a constant number: a linear node
_SCALES = {
    "call_function": _table(((operator.mul, torch.mul, torch.multiply), "mul"),
                            ((operator.truediv, torch.div, torch.divide, torch.true_divide),
                             "div"),
                            ((operator.neg, torch.neg, torch.negative), "neg")),
    "call_method": _table((("mul", "multiply", "__mul__", "__rmul__"), "mul"),
                          (("div", "divide", "true_divide", "__truediv__"), "div"),
                          (("neg", "negative", "__neg__"), "neg")),
}


def classify(fxn: fx.Node, modules: dict[str, nn.Module], tensor_nodes: set[str],
             dtype: torch.dtype, first: bool) -> Kind:
    """The :class:`Kind` of one fx node; ``tensor_nodes``: the names of the nodes so far
    that compute tensors; ``first``: no node has been classified yet."""
    if (fxn.op == "call_function" and getattr(fxn.target, "__module__", "") == "_operator"
            and not any(a.name in tensor_nodes for a in fxn.all_input_nodes)):
        return Kind(META)  # arithmetic on shape values: x.size(0) + 1
    scale = scale_factor(fxn, tensor_nodes)
    if scale is not None:  # c * x: a diagonal linear layer with one shared scale
        c = torch.tensor([scale], dtype=dtype)
        return Kind(LINEAR, AffineOp(c, torch.zeros_like(c)), "affine")
    if fxn.op == "placeholder":
        if not first:
            raise UnsupportedOperation("models with more than one input are not supported")
        return Kind(INPUT)
    if fxn.op == "get_attr":
        raise UnsupportedOperation(
            f"node '{fxn.name}' reads the tensor attribute '{fxn.target}' directly; "
            f"only module parameters are supported. {HOW_TO}")
    if fxn.op == "call_module":
        return classify_module(fxn, modules[fxn.target])
    if fxn.op == "call_function":
        t = fxn.target
        if t in REGISTERED:
            return Kind(REGISTERED[t])
        handler = FUNCTIONS.get(t)
        if handler is None:
            raise UnsupportedOperation(
                f"node '{fxn.name}': function {getattr(t, '__name__', t)} has no rule. "
                f"Supported: {SUPPORTED}. {HOW_TO}")
        return handler(fxn)
    if fxn.op == "call_method":
        handler = METHODS.get(fxn.target)
        if handler is None:
            raise UnsupportedOperation(
                f"node '{fxn.name}': tensor method .{fxn.target}() has no rule. Supported: "
                f"{SUPPORTED}. {HOW_TO}")
        return handler(fxn)
    raise UnsupportedOperation(f"node '{fxn.name}': fx op {fxn.op} is not supported")


def flat_nodes(a: Any) -> list[fx.Node]:
    """The fx nodes in a (nested) argument structure, in order."""
    out: list[fx.Node] = []
    fx.node.map_arg(a, lambda n: out.append(n) or n)
    return out


def scale_factor(fxn: fx.Node, tensor_nodes: set[str]) -> float | None:
    """``c`` if ``fxn`` computes ``c * x`` (``x * c``, ``c * x``, ``x / d``, ``-x``) for a
    tensor ``x`` and a constant number; None for other nodes and shape arithmetic.
    Raises for products / quotients that are not linear (two tensors, a run-time value)."""
    t, op = fxn.target, fxn.op
    kind = _SCALES.get(op, {}).get(t)
    tensors = [a.name for a in flat_nodes(fxn.args) + flat_nodes(fxn.kwargs)
               if a.name in tensor_nodes]
    if kind is None or not tensors:
        return None
    args, kwargs = fxn.args, dict(fxn.kwargs)
    first_is_tensor = isinstance(args[0], fx.Node) and args[0].name in tensor_nodes
    c = None
    if kind == "neg" and len(args) == 1 and not kwargs:
        c = -1.0
    elif kind == "mul" and len(args) == 2 and not kwargs and len(tensors) == 1:
        const = args[1] if first_is_tensor else args[0]
        c = float(const) if is_number(const) else None
    elif (kind == "div" and len(args) == 2 and first_is_tensor and len(tensors) == 1
          and kwargs.get("rounding_mode") is None and set(kwargs) <= {"rounding_mode"}
          and is_number(args[1]) and args[1] != 0):
        c = 1.0 / args[1]
    if c is None or not math.isfinite(c):
        name = getattr(t, "__name__", t)
        raise UnsupportedOperation(
            f"node '{fxn.name}': {op} '{name}' on the tensor(s) {', '.join(tensors)} has no "
            "rule: only multiplication or true division of one tensor by a finite, nonzero "
            f"constant number is linear. {HOW_TO}")
    return c


def is_registered(fxn: fx.Node, root: nn.Module) -> bool:
    """True if the fx node's module type or function was declared with :func:`register_op`."""
    if fxn.op == "call_module":
        return type(root.get_submodule(fxn.target)) in REGISTERED
    return fxn.op == "call_function" and fxn.target in REGISTERED


# ------------------------------------------------------------ register_op
_PROBE_SHAPES = ((2, 3, 8, 8), (2, 16))


def register_op(target: Any, kind: str) -> None:
    """Declare how an otherwise unsupported module type or function behaves.

    ``kind`` is one of ``"identity"`` (relevance passes unchanged; the op returns
    its input), ``"relu"`` (the op is ``max(0, x)``; rules see it as a ReLU) or
    ``"reshape"`` (a pure reshape of its first argument).

    The claim is checked: the op runs on a seeded random probe input (``(2, 3, 8, 8)``,
    or ``(2, 16)`` if that fails, values up to about +-30) and must match the claimed
    kind, else ``ValueError`` (e.g. ``nn.ReLU6`` or ``nn.LeakyReLU`` are not ``"relu"``).
    ``target`` is a module type (constructed without arguments for the probe), a
    module instance (its type is registered) or a function.
    """
    if kind not in (IDENTITY, RELU, RESHAPE):
        raise ValueError(f"kind must be 'identity', 'relu' or 'reshape', not {kind!r}")
    if isinstance(target, nn.Module):  # probe a copy: the user's instance keeps its state
        fn, key = copy.deepcopy(target).eval(), type(target)
    elif isinstance(target, type) and issubclass(target, nn.Module):
        try:
            fn = target()
        except Exception as exc:
            raise TypeError(
                f"register_op: cannot construct {target.__name__}() without arguments to "
                f"check it on a probe input ({exc}); pass an instance instead: "
                f"register_op({target.__name__}(...), {kind!r})") from exc
        key = target
    elif callable(target):
        fn, key = target, target
    else:
        raise TypeError(f"register_op: target must be a module type, a module instance or a "
                        f"function, not {type(target).__name__}")
    check_claim(fn, kind, getattr(key, "__name__", repr(key)))
    REGISTERED[key] = kind


def check_claim(fn: Callable, kind: str, name: str) -> None:
    """Raise ValueError unless ``fn`` computes ``kind`` on a probe input."""
    gen = torch.Generator().manual_seed(0)
    errors = []
    for shape in _PROBE_SHAPES:
        x = 10 * torch.randn(shape, generator=gen)
        try:
            with torch.no_grad():
                y = fn(x.clone())
        except Exception as exc:  # wrong rank for this op: try the next probe
            errors.append(f"{tuple(shape)}: {exc}")
            continue
        if not isinstance(y, torch.Tensor):
            raise ValueError(f"register_op: {name} returned {type(y).__name__}, not a tensor")
        if kind == RESHAPE:
            ok = y.numel() == x.numel() and torch.equal(y.reshape(-1), x.reshape(-1))
        else:
            expected = torch.relu(x) if kind == RELU else x
            ok = y.shape == x.shape and torch.allclose(y, expected, rtol=1e-6, atol=1e-6)
        if not ok:
            what = {RELU: "max(0, x)", IDENTITY: "its input unchanged",
                    RESHAPE: "its input's values in the same order (a pure reshape)"}[kind]
            raise ValueError(
                f"register_op: {name} is not kind {kind!r}: on a random probe input of shape "
                f"{tuple(shape)} it does not return {what}. Registering it would give wrong "
                f"explanations; liecheck has no rule for it (see "
                f"liecheck.engine.classify.SUPPORTED).")
        return
    raise ValueError(f"register_op: could not run {name} on a probe input to check it ("
                     + "; ".join(errors) + ")")
