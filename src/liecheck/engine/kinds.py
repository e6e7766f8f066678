"""The node kinds of the canonical graph and :class:`Node`, one tensor operation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import fx

INPUT, LINEAR, RELU, MAXPOOL, ADD, CAT, RESHAPE, IDENTITY, META = (
    "input", "linear", "relu", "maxpool", "add", "cat", "reshape", "identity", "meta")


@dataclass(eq=False)
class Node:
    """One tensor operation of the canonical graph.

    Attributes
    ----------
    name : stable name (the torch.fx node name), unique, in execution order.
    kind : one of ``input, linear, relu, maxpool, add, cat, reshape, identity, meta``.
    inputs : names of the tensor-producing nodes this node reads (in argument order).
    op : for ``linear`` nodes a :class:`~liecheck.engine.ops.LinearOp`; for ``maxpool``
        the pooling parameters (``F.max_pool2d``'s keywords); for ``cat`` the dimension;
        ``None`` otherwise.
    layer : ``"conv"``, ``"dense"``, ``"affine"`` (stand-alone BatchNorm, ``c * x``) or
        ``"pool"`` for linear nodes; ``None`` otherwise.
    module : qualified name of the module it came from (``"features.0"``), or None.
    index : position in execution order.
    nonneg_input : every input is provably non-negative (after a ReLU).
    """

    name: str
    kind: str
    inputs: list[str]
    op: Any = None
    layer: str | None = None
    module: str | None = None
    index: int = 0
    nonneg_input: bool = False
    fx_node: fx.Node | None = field(default=None, repr=False)

    @property
    def is_parametrised(self) -> bool:
        return self.kind == LINEAR and self.layer in ("conv", "dense", "affine")
