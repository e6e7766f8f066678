""":class:`Node`: one tensor operation of the canonical graph."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import fx

from .ops import LinearOp, Op


@dataclass(eq=False)
class Node:
    """One tensor operation of the canonical graph.

    Attributes
    ----------
    name : stable name (the torch.fx node name), unique, in execution order.
    op : what the node computes, an instance of an :class:`~liecheck.engine.ops.Op`
        class (:class:`~liecheck.engine.ops.ConvOp`, :class:`~liecheck.engine.ops.ReLU`,
        ...). Rules and composites dispatch on its class.
    inputs : names of the nodes whose output this node reads and sends relevance to
        (in argument order).
    module : qualified name of the module it came from (``"features.0"``), or None.
    index : position in execution order.
    nonneg_input : every input is provably non-negative (after a ReLU).
    constant_inputs : for each input, whether it is a constant (does not depend on the
        model's input; relevance reaching it is absorbed).
    """

    name: str
    op: Op
    inputs: list[str]
    module: str | None = None
    index: int = 0
    nonneg_input: bool = False
    constant_inputs: tuple = ()
    fx_node: fx.Node | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """The op's short label (``"conv"``, ``"relu"``, ``"add"``), for display."""
        return self.op.name

    @property
    def layer(self) -> str | None:
        """``"conv"``, ``"dense"``, ``"affine"`` or ``"pool"`` for linear layers."""
        return self.op.layer

    @property
    def is_linear(self) -> bool:
        return isinstance(self.op, LinearOp)

    @property
    def is_parametrised(self) -> bool:
        return self.is_linear and self.layer in ("conv", "dense", "affine")
