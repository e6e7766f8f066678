"""The one way a walk-based method runs: :class:`MethodRun`.

Every API and metric that walks (``Explainer.walk / walks / attribute``, CSC, the
cascading randomisation through :mod:`liecheck.methods.reforward`, the derivation operator
of :mod:`liecheck.theory.spectrum`) runs a :class:`~liecheck.methods.Method` through
this class, in the order of the method protocol (see :mod:`liecheck.methods.protocol`):
the method's forward batch and walk context, its start relevance, the walk with its
rules, its ``finish`` at the recorded nodes and, for maps, its ``postprocess``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from ..engine.graph import Graph
from ..engine.walk import Walk, forward, walk_explained
from ..rules.base import Rule
from .protocol import Method


class MethodRun:
    """One explained batch ``x`` under one method: one forward pass, then walks.

    Parameters
    ----------
    graph : the traced model.
    method, params : the method and its full parameters.
    rules : the method's rules on ``graph``.
    ctx : the walk context of the forward pass (:meth:`Method.walk_context`).
    x : the explained batch ``(N, ...)``.
    release : free each activation once a walk has passed it (one walk only).
    """

    def __init__(self, graph: Graph, method: Method, params: dict, rules: Mapping[str, Rule],
                 ctx: Walk, x: torch.Tensor, release: bool = True):
        self.graph, self.method, self.params, self.rules = graph, method, params, rules
        self.ctx, self.x, self.release = ctx, x, release

    @classmethod
    def forward(cls, graph: Graph, method: Method, params: dict, rules: Mapping[str, Rule],
                x: torch.Tensor, records: Iterable[Iterable[str]] = (), fan: int = 1,
                shared: bool = False) -> MethodRun:
        """Run the method's forward pass of ``x``.

        ``records``: the node lists the walks will record (the activations the method's
        ``finish`` reads for them are kept); ``fan``: relevance samples per sample of
        ``x``; ``shared``: several walks will read this forward pass (activations are
        kept for all of them, forward-only rule quantities computed once).
        """
        needs: set[str] = set()
        for rec in records:
            needs |= method.finish_reads(graph, [graph.resolve(r) for r in rec])
        xf = method.forward_batch(x, params)
        acts, shapes = forward(graph, xf, rules, extra_keep=[graph.output, *needs])
        ctx = method.walk_context(graph, x, xf, acts, shapes, fan, {} if shared else None)
        return cls(graph, method, params, rules, ctx, x, release=not shared and not needs)

    def start(self, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{output: relevance}`` explaining ``target`` ``(N,)`` (default: the predicted
        classes)."""
        logits = self.ctx.logits
        t = logits.argmax(1) if target is None else target.to(logits.device)
        return {self.graph.output: self.method.start_relevance(logits, t, self.params)}

    def walk(self, inject: Mapping[str, torch.Tensor], record: Iterable[str],
             post: bool = False, check_finite: bool = True) -> dict[str, torch.Tensor]:
        """One walk: relevance injected at nodes (``inject``, node or module names),
        returned at the ``record`` nodes as the method finishes it (plus ``"output"``,
        the logits). ``post``: the relevance at the input is the method's map
        (:meth:`Method.postprocess`)."""
        g = self.graph
        inj = {g.resolve(k): v for k, v in inject.items()}
        out = walk_explained(self.ctx, self.rules, inj, [g.resolve(r) for r in record],
                             check_finite, self.release)
        out = self.method.finish(self.ctx, out, self.params)
        if post and g.input in out:
            out[g.input] = self.method.postprocess(self.x, out[g.input])
        return out

    def attribute(self, target: torch.Tensor | None = None) -> torch.Tensor:
        """The map at the input, explaining ``target`` (default: the predicted classes);
        zeros where no relevance reached the input."""
        r = self.walk(self.start(target), [self.graph.input], post=True).get(self.graph.input)
        return torch.zeros_like(self.x) if r is None else r
