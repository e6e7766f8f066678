"""Explain one image batch while layers of the traced graph change their parameters.

The cascading randomisation test (``metrics.sanity``) explains the same images with
the ``k`` topmost layers re-initialised, for ``k = 0, 1, ...``. Below the lowest
changed layer every activation, and every quantity a rule derives from them alone
(``Walk.memo``), is the trained model's. :class:`Reforward` keeps those from the
trained forward pass and recomputes only the nodes from the lowest changed layer
up. :func:`layer_ops` builds a layer's operation from (re-initialised) modules
exactly as tracing does, so swapping it into the graph gives the same numbers as
re-tracing the changed model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..engine.attention import MHA_PROJECTION
from ..engine.fxutil import UnsupportedOperation
from ..engine.graph import Graph
from ..engine.ops import AffineOp, ConvOp, DenseOp, LinearOp
from ..engine.walk import INDICES, forward
from .protocol import Method
from .run import MethodRun


def module_of(node) -> str | None:
    """The module whose parameters a parametrised node computes with (the layer the
    cascade re-initialises): its own, or the ``nn.MultiheadAttention`` whose
    ``in_proj_weight`` a decomposed attention's input projection reads; ``None`` for a
    module-less affine node (a constant scale or shift: attention's ``1/sqrt(d)``, a
    layer scale), which is no layer of the cascade. A conv or dense layer computed from a
    bare parameter that belongs to no module the cascade can re-initialise
    (``F.linear(x, self.w)``) is refused: the cascade would leave it trained."""
    if node.module is not None:
        return node.module
    if node.layer == "affine":
        return None
    fxn = node.fx_node
    if fxn is not None and MHA_PROJECTION in fxn.meta:
        return fxn.meta[MHA_PROJECTION]
    raise UnsupportedOperation(
        f"node '{node.name}' ({node.op.describe()}) computes with a parameter that is not "
        "a module's own (a functional layer); the cascade cannot re-initialise it and would "
        "leave it trained. Make the layer an nn.Module (nn.Linear, nn.Conv2d).")


def layer_ops(graph: Graph, modules: Iterable[str], root: torch.nn.Module | None = None
              ) -> dict[str, LinearOp]:
    """``{node name: op}`` for every parametrised node whose module (or the
    BatchNorm folded into it) is one of ``modules``, built from the current
    parameters of ``root``'s submodules (default ``graph.module``; the graph's ops
    share their tensors with it) as :func:`~liecheck.engine.graph.trace` does (BatchNorm
    folded, on the graph's device)."""
    root = graph.module if root is None else root
    names = set(modules)
    folded: dict[str, list[str]] = {}
    targets = {n.name: n.target for n in graph.gm.graph.nodes if n.op == "call_module"}
    for bn_fx, layer in graph.aliases.items():
        if bn_fx in targets:
            folded.setdefault(layer, []).append(targets[bn_fx])
    out: dict[str, LinearOp] = {}
    for node in graph.nodes:
        bns = folded.get(node.name, [])
        owner = module_of(node) if node.is_parametrised else None
        if owner is None or not ({owner, *bns} & names):
            continue
        mod = root.get_submodule(owner)
        if node.layer == "conv":
            op = ConvOp.from_module(mod)
        elif node.layer == "dense" and isinstance(mod, torch.nn.MultiheadAttention):
            op = DenseOp(mod.in_proj_weight, mod.in_proj_bias)   # its input projection
        elif node.layer == "dense":
            op = DenseOp(mod.weight, mod.bias)
        else:
            op = AffineOp.from_batchnorm(mod)
        for bn in bns:
            op = op.fold(AffineOp.from_batchnorm(root.get_submodule(bn)))
        device = node.op.weight.device if node.op.weight is not None else None
        out[node.name] = op.to(device) if device is not None else op
    return out


class Reforward:
    """One image batch explained by one walkable method, for changing layer ops.

    Parameters
    ----------
    explainer : the :class:`~liecheck.Explainer` whose graph's ops will change.
    x : the batch ``(N, C, H, W)`` on the explainer's device.
    method, params : the method and its parameters.
    target : ``(N,)`` classes on the device.
    starts : node indices from which :meth:`attribute` may be asked to recompute
        (the lowest node of each layer group that will change).
    """

    def __init__(self, explainer, x: torch.Tensor, method: Method, target: torch.Tensor,
                 params: dict, starts: Iterable[int]):
        self.ex, self.graph, self.m, self.p = explainer, explainer.graph, method, params
        self.x, self.target = x, target
        self.rules = explainer.rules(method, params)
        keep = {self.graph.output}
        for j in starts:
            keep |= self.graph.cut(j)
        self.extra = keep
        with torch.no_grad():
            self.xf = method.forward_batch(x, params)
            self.base, self.shapes = forward(self.graph, self.xf, self.rules, extra_keep=keep)
        self.memo: dict = {}
        self._dirty = len(self.graph.nodes)  # memo entries from here up are not the trained

    def _index(self, name: str) -> int:
        return self.graph.by_name[name.split(INDICES)[0]].index

    @torch.no_grad()
    def attribute(self, start: int | None = None) -> torch.Tensor:
        """The map ``(N, C, H, W)`` with the graph's current ops; every op below node
        index ``start`` must be the one the batch was first recorded with
        (``None``: nothing changed)."""
        g = self.graph
        start = len(g.nodes) if start is None else start
        low = min(start, self._dirty)
        self.memo = {k: v for k, v in self.memo.items() if g.by_name[k[0]].index < low}
        self._dirty = start
        acts = {k: v for k, v in self.base.items() if self._index(k) < start}
        if start < len(g.nodes):
            given = {k: self.base[k] for k in g.cut(start)}
            new, _ = forward(g, self.xf, self.rules, extra_keep=self.extra, start=start,
                             given=given)
            acts.update(new)
        ctx = self.m.walk_context(g, self.x, self.xf, acts, self.shapes, 1, self.memo)
        return MethodRun(g, self.m, self.p, self.rules, ctx, self.x).attribute(self.target)
