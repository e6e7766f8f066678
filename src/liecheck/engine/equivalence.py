"""Forward equivalence: a traced graph must compute the model's own function.

On the first batch a :class:`~liecheck.engine.graph.Graph` runs (every new trace starts
unchecked), its output is compared with the model's own forward: the graph's private
eval-mode deep copy of the model, with the ``inplace`` flags the trace cleared
restored for the call, run without gradients on a clone of the batch. The user's
model is never called or touched.

Tolerance: the largest absolute difference may be at most ``sqrt(eps) * scale``,
``eps`` the machine epsilon of the output's dtype (so 3.5e-4 for float32, 1.5e-8
for float64, 3.1e-2 for float16) and ``scale`` the largest finite ``|value|`` of the
model's output: half the significant digits. Rounding differences (folded
BatchNorm, reordered sums) stay orders of magnitude below that; a changed function
(an ignored hook, a dropped aliasing, a wrong sign) lies far above it.

On a mismatch a second deep copy runs with forward hooks that record every module's
output; the graph's module nodes are compared in execution order (a folded conv with
its BatchNorm's output) and :class:`ForwardMismatch` names the first that differs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .interface import TracedGraph
from .rewrite import UnsupportedOperation


class ForwardMismatch(UnsupportedOperation):
    """The traced graph's output differs from the model's own forward."""


def tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of the forward check: ``sqrt(eps)`` of ``dtype``."""
    return math.sqrt(torch.finfo(dtype).eps)


def check_forward(graph: TracedGraph, x: torch.Tensor, out: torch.Tensor) -> bool:
    """Compare the graph's output ``out`` on ``x`` with the model's own forward.

    Returns False if there was nothing to compare (an empty batch), True if the
    outputs agree; raises :class:`ForwardMismatch` (naming the first differing node)
    if they do not.
    """
    if x.shape[0] == 0:
        return False
    with torch.no_grad():
        ref = own_forward(graph.module, graph.inplace_modules, x)
    if not isinstance(ref, torch.Tensor) or ref.shape != out.shape:
        got = tuple(ref.shape) if isinstance(ref, torch.Tensor) else type(ref).__name__
        raise ForwardMismatch(
            f"the model's own forward returns {got}, the traced graph {tuple(out.shape)}; "
            "liecheck would explain a different function. Pass check_forward=False to skip "
            "this check (the explanations may then be wrong).")
    err, scale = difference(out.detach(), ref)
    tol = tolerance(out.dtype)
    if err <= tol * scale:
        return True
    raise ForwardMismatch(
        f"the traced graph does not compute the model's function: on this batch its output "
        f"differs from the model's own eval-mode forward by up to {err:.3g} ({_rel(err, scale)} "
        f"of the output's scale {scale:.3g}; tolerance {tol:.2g} for {out.dtype}). "
        f"{first_difference(graph, x)} liecheck would explain a different function; rewrite "
        "that operation (or report the model). check_forward=False skips this check (the "
        "explanations may then be wrong).")


def own_forward(module: nn.Module, inplace_modules: list[str], x: torch.Tensor):
    """``module(x.clone())`` with the ``inplace`` flags of ``inplace_modules`` set back
    to True for the call (the trace cleared them on its copy)."""
    with _inplace_restored(module, inplace_modules):
        return module(x.clone())


@contextmanager
def _inplace_restored(module: nn.Module, names: list[str]) -> Iterator[None]:
    mods = [module.get_submodule(n) for n in names]
    for m in mods:
        m.inplace = True
    try:
        yield
    finally:
        for m in mods:
            m.inplace = False


def difference(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """``(max |out - ref|, max finite |ref|)``; equal non-finite entries count as equal,
    unequal ones as an infinite difference."""
    if out.shape != ref.shape:
        return math.inf, 0.0
    same = (out == ref) | (out.isnan() & ref.isnan())
    d = torch.where(same, torch.zeros_like(out), (out - ref).abs())
    d = torch.where(d.isnan(), torch.full_like(d, math.inf), d)
    finite = ref[torch.isfinite(ref)]
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    return (float(d.max()) if d.numel() else 0.0), scale


def _rel(err: float, scale: float) -> str:
    return f"{err / scale:.2g}" if scale > 0 else "inf"


def first_difference(graph: TracedGraph, x: torch.Tensor) -> str:
    """One sentence naming the first module node whose output differs from the model's."""
    fx_nodes = {n.name: n for n in graph.gm.graph.nodes}
    compare = {n.name: n.module for n in graph.nodes if n.module is not None}
    for bn_fx, layer in graph.aliases.items():  # a folded conv holds its BatchNorm's output
        compare[layer] = fx_nodes[bn_fx].target
    spy = copy.deepcopy(graph.module)
    records: dict[str, list] = {m: [] for m in set(compare.values())}
    for name in records:
        spy.get_submodule(name).register_forward_hook(
            lambda mod, i, o, name=name: records[name].append(
                o.detach().clone() if isinstance(o, torch.Tensor) else None))
    with torch.no_grad():
        own_forward(spy, graph.inplace_modules, x)
        acts = graph.run(x)
    seen: dict[str, int] = {}
    last_ok, between = None, []
    tol = tolerance(acts[graph.output].dtype)
    for node in graph.nodes:
        mod = compare.get(node.name)
        if mod is None:
            between.append(node.name)
            continue
        k = seen[mod] = seen.get(mod, -1) + 1
        ref = records[mod][k] if k < len(records[mod]) else None
        if ref is None:
            err, scale = math.inf, 0.0
        else:
            err, scale = difference(acts[node.name], ref)
        if err > tol * scale:
            where = (f"since node '{last_ok}'" if last_ok else "from the input")
            ops = f" (operations in between: {', '.join(between)})" if between else ""
            return (f"First node whose output differs: '{node.name}' (module '{mod}', "
                    f"{type(graph.module.get_submodule(mod)).__name__}; max |diff| {err:.3g}, "
                    f"{_rel(err, scale)} of its scale); the cause lies in it or in the "
                    f"operations {where}{ops}.")
        last_ok, between = node.name, []
    ops = f": {', '.join(between)}" if between else ""
    where = f"after node '{last_ok}'" if last_ok else "in the graph"
    return (f"Every module's output agrees; the difference arises in the operations "
            f"{where}{ops}.")
