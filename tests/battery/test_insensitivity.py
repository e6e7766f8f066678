"""Class insensitivity (Figure 1b-e): its L1 is the ground truth's, taken up to sign."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from liecheck.battery import TESTS
from liecheck.methods import get_method


def _subject(model, x, target):
    images = SimpleNamespace(images=x, names=["img0"])
    return SimpleNamespace(model=model, images=images, target=torch.tensor([target]),
                           plan=SimpleNamespace(name="toy"), scale=1.0)


def test_runner_up_map_turned_over_by_its_negative_logit_has_l1_zero():
    """Logits ``(s, -s, -2 s)`` of one linear map (rows w, -w, -2 w): for ``s > 0`` the
    runner-up of class 0 is class 1, whose logit is negative, and its gradient x input
    map is exactly class 0's negated. The maps are identical up to sign: L1 0 (the same
    ``l1_distance(..., flip=True)`` as the ground-truth benchmark), ``flipped`` set."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3, bias=False)).double().eval()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        w = model[1].weight[0].clone()
        if float(w @ x.flatten()) < 0:
            w = -w
        model[1].weight.copy_(torch.stack([w, -w, -2 * w]))
    s = _subject(model, x, 0)
    (unit,) = TESTS["insensitivity"].units(s, get_method("gradient_x_input"), None, "00")
    df, arrays = unit.compute()
    row = df.iloc[0]
    assert (row["class_a"], row["class_b"]) == (0, 1)
    assert row["l1"] == pytest.approx(0.0, abs=1e-12)
    assert bool(row["flipped"])
    (maps,) = [a["maps"] for a in arrays.values()]
    # without the flip the stored maps are far apart: h and 1 - h
    assert np.abs(maps[0] - maps[1]).mean() > 0.1
