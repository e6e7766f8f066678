"""Rewrites of a torch.fx graph that keep the model's function, before canonicalisation.

* :func:`refuse_hooks`: torch.fx never runs forward hooks or pre-hooks, so a model
  with one (on any module, or registered globally) is refused.
* :func:`remove_inplace`: in-place operations become out-of-place nodes; every
  later reader of the mutated tensor is rewired to read the new node, so it sees
  the value after the write, as in the model. If a later reader reads another alias
  of the mutated storage (a view taken before the write), the model is refused.
* :func:`expand_subtraction`: ``a - b``, ``torch.sub(a, b, alpha=k)`` and
  ``torch.add(a, b, alpha=k)`` become ``a + (-k) * b``, a residual addition of a
  scalar multiplication (a linear node, see :mod:`liecheck.engine.graph`).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules import module as _module

from .fxutil import UnsupportedOperation, bind, is_number


def refuse_hooks(model: nn.Module) -> None:
    """Raise if a forward hook or pre-hook is registered on ``model``, any of its
    modules, or globally (``torch.nn.modules.module.register_module_forward_hook``)."""
    for kind, table in (("forward hook", "_global_forward_hooks"),
                        ("forward pre-hook", "_global_forward_pre_hooks")):
        hooks = getattr(_module, table, {})
        if hooks:
            raise UnsupportedOperation(
                f"a global module {kind} is registered ({_names(hooks)}); torch.fx does not "
                "run hooks, so liecheck would explain a different function. Remove it "
                "(handle.remove()) before explaining, or move its effect into a forward.")
    for name, m in model.named_modules():
        for kind, hooks in (("forward hook", m._forward_hooks),
                            ("forward pre-hook", m._forward_pre_hooks)):
            if hooks:
                where = f"module '{name}'" if name else "the model's root module"
                raise UnsupportedOperation(
                    f"{where} ({type(m).__name__}) has a {kind} ({_names(hooks)}); torch.fx "
                    "does not run hooks, so liecheck would explain a different function. "
                    "Remove the hook (handle.remove()) before explaining, or move its effect "
                    "into the module's forward (weight_norm / spectral_norm hooks: use "
                    "torch.nn.utils.parametrize or remove them first).")


SHAPE_METHODS = {"size", "dim"}
_SHAPE_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda"}


def is_shape_query(fxn: fx.Node) -> bool:
    """True for nodes that read only a tensor's shape (``x.size(0)``, ``x.shape``)."""
    if fxn.op == "call_method":
        return fxn.target in SHAPE_METHODS
    if fxn.target is getattr:
        return len(fxn.args) > 1 and fxn.args[1] in _SHAPE_ATTRS
    return fxn.target is len


def tensor_nodes(graph: fx.Graph) -> set[fx.Node]:
    """The fx nodes that hold a tensor: the input, module outputs, and operations on
    tensors other than shape queries (``x.size(0) + 1`` is a number)."""
    out: set[fx.Node] = set()
    for n in graph.nodes:
        ins = list(n.all_input_nodes)
        if n.op in ("placeholder", "call_module") or (
                n.op in ("call_function", "call_method") and not is_shape_query(n)
                and any(a in out for a in ins)):
            out.add(n)
    return out


def _names(hooks: dict) -> str:
    return ", ".join(getattr(h, "__qualname__", type(h).__name__) for h in hooks.values())


# in-place spellings -> out-of-place ones
_INPLACE_FUNCS = {operator.iadd: operator.add, operator.isub: operator.sub,
                  operator.imul: operator.mul, operator.itruediv: operator.truediv,
                  torch.relu_: torch.relu, F.relu_: torch.relu}
_INPLACE_DUNDERS = {"__iadd__": "add", "__isub__": "sub", "__imul__": "mul",
                    "__itruediv__": "div"}
# operations whose output may share storage with their first argument
_VIEW_METHODS = {"view", "view_as", "reshape", "reshape_as", "flatten", "contiguous", "detach",
                 "squeeze", "unsqueeze", "transpose", "permute", "t", "expand", "expand_as",
                 "narrow", "unflatten", "__getitem__"}
_VIEW_FUNCS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.transpose,
               torch.permute, torch.narrow, torch.detach, operator.getitem, F.dropout,
               F.dropout1d, F.dropout2d, F.dropout3d, torch.dropout}
_VIEW_MODULES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                 nn.Dropout3d)


def remove_inplace(graph: fx.Graph, root: nn.Module, views: set) -> list[str]:
    """Make every in-place node out-of-place, keeping the aliasing semantics.

    ``views``: the user's functions and module types declared to be an identity or a
    reshape (their output may alias their input).
    Returns the qualified names of the modules whose ``inplace`` flag was set to
    False (the caller restores it to run the model's own forward).
    """
    modules = dict(root.named_modules())
    flipped = [n for n, m in modules.items() if getattr(m, "inplace", None) is True]
    for name in flipped:
        modules[name].inplace = False
    flipped_set = set(flipped)
    order = {n: i for i, n in enumerate(graph.nodes)}
    tensors = tensor_nodes(graph)
    alias_of: dict[fx.Node, fx.Node] = {}  # node -> the node whose storage it may share
    for n in list(graph.nodes):
        # `n += 1` on a number rebinds n: only a tensor is written in place
        written = bool(_make_out_of_place(n, flipped_set) and n.args and n.args[0] in tensors)
        if _may_alias(n, modules, views) or written:
            first = n.args[0] if n.args else None
            if isinstance(first, fx.Node):
                alias_of[n] = _root(first, alias_of)
        if not written:
            continue
        target = n.args[0]
        if not isinstance(target, fx.Node):
            continue
        for user in list(target.users):  # later readers read the value after the write
            if order[user] > order[n]:
                user.replace_input_with(target, n)
        base = _root(target, alias_of)
        for other in [base, *alias_of]:
            if other is target or other is n or order[other] > order[n]:
                continue
            if _root(other, alias_of) is not base:
                continue
            late = [u.name for u in other.users if order[u] > order[n]]
            if late:
                raise UnsupportedOperation(
                    f"node '{n.name}' writes in place into '{target.name}', and node(s) "
                    f"{', '.join(late)} read the same storage afterwards through "
                    f"'{other.name}' (a view or alias taken before the write). liecheck "
                    "cannot keep that aliasing; make the operation out-of-place (e.g. "
                    "inplace=False, x = x + y instead of x += y).")
    return flipped


def _root(n: fx.Node, alias_of: dict) -> fx.Node:
    while n in alias_of:
        n = alias_of[n]
    return n


def _make_out_of_place(n: fx.Node, flipped: set[str]) -> bool:
    """Rewrite ``n`` to its out-of-place form; True if it wrote into its first argument."""
    if n.op == "call_module":
        return n.target in flipped
    if n.op == "call_method":
        t = n.target
        if t in _INPLACE_DUNDERS:
            n.target = _INPLACE_DUNDERS[t]
            return True
        if t.endswith("_") and not t.startswith("_"):
            n.target = t[:-1]
            return True
        return False
    if n.op != "call_function":
        return False
    if n.target in _INPLACE_FUNCS:
        n.target = _INPLACE_FUNCS[n.target]
        return True
    bound = bind(n)
    if bound is not None and bound.arguments.get("inplace") is True:
        bound.arguments["inplace"] = False
        n.args, n.kwargs = tuple(bound.args), dict(bound.kwargs)
        return True
    return False


def _may_alias(n: fx.Node, modules: dict, views: set) -> bool:
    if n.op == "call_method":
        return n.target in _VIEW_METHODS
    if n.op == "call_function":
        return n.target in _VIEW_FUNCS or n.target in views
    if n.op == "call_module":
        m = modules[n.target]
        return (isinstance(m, _VIEW_MODULES)
                or type(m) in views)
    return False


_SUB_FUNCS = {operator.sub, torch.sub, torch.subtract}
_SUB_METHODS = {"sub", "subtract", "__sub__"}
_ADD_FUNCS = {operator.add, torch.add}
_ADD_METHODS = {"add", "__add__"}


def expand_subtraction(graph: fx.Graph, is_tensor) -> None:
    """Rewrite subtractions and additions with ``alpha`` as ``a + k * b``.

    ``is_tensor(node)`` says whether an fx node holds a tensor (not a shape value).
    The scaled summand becomes an ``operator.mul`` node with a constant number.
    """
    for n in list(graph.nodes):
        if n.op == "call_function":
            sub, add = n.target in _SUB_FUNCS, n.target in _ADD_FUNCS
        elif n.op == "call_method":
            sub, add = n.target in _SUB_METHODS, n.target in _ADD_METHODS
        else:
            continue
        if not (sub or add) or len(n.args) != 2 or set(n.kwargs) - {"alpha"}:
            continue
        a, b = n.args
        if not any(isinstance(v, fx.Node) and is_tensor(v) for v in (a, b)):
            continue  # shape arithmetic
        alpha = n.kwargs.get("alpha", 1)
        if not is_number(alpha):
            raise UnsupportedOperation(f"node '{n.name}': alpha={alpha!r} is not a constant number")
        k = -alpha if sub else alpha
        if add and "alpha" not in n.kwargs:
            continue  # a plain addition
        if k == 1:
            scaled: Any = b
        elif is_number(b):
            scaled = k * b
        elif isinstance(b, fx.Node) and is_tensor(b):
            with graph.inserting_before(n):
                scaled = graph.call_function(operator.mul, (b, k))
        else:
            raise UnsupportedOperation(
                f"node '{n.name}': {'subtraction' if sub else 'addition with alpha'} of a "
                f"value that is neither a tensor nor a constant number ({b!r})")
        with graph.inserting_before(n):
            new = graph.call_function(operator.add, (a, scaled))
        n.replace_all_uses_with(new)
        graph.erase_node(n)
