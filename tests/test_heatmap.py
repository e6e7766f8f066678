"""Heatmaps: channel reduction as the paper draws maps, refusal of non-finite maps, colours."""

import numpy as np
import pytest
import torch

from liecheck.heatmap import heatmap, normalize_signed, to_rgb


def test_reduction_follows_the_method():
    r = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    a = r.numpy()
    # gradient-type methods: max over channels of |r|; LRP-type: signed channel sum
    np.testing.assert_allclose(heatmap(r, "gradient").numpy(), np.abs(a).max(1))
    np.testing.assert_allclose(heatmap(r, "lrp_a1b0").numpy(), a.sum(1), rtol=1e-6)
    np.testing.assert_allclose(heatmap(r, "guided_bp").numpy(), np.abs(a).max(1))
    with pytest.raises(ValueError, match="unknown reduction"):
        heatmap(r, how="mean")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_relevance_is_refused(bad):
    r = torch.zeros(1, 3, 4, 4)
    r[0, 1, 2, 2] = bad
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        heatmap(r, "lrp_z")


def test_colours_red_positive_blue_negative_white_zero():
    h = torch.tensor([[[2.0, -4.0, 0.0]]])
    np.testing.assert_allclose(normalize_signed(h).numpy(), [[[0.5, -1.0, 0.0]]])
    rgb = to_rgb(h)[0, 0].astype(int)
    pos, neg, zero = rgb
    assert pos[0] > pos[2] and neg[2] > neg[0]      # red vs blue
    assert (zero > 240).all()                        # white at 0
