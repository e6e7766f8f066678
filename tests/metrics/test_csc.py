"""CSC: exact baseline, per-position cosines, convergence of non-negative chains,
the gradient staying near the baseline, z+ on VGG-16, seeding and batching."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import liecheck
from liecheck.methods import Method
from liecheck.metrics.csc import abs_cos, baseline, pair_indices, random_vectors
from liecheck.models import cifar_net


def test_baseline_exact_and_monte_carlo():
    # the values quoted by the paper
    for c, v in [(3, 0.5), (64, 0.085), (512, 0.030), (4096, 0.0105)]:
        assert abs(baseline(c) - v) < 0.0015
    rng = np.random.default_rng(0)
    for c in (3, 16, 64):
        a, b = rng.normal(size=(2, 100_000, c))
        cos = np.abs((a * b).sum(1)) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert abs(np.median(cos) - baseline(c)) < 0.01 * baseline(c) + 2e-3
    assert baseline(1) == 1.0


def test_abs_cos_equals_loop(gen):
    r = torch.randn(5, 7, 11, generator=gen(0))
    r[:, :, 3] = 0  # zero vectors give NaN (dropped by csc)
    got = abs_cos(r).numpy()
    a = r.double().numpy()
    assert len(pair_indices(5)) == 10 and got.shape == (10, 11)
    for k, (i, j) in enumerate(pair_indices(5)):
        for p in range(11):
            u, v = a[i, :, p], a[j, :, p]
            if p == 3:
                assert np.isnan(got[k, p])
            else:
                ref = abs(u @ v) / np.linalg.norm(u) / np.linalg.norm(v)
                assert abs(got[k, p] - ref) < 1e-12


def test_abs_cos_blocks_and_near_parallel_precision(gen):
    """Positions are processed in blocks (here 3 positions per block, last one partial);
    ``1 - |cos|`` keeps its precision far below float32's resolution of ``cos``: for
    vectors 1e-5 apart it is ~1e-10, computed exactly in float64 from the float32 inputs."""
    base = torch.randn(1, 6, 10, generator=gen(1))
    r = base + 1e-5 * torch.randn(4, 6, 10, generator=gen(2))
    r[2, :, 7] = 0
    r[3] *= -1  # anti-parallel: |cos| near 1 too
    got = abs_cos(r, chunk=4 * 6 * 3).numpy()
    a = r.double().numpy()
    for k, (i, j) in enumerate(pair_indices(4)):
        for p in range(10):
            u, v = a[i, :, p], a[j, :, p]
            if p == 7 and 2 in (i, j):
                assert np.isnan(got[k, p])
                continue
            one_minus = 1 - abs(u @ v) / np.linalg.norm(u) / np.linalg.norm(v)
            assert one_minus < 1e-8  # the regime float32 cannot resolve
            assert abs((1 - got[k, p]) - one_minus) < 1e-15
    assert np.array_equal(np.isnan(got), np.isnan(abs_cos(r).numpy()))
    assert np.allclose(got, abs_cos(r).numpy(), rtol=0, atol=1e-15, equal_nan=True)


def _dense_net(positive: bool, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers, d = [], 16
    for _ in range(5):
        lin = nn.Linear(d, 64)
        with torch.no_grad():
            if positive:
                lin.weight.abs_()
            lin.bias.zero_()
        layers += [lin, nn.ReLU()]
        d = 64
    return nn.Sequential(*layers[:-1]).eval()


def test_nonnegative_chain_converges_to_rank_one():
    """Gradient through ReLU (0/1 diagonal) and |W|: every backward factor is a
    non-negative matrix, so the chain converges to rank 1 (paper theorem 1)."""
    x = torch.rand(4, 16, generator=torch.Generator().manual_seed(0))
    df = liecheck.csc(_dense_net(True), x, "gradient", n_vectors=5).sort_values("depth")
    med = df["median"].to_numpy()
    assert med[0] > 1 - 1e-6  # the input, 4 non-negative factors below the logits
    assert np.all(np.diff(med) <= 1e-9)  # monotone: more factors, more aligned
    assert (df["n_values"] == 4 * 10).all()  # dense layers: one value per pair per image
    signed = liecheck.csc(_dense_net(False), x, "gradient", n_vectors=5)
    assert signed["median"].max() < 0.5


def test_gradient_stays_near_baseline_and_zplus_converges():
    """Random CIFAR net, start at conv4's ReLU (8192 values): the gradient of random
    vectors stays within 2x the random baseline at the convs just below, z+ does not."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model = cifar_net()
    grad = liecheck.csc(model, x, "gradient", start="relu4", n_vectors=4,
                        record_points="pre_relu")
    near = grad[grad.layer.isin(["conv3", "conv4"])]
    assert len(near) == 2 and (near["median"] < 2 * near["baseline"]).all()
    assert set(grad["layer"]) == {"input_1", "conv1", "conv2", "conv3", "conv4"}
    # default: after the ReLU; conv4's point is relu4 = the start, so it is not below it
    post = liecheck.csc(model, x, "gradient", start="relu4", n_vectors=4)
    assert set(post["layer"]) == {"input_1", "relu1", "relu2", "relu3"}
    near = post[post.layer == "relu3"]
    assert len(near) == 1 and (near["median"] < 2 * near["baseline"]).all()
    zp = liecheck.csc(model, x, "lrp_a1b0", start="output", layers=["input"], n_vectors=3)
    assert zp.set_index("layer").loc["input_1", "median"] > 0.999


@pytest.mark.slow
def test_vgg16_zplus_converges_gradient_and_lrp_z_do_not():
    """Random-init VGG-16 on a real photo (64 px to keep the test fast): from the
    logits, LRP a1b0 reaches median |cos| >= 0.99 at the first conv (paper Fig. 5)."""
    from liecheck.data import sample_photos
    from liecheck.models import load

    model, _ = load("vgg16", verbose=False)
    ex = liecheck.Explainer(model)
    x = sample_photos(["astronaut"], size=64).images
    med = {m: liecheck.csc(ex, x, m, layers=["features.0"], n_vectors=2)["median"].item()
           for m in ("lrp_a1b0", "gradient", "lrp_z")}
    assert med["lrp_a1b0"] >= 0.99
    assert med["gradient"] < 0.5 and med["lrp_z"] < 0.5


def test_seeded_vectors_batches_and_multiple_starts():
    # float64: lrp_z divides by near-zero sums, which magnifies float32 convolutions'
    # batch-size-dependent rounding into the |cos| percentiles
    model = cifar_net().double()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)).double()
    a = liecheck.csc(model, x, "lrp_z", start=["output", "relu4"], n_vectors=3)
    b = liecheck.csc(model, x, "lrp_z", start=["output", "relu4"], n_vectors=3, batch_size=1)
    c = liecheck.csc(model, x, "lrp_z", start="relu4", n_vectors=3)
    cols = ["median", "p5", "p95", "n_values"]
    np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=1e-3)
    np.testing.assert_allclose(a[a.start == "relu4"][cols].to_numpy(float),
                               c[cols].to_numpy(float), rtol=1e-5)
    assert list(a["depth"][a.start == "output"]) == [0, 1, 2, 3, 4, 5]
    v1 = random_vectors(0, "fc6", 1, 3, (10,))
    assert torch.equal(v1, random_vectors(0, "fc6", 1, 3, (10,)))
    assert not torch.equal(v1, random_vectors(1, "fc6", 1, 3, (10,)))
    d = liecheck.csc(model, x, "lrp_z", start="relu4", n_vectors=3, seed=1)
    assert not np.allclose(d["median"], c["median"])


def test_raw_values_histogram_and_errors():
    model = cifar_net()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    df, raw = liecheck.csc(model, x, "gradient", start="relu3", n_vectors=3, raw=True)
    for _, row in df.iterrows():
        v = raw[(row["start"], row["layer"])]
        assert len(v) == row["n_values"]
        assert abs(np.median(v) - row["median"]) < 1e-6
        hist = row[["h_0_0.9", "h_0.9_0.99", "h_0.99_0.999", "h_0.999_0.9999", "h_0.9999_1"]]
        assert hist.sum() == row["n_values"]
        assert hist.iloc[0] == (v < 0.9).sum()
    smooth = Method("smooth", "SmoothGrad", "noisy average", walkable=False,
                    attribute_fn=lambda ex, x, t, p: x)
    with pytest.raises(ValueError, match="single backward walk"):
        liecheck.csc(model, x, smooth)
    with pytest.raises(ValueError, match="at least 2"):
        liecheck.csc(model, x, "gradient", n_vectors=1)


def _relu_mlp() -> nn.Sequential:
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                         nn.Linear(12, 5)).double().eval()


def test_default_record_is_after_the_relu_and_matches_autograd():
    """The default record points are the ReLU outputs h_l (paper: r_l = df/dh_l). The
    pooled cosines equal an independent computation: autograd of <v, logits> w.r.t.
    the post-ReLU activations, captured with forward hooks on the ReLU modules."""
    from liecheck.metrics.csc import default_record

    model = _relu_mlp()
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ex = liecheck.Explainer(model)
    node = {m: ex.graph.resolve(m) for m in ("0", "1", "2", "3", "4")}
    assert ex.graph.by_name[node["1"]].kind == "relu"
    assert default_record(ex.graph) == [ex.graph.input, node["1"], node["3"], node["4"]]
    assert default_record(ex.graph, "pre_relu") == [ex.graph.input, node["0"], node["2"],
                                                    node["4"]]
    nv = 4
    df, raw = liecheck.csc(ex, x, "gradient", n_vectors=nv, raw=True)
    assert list(df["layer"]) == [ex.graph.input, node["1"], node["3"]]
    assert list(df["kind"]) == ["input", "linear", "linear"]  # the layer the ReLU closes
    for layer in ("1", "3"):
        want = []
        for i in range(x.shape[0]):
            v = random_vectors(0, node["4"], i, nv, (5,)).double()
            grads = []
            for k in range(nv):
                acts = {}
                h = model[int(layer)].register_forward_hook(
                    lambda mod, inp, out, acts=acts: acts.setdefault("h", out))
                try:
                    logits = model(x[i:i + 1])
                finally:
                    h.remove()
                g, = torch.autograd.grad((v[k] * logits[0]).sum(), acts["h"])
                grads.append(g[0].numpy())
            for a, b in pair_indices(nv):
                u, w = grads[a], grads[b]
                want.append(abs(u @ w) / np.linalg.norm(u) / np.linalg.norm(w))
        np.testing.assert_allclose(np.sort(raw[("output", node[layer])]), np.sort(want), rtol=1e-6)
    pre = liecheck.csc(ex, x, "gradient", n_vectors=nv, record_points="pre_relu")
    assert list(pre["layer"]) == [ex.graph.input, node["0"], node["2"]]
    # the ReLU mask changes the gradient's relevance: the two points differ
    assert not np.allclose(pre["median"].iloc[1:], df["median"].iloc[1:])
    with pytest.raises(ValueError, match="points must be one of"):
        liecheck.csc(ex, x, "gradient", record_points="after")


def test_inputs_that_require_grad_give_the_same_numbers():
    """An input batch with ``requires_grad=True`` (e.g. left over from a gradient
    computation) is read as plain values by CSC, the cascade and the random-logit test."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 5)).eval()
    x = torch.randn(2, 3, 8, 8)
    xg = x.clone().requires_grad_(True)
    for method in ("gradient_x_input", "lrp_a1b0"):
        a = liecheck.csc(net, x, method, n_vectors=3)
        b = liecheck.csc(net, xg, method, n_vectors=3)
        pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(liecheck.sanity(net, x, "gradient_x_input"),
                                  liecheck.sanity(net, xg, "gradient_x_input"))
    pd.testing.assert_frame_equal(liecheck.random_logit(net, x, "gradient_x_input"),
                                  liecheck.random_logit(net, xg, "gradient_x_input"))


def test_the_interval_over_images_rests_on_each_images_median():
    """Issue 24: ``median_images`` is the median over images of each image's median |cos|
    (the raw values are pooled image by image, the same number per image), and its
    bootstrap interval (``median_low``, ``median_high``) is that of those medians."""
    from liecheck.metrics.stats import bootstrap_median

    model = cifar_net()
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    df, raw = liecheck.csc(model, x, "lrp_z", start="relu3", n_vectors=3, raw=True)
    for _, row in df.iterrows():
        per_image = raw[(row["start"], row["layer"])].reshape(5, -1)   # no NaN here
        meds = np.median(1.0 - per_image, axis=1)
        mid, low, high = bootstrap_median(meds, 0.99, 2000, 0)
        assert abs(row["median_images"] - (1.0 - mid)) < 1e-6
        assert abs(row["median_low"] - (1.0 - high)) < 1e-6
        assert abs(row["median_high"] - (1.0 - low)) < 1e-6
        assert row["median_low"] <= row["median_images"] <= row["median_high"]
