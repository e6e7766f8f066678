"""Shared fixtures for the engine tests (rules, identities, peers, graph, API).

Everything is seeded; engine-level comparisons run in float64 so that tolerances can
be tight (1e-9 relative) and a wrong rule cannot hide inside float32 noise.
"""

from __future__ import annotations

import pytest
import torch

import liecheck
from liecheck.walk import propagate


@pytest.fixture
def walk_one():
    """Run one rule on the single linear / ReLU / pooling node of a tiny model.

    ``walk_one(model, x, rule_for, r, at)`` traces ``model`` (float64), gives every
    node the rule ``rule_for(node)``, injects ``r`` at the node ``at`` (default: the
    output) and returns ``(graph, relevance at the input of that node)``.
    """

    def run(model, x, rule_for, r, at=None):
        graph = liecheck.trace(model.double().eval())
        rules = {n.name: rule_for(n) for n in graph.nodes if n.kind != "input"}
        node = graph.by_name[graph.resolve(at or "output")]
        below = node.inputs[0]
        out = propagate(graph, x.double(), rules, inject={node.name: r.double()}, record=[below])
        return graph, out[below]

    return run


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def gen():
    """``gen(seed)`` -> a seeded ``torch.Generator``."""
    return seeded
