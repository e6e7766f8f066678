"""2-D SSIM against scikit-image, normalisation, Spearman against SciPy, L1."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from liecheck.metrics.similarity import (
    align_sign,
    l1_distance,
    normalize,
    percentiles_for,
    prepare,
    similarity,
    spearman,
    ssim,
    ssim_score,
)


def _sk(a, b, data_range=2.0):
    return structural_similarity(a, b, win_size=5, data_range=data_range,
                                 use_sample_covariance=True, gaussian_weights=False)


@pytest.mark.parametrize("shape", [(3, 32, 32), (2, 17, 29), (1, 224, 224)])
def test_ssim_equals_scikit_image(shape, gen):
    g = gen(sum(shape))
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    b = (0.6 * a + 0.4 * torch.rand(shape, generator=g, dtype=torch.float64))
    ours = ssim(a, b).numpy()
    ref = np.array([_sk(a[i].numpy(), b[i].numpy()) for i in range(shape[0])])
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    # other data range, unnormalised maps
    a2, b2 = 3 * a - 1, 5 * b
    ref2 = np.array([_sk(a2[i].numpy(), b2[i].numpy(), 4.0) for i in range(shape[0])])
    np.testing.assert_allclose(ssim(a2, b2, data_range=4.0).numpy(), ref2, atol=1e-6, rtol=0)


def test_ssim_identity_flip_and_shape_errors(gen):
    a = torch.rand(2, 20, 20, generator=gen(1))
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    # a sign flip of a [0, 1] map is 1 - map: the flipped score recovers 1
    assert ssim(a, 1 - a).max() < 0.5
    assert torch.allclose(ssim_score(a, 1 - a), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="reduce channels"):
        ssim(a[:, None], a[:, None])
    with pytest.raises(ValueError, match="win_size"):
        ssim(a[:, :3, :3], a[:, :3, :3])


def test_normalize_percentiles_per_image(gen):
    h = torch.randn(3, 16, 16, generator=gen(2), dtype=torch.float64)
    h[1] *= 100  # per-image, not per-batch, normalisation
    out = normalize(h)
    for i in range(3):
        lo, hi = np.percentile(h[i].numpy(), [0.5, 99.5])
        ref = np.clip((h[i].numpy() - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-12)
    assert normalize(torch.zeros(1, 8, 8)).abs().max() == 0  # constant map: no NaN
    assert percentiles_for("rectgrad") == (0.0, 100.0)
    assert percentiles_for("lrp_a1b0") == (0.5, 99.5)


def test_prepare_reduces_channels_per_method(gen):
    r = torch.randn(2, 3, 12, 12, generator=gen(3), dtype=torch.float64)
    np.testing.assert_allclose(prepare(r, "lrp_z").numpy(), normalize(r.sum(1)).numpy())
    np.testing.assert_allclose(prepare(r, "gradient").numpy(),
                               normalize(r.abs().amax(1)).numpy())


def test_spearman_equals_scipy_with_ties(gen):
    a = torch.rand(3, 10, 12, generator=gen(4), dtype=torch.float64)
    b = a + 0.3 * torch.rand(3, 10, 12, generator=gen(5), dtype=torch.float64)
    a[0, :4] = 0.5  # ties
    b[2, :, :6] = 0.0
    ref = [spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(3)]
    np.testing.assert_allclose(spearman(a, b).numpy(), ref, atol=1e-12)


def test_l1_and_dispatch(gen):
    a = torch.rand(2, 8, 8, generator=gen(6), dtype=torch.float64)
    b = torch.rand(2, 8, 8, generator=gen(7), dtype=torch.float64)
    np.testing.assert_allclose(l1_distance(a, b).numpy(),
                               (a - b).abs().mean((1, 2)).numpy())
    assert torch.allclose(similarity(a, 1 - a, "l1"), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(similarity(a, b, "ssim", flip=False), ssim(a, b))
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity(a, b, "psnr")


def test_l1_up_to_sign_is_zero_for_a_map_and_its_negative(gen):
    """A map explaining a negative logit with a rule that starts from the logit's value
    can be the other class's map turned over: raw ``-m``. Normalised to [0, 1] between
    percentiles, ``-m`` becomes exactly ``1 - normalize(m)`` (the percentiles of ``-m``
    are those of ``m`` negated and swapped), so the maps are identical up to sign:
    L1 with ``flip`` is 0 (float rounding), without it the mean of |2 h - 1|."""
    m = torch.randn(3, 16, 16, generator=gen(8), dtype=torch.float64)
    ha, hb = normalize(m), normalize(-m)
    assert torch.allclose(hb, 1 - ha, atol=1e-12)
    plain = l1_distance(ha, hb)
    torch.testing.assert_close(plain, (2 * ha - 1).abs().mean((1, 2)))
    # clearly "different" without the flip: E|2 h - 1| = E|m| / z(0.995) = 0.798 / 2.576
    # = 0.31 for N(0, 1) maps (the tail beyond the percentiles clipped)
    assert (plain > 0.2).all()
    torch.testing.assert_close(l1_distance(ha, hb, flip=True), torch.zeros(3, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(align_sign(ha, hb), 1 - hb)
    other = torch.rand(3, 16, 16, generator=gen(9), dtype=torch.float64)
    torch.testing.assert_close(align_sign(ha, ha), ha)        # nearer unturned: kept
    torch.testing.assert_close(l1_distance(ha, other, flip=True),
                               torch.minimum(l1_distance(ha, other), l1_distance(ha, 1 - other)))
    torch.testing.assert_close(similarity(ha, hb, "l1"), l1_distance(ha, hb, flip=True))
