"""Running the canonical graph: the forward pass over the traced fx graph, keeping the
node outputs asked for and freeing every value after its last use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx

from .classify import HOW_TO
from .fxutil import UnsupportedOperation, flat_nodes
from .interface import TracedGraph
from .node import Node
from .ops import MaxPool


def run(graph: TracedGraph, x: torch.Tensor, keep: Callable[[Node], bool] | None = None,
        shapes: dict | None = None, indices: dict | None = None, start: int = 0,
        given: dict | None = None) -> dict[str, torch.Tensor]:
    """:meth:`Graph.forward <liecheck.engine.graph.Graph.forward>` without the forward
    check (same parameters)."""
    env: dict[str, Any] = {}
    acts: dict[str, torch.Tensor] = {}
    aliases = graph.aliases
    for fxn in graph.gm.graph.nodes:
        if fxn.op == "output":
            break
        node = graph.by_name.get(fxn.name)
        if start and below(graph, fxn, start):
            src = aliases.get(fxn.name, fxn.name)
            if given is not None and src in given:
                env[fxn.name] = given[src]
            continue
        if fxn.op == "placeholder":
            val = x
        elif node is not None and node.op.computes:
            val = node.op.forward(*[env[i] for i in node.inputs])
        elif node is None and fxn.name in aliases:
            val = env[aliases[fxn.name]]
        elif node is not None and isinstance(node.op, MaxPool):
            if indices is not None:  # the switches, so the walk need not recompute them
                val, indices[node.name] = F.max_pool2d(env[node.inputs[0]],
                                                       return_indices=True, **node.op.params)
            else:
                val = F.max_pool2d(env[node.inputs[0]], **node.op.params)
        else:
            val = _call(graph, fxn, env)
        if node is not None and not isinstance(val, torch.Tensor):  # meta nodes: no Node
            raise UnsupportedOperation(
                f"node '{fxn.name}' returned {type(val).__name__}, not a tensor")
        if node is None and isinstance(val, torch.Tensor) and fxn.name not in aliases:
            raise UnsupportedOperation(
                f"node '{fxn.name}' ({fxn.op} {getattr(fxn.target, '__name__', fxn.target)}) "
                f"computes a tensor but has no rule. {HOW_TO}")
        env[fxn.name] = val
        if node is not None:
            if shapes is not None:
                shapes[node.name] = tuple(val.shape)
            if keep is None or keep(node) or node.name == graph.output:
                acts[node.name] = val
        for dead in graph.last_use.get(fxn.name, ()):
            env.pop(dead, None)
    return acts


def _call(graph: TracedGraph, fxn: fx.Node, env: dict) -> Any:
    """Evaluate one fx node that has no engine implementation (ReLU, add, reshape, ...)."""
    args = fx.node.map_arg(fxn.args, lambda a: env[a.name])
    kwargs = fx.node.map_arg(fxn.kwargs, lambda a: env[a.name])
    if fxn.op == "call_module":
        return graph.gm.get_submodule(fxn.target)(*args, **kwargs)
    if fxn.op == "call_function":
        return fxn.target(*args, **kwargs)
    self_obj, *rest = args
    return getattr(self_obj, fxn.target)(*rest, **kwargs)


def cut(graph: TracedGraph, start: int) -> set[str]:
    """Node outputs below index ``start`` that ``run(start=start)`` reads."""
    out: set[str] = set()
    for fxn in graph.gm.graph.nodes:
        if fxn.op == "output" or below(graph, fxn, start):
            continue
        for a in flat_nodes(fxn.args) + flat_nodes(fxn.kwargs):
            src = graph.by_name.get(graph.aliases.get(a.name, a.name))
            if src is not None and src.index < start:
                out.add(src.name)
    return out


def below(graph: TracedGraph, fxn: fx.Node, start: int) -> bool:
    """Whether an fx node's value comes from a graph node below index ``start``
    (a folded BatchNorm counts as its layer; shape queries are never below)."""
    src = graph.by_name.get(graph.aliases.get(fxn.name, fxn.name))
    return src is not None and src.index < start
