"""Model parameter randomisation: the sanity check of Adebayo et al. (2018) as the
paper runs it (Sixt et al. 2020, section 5, Figure 4b).

Parametrised layers (conv, dense, BatchNorm modules) are visited from the last to
the first in *execution* order (the traced graph's node order, not registration
order). In the cascading variant, step ``k`` re-initialises the ``k`` topmost
layers; in the independent variant, only the ``k``-th. Each layer gets its own seed
derived from ``seed`` and its module name and PyTorch's default initialiser
(``reset_parameters()``; BatchNorm running statistics are reset too). A BatchNorm
folded into a conv is randomised together with that conv (one step). Everything
happens on a deep copy; the user's model is untouched.

At each step the *same* class (the given target, or the trained model's
prediction) is explained and compared with the trained model's map (SSIM by
default, see :mod:`liecheck.metrics.similarity`). The trained model compared with
a fresh explanation of itself is reported separately, in ``df.attrs["trained"]``,
and never mixed into the per-step rows.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attribution import Explainer, explainer_for, to_device
from ..engine import ops
from ..engine.fxutil import UnsupportedOperation
from ..engine.graph import trace
from ..inputs import resolve_targets
from ..methods import Method, get_method
from ..methods.peers import PeerMethod
from ..methods.reforward import Reforward, layer_ops, module_of
from .similarity import prepare
from .similarity import similarity as compare


def parametrised_layers(model: nn.Module) -> list[list[str]]:
    """Parametrised modules in execution order, grouped per randomisation step.

    Returns a list (first layer first) of module-name groups: a conv / dense module
    with the BatchNorm folded into it, or a stand-alone BatchNorm. A module used
    twice is placed at its last use.
    """
    graph = trace(model)
    inner = [n.name for n in graph.nodes if isinstance(n.op, ops.attention.LibraryFunction)
             and any(n.constant_inputs)]
    if inner:
        raise UnsupportedOperation(
            f"node '{inner[0]}' ({graph.by_name[inner[0]].op.describe()}) reads its "
            "projections' weights inside one node, where the randomisation of their modules "
            "does not reach; the cascade would leave them trained. Not supported (Swin).")
    targets = {n.name: n.target for n in graph.gm.graph.nodes if n.op == "call_module"}
    folded: dict[str, list[str]] = {}
    for bn_fx, layer_node in graph.aliases.items():
        if bn_fx in targets:
            folded.setdefault(layer_node, []).append(targets[bn_fx])
    groups: list[list[str]] = []
    for node in graph.nodes:
        owner = module_of(node) if node.is_parametrised else None   # None: no layer
        if owner is not None:
            names = [owner] + folded.get(node.name, [])
            groups = [g for g in groups if not set(g) & set(names)]
            groups.append(names)
    return groups


def layer_seed(seed: int, name: str) -> int:
    """The seed of one module's re-initialisation (from ``seed`` and its name)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def randomize(model: nn.Module, names: list[str], seed: int = 0) -> nn.Module:
    """Re-initialise the modules ``names`` of ``model`` in place (pass a copy)."""
    for name in names:
        mod = model.get_submodule(name)
        # nn.MultiheadAttention re-initialises its input projection in _reset_parameters
        reset = getattr(mod, "reset_parameters", None) or (
            mod._reset_parameters if isinstance(mod, nn.MultiheadAttention) else None)
        if reset is None:
            raise ValueError(f"module '{name}' ({type(mod).__name__}) has no "
                             "reset_parameters(); cannot re-initialise it")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(layer_seed(seed, name))
            dev = next(mod.parameters(), torch.empty(0)).device
            mod.to("cpu")
            reset()             # CPU generator: same values on every device
            mod.to(dev)
    return model


def _steps(model, layers, mode):
    groups = list(reversed(parametrised_layers(model)))  # last layer first
    if isinstance(layers, int):
        chosen = set(range(min(layers, len(groups))))
    elif layers == "all" or layers is None:
        chosen = set(range(len(groups)))
    elif layers == "ends":      # the last layer, and every layer (the cascade's two ends)
        chosen = {0, len(groups) - 1} if groups else set()
    else:
        canon = {n.replace(".", "_"): n for g in groups for n in g}   # either spelling
        want = {canon.get(str(n).replace(".", "_"), n) for n in layers}
        chosen = {i for i, g in enumerate(groups) if want & set(g)}
        missing = want - {n for g in groups for n in g}
        if missing:
            raise ValueError(f"not parametrised layers of the model: {sorted(missing)}; "
                             f"choose from {[n for g in groups for n in g]}")
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', not {mode!r}")
    return groups, chosen


def _explain(model, x, m, target, batch_size, device):
    ex = model if isinstance(model, Explainer) else Explainer(model, device=device)
    out = [ex.attribute(x[i:i + batch_size], m, target=target[i:i + batch_size])
           for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).cpu()


def _device(model: nn.Module):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _checked_targets(model: nn.Module | Explainer, x, target, batch_size: int) -> torch.Tensor:
    """Check ``x`` and ``target`` against the model (before any work); ``(N,)`` classes on
    the CPU: ``target`` broadcast, or the model's predictions."""
    ex = model if isinstance(model, Explainer) else explainer_for(model, _device(model))
    n_classes = ex.check_inputs(x)
    return resolve_targets(target, len(x), n_classes, lambda: ex.predict(x, batch_size), "cpu")


def cascade_maps(model: nn.Module, inputs, method: str | Method, target=None,
                 layers="all", seed: int = 0, mode: str = "cascading",
                 batch_size: int | None = None, device: str | torch.device | None = None
                 ) -> Iterator[tuple[int, list[str], torch.Tensor]]:
    """Yield ``(step, randomised modules, relevance (N, C, H, W))``; step 0 is the
    trained model, step k the model with the k topmost layers (cascading) or the
    k-th layer from the top (independent) re-initialised. ``target`` as in
    :func:`sanity` (fixed by the trained model). The model is traced once; all maps
    are computed (batch by batch) before the first is yielded."""
    m = get_method(method)
    x = getattr(inputs, "images", inputs)
    x = x.detach() if isinstance(x, torch.Tensor) else x  # maps never need its graph
    bs = batch_size or 16
    ex = Explainer(model, device=device or _device(model))
    target = _checked_targets(ex, x, target, bs)
    maps: dict[int, list[torch.Tensor]] = {}
    names_of: dict[int, list[str]] = {}
    for _, step, names, r in _cascade(ex, x, m, target, layers, seed, mode, bs):
        maps.setdefault(step, []).append(r)
        names_of[step] = names
    for step in sorted(maps):
        yield step, names_of[step], torch.cat(maps[step])


def _cascade(ex: Explainer, x: torch.Tensor, m: Method, target: torch.Tensor, layers, seed,
             mode, bs):
    """``(first image, step, modules, maps of the batch on the CPU)``, batch by batch.

    Re-initialising a layer swaps its operation in ``ex``'s traced graph (built from
    its re-initialised modules as tracing would, see :func:`liecheck.methods.reforward.layer_ops`);
    walkable methods recompute the forward pass only from the lowest changed layer
    up (:class:`~liecheck.methods.reforward.Reforward`). The graph's trained operations are
    restored at the end.
    """
    graph = ex.graph
    groups, chosen = _steps(graph.module, layers, mode)
    last = max(chosen, default=-1)
    group_ops: dict[int, dict] = {}
    work = copy.deepcopy(graph.module)  # the graph's ops share the tensors of graph.module
    for k, names in enumerate(groups[:last + 1]):  # each group's random ops, built once
        randomize(work, names, seed)
        group_ops[k] = layer_ops(graph, names, work)
    del work
    trained = {n.name: n.op for n in graph.nodes if n.is_parametrised}
    plan = []  # (step, names, ops to swap in, lowest changed node index)
    for k in sorted(chosen):
        ops = {}
        for i in ([k] if mode == "independent" else range(k + 1)):
            ops.update(group_ops[i])
        plan.append((k + 1, groups[k], ops, min(graph.by_name[n].index for n in ops)))
    p = dict(m.params)
    try:
        for b0 in range(0, x.shape[0], bs):
            xb = to_device(x[b0:b0 + bs], ex.device)
            tb = target[b0:b0 + bs].to(ex.device)
            _set_ops(graph, trained)
            if m.walkable and m.map_is_one_walk:
                rf = Reforward(ex, xb, m, tb, p, [j for *_, j in plan])
                yield b0, 0, [], rf.attribute().cpu()
                for step, names, ops, j in plan:
                    _set_ops(graph, {**trained, **ops})
                    for name in ops:  # memory: a replaced op's cached [W+; W-] is rebuilt
                        trained[name].__dict__.pop("_wcache", None)  # for the next batch
                    yield b0, step, names, rf.attribute(j).cpu()
            elif isinstance(m, PeerMethod):
                # a peer library's method runs its own hooks on the module, not on the
                # graph's operations: randomise a copy of the module and explain that
                yield b0, 0, [], ex.attribute(xb, m, target=tb).cpu()
                for step, names, _ops, _ in plan:
                    k = groups.index(names)
                    steps = [k] if mode == "independent" else range(k + 1)
                    work = randomize(copy.deepcopy(graph.module),
                                     [n for i in steps for n in groups[i]], seed)
                    yield b0, step, names, Explainer(work, device=ex.device).attribute(
                        xb, m, target=tb).cpu()
            else:
                yield b0, 0, [], ex.attribute(xb, m, target=tb).cpu()
                for step, names, ops, _ in plan:
                    _set_ops(graph, {**trained, **ops})
                    yield b0, step, names, ex.attribute(xb, m, target=tb).cpu()
    finally:
        _set_ops(graph, trained)


def _set_ops(graph, ops: dict) -> None:
    for name, op in ops.items():
        graph.by_name[name].op = op


def sanity(model: nn.Module, inputs, method: str | Method, target=None, layers="all",
           seed: int = 0, mode: str = "cascading", similarity: str = "ssim",
           batch_size: int | None = None, image_ids=None,
           device: str | torch.device | None = None) -> pd.DataFrame:
    """Cascading (or independent) parameter randomisation test.

    Parameters
    ----------
    model : the trained network (deep-copied; never modified); an
        :class:`~liecheck.Explainer` is accepted (its traced copy is used).
    inputs : ``(N, C, H, W)`` tensor or an :class:`~liecheck.data.ImageSet`.
    method : registry name or :class:`~liecheck.Method` (any method, walkable or not).
    target : class per image (``(N,)`` or int); ``None``: the trained model's
        prediction. The same class is explained at every step.
    layers : ``"all"``, an int ``k`` (the ``k`` topmost steps), ``"ends"`` (the first
        and the last step: the last layer, and every layer, randomised) or module names
        whose steps are reported (the cascade still randomises everything above them;
        maps are computed only at the reported steps).
    seed : base seed; each module's seed is :func:`layer_seed` (seed, name).
    mode : ``"cascading"`` (the paper) or ``"independent"`` (one layer at a time).
    similarity : ``"ssim"`` (max over the sign flip), ``"spearman"`` or ``"l1"``.
    batch_size : images per attribution call (default 16).
    image_ids : ``(N,)`` the images' numbers for the ``image`` column (default
        ``0 ... N-1``; the re-initialisations depend on layer names only).
    device : where to run (default: the model's device).

    Returns
    -------
    ``DataFrame``, one row per (image, step): ``method, mode, image, target, step``
    (1 = the last layer), ``layer`` (randomised modules of the step, joined by
    ``+``), ``measure, score``. ``df.attrs["trained"]``: per-image score of the
    trained model's map against a fresh explanation by the trained model (1 for a
    deterministic method); it is not one of the steps and is never averaged in.
    """
    m = get_method(method)
    if isinstance(model, Explainer):  # its traced copy keeps the module structure
        model = model.graph.module
    x = getattr(inputs, "images", inputs)
    x = x.detach() if isinstance(x, torch.Tensor) else x  # maps never need its graph
    bs = batch_size or 16
    ex = Explainer(model, device=device or _device(model))  # traced once
    tgt = _checked_targets(ex, x, target, bs)
    ids = list(range(len(x))) if image_ids is None else [int(i) for i in image_ids]
    if len(ids) != len(x):
        raise ValueError(f"image_ids has {len(ids)} entries for {len(x)} images")
    scores: dict[int, list[torch.Tensor]] = {}
    names_of: dict[int, list[str]] = {}
    refs: dict[int, torch.Tensor] = {}  # first image of the batch -> trained maps
    for b0, step, names, r in _cascade(ex, x, m, tgt, layers, seed, mode, bs):
        h = prepare(r, m)
        if step == 0:
            ref = refs[b0] = h
            continue
        scores.setdefault(step, []).append(compare(ref, h, similarity))
        names_of[step] = names
    rows = []
    for step in sorted(scores):
        s = torch.cat(scores[step])
        for i in range(len(s)):
            rows.append({"method": m.name, "mode": mode, "image": ids[i], "target": int(tgt[i]),
                         "step": step, "layer": "+".join(names_of[step]),
                         "measure": similarity, "score": float(s[i])})
    # a fresh explanation by the trained model (ops restored) against step 0's map
    again = [compare(refs[b0], prepare(_explain(ex, x[b0:b0 + bs], m, tgt[b0:b0 + bs], bs,
                                                None), m), similarity)
             for b0 in range(0, x.shape[0], bs)]
    df = pd.DataFrame(rows)
    df.attrs["trained"] = [float(v) for v in torch.cat(again)]
    return df
