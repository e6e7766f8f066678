"""The view of a traced graph that the engine's passes and the rules read: a
:class:`typing.Protocol` that :class:`~liecheck.engine.graph.Graph` satisfies. Modules that
``graph.py`` itself imports (``execute``, ``equivalence``) type against it, so the import
graph has no cycle; rules read ``ctx.graph`` through it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import fx, nn

from .node import Node


class TracedGraph(Protocol):
    module: nn.Module                 # the deep copy of the user's model (eval mode)
    gm: fx.GraphModule                # its torch.fx graph module
    nodes: list[Node]                 # canonical nodes in execution order
    by_name: dict[str, Node]
    consumers: dict[str, list[str]]   # node -> the nodes that read it
    aliases: dict[str, str]           # folded BatchNorm -> the node it was folded into
    last_use: dict[str, list[str]]    # fx node -> values freed after it ran
    inplace_modules: list[str]        # modules whose inplace flag the trace cleared
    input: str
    output: str

    def run(self, x: torch.Tensor, keep: Callable[[Node], bool] | None = None,
            shapes: dict | None = None, indices: dict | None = None, start: int = 0,
            given: dict | None = None) -> dict[str, torch.Tensor]: ...
