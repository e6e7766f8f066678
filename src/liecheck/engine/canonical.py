"""Canonicalisation passes over the traced nodes: BatchNorm folding, the sign
analysis (which inputs are provably non-negative), consumers and liveness."""

from __future__ import annotations

from torch import fx

from .fxutil import flat_nodes
from .node import Node
from .ops import AffineOp, ConvOp, DenseOp


def consumers(nodes: list[Node]) -> dict[str, list[str]]:
    """Node name -> the names of the nodes that read it, in execution order."""
    c: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            c[i].append(n.name)
    return c


def fold_batchnorm(nodes: list[Node], output: str) -> tuple[list[Node], str, dict[str, str]]:
    """Fold every BatchNorm that alone reads a conv / dense layer into that layer.

    Returns ``(nodes, output, aliases)``: the nodes without the folded BatchNorms
    (their readers rewired, indices renumbered), the output node and ``aliases``
    (folded BatchNorm name -> its layer's node name).
    """
    by_name = {n.name: n for n in nodes}
    users = consumers(nodes)
    alias: dict[str, str] = {}
    for n in nodes:
        if (type(n.op) is AffineOp and n.inputs
                and n.fx_node.op == "call_module"):  # a BatchNorm, not c * x
            prev = by_name[n.inputs[0]]
            if (isinstance(prev.op, (ConvOp, DenseOp))
                    and len(users[prev.name]) == 1 and prev.name != output):
                prev.op = prev.op.fold(n.op)
                alias[n.name] = n.inputs[0]
    for n in nodes:
        n.inputs = [alias.get(i, i) for i in n.inputs]
    nodes = [n for n in nodes if n.name not in alias]
    for i, n in enumerate(nodes):
        n.index = i
    return nodes, alias.get(output, output), alias


def mark_nonneg(nodes: list[Node]) -> None:
    """Set ``nonneg_input`` on the nodes whose inputs are provably non-negative (each
    op's :meth:`~liecheck.engine.ops.Op.nonneg` says what its output is)."""
    nonneg: dict[str, bool] = {}
    for n in nodes:
        ins = [nonneg.get(i, False) for i in n.inputs]
        n.nonneg_input = bool(ins) and all(ins)
        nonneg[n.name] = n.op.nonneg(ins)


def last_uses(graph: fx.Graph, aliases: dict[str, str],
              nodes: list[Node]) -> dict[str, list[str]]:
    """fx node name -> fx values that can be dropped after it ran (forward memory).
    A node's graph inputs count as read by it too (a part of ``chunk`` reads the
    chunked tensor, not the fx tuple)."""
    reads = {n.name: n.inputs for n in nodes}
    last: dict[str, str] = {}
    for fxn in graph.nodes:
        names = [a.name for a in flat_nodes(fxn.args) + flat_nodes(fxn.kwargs)]
        for name in names + list(reads.get(fxn.name, ())):
            # a folded BatchNorm's value is its conv's tensor: release both names
            last[name] = fxn.name
            last[aliases.get(name, name)] = fxn.name
    out: dict[str, list[str]] = {}
    for value, user in last.items():
        out.setdefault(user, []).append(value)
    return out
