"""Small helpers on torch.fx nodes shared by the engine's passes and op classes, and
the trace-time error :class:`UnsupportedOperation`."""

from __future__ import annotations

import inspect
from typing import Any

from torch import fx


class UnsupportedOperation(TypeError):
    """Raised at trace time for an operation that has no rule (or whose semantics
    liecheck cannot keep), and when a method has no rule for an op of the model."""


def bind(n: fx.Node) -> inspect.BoundArguments | None:
    """The call's arguments bound to its function's signature, or None."""
    try:
        return inspect.signature(n.target).bind(*n.args, **n.kwargs)
    except (TypeError, ValueError):  # builtins without a signature, or a bad call
        return None


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flat_nodes(a: Any) -> list[fx.Node]:
    """The fx nodes in a (nested) argument structure, in order."""
    out: list[fx.Node] = []
    fx.node.map_arg(a, lambda n: out.append(n) or n)
    return out


def call_arguments(fxn: fx.Node, defaults: dict) -> dict:
    """The settings of a call on a tensor: ``defaults`` (name -> default, in positional
    order) filled from the arguments after the tensor, then from keywords (``inplace`` is
    ignored: the graph is made out-of-place). Unknown keywords and values computed at run
    time (fx nodes) are refused."""
    args, kwargs = list(fxn.args[1:]), dict(fxn.kwargs)
    kwargs.pop("inplace", None)
    if len(args) > len(defaults):
        raise UnsupportedOperation(f"node '{fxn.name}': more arguments than expected "
                                   f"({', '.join(defaults)})")
    out = dict(defaults)
    out.update(zip(defaults, args))
    for k, v in kwargs.items():
        if k not in out:
            raise UnsupportedOperation(f"node '{fxn.name}': unexpected argument {k}={v!r}")
        out[k] = v
    late = [k for k, v in out.items() if flat_nodes(v)]
    if late:
        raise UnsupportedOperation(
            f"node '{fxn.name}': the argument(s) {', '.join(late)} are computed at run time; "
            "only constant arguments are supported")
    return out


def dims_of(d: Any) -> tuple:
    """``d`` (an int or a sequence of ints) as a tuple."""
    return tuple(d) if isinstance(d, (list, tuple)) else (d,)


def refuse_batch_dims(name: str, what: str, dims: Any, ndim: int) -> None:
    """Raise if one of ``dims`` (negative ones counted from the end of an ``ndim``-dim
    tensor) is the batch dimension: the op would mix samples."""
    if any(isinstance(d, int) and d % ndim == 0 for d in dims_of(dims)):
        raise UnsupportedOperation(
            f"node '{name}': {what} over the batch dimension (dims {dims} of a {ndim}-d "
            "tensor) mixes samples and has no rule")
