"""What each torch.fx node is: the :class:`~liecheck.engine.ops.Op` of the first op
class that matches it (:func:`liecheck.engine.ops.matching`, the user's classes first),
or ``None`` for shape computations (``x.size(0)``, ``x.shape``, ``chunk``'s tuple).

:func:`register_op` opens the set: it takes a new :class:`~liecheck.engine.ops.Op`
subclass, or declares that a module type or function computes exactly what an
existing op class computes (checked on a probe input). Anything that matches nothing
fails here, at trace time, with :class:`~liecheck.engine.fxutil.UnsupportedOperation`
naming the node.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from . import ops
from .fxutil import UnsupportedOperation, flat_nodes  # noqa: F401  (flat_nodes: re-exported)
from .rewrite import SHAPE_METHODS, is_shape_query

HOW_TO = ("Declare it with liecheck.register_op: either as an existing op it computes "
          "exactly (register_op(<module type or function>, like=liecheck.ops.ReLU), checked "
          "on a probe input) or as a new op class with its rules (docs/custom_ops.md); or "
          "rewrite the model with supported operations (docs/rules.md lists them).")

SHORT_HOW_TO = ("(To explain it anyway, write an op class with its rules and register it "
                "with liecheck.register_op: docs/custom_ops.md.)")

# the user's declarations (register_op(target, like=...)): module type or function ->
# the op class it computes exactly; consulted before the op classes
CLAIMS: dict[Any, type[ops.Op]] = {}

_META_FUNCS = (getattr, len, operator.getitem, operator.floordiv, operator.mul, operator.add,
               operator.sub, operator.truediv, operator.mod, operator.eq, operator.ne)


def classify(fxn: fx.Node, info: ops.TraceInfo, first: bool) -> ops.Op | None:
    """The op of one fx node, or ``None`` for a shape computation; ``first``: no node
    has been classified yet."""
    ins = fxn.all_input_nodes
    if fxn.op == "placeholder":
        if not first:
            raise UnsupportedOperation("models with more than one input are not supported")
        return ops.Input()
    if fxn.op == "get_attr":
        return None  # a constant: the graph builds it (see Graph._build)
    if fxn.op == "call_function" and fxn.target is torch._assert:
        return None  # a shape check (ViT's image size): evaluated, computes no tensor
    splits = fxn.target is operator.getitem and ins and ins[0].target in ops.SPLITTERS
    if (fxn.op in ("call_function", "call_method") and not splits
            and not any(info.is_tensor(a) for a in ins)):
        if fxn.op == "call_function" and fxn.target in _META_FUNCS or (
                fxn.op == "call_method" and fxn.target in SHAPE_METHODS):
            return None  # arithmetic on shape values: x.size(0) + 1
    if is_shape_query(fxn):
        return None
    if fxn.target in ops.SPLITTERS and fxn.op in ("call_function", "call_method"):
        ops.structure._splitter(fxn)  # refuses what a part cannot be taken of
        return None  # a tuple of parts: each part read is a Select node
    module = info.modules[fxn.target] if fxn.op == "call_module" else None
    claim = _claim(fxn, module)
    if claim is not None:
        return claim
    for cls, exact in ops.matching(fxn, module):
        if not exact and type(module).forward is not _forward_of(cls, module):
            continue  # a subclass with its own forward is not the base op
        try:
            op = cls.from_fx(fxn, module, info)
        except UnsupportedOperation as exc:
            if "register_op" in str(exc):
                raise
            raise UnsupportedOperation(f"{exc} {SHORT_HOW_TO}") from None
        if op is not None:
            return op
    raise UnsupportedOperation(f"node '{fxn.name}': {describe(fxn, module)} has no rule. "
                               f"{HOW_TO}")


def _forward_of(cls: type[ops.Op], module: nn.Module) -> Callable | None:
    for base in type(module).__mro__:
        if base in cls.modules:
            return base.forward
    return None


def describe(fxn: fx.Node, module: nn.Module | None = None) -> str:
    """``module 'features.3' of type Foo``, ``function bar``, ``tensor method .baz()``."""
    if fxn.op == "call_module":
        return f"module '{fxn.target}' of type {type(module).__name__}"
    if fxn.op == "call_function":
        return f"function {getattr(fxn.target, '__name__', fxn.target)}"
    if fxn.op == "call_method":
        return f"tensor method .{fxn.target}()"
    return f"fx op {fxn.op}"


def _claim(fxn: fx.Node, module: nn.Module | None) -> ops.Op | None:
    key = type(module) if module is not None else (
        fxn.target if fxn.op == "call_function" else None)
    like = CLAIMS.get(key)
    if like is None:
        return None
    if like is ops.ReLU:
        return ops.ReLU(claimed=True)
    return like()


def view_claims() -> set:
    """Declared targets whose output may alias their input (identity, reshape)."""
    return {k for k, v in CLAIMS.items() if v in (ops.Identity, ops.Reshape)}


# ------------------------------------------------------------ register_op
_PROBE_SHAPES = ((2, 3, 8, 8), (2, 16))
_CLAIMABLE = (ops.Identity, ops.Reshape)


def register_op(target: Any, like: type[ops.Op] | None = None) -> None:
    """Open the op set.

    ``register_op(MyOp)``: ``MyOp`` is a subclass of :class:`liecheck.ops.Op` that says
    what it matches (``modules``, ``functions``, ``methods``), how it computes and its
    sign behaviour; methods give it rules through their composites (or
    :func:`liecheck.methods.composites.add_rule`). It is matched before the built-in
    ops. See docs/custom_ops.md.

    ``register_op(target, like=OpClass)``: the module type, module instance (its type)
    or function ``target`` computes exactly what ``OpClass`` computes with its default
    settings: :class:`~liecheck.ops.Identity`, :class:`~liecheck.ops.Reshape` or a
    :class:`~liecheck.ops.Pointwise` class (``ReLU``, ``SiLU``, ...). The claim is
    checked: the op runs on a seeded random probe input (``(2, 3, 8, 8)``, or
    ``(2, 16)`` if that fails, values up to about +-30) and must match, else
    ``ValueError`` (e.g. ``nn.ReLU6`` is not ``like=ReLU``). A module type is
    constructed without arguments for the probe.
    """
    if like is None:
        if isinstance(target, type) and issubclass(target, ops.Op):
            ops.register(target, user=True)
            return
        raise TypeError("register_op(target) takes a subclass of liecheck.ops.Op; to declare "
                        "that a module or function computes an existing op, pass like=, e.g. "
                        "register_op(MyReLU, like=liecheck.ops.ReLU)")
    if isinstance(like, str):
        raise TypeError(f"like must be an op class (liecheck.ops.ReLU, ...), not the string "
                        f"{like!r}")
    if not (isinstance(like, type) and (like in _CLAIMABLE or issubclass(like, ops.Pointwise))):
        raise ValueError(f"like must be liecheck.ops.Identity, Reshape or a Pointwise op class, "
                         f"not {like!r}")
    if isinstance(target, nn.Module):  # probe a copy: the user's instance keeps its state
        fn, key = copy.deepcopy(target).eval(), type(target)
    elif isinstance(target, type) and issubclass(target, nn.Module):
        try:
            fn = target()
        except Exception as exc:
            raise TypeError(
                f"register_op: cannot construct {target.__name__}() without arguments to "
                f"check it on a probe input ({exc}); pass an instance instead: "
                f"register_op({target.__name__}(...), like={like.__name__})") from exc
        key = target
    elif callable(target):
        fn, key = target, target
    else:
        raise TypeError(f"register_op: target must be a module type, a module instance or a "
                        f"function, not {type(target).__name__}")
    check_claim(fn, like, getattr(key, "__name__", repr(key)))
    CLAIMS[key] = like


def _reference(like: type[ops.Op]) -> Callable[[torch.Tensor], torch.Tensor]:
    if like is ops.Identity:
        return lambda x: x
    if like is ops.ReLU:
        return torch.relu
    return like().fn


def check_claim(fn: Callable, like: type[ops.Op], name: str) -> None:
    """Raise ValueError unless ``fn`` computes what ``like`` computes on a probe input."""
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
        if like is ops.Reshape:
            ok = y.numel() == x.numel() and torch.equal(y.reshape(-1), x.reshape(-1))
        else:
            expected = _reference(like)(x)
            ok = y.shape == x.shape and torch.allclose(y, expected, rtol=1e-6, atol=1e-6)
        if not ok:
            what = ("its input's values in the same order (a pure reshape)"
                    if like is ops.Reshape else f"what {like.__name__} returns")
            raise ValueError(
                f"register_op: {name} is not like {like.__name__}: on a random probe input of "
                f"shape {tuple(shape)} it does not return {what}. Registering it would give "
                "wrong explanations; write an op class for it instead (docs/custom_ops.md).")
        return
    raise ValueError(f"register_op: could not run {name} on a probe input to check it ("
                     + "; ".join(errors) + ")")
