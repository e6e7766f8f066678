"""Shared fixtures.

Everything is seeded: tests draw random tensors from ``gen(seed)``. Engine-level
comparisons run in float64 so that tolerances can be tight (1e-9 relative) and a
wrong rule cannot hide inside float32 noise.
"""

from __future__ import annotations

import pytest
import torch

# tests that can run on a GPU take ``device`` from DEVICES: "cpu" always, "cuda" (marked
# ``cuda``, select with ``-m cuda``) when a GPU is present
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")])]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def gen():
    """``gen(seed)`` -> a seeded ``torch.Generator``."""
    return seeded


@pytest.fixture(autouse=True)
def _global_seed():
    """Seed torch's and numpy's global generators before every test, so that layers a
    test builds with default initialisation are the same whatever ran before it (the
    suite runs in parallel with pytest-xdist, which changes the order)."""
    import numpy as np

    torch.manual_seed(0)
    np.random.seed(0)
    yield
