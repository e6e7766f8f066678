"""Theory toolkit: chain simulation, Theorem 1, centre taps, Figure 3 ratios, spectra."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from liecheck import Explainer
from liecheck.models import cifar_net
from liecheck.theory import (
    BOUNDS,
    VGG16_SHAPES,
    NotLinearInRelevance,
    backward_chain,
    centre_tap,
    conditions,
    convergence_rate,
    dense_centre,
    inter_layer,
    layer_matrices,
    mean_abs_cosine,
    projective_diameter,
    random_nonneg_chain,
    simulate_chain,
    singular_ratios,
    spectrum,
    spectrum_table,
    theorem1,
)
from liecheck.theory.chain import family_coefficients

# ------------------------------------------------------------------ chain simulation


def test_vgg16_shapes_follow_torchvision_config():
    """The backward shapes derive from torchvision's VGG-16 configuration 'D'."""
    from torchvision.models.vgg import cfgs

    convs = [c for c in cfgs["D"] if c != "M"]
    forward = list(itertools.pairwise([3, *convs]))           # (c_in, c_out) per conv
    expected = [(1000, 4096), (4096, 4096), (4096, convs[-1])]
    expected += [(c_out, c_in) for c_in, c_out in reversed(forward)]
    assert list(VGG16_SHAPES) == expected
    assert len(VGG16_SHAPES) == 16


def test_mean_abs_cosine_against_pair_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 10, generator=g, dtype=torch.float64)
    x[1, 2] = 0  # a zero vector: its pairs are left out
    got = mean_abs_cosine(x)
    got_diag = mean_abs_cosine(x, include_diagonal=True)
    for b in range(3):
        v = x[b].numpy()
        off, diag = [], []
        for i in range(6):
            for j in range(i + 1):
                ni, nj = np.linalg.norm(v[i]), np.linalg.norm(v[j])
                if ni == 0 or nj == 0:
                    continue
                c = abs(v[i] @ v[j]) / (ni * nj)
                (diag if i == j else off).append(c)
        assert got[b].item() == pytest.approx(np.mean(off), rel=1e-12)
        assert got_diag[b].item() == pytest.approx(np.mean(off + [1.0] * len(diag)), rel=1e-12)


@pytest.mark.parametrize("family", ["vanilla", "relu", "non-negative", "positive",
                                    "stochastic", "alpha3-beta2"])
def test_simulation_matches_explicit_numpy_chain(family):
    """The batched shared-draw implementation equals a plain loop with the family's
    matrix built explicitly from the same N(0, 1) draws."""
    shapes, n, repeats, seed = [(12, 9), (9, 7), (7, 3)], 5, 3, 4
    df = simulate_chain([family, "vanilla"], shapes, n_vectors=n, repeats=repeats, seed=seed,
                        dtype=torch.float64)
    df = df[df["family"] == family]
    a, b, relu, stoch = family_coefficients(family)
    per_rep = np.zeros((repeats, len(shapes) + 1))
    for r in range(repeats):
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, r])
                                                .generate_state(1)[0]))
        x = torch.randn(n, shapes[0][0], generator=gen).double().numpy()
        per_rep[r, 0] = _mean_cos(x)
        for k, s in enumerate(shapes):
            w = torch.randn(*s, generator=gen).double().numpy()
            m = a * np.maximum(w, 0) + b * np.minimum(w, 0)
            if stoch:
                m = m / m.sum(0, keepdims=True)
            x = x @ m
            if relu:
                x = np.maximum(x, 0)
            per_rep[r, k + 1] = _mean_cos(x)
    np.testing.assert_allclose(df["median"], np.median(per_rep, 0), rtol=1e-9)
    np.testing.assert_allclose(df["p25"], np.percentile(per_rep, 25, 0), rtol=1e-9)


def _mean_cos(x):
    with np.errstate(invalid="ignore"):  # zero vectors (ReLU) give NaN, left out
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = np.abs(u @ u.T)
    i, j = np.tril_indices(len(x), -1)
    return np.nanmean(c[i, j])


@pytest.fixture(scope="module")
def vgg_sim():
    fams = ["vanilla", "relu", "non-negative", "positive", "alpha2-beta1", "alpha5-beta4",
            "alpha10-beta9"]
    df = simulate_chain(fams, "vgg16", n_vectors=8, repeats=3, seed=0)
    return df.pivot(index="step", columns="family", values="median")


def test_non_negative_chains_converge_within_seven_products(vgg_sim):
    # paper appendix B: "After 7 iterations, they converged to a single vector"
    for fam in ("non-negative", "positive"):
        assert 1 - vgg_sim.loc[7, fam] < 1e-6, fam


def test_vanilla_stays_far_from_one_and_relu_lies_between(vgg_sim):
    # before the final (64, 3) matrix the vanilla vectors stay far from aligned
    # (slowly rising from the random baseline, 0.03 in 1000 dimensions)
    assert vgg_sim.loc[1:15, "vanilla"].max() < 0.3
    for step in (3, 7, 12):
        v, r, nn_ = vgg_sim.loc[step, ["vanilla", "relu", "non-negative"]]
        assert v < r < nn_, step
        assert r < 1 - 1e-3


def test_alpha_beta_larger_beta_converges_more_slowly(vgg_sim):
    for step in (3, 7):
        gaps = [1 - vgg_sim.loc[step, f] for f in ("alpha2-beta1", "alpha5-beta4",
                                                   "alpha10-beta9")]
        assert gaps[0] < gaps[1] < gaps[2], (step, gaps)


def test_learned_chain_of_cifar_net():
    model = cifar_net(seed=0)
    chain = backward_chain(model)
    assert [tuple(w.shape) for w in chain] == [(10, 1024), (1024, 128), (128, 128),
                                               (128, 64), (64, 32), (32, 3)]
    df = simulate_chain(["learned", "relu-learned"], n_vectors=4, repeats=2, model=model)
    assert df.groupby("family")["step"].max().tolist() == [6, 6]


def test_simulation_errors_are_clear():
    with pytest.raises(ValueError, match="unknown matrix family"):
        simulate_chain("nonsense", [(4, 3)])
    with pytest.raises(ValueError, match="do not chain"):
        simulate_chain("vanilla", [(4, 3), (5, 2)])
    with pytest.raises(ValueError, match="need model"):
        simulate_chain("learned")


# ------------------------------------------------------------------ Theorem 1


def test_theorem1_valid_bounds_hold_on_random_non_negative_chains():
    """The two proven bounds hold on random chains; eq. 36 is not asserted here: it is
    not valid in general (see the J counterexample below)."""
    rng = np.random.default_rng(0)
    for t in range(30):
        dims = rng.integers(2, 9, size=7)
        shapes = list(itertools.pairwise(dims))
        mats = random_nonneg_chain(shapes, "positive" if t % 2 else "uniform", seed=t)
        df = theorem1(mats)
        assert (np.diff(df["s"]) >= -1e-12).all()  # eq. 23: s_n never decreases
        assert (df["s"] >= df["bound_exact"] - 1e-12).all()
        assert (df["s"] >= df["bound_global"] - 1e-12).all()
        assert df["bound_global"].iloc[-1] > 0  # strictly positive matrices: informative
        assert not set(df.attrs["violated"]) & {"bound_exact", "bound_global"}
    assert BOUNDS == {"bound_paper": False, "bound_pairs": False, "bound_exact": True,
                      "bound_global": True}


def test_theorem1_first_step_and_paper_lambda():
    a = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    df = theorem1([a])
    u = a / np.linalg.norm(a, axis=0)
    assert df["s"].iloc[1] == pytest.approx((u.T @ u)[~np.eye(3, dtype=bool)].min())
    # eps_dot: smallest dot product of distinct raw columns; L: largest column L1 norm
    eps = min(a[:, i] @ a[:, j] for i in range(3) for j in range(3) if i != j)
    big_l = a.sum(0).max()
    assert df["lambda_paper"].iloc[0] == pytest.approx(eps / big_l ** 2)


def test_theorem1_per_matrix_lambda_needs_column_weights():
    """Eq. 21-27 assume unit-norm columns of M_n; with a per-matrix constant that
    fails (here s_2 = 0.56 < 0.72), the column-norm-weighted constant holds."""
    mats = [np.array([[0.1, 0.6], [3.8, 0.1]]), np.array([[0.1, 0.2], [5.1, 0.4]])]
    df = theorem1(mats)
    assert df["bound_pairs"].iloc[2] > df["s"].iloc[2] + 0.1
    assert (df["s"] >= df["bound_exact"] - 1e-12).all()
    assert (df["s"] >= df["bound_global"] - 1e-12).all()
    assert df.attrs["violated"] == ["bound_pairs"]


def test_theorem1_eq36_fails_on_repeated_jordan_block():
    """J = [[1, 1], [0, 1]]: columns (1, 0), (1, 1), so eps0 = 1, eps_dot = 1 (the only
    pair), L = 2 and the paper's lambda = 1/4. M_n = J^n = [[1, n], [0, 1]], so
    s_n = n / sqrt(n^2 + 1) and 1 - s_n ~ 1 / (2 n^2) (polynomial), while eq. 36 claims
    1 - s_n <= (3/4)^n: false exactly from n = 25 on (0.75^25 = 7.5e-4 < 1 - s_25 =
    8.0e-4; for n <= 24 it holds: 0.75^24 = 1.0e-3 > 8.7e-4)."""
    j = np.array([[1.0, 1.0], [0.0, 1.0]])
    cond = conditions([j])
    assert (cond["eps0"], cond["eps_dot_every_pair"], cond["L"]) == (1.0, 1.0, 2.0)
    assert cond["lambda_paper"] == 0.25
    n_max = 200
    df = theorem1([j] * n_max)
    n = np.arange(1, n_max + 1)
    s = n / np.sqrt(n ** 2 + 1.0)
    np.testing.assert_allclose(df["s"].iloc[1:], s, rtol=1e-12)
    np.testing.assert_allclose(df["bound_paper"].iloc[1:], 1 - 0.75 ** n, rtol=1e-12)
    violated = df["bound_paper"].iloc[1:].to_numpy() > df["s"].iloc[1:].to_numpy()
    assert not violated[:24].any() and violated[24:].all()
    assert 2 * n_max ** 2 * df["one_minus_s"].iloc[-1] == pytest.approx(1, rel=1e-4)
    assert (df["s"] >= df["bound_exact"] - 1e-12).all()
    assert (df["bound_global"] == 0).all()  # J has zeros: no contraction, no claim
    assert df.attrs["violated"] == ["bound_paper", "bound_pairs"]


def test_theorem1_literal_two_columns_reading_fails_on_block_diagonal():
    """block-diag(J, 1): columns (1,0,0), (1,1,0), (0,0,1). Read literally, the condition
    holds ("two column vectors" with dot product 1 >= eps, every norm >= 1), yet the
    third column stays orthogonal to the others in every power: s_n = 0 forever. Read
    as "every pair", eps_dot = 0 and the theorem (rightly) says nothing."""
    b = np.eye(3)
    b[0, 1] = 1.0
    cond = conditions([b])
    assert cond["eps0"] == 1.0 and cond["eps_dot_some_pair"] == 1.0
    assert cond["eps_dot_every_pair"] == 0.0 and cond["lambda_paper"] == 0.0
    df = theorem1([b] * 30)
    assert (df["s"] == 0).all()
    assert df.attrs["violated"] == []


def test_projective_diameter_against_loop():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.1, 2.0, size=(4, 3))
    ref = max(np.log(a[k, i] * a[l, j] / (a[k, j] * a[l, i]))
              for i in range(3) for j in range(3) for k in range(4) for l in range(4))
    assert projective_diameter(a) == pytest.approx(ref, rel=1e-12)
    a[0, 0] = 0
    assert projective_diameter(a) == np.inf


def test_theorem1_rejects_negative_and_zero_columns():
    with pytest.raises(ValueError, match="negative"):
        theorem1([np.array([[1.0, -1.0], [1.0, 1.0]])])
    with pytest.raises(ValueError, match="zero column"):
        theorem1([np.array([[1.0, 0.0], [1.0, 0.0]])])


def test_convergence_rate_recovers_exponent():
    n = np.arange(12)
    rate, lam = convergence_rate(n, 0.3 * np.exp(-0.7 * n))
    assert rate == pytest.approx(0.7)
    assert lam == pytest.approx(1 - np.exp(-0.7))
    # converged points (at the floor) are ignored
    y = np.where(n < 6, 0.5 * np.exp(-2.0 * n), 0.0)
    assert convergence_rate(n, y)[0] == pytest.approx(2.0)


# ------------------------------------------------------------------ centre taps


def test_centre_tap_of_hand_built_kernels():
    w = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).view(2, 3, 3, 3)
    # element [o, i, 1, 1] = o * 27 + i * 9 + 4
    assert torch.equal(centre_tap(w), torch.tensor([[4.0, 13, 22], [31, 40, 49]]))
    w5 = torch.zeros(1, 1, 5, 5)
    w5[0, 0, 2, 2] = 7
    assert centre_tap(w5).item() == 7
    assert torch.equal(centre_tap(w5[..., :1, :1]), w5[:, :, 0, 0])


def test_dense_centre_reads_the_centre_of_the_flattened_map():
    """A map that is non-zero only at the centre position: the dense layer's output
    equals the centre-position matrix times the centre channel vector."""
    g = torch.Generator().manual_seed(1)
    c, h, w = 3, 5, 5
    dense = torch.randn(4, c * h * w, generator=g)
    fmap = torch.zeros(c, h, w)
    fmap[:, 2, 2] = torch.randn(c, generator=g)
    y = dense @ torch.flatten(fmap)
    torch.testing.assert_close(dense_centre(dense, c) @ fmap[:, 2, 2], y)
    with pytest.raises(ValueError, match="square"):
        dense_centre(torch.zeros(2, 3 * 6), 3)


def test_layer_matrices_of_cifar_net():
    model = cifar_net(seed=0)
    mats = layer_matrices(model)
    assert [m.module for m in mats] == ["conv1", "conv2", "conv3", "conv4", "fc5", "fc6"]
    torch.testing.assert_close(mats[0].weight, model.conv1.weight[:, :, 1, 1])
    torch.testing.assert_close(mats[4].weight,
                               model.fc5.weight.view(1024, 128, 8, 8)[:, :, 4, 4])
    assert mats[5].weight.shape == (10, 1024) and not mats[5].sliced


# ------------------------------------------------------------------ Figure 3


def _orth(n, g):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


def test_inter_layer_ratio_for_aligned_layers():
    """If V_l U_{l+1} = I, T_l = sqrt(S_l S_{l+1}): ratio sqrt(r_l r_{l+1})."""
    g = torch.Generator().manual_seed(2)
    u, v, q = _orth(4, g), _orth(4, g), _orth(4, g)
    s, t = torch.tensor([5.0, 2, 1, 0.5], dtype=torch.float64), torch.tensor(
        [3.0, 1.5, 1, 0.2], dtype=torch.float64)
    m_l_t = u @ torch.diag(s) @ v                  # M_l^T = U S V
    m_n_t = v.T @ torch.diag(t) @ q                # M_{l+1}^T = V^T T Q
    sv = np.linalg.svd(inter_layer(m_l_t.T, m_n_t.T), compute_uv=False)
    assert sv[0] / sv[1] == pytest.approx(np.sqrt(5 / 2 * 3 / 1.5))


def test_singular_ratios_with_and_without_patterns():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4)).eval()
    df = singular_ratios(model)
    assert set(df["kind"]) == {"W"}
    w1 = model[1].weight.detach().double().numpy()
    s = np.linalg.svd(w1, compute_uv=False)
    row = df[(df["module"] == "1") & (df["part"] == "layer")].iloc[0]
    assert row["ratio"] == pytest.approx(s[0] / s[1])
    pats = {"1": torch.rand(5, 6), "3": torch.rand(4, 5)}
    df2 = singular_ratios(model, pats)
    assert set(df2["kind"]) == {"W", "A", "W*A"}
    wa = (model[3].weight * pats["3"]).detach().double().numpy()
    s = np.linalg.svd(wa, compute_uv=False)
    row = df2[(df2["module"] == "3") & (df2["kind"] == "W*A")].iloc[0]
    assert row["ratio"] == pytest.approx(s[0] / s[1])
    assert ((df2["part"] == "inter") & (df2["module"] == "1")).sum() == 3
    with pytest.raises(ValueError, match="shape"):
        singular_ratios(model, {"1": torch.rand(6, 5)})


# ------------------------------------------------------------------ spectra


def test_spectrum_of_linear_network_equals_numpy_svd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Linear(7, 5)).double().eval()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    s = spectrum(model, x, "gradient", "2", k=3)
    assert list(s.columns) == ["sigma1", "sigma2", "sigma3", "ratio"]
    np.testing.assert_allclose(s["ratio"], s["sigma1"] / s["sigma2"])
    s = s.filter(like="sigma").to_numpy()
    j = (model[2].weight @ model[1].weight).detach().numpy()   # (5, 12): input grads are J^T
    ref = np.linalg.svd(j, compute_uv=False)[:3]
    np.testing.assert_allclose(s, np.stack([ref, ref]), rtol=1e-8)


def _small_cnn():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 6), nn.ReLU(),
                         nn.Linear(6, 5)).double().eval()


@pytest.mark.parametrize("method,layer", [("lrp_a1b0", "4"), ("lrp_epsilon", "4"),
                                          ("gradient", "0")])
def test_spectrum_matches_walk_built_matrix(method, layer):
    """Reference: J built column by column with the engine's own walk (one-hot
    relevance injected at the layer), then numpy's SVD."""
    model = _small_cnn()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    e = Explainer(model)
    d = e.walk(x, "gradient", record=[layer])[e.graph.resolve(layer)].shape
    n = int(np.prod(d[1:]))
    onehots = torch.eye(n, dtype=torch.float64).view(n, *d[1:])
    cols = e.walk(x.expand(n, -1, -1, -1), method, inject={layer: onehots}, record=["input"])
    j = cols[e.graph.input].reshape(n, -1).numpy().T
    ref = np.linalg.svd(j, compute_uv=False)[:2]
    got = spectrum(e, x, method, layer, k=2).filter(like="sigma").to_numpy()[0]
    np.testing.assert_allclose(got, ref, rtol=1e-7)


def test_spectrum_of_rank_one_chain_has_vanishing_sigma2():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.Linear(6, 4)).double().eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.outer(torch.randn(6, dtype=torch.float64),
                                          torch.randn(8, dtype=torch.float64)))
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64)
    s = spectrum(model, x, "gradient", "2", k=2).filter(like="sigma").to_numpy()[0]
    assert s[0] > 0.1 and s[1] < 1e-10 * s[0]
    t = spectrum_table(model, x, "gradient", ["2"], k=2)
    # rank 1: every random vector gives the same direction at the input
    assert t["csc_median"].iloc[0] == pytest.approx(1.0, abs=1e-9)
    assert t["ratio"].iloc[0] > 1e10


def test_spectrum_rejects_methods_not_linear_in_relevance():
    model = _small_cnn()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    for m in ("guided_bp", "deconv", "rectgrad"):
        with pytest.raises(NotLinearInRelevance, match=m):
            spectrum(model, x, m, "4")


# ------------------------------------------------------------------ CLI and figures


def test_cli_simulate_writes_csv_and_figures(tmp_path, capsys):
    import pandas as pd

    from liecheck.cli import main

    rc = main(["simulate", "--shapes", "20x16,16x12,12x3", "--repeats", "2", "--n-vectors",
               "4", "--family", "vanilla,positive,alpha2-beta1", "--out", str(tmp_path)])
    assert rc == 0
    df = pd.read_csv(tmp_path / "chain.csv")
    assert set(df["family"]) == {"vanilla", "positive", "alpha2-beta1"}
    assert list(df.columns) == ["family", "step", "median", "p25", "p75"]
    for f in ("figure7.png", "figure7.svg"):
        assert (tmp_path / f).stat().st_size > 1000
    assert "median |cos|" in capsys.readouterr().out
    assert main(["simulate", "--family", "bogus", "--out", str(tmp_path)]) == 2


def test_figures_return_figures(tmp_path):
    from liecheck.theory import figures

    model = cifar_net(seed=0)
    fig = figures.plot_singular_ratios(singular_ratios(model), tmp_path / "f3")
    assert fig.axes and (tmp_path / "f3.png").exists() and (tmp_path / "f3.svg").exists()


def test_golub_kahan_svd_against_numpy():
    from liecheck.theory.lanczos import golub_kahan_svd

    rng = np.random.default_rng(0)
    dense = rng.standard_normal((60, 40))
    near_rank1 = (np.outer(rng.standard_normal(80), rng.standard_normal(50))
                  + 1e-9 * rng.standard_normal((80, 50)))
    for a, k in ((dense, 3), (near_rank1, 2)):
        got = golub_kahan_svd(lambda v, a=a: a @ v, lambda u, a=a: a.T @ u, a.shape, k=k,
                              tol=1e-8, floor=1e-15)
        # sigma2 of the near-rank-1 matrix is ~1e-9 * sigma1: resolved to 1e-6
        np.testing.assert_allclose(got, np.linalg.svd(a, compute_uv=False)[:k], rtol=1e-6)


def test_cli_spectrum_on_cifar_net(tmp_path, capsys):
    import pandas as pd

    from liecheck.cli import main

    rc = main(["spectrum", "--model", "cifar_net", "--method", "lrp_a1b0,gradient",
               "--layer", "fc6", "--tol", "1e-3", "--out", str(tmp_path)])
    assert rc == 0
    df = pd.read_csv(tmp_path / "spectrum.csv")
    assert list(df["method"]) == ["lrp_a1b0", "gradient"]
    assert (df["sigma1"] >= df["sigma2"]).all() and df["csc_median"].between(0, 1).all()
    assert (tmp_path / "spectrum.png").exists()
    assert main(["spectrum", "--model", "cifar_net", "--method", "guided_bp", "--layer", "fc6",
                 "--out", str(tmp_path)]) == 2
    assert "not linear in the relevance" in capsys.readouterr().err
