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

from ..attribution import Explainer, explainer_for
from ..graph import trace
from ..inputs import resolve_targets
from ..methods import Method, get_method
from .similarity import prepare
from .similarity import similarity as compare


def parametrised_layers(model: nn.Module) -> list[list[str]]:
    """Parametrised modules in execution order, grouped per randomisation step.

    Returns a list (first layer first) of module-name groups: a conv / dense module
    with the BatchNorm folded into it, or a stand-alone BatchNorm. A module used
    twice is placed at its last use.
    """
    graph = trace(model)
    targets = {n.name: n.target for n in graph.gm.graph.nodes if n.op == "call_module"}
    folded: dict[str, list[str]] = {}
    for bn_fx, layer_node in graph.aliases.items():
        if bn_fx in targets:
            folded.setdefault(layer_node, []).append(targets[bn_fx])
    groups: list[list[str]] = []
    for node in graph.nodes:
        if node.is_parametrised and node.module is not None:
            names = [node.module] + folded.get(node.name, [])
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
        if not hasattr(mod, "reset_parameters"):
            raise ValueError(f"module '{name}' ({type(mod).__name__}) has no "
                             "reset_parameters(); cannot re-initialise it")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(layer_seed(seed, name))
            dev = next(mod.parameters(), torch.empty(0)).device
            mod.to("cpu").reset_parameters()  # CPU generator: same values on every device
            mod.to(dev)
    return model


def _steps(model, layers, mode):
    groups = list(reversed(parametrised_layers(model)))  # last layer first
    if isinstance(layers, int):
        chosen = set(range(min(layers, len(groups))))
    elif layers == "all" or layers is None:
        chosen = set(range(len(groups)))
    else:
        want = set(layers)
        chosen = {i for i, g in enumerate(groups) if want & set(g)}
        missing = want - {n for g in groups for n in g}
        if missing:
            raise ValueError(f"not parametrised layers of the model: {sorted(missing)}; "
                             f"choose from {[n for g in groups for n in g]}")
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', not {mode!r}")
    return groups, chosen


def _explain(model, x, m, target, batch_size, device):
    ex = Explainer(model, device=device)
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
                 batch_size: int | None = None) -> Iterator[tuple[int, list[str], torch.Tensor]]:
    """Yield ``(step, randomised modules, relevance (N, C, H, W))``; step 0 is the
    trained model, step k the model with the k topmost layers (cascading) or the
    k-th layer from the top (independent) re-initialised. ``target`` as in
    :func:`sanity` (fixed by the trained model)."""
    m = get_method(method)
    x = getattr(inputs, "images", inputs)
    device = _device(model)
    bs = batch_size or 16
    target = _checked_targets(model, x, target, bs)
    groups, chosen = _steps(model, layers, mode)
    yield 0, [], _explain(model, x, m, target, bs, device)
    last = max(chosen, default=-1)
    work = copy.deepcopy(model)
    for k, names in enumerate(groups):
        if k > last:
            break
        if mode == "independent":
            if k not in chosen:
                continue
            work = randomize(copy.deepcopy(model), names, seed)
        else:
            randomize(work, names, seed)
        if k in chosen:
            yield k + 1, names, _explain(work, x, m, target, bs, device)


def sanity(model: nn.Module, inputs, method: str | Method, target=None, layers="all",
           seed: int = 0, mode: str = "cascading", similarity: str = "ssim",
           batch_size: int | None = None) -> pd.DataFrame:
    """Cascading (or independent) parameter randomisation test.

    Parameters
    ----------
    model : the trained network (deep-copied; never modified); an
        :class:`~liecheck.Explainer` is accepted (its traced copy is used).
    inputs : ``(N, C, H, W)`` tensor or an :class:`~liecheck.data.ImageSet`.
    method : registry name or :class:`~liecheck.Method` (any method, walkable or not).
    target : class per image (``(N,)`` or int); ``None``: the trained model's
        prediction. The same class is explained at every step.
    layers : ``"all"``, an int ``k`` (the ``k`` topmost steps) or module names whose
        steps are reported (the cascade still randomises everything above them).
    seed : base seed; each module's seed is :func:`layer_seed` (seed, name).
    mode : ``"cascading"`` (the paper) or ``"independent"`` (one layer at a time).
    similarity : ``"ssim"`` (max over the sign flip), ``"spearman"`` or ``"l1"``.
    batch_size : images per attribution call (default 16).

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
    bs = batch_size or 16
    tgt = _checked_targets(model, x, target, bs)
    rows, ref = [], None
    for step, names, r in cascade_maps(model, x, m, tgt, layers, seed, mode, bs):
        h = prepare(r, m)
        if step == 0:
            ref = h
            continue
        s = compare(ref, h, similarity)
        for i in range(len(s)):
            rows.append({"method": m.name, "mode": mode, "image": i, "target": int(tgt[i]),
                         "step": step, "layer": "+".join(names), "measure": similarity,
                         "score": float(s[i])})
    again = prepare(_explain(model, x, m, tgt, bs, _device(model)), m)
    df = pd.DataFrame(rows)
    df.attrs["trained"] = [float(v) for v in compare(ref, again, similarity)]
    return df
