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
