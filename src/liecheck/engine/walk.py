"""The reverse walk: one recorded forward pass, then each node's rule in reverse order.

``propagate(graph, x, rules, inject, record)`` is the engine every method and
metric uses. Relevance can be injected at any node (any tensor of that node's
output shape) and read at any set of nodes in the same pass; where a tensor feeds
several nodes, the relevances add. Activations are released as soon as the walk
has passed them, and only those some rule needs are kept at all.

``propagate_many`` runs several walks over one recorded forward pass (CSC: every
start layer of a method, every random vector of an image). The relevance batch may
be a multiple ``fan`` of the forward batch: sample ``i * fan + j`` of the relevance
belongs to sample ``i`` of the forward pass, and rules broadcast the activations
(and what they compute from them, cached per node in ``Walk.memo`` across the walks)
over the ``fan`` relevance samples of each image.

The walk never reads a value back to the host: the finite check of every node's
relevance is reduced on the device and inspected once, after the walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from .graph import Graph
from .node import Node
from .ops import MaxPool
from .rule import Rule

INDICES = "#indices"  # acts key suffix of a max-pool node's arg-max indices


class NonFiniteRelevance(FloatingPointError):
    """Relevance became NaN or infinite during the walk; ``node`` names where."""

    def __init__(self, message: str, node: str | None = None):
        super().__init__(message)
        self.node = node


class Walk:
    """The context a rule sees: the forward pass's activations and the relevance shapes.

    ``x`` is the forward batch; ``shapes`` are the *relevance* shapes (batch ``fan``
    times the explained batch); ``fan`` is the number of relevance samples per explained
    sample; ``memo`` (or ``None``) caches quantities rules derive from the forward pass
    alone, keyed by ``(node name, key)``, for the walks that share this forward pass;
    ``logits`` are the explained batch's logits.
    """

    def __init__(self, graph: Graph, x: torch.Tensor, acts: dict[str, torch.Tensor],
                 shapes: dict[str, tuple], logits: torch.Tensor, fan: int = 1,
                 memo: dict | None = None):
        self.graph = graph
        self.x = x
        self.acts = acts
        self.shapes = shapes
        self.logits = logits
        self.fan = fan
        self.memo = memo

    def output(self, node: Node) -> torch.Tensor:
        return self.acts[node.name]

    def inputs(self, node: Node) -> list[torch.Tensor]:
        return [self.acts[i] for i in node.inputs]

    def act(self, name: str) -> torch.Tensor:
        return self.acts[name]

    def shape(self, name: str) -> tuple:
        return self.shapes[name]

    def pool_indices(self, node: Node) -> torch.Tensor | None:
        """Arg-max indices a max-pool node recorded in the forward pass, if kept."""
        return self.acts.get(node.name + INDICES)


def keep_set(graph: Graph, rules: Mapping[str, Rule], extra_keep: Iterable[str] = ()) -> set:
    """Names of the activations the rules read (plus ``extra_keep``)."""
    names = set(extra_keep)
    for n in graph.nodes:
        rule = rules.get(n.name)
        if rule is None:
            continue
        if rule.needs_output:
            names.add(n.name)
        if rule.needs_inputs:
            names.update(n.inputs)
    return names


def forward(graph: Graph, x: torch.Tensor, rules: Mapping[str, Rule] | None = None,
            extra_keep: Iterable[str] = (), start: int = 0,
            given: Mapping[str, torch.Tensor] | None = None) -> tuple[dict, dict]:
    """Run the graph once; keep the activations the rules need.

    Returns ``(acts, shapes)``. With ``rules=None`` every activation is kept.
    ``start`` / ``given``: compute only the nodes from index ``start`` on, reading
    the outputs of earlier nodes from ``given`` (see :meth:`Graph.forward`).
    """
    keep_names = None if rules is None else keep_set(graph, rules, extra_keep)
    shapes: dict[str, tuple] = {}

    def keep(node: Node) -> bool:
        return keep_names is None or node.name in keep_names

    indices: dict[str, torch.Tensor] = {}
    acts = graph.forward(x, keep=keep, shapes=shapes, indices=indices, start=start,
                         given=given)
    for name, idx in indices.items():  # max-pool switches, for the rules that read the input
        if keep_names is None or graph.by_name[name].inputs[0] in keep_names:
            acts[name + INDICES] = idx
    return acts, shapes


def relevance_shapes(shapes: Mapping[str, tuple], batch: int) -> dict[str, tuple]:
    """The forward pass's shapes with the relevance batch size ``batch``."""
    return {k: (batch,) + tuple(s[1:]) for k, s in shapes.items()}


def propagate(graph: Graph, x: torch.Tensor, rules: Mapping[str, Rule],
              inject: Mapping[str, torch.Tensor] | None = None,
              record: Iterable[str] = (), start_fn=None, check_finite: bool = True,
              fan: int = 1) -> dict[str, torch.Tensor]:
    """Forward ``x`` through ``graph``, then walk back with ``rules``.

    Parameters
    ----------
    graph : a traced :class:`~liecheck.engine.graph.Graph`.
    x : input batch ``(N, C, H, W)``.
    rules : node name -> :class:`~liecheck.rules.base.Rule` (see ``methods``).
    inject : node name -> relevance at that node's output (shape of the output, batch
        ``N * fan``).
    record : node names whose relevance (at their output) is returned.
    start_fn : ``start_fn(acts) -> {node: relevance}`` computed after the forward
        pass (e.g. one-hot times the logits); merged with ``inject``.
    fan : relevance samples per forward sample (see :func:`propagate_many`).

    Returns
    -------
    dict node name -> relevance for every recorded node the walk reached
    (``"output"`` -> the logits is added).
    """
    return propagate_many(graph, x, rules, [inject or {}], [record], start_fn, check_finite,
                          fan)[0]


def propagate_many(graph: Graph, x: torch.Tensor, rules: Mapping[str, Rule],
                   injects: Sequence[Mapping[str, torch.Tensor]],
                   records: Sequence[Iterable[str]], start_fn=None, check_finite: bool = True,
                   fan: int = 1, extra_keep: Iterable[str] = ()
                   ) -> list[dict[str, torch.Tensor]]:
    """Several walks over one forward pass of ``x``: walk ``k`` injects ``injects[k]``
    and returns the relevance at ``records[k]`` (as :func:`propagate` does).

    The relevance batch is ``fan`` times the forward batch: relevance sample
    ``i * fan + j`` belongs to image ``i`` (e.g. ``fan`` random vectors per image,
    ``x`` not repeated). With more than one walk the activations are kept until the
    last walk and the rules' forward-only quantities are computed once
    (``Walk.memo``). ``extra_keep``: activations to keep besides what the rules read.
    """
    ctx = record_forward(graph, x, rules, fan, len(injects) > 1, extra_keep)
    outs = []
    for inject, record in zip(injects, records, strict=True):
        inj = {graph.resolve(k): v for k, v in inject.items()}
        if start_fn is not None:
            for k, v in start_fn(ctx.acts).items():
                k = graph.resolve(k)
                inj[k] = inj[k] + v if k in inj else v
        outs.append(walk_explained(ctx, rules, inj, [graph.resolve(r) for r in record],
                                   check_finite, release=len(injects) == 1))
    return outs


def record_forward(graph: Graph, x: torch.Tensor, rules: Mapping[str, Rule], fan: int = 1,
                   shared: bool = False, extra_keep: Iterable[str] = ()) -> Walk:
    """The forward pass of a walk over ``x`` (relevance batch ``N * fan``); ``shared``
    gives the context a memo (several walks will read it)."""
    acts, shapes = forward(graph, x, rules, extra_keep=[graph.output, *extra_keep])
    return Walk(graph, x, acts, relevance_shapes(shapes, x.shape[0] * fan),
                acts[graph.output], fan, {} if shared else None)


def walk_explained(ctx: Walk, rules: Mapping[str, Rule], inject: Mapping[str, torch.Tensor],
                   record: Iterable[str], check_finite: bool = True,
                   release: bool = True) -> dict[str, torch.Tensor]:
    """:func:`walk_back`, and where relevance became non-finite, the likely cause
    in one sentence (:class:`NonFiniteRelevance`)."""
    try:
        return walk_back(ctx, rules, inject, record, check_finite, release)
    except NonFiniteRelevance as exc:
        if exc.node is None:
            raise
        raise NonFiniteRelevance(non_finite_cause(ctx, rules, exc.node, inject),
                                 exc.node) from None


def walk_back(ctx: Walk, rules: Mapping[str, Rule], inject: Mapping[str, torch.Tensor],
              record: Iterable[str], check_finite: bool = True,
              release: bool = True) -> dict[str, torch.Tensor]:
    """The reverse walk over ``ctx``'s forward pass (node names already resolved).

    ``release`` frees each activation once the walk has passed it (a single walk);
    the finite check raises :class:`NonFiniteRelevance` after the walk, naming the
    first node (in walk order) whose incoming relevance was not finite.
    """
    graph = ctx.graph
    rel: dict[str, torch.Tensor] = {}
    pending = dict(inject)
    start_index = max(graph.by_name[k].index for k in pending) if pending else -1
    for k, v in pending.items():
        if tuple(v.shape) != tuple(ctx.shapes[k]):
            raise ValueError(f"relevance injected at '{k}' has shape {tuple(v.shape)}, the "
                             f"node's output has shape {tuple(ctx.shapes[k])}")
    recorded: dict[str, torch.Tensor] = {}
    record_set = set(record)
    checked: list[str] = []
    extremes: list[torch.Tensor] = []
    for node in reversed(graph.nodes[: start_index + 1]):
        r = rel.pop(node.name, None)
        if node.name in pending:
            r = pending.pop(node.name) if r is None else r + pending.pop(node.name)
        if r is None:
            if release:
                _release(ctx, node)
            continue
        if check_finite and r.is_floating_point() and r.numel():
            checked.append(node.name)
            extremes.append(torch.stack(r.detach().aminmax()))  # NaN / inf survive min, max
        if node.name in record_set:
            recorded[node.name] = r
        if not node.inputs:  # the input, a constant: relevance ends here
            continue
        rule = rules.get(node.name)
        if rule is None:
            raise KeyError(f"no rule for node '{node.name}' ({node.op.describe()})")
        outs = rule.backward(ctx, node, r)
        for name, ri in zip(node.inputs, outs):
            if ri is None:
                continue
            rel[name] = rel[name] + ri if name in rel else ri
        if release:
            _release(ctx, node)
    if extremes:
        _raise_if_not_finite(checked, torch.stack(extremes))
    recorded["output"] = ctx.logits
    return recorded


def non_finite_cause(ctx: Walk, rules: Mapping[str, Rule], name: str,
                     inject: Mapping[str, torch.Tensor]) -> str:
    """One sentence: where relevance became non-finite and the likely cause."""
    graph, x, logits = ctx.graph, ctx.x, ctx.logits
    users = graph.consumers.get(name, [])
    by = (" (computed by the rule of " + ", ".join(
        f"'{u}' ({type(rules.get(u)).__name__})" for u in users) + ")") if users else ""
    head = f"relevance at node '{name}' is not finite (NaN or inf){by}: "
    bad_x = int((~torch.isfinite(x)).sum()) if x.is_floating_point() else 0
    if bad_x:
        return head + (f"the input holds {bad_x} non-finite value(s) (NaN or inf); "
                       "clean the input first.")
    if not bool(torch.isfinite(logits).all()):
        return head + "the model's output (logits) is not finite for this input."
    bad = [k for k, v in inject.items() if not _all_finite(v)]
    if bad:
        return head + f"the relevance injected at {', '.join(bad)} is not finite."
    return head + ("the input and logits are finite, so a rule divided by a near-zero "
                   "denominator there; try an epsilon rule (or a larger epsilon).")


def _all_finite(r: torch.Tensor) -> bool:
    """``torch.isfinite(r).all()``, usually in one fast reduction: a NaN or inf entry
    makes the sum NaN or inf, so a finite sum proves every entry finite; only a
    non-finite sum (NaN / inf present, or an overflowing sum) needs the exact check."""
    if r.numel() == 0 or not r.is_floating_point():
        return bool(torch.isfinite(r).all())
    return bool(torch.isfinite(r.sum())) or bool(torch.isfinite(r).all())


def _raise_if_not_finite(names: list[str], extremes: torch.Tensor) -> None:
    """One host read for the whole walk; only on failure are nodes looked at one by one."""
    ok = torch.isfinite(extremes).all(1)
    if bool(ok.all()):
        return
    first = names[int((~ok).nonzero()[0, 0])]
    raise NonFiniteRelevance(f"relevance at node '{first}' is not finite", first)


def _release(ctx: Walk, node: Node) -> None:
    """Free the node's output: every consumer has already been visited."""
    ctx.acts.pop(node.name, None)
    if isinstance(node.op, MaxPool):
        ctx.acts.pop(node.name + INDICES, None)
