"""Ground-truth class-sensitivity benchmark: data, references, measures, determinism.

The benchmark's own model is trained in benchmarks / the CLI, not here; these tests
use hand-made models whose class logits read known halves of the image."""

import numpy as np
import pytest
import torch
from torch import nn

from liecheck.groundtruth import (
    TwoDigits,
    half_masks,
    measure_maps,
    occlusion,
    random_maps,
    resolve_methods,
    two_digit_images,
    two_digits,
)


def _half_reader(seed: int = 0) -> nn.Sequential:
    """Logit 0 reads only the left half (columns 0..31), logit 1 only the right half."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 32 * 64, 2)).double().eval()
    with torch.no_grad():
        w = model[3].weight.view(2, 2, 32, 64)
        w[0, :, :, 32:] = 0
        w[1, :, :, :32] = 0
    return model


def _data(n: int) -> TwoDigits:
    d = two_digit_images(n, "test", seed=3)
    labels = torch.tensor([[0, 1]] * n)          # left digit = class 0, right = class 1
    return TwoDigits(d.x.double(), labels, d.source, d.mean, d.std)


def test_two_digit_images_are_two_different_test_digits_seeded():
    from liecheck.data.digits import load_digits_split

    d = two_digit_images(20, "test", seed=1)
    assert d.x.shape == (20, 3, 32, 64) and d.labels.shape == (20, 2)
    assert (d.labels[:, 0] != d.labels[:, 1]).all()
    s = load_digits_split(0)
    pos = {int(i): k for k, i in enumerate(s.test_index)}
    for i in range(20):
        for side in (0, 1):
            k = pos[int(d.source[i, side])]
            assert torch.equal(d.x[i, :, :, 32 * side:32 * (side + 1)], s.x_test[k])
            assert int(d.labels[i, side]) == int(s.y_test[k])
    assert (d.labels[:, 0] < d.labels[:, 1]).any() and (d.labels[:, 0] > d.labels[:, 1]).any()
    again = two_digit_images(20, "test", seed=1)
    assert torch.equal(d.x, again.x) and torch.equal(d.labels, again.labels)
    assert not torch.equal(d.labels, two_digit_images(20, "test", seed=2).labels)
    assert d.targets().sum(1).eq(2).all()


def test_occlusion_of_a_linear_model_equals_the_patch_dot_product():
    """Logit = <w, x>: blanking patch P to ``fill`` lowers it by <w_P, x_P - fill>."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 12, 2)).double().eval()
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    got = occlusion(model, x, fill=0.5, patch=4)
    w = model[1].weight.detach().view(2, 3, 8, 12)
    for i in range(2):
        for k in range(2):
            for t in (0, 4):
                for left in (0, 4, 8):
                    sl = (slice(None), slice(t, t + 4), slice(left, left + 4))
                    drop = (w[k][sl] * (x[i][sl] - 0.5)).sum()
                    assert torch.allclose(got[i, k][sl[1:]], drop.expand(4, 4))


def test_measures_against_hand_computed_maps():
    masks = half_masks(2, 4)
    maps = torch.zeros(4, 2, 4)          # n = 2 images: rows 0, 1 left; 2, 3 right
    maps[0, 0, 0], maps[0, 0, 3] = 3.0, 1.0      # left explanation: 3 of 4 on the left
    maps[1, 1, 3], maps[1, 0, 0] = 2.0, -5.0     # only positive mass on the right: 0
    maps[2, 0, 2] = 1.0                          # right explanation, all on the right
    per = measure_maps(maps, 2)                  # map 3 is all zero: no positive mass
    assert masks[0, 0, 0] and masks[1, 0, 3]
    np.testing.assert_allclose(per["mass_accuracy"].to_numpy()[:3], [0.75, 0.0, 1.0])
    assert np.isnan(per["mass_accuracy"].iloc[3])
    np.testing.assert_array_equal(per["pointing"].to_numpy()[:3], [1.0, 0.0, 1.0])


def test_hand_made_model_occlusion_and_gradient_x_input_put_all_mass_on_the_read_half():
    model, data = _half_reader(), _data(6)
    df, per = two_digits(["occlusion", "gradient_x_input", "random"], model=model,
                         data=data, correct_only=False, raw=True, n_resamples=200)
    df = df.set_index("method")
    for m in ("occlusion", "gradient_x_input"):
        # occlusion: blanking the unread half changes the float64 logit by rounding only
        assert df.loc[m, "mass_accuracy"] == pytest.approx(1.0, abs=1e-9), m
        assert df.loc[m, "pointing"] == 1.0, m
        assert per.loc[per.method == m, "mass_accuracy"].notna().all()
    assert abs(df.loc["random", "mass_accuracy"] - 0.5) < 0.05
    assert df.loc["random", "mass_accuracy_low"] <= df.loc["random", "mass_accuracy"]
    assert df.loc["random", "mass_accuracy_high"] >= df.loc["random", "mass_accuracy"]
    # a model whose logits both read the whole image: gradient x input spreads the mass
    torch.manual_seed(2)
    spread = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 64, 2)).double().eval()
    s = two_digits(["gradient_x_input"], model=spread, data=data, correct_only=False,
                   n_resamples=200)
    assert s["mass_accuracy"].iloc[0] < 0.9


def test_benchmark_is_deterministic_and_checks_names():
    model, data = _half_reader(), _data(4)
    a = two_digits(["random", "gradient"], model=model, data=data, correct_only=False,
                   n_resamples=200, seed=5)
    b = two_digits(["random", "gradient"], model=model, data=data, correct_only=False,
                   n_resamples=200, seed=5)
    pd_cols = ["mass_accuracy", "mass_accuracy_low", "pointing", "l1_class_diff"]
    np.testing.assert_array_equal(a[pd_cols].to_numpy(), b[pd_cols].to_numpy())
    assert torch.equal(random_maps(2, 4, 4, seed=5), random_maps(2, 4, 4, seed=5))
    assert not torch.equal(random_maps(2, 4, 4, seed=5), random_maps(2, 4, 4, seed=6))
    with pytest.raises(ValueError, match="unknown method 'nonsense'"):
        resolve_methods("gradient,nonsense")
    names = resolve_methods("all")
    assert {"occlusion", "random", "gradient", "lrp_a1b0"} <= set(names)
    assert "smoothgrad" not in names


def _ten_class_reader() -> nn.Sequential:
    """Float32, ten logits: even classes read the left half, odd ones the right half."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 32 * 64, 10)).eval()
    with torch.no_grad():
        w = model[3].weight.view(10, 2, 32, 64)
        w[0::2, :, :, 32:] = 0
        w[1::2, :, :, :32] = 0
    return model


@pytest.fixture
def fake_model(monkeypatch):
    """The cached benchmark model replaced by a hand-made one (no training in tests)."""
    import liecheck.groundtruth.model as gm

    monkeypatch.setattr(gm, "load_two_digits_net",
                        lambda *a, **k: (_ten_class_reader(), {"test_accuracy": 0.25}))


def test_cli_writes_table_items_and_figure(tmp_path, capsys, fake_model):
    from liecheck.cli import main

    rc = main(["groundtruth", "--methods", "gradient,occlusion,random", "--n", "4",
               "--all-images", "--out", str(tmp_path)])
    assert rc == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "groundtruth.csv")
    assert list(df["method"]) == ["gradient", "occlusion", "random"]
    assert (df["n_images"] == 4).all()
    assert len(pd.read_csv(tmp_path / "groundtruth_items.csv")) == 3 * 8
    assert (tmp_path / "groundtruth.png").stat().st_size > 1000
    assert "model test accuracy (both digits in the top 2): 0.250" in capsys.readouterr().out
    assert main(["groundtruth", "--methods", "bogus", "--out", str(tmp_path)]) == 2


def test_reproduce_unit_and_report_section(tmp_path, fake_model):
    from liecheck.report import _groundtruth, _groundtruth_figures
    from liecheck.reproduce.config import default_config
    from liecheck.reproduce.experiments import groundtruth_unit
    from liecheck.store import RunStore

    assert default_config().extra["groundtruth"]["n"] > 0
    unit = groundtruth_unit(6, ["gradient_x_input", "random"], seed=0)
    df, arrays = unit.compute()
    assert list(df["method"]) == ["gradient_x_input", "random"]
    assert (df["model_accuracy"] == 0.25).all() and (df["n_drawn"] == 6).all()
    store = RunStore(tmp_path / "run", settings={})
    for name, arrs in arrays.items():
        store.save_arrays(name, **arrs)
    store.write(unit.table, unit.name, df, unit.keys)
    section = _groundtruth(store)             # the table, in the report's tables
    assert "benchmark model test accuracy 0.250" in section and "gradient_x_input" in section
    assert "n_negative_logit" in section
    (fig,) = _groundtruth_figures(store)       # the figure, among the report's figures
    assert fig.number == "GT" and "test accuracy 0.250" in fig.caption
    assert fig.png[:8] == b"\x89PNG\r\n\x1a\n"


def test_l1_between_a_map_and_its_negative_is_zero_and_no_positive_map_is_left_out(gen):
    """A rule that starts from the explained logit's value turns its map over for a
    negative logit: the right-digit explanation is then the left one's negative. The
    L1 between the classes' maps is taken up to sign (the paper's SSIM takes the better
    of a map and its inverse), so such a pair is identical: 0 (``normalize(-m)`` is
    exactly ``1 - normalize(m)``). A map without positive relevance (a turned-over
    non-negative map) claims no evidence for its class: mass accuracy *and* pointing
    are NaN (its maximum would be its pixel of least relevance)."""
    m0 = torch.randn(16, 32, generator=gen(11), dtype=torch.float64)
    m1 = torch.randn(16, 32, generator=gen(12), dtype=torch.float64).abs()
    m1[:, :8] = 0                                  # background, as in a digit image
    maps = torch.stack([m0, m1, -m0, -m1])         # n = 2: rows 0, 1 left; 2, 3 right
    logits = torch.tensor([2.0, 1.5, -2.0, -1.5])
    per = measure_maps(maps, 2, logits=logits)
    np.testing.assert_allclose(per["l1_class_diff"].to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_array_equal(per["logit"].to_numpy(), logits.numpy())
    assert np.isnan(per["mass_accuracy"].iloc[3]) and np.isnan(per["pointing"].iloc[3])
    assert per[["mass_accuracy", "pointing"]].iloc[:3].notna().all().all()


def test_benchmark_l1_ignores_a_sign_flip_from_a_negative_logit():
    """Class 1's logit is class 0's negated (weight rows w and -w): gradient x input of
    class 1 is exactly the negative of class 0's map, so the two classes' maps are
    identical up to sign (L1 0), although one logit of every image is negative."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 64, 2, bias=False)).double().eval()
    with torch.no_grad():
        model[1].weight[1] = -model[1].weight[0]
    data = _data(6)
    df, per = two_digits(["gradient_x_input"], model=model, data=data, correct_only=False,
                         raw=True, n_resamples=200)
    assert df.attrs["n_negative_logit"] == 6          # one of the two logits per image
    np.testing.assert_allclose(per["l1_class_diff"].to_numpy(), 0.0, atol=1e-12)
    assert df["l1_class_diff"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert (np.sign(per["logit"].to_numpy()[:6]) == -np.sign(per["logit"].to_numpy()[6:])).all()


@pytest.mark.slow
def test_benchmark_model_lrp_a1b0_l1_has_no_sign_flip_outliers():
    """On the benchmark model (trained on first use, cached) some recognised images have
    one of the two explained logits negative; LRP a1b0 starts from the logit's value and
    its maps converge to one shape, so on those images the map is turned over (no
    positive relevance at all). Without the flip those images' L1 were the outliers
    (all above every other image's); now they lie in the range of the rest, and
    LRP a1b0, whose maps do not depend on the class (the paper's claim), ranks below
    occlusion (faithful by construction) on L1."""
    df, per = two_digits(["lrp_a1b0", "occlusion"], n=60, seed=0, raw=True,
                         n_resamples=2000)
    a1b0 = per[per.method == "lrp_a1b0"]
    left = a1b0[a1b0.side == 0].set_index("image")
    right = a1b0[a1b0.side == 1].set_index("image")
    opposite = np.sign(left["logit"]) != np.sign(right["logit"])
    assert opposite.any() and (~opposite).any()   # the case this test is about exists
    l1 = left["l1_class_diff"]
    assert l1[opposite].median() <= l1[~opposite].max()
    negative = a1b0["logit"] < 0
    # the turned-over maps have no positive relevance: left out, not scored by chance
    assert a1b0.loc[negative, "pointing"].isna().all()
    s = df.set_index("method")
    assert s.loc["lrp_a1b0", "n_no_positive"] == int(negative.sum())
    assert s.loc["lrp_a1b0", "l1_class_diff_high"] < s.loc["occlusion", "l1_class_diff_low"]
