"""CSC through a peer library's hooks (Zennit composites, Captum's modified gradients).

A hook-based method changes the gradient, so its backward pass *is* the method's
reverse walk. :func:`csc_hooks` runs the network under the method's hooks
(``PeerMethod.hooks``), captures the start and recorded modules' outputs with
forward hooks registered after the peer's own, reads their gradients with tensor
hooks registered after the peer's (``autograd.grad(inputs=t)`` would return a
gradient before ``t``'s own hooks, where Captum modifies it), and calls
``torch.autograd.grad(start output, input, grad_outputs=v)`` with the
same random vectors ``v`` as :func:`liecheck.metrics.csc.csc` (same seeds, same
start and record node names, same statistics). Node names map to module calls:
a conv whose BatchNorm liecheck folds is read at the BatchNorm's output, a module
called twice at the matching call. Operations without a module (``F.relu``, ``+``)
cannot be hooked and are refused by name.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine.graph import Graph
from .csc_setup import CSCSetup, pool_values, random_vectors


def module_calls(graph: Graph, nodes: Iterable[str]) -> dict[str, tuple[str, int]]:
    """``node -> (module name, call index)`` for nodes read at a module's output.

    The input and the logits are read directly and are not in the result.
    """
    fx_calls: dict[str, tuple[str, int]] = {}
    seen: dict[str, int] = {}
    for fxn in graph.gm.graph.nodes:
        if fxn.op == "call_module":
            fx_calls[fxn.name] = (fxn.target, seen.get(fxn.target, 0))
            seen[fxn.target] = seen.get(fxn.target, 0) + 1
    out = {}
    for name in nodes:
        if name in (graph.input, graph.output):
            continue
        folded = [a for a, n in graph.aliases.items() if n == name]  # conv + folded BN
        fx_name = folded[-1] if folded else name
        if fx_name not in fx_calls:
            raise ValueError(f"CSC through hooks reads module outputs, but node '{name}' is not "
                             "a module call (a functional op such as F.relu or '+'); choose "
                             "start / layers at modules")
        out[name] = fx_calls[fx_name]
    return out


class _Capture:
    """Forward hooks that keep the outputs of given module calls."""

    def __init__(self, module: nn.Module, calls: dict[str, tuple[str, int]]):
        self.values: dict[str, torch.Tensor] = {}
        self.handles = []
        wanted: dict[str, dict[int, str]] = {}
        for node, (mod, k) in calls.items():
            wanted.setdefault(mod, {})[k] = node
        for mod, by_call in wanted.items():
            count = [0]

            def hook(_m, _inp, out, by_call=by_call, count=count):
                node = by_call.get(count[0])
                count[0] += 1
                if node is not None:
                    if not isinstance(out, torch.Tensor):
                        raise ValueError(f"node '{node}': its module returns "
                                         f"{type(out).__name__}, not a tensor")
                    self.values[node] = out

            self.handles.append(module.get_submodule(mod).register_forward_hook(hook))

    def remove(self):
        for h in self.handles:
            h.remove()


def hooked_relevance(module: nn.Module, method, x: torch.Tensor, graph: Graph, start: str,
                     v: torch.Tensor, record: list[str]) -> dict[str, torch.Tensor]:
    """Relevance at ``record`` when ``v`` enters at ``start``'s output, under the hooks.

    Parameters
    ----------
    module : the model copy to hook (liecheck's traced copy; never the user's).
    method : a :class:`~liecheck.methods.peers.base.PeerMethod` with ``hooks``.
    x : ``(B, C, H, W)`` inputs; ``v`` : ``(B, *start shape)``.

    Returns
    -------
    ``{node: (B, ...)}`` for the recorded nodes that the backward pass reaches.
    """
    calls = module_calls(graph, [start, *record])
    x_in = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), method.hooks(module):
        cap = _Capture(module, calls)
        try:
            y = module(x_in)
        finally:
            cap.remove()
        got = {**cap.values, graph.input: x_in, graph.output: y}
        missing = [n for n in [start, *record] if n not in got]
        if missing:
            raise ValueError(f"the model's forward never produced {missing}")
        # read each gradient with a tensor hook registered after the peer's own hooks
        # (autograd.grad(inputs=t) would return it before t's hooks, e.g. Captum's)
        out: dict[str, torch.Tensor] = {}
        handles = [got[r].register_hook(lambda g, r=r: out.__setitem__(r, g.detach()))
                   for r in record if r != graph.input]
        try:
            gx, = torch.autograd.grad(got[start], x_in, grad_outputs=v, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
    if graph.input in record and gx is not None:
        out[graph.input] = gx.detach()
    if graph.input in out:
        out[graph.input] = method.postprocess(x, out[graph.input])
    return out


def csc_hook_values(model, inputs, method, start="output", layers=None, n_vectors: int = 5,
                    seed: int = 0, batch_size: int | None = None, image_ids=None,
                    device=None, record_points: str = "post_relu") -> pd.DataFrame:
    """:func:`liecheck.metrics.csc.csc_values` for a peer method: same arguments, vectors
    and output (the pooled values; :func:`~liecheck.metrics.csc.csc_rows` summarises)."""
    if method.hooks is None:
        raise ValueError(f"CSC does not apply to '{method.name}': {method.csc_refusal}")
    if n_vectors < 2:
        raise ValueError(f"n_vectors must be at least 2 (pairs are compared), got {n_vectors}")
    setup = CSCSetup.build(model, inputs, start, layers, image_ids, device, record_points)
    graph, x_all, ids, shapes = setup.graph, setup.x, setup.ids, setup.shapes
    module_calls(graph, [*setup.start_nodes, *setup.record])  # refuse before any work
    setup.measure_shapes()
    bs = batch_size or 8
    pooled: dict[tuple[str, str], list[np.ndarray]] = {}
    for b0 in range(0, x_all.shape[0], bs):
        xb = x_all[b0:b0 + bs].to(setup.explainer.device)
        x_rep = xb.repeat_interleave(n_vectors, 0)
        for s_name, s_node in zip(setup.starts, setup.start_nodes):
            rec = setup.below(s_node)
            v = torch.cat([random_vectors(seed, s_node, ids[b0 + i], n_vectors,
                                          shapes[s_node][1:])
                           for i in range(xb.shape[0])]).to(setup.explainer.device, x_rep.dtype)
            out = hooked_relevance(graph.module, method, x_rep, graph, s_node, v, rec)
            pool_values(pooled, s_name, rec, out, n_vectors, setup.channels)
    return setup.value_frame(method.name, pooled)
