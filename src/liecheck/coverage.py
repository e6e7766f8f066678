"""Which methods run on a model, and the rule each gets per op type: :func:`check`.

Traces the model once and, for every registered method, asks its composite for a rule
at every node, without running anything. A method whose composite refuses a node (an op
it has no sound rule for) is reported with that one sentence. Methods that are not one
walk (SmoothGrad, Integrated Gradients, Grad-CAM) run wherever the gradient does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from torch import nn

from .engine.fxutil import UnsupportedOperation
from .engine.graph import Graph, trace
from .methods import get_method, method_names

# the methods whose rule per op type is shown (one per family)
SHOWN = ("gradient", "lrp_epsilon", "lrp_a1b0", "deeplift_rescale", "guided_bp")


@dataclass
class Coverage:
    """``methods``: one row per method (``method``, ``runs``, ``why_not``); ``ops``: one
    row per op type of the model (``op``, ``count``, then the rule of each method in
    :data:`SHOWN`, or ``refused``)."""

    methods: pd.DataFrame
    ops: pd.DataFrame

    def __str__(self) -> str:
        runs = self.methods[self.methods.runs]
        refused = self.methods[~self.methods.runs]
        lines = [f"{len(runs)} of {len(self.methods)} methods run: "
                 + ", ".join(runs.method), "", self.ops.to_string(index=False)]
        if len(refused):
            lines += ["", "refused:"] + [f"  {m}: {w}" for m, w in
                                         zip(refused.method, refused.why_not)]
        return "\n".join(lines)


def _rules(graph: Graph, name: str) -> tuple[dict[str, str], str]:
    """Rule class name (or ``"refused"``) per node of ``graph`` under method ``name``, and
    the first refusal's sentence (empty if the method runs)."""
    method = get_method(name)
    composite = method.composite if method.composite is not None else \
        get_method("gradient").composite
    out: dict[str, str] = {}
    first = ""
    for node in graph.nodes:
        if not node.inputs:
            continue
        factory = composite.factory(type(node.op))
        try:
            if factory is None:
                raise UnsupportedOperation(f"node '{node.name}' ({node.op.describe()}) has "
                                           "no rule")
            out[node.name] = type(factory(node, graph, dict(method.params))).__name__
        except UnsupportedOperation as exc:
            out[node.name] = "refused"
            first = first or str(exc)
        except (ValueError, TypeError):  # needs a parameter (patterns=): not an op question
            out[node.name] = "(needs parameters)"
    return out, first


def check(model: nn.Module | Graph) -> Coverage:
    """Which registered methods run on ``model`` and which rule each op type gets."""
    graph = model if isinstance(model, Graph) else trace(model, check_forward=False)
    rows, per_method = [], {}
    for name in method_names():
        rules, why = _rules(graph, name)
        rows.append({"method": name, "runs": not why, "why_not": why})
        per_method[name] = rules
    ops: dict[str, dict] = {}
    for node in graph.nodes:
        if not node.inputs:
            continue
        row = ops.setdefault(node.op.describe(), {"op": node.op.describe(), "count": 0})
        row["count"] += 1
        for name in SHOWN:
            row.setdefault(name, per_method[name][node.name])
    return Coverage(pd.DataFrame(rows), pd.DataFrame(list(ops.values())))
