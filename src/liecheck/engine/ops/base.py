"""The open op model: :class:`Op`, one class per node type, and the registry of them.

An op class owns

* what it matches in a traced graph: module types (``modules``), functions
  (``functions``) and tensor-method names (``methods``); :meth:`Op.from_fx` builds the
  node's op from the fx node (and its module) or returns ``None`` when the call is not
  this op (``x * 2`` is a :class:`~.linear.Scale`, ``x * y`` a
  :class:`~.structure.Product`);
* its forward computation (:meth:`Op.forward` where ``computes`` is True; otherwise
  the fx call itself is evaluated);
* its sign behaviour (:meth:`Op.nonneg`: is the output provably non-negative, given
  which inputs are), which the z+ family's fast paths rely on;
* where it is linear, its transpose (:class:`~.linear.LinearOp`,
  :class:`~.structure.Rearrange`).

Which *rule* a node gets is not the op's business: a method's composite maps op
classes to rules (:mod:`liecheck.methods.composites`), looked up along the op class's
MRO, so a rule for :class:`~.pointwise.Pointwise` covers every pointwise
nonlinearity that has no rule of its own.

:func:`register` adds an op class; :func:`matching` lists the classes that may match
an fx node, the user's registrations first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import fx, nn

from ..fxutil import UnsupportedOperation  # noqa: F401  (re-exported)


@dataclass
class TraceInfo:
    """What :meth:`Op.from_fx` may ask about the traced graph.

    ``dtype``: the model's floating dtype; ``tensors``: names of the fx nodes so far that
    hold tensors (the input, activations, constants); ``constants``: fx node name ->
    value of the nodes that do not depend on the input (``get_attr`` tensors);
    ``modules``: qualified name -> module of the model's copy; ``masks``: names of the
    comparison nodes (boolean masks).
    """

    dtype: torch.dtype
    tensors: set
    constants: dict
    modules: dict
    masks: set

    def is_tensor(self, a: Any) -> bool:
        return isinstance(a, fx.Node) and a.name in self.tensors

    def is_constant(self, a: Any) -> bool:
        return isinstance(a, fx.Node) and a.name in self.constants

    def is_activation(self, a: Any) -> bool:
        """A tensor that depends on the model's input."""
        return self.is_tensor(a) and not self.is_constant(a)


class Op:
    """Base class of every node type (see the module docstring).

    Class attributes
    ----------------
    name : the short label shown in summaries and messages (``"relu"``, ``"conv"``).
    layer : ``"conv"``, ``"dense"``, ``"affine"`` or ``"pool"`` for linear layers.
    modules, functions, methods : what the op matches.
    routes : how many of the node's tensor arguments (in argument order) are its
        inputs in the graph, i.e. receive relevance (``None``: all).
    computes : :meth:`forward` evaluates the node from its inputs (else the fx call).
    """

    name: ClassVar[str] = "op"
    layer: ClassVar[str | None] = None
    modules: ClassVar[tuple[type, ...]] = ()
    functions: ClassVar[tuple[Callable, ...]] = ()
    methods: ClassVar[tuple[str, ...]] = ()
    routes: ClassVar[int | None] = 1
    computes: ClassVar[bool] = False

    @classmethod
    def from_fx(cls, fxn: fx.Node, module: nn.Module | None, info: TraceInfo) -> Op | None:
        """The op of ``fxn`` (``module``: its module for ``call_module`` nodes), or
        ``None`` if this class does not apply; raise :class:`UnsupportedOperation` for a
        call this class recognises but cannot handle exactly."""
        return cls()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def nonneg(self, inputs: Sequence[bool]) -> bool:
        """Whether the output is non-negative for every input, given which inputs are
        provably non-negative (default: no claim)."""
        return False

    def to(self, device) -> Op:
        return self

    def describe(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ------------------------------------------------------------------ the registry
OPS: list[type[Op]] = []          # built-in op classes, in matching order
USER_OPS: list[type[Op]] = []     # register_op's classes, matched before the built-ins


def register(cls: type[Op], user: bool = False) -> type[Op]:
    """Add an op class to the registry (a class decorator for the built-ins)."""
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise TypeError(f"an op must be a subclass of liecheck.ops.Op, not {cls!r}")
    table = USER_OPS if user else OPS
    if cls in table:
        table.remove(cls)
    table.insert(0, cls) if user else table.append(cls)
    return cls


def matching(fxn: fx.Node, module: nn.Module | None) -> list[tuple[type[Op], bool]]:
    """The op classes that declare a match for ``fxn``, the user's first, as
    ``(class, exact)``; ``exact`` is False when a module matched through a base class."""
    out: list[tuple[type[Op], bool]] = []
    for cls in [*USER_OPS, *OPS]:
        if fxn.op == "call_module":
            for base in type(module).__mro__:
                if base in cls.modules:
                    out.append((cls, base is type(module)))
                    break
        elif fxn.op == "call_function":
            if any(fxn.target is f for f in cls.functions):
                out.append((cls, True))
        elif fxn.op == "call_method":
            if fxn.target in cls.methods:
                out.append((cls, True))
    return out
