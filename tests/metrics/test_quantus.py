"""Cross-check with Quantus 0.6.0 (the ``quantus`` extra): its RandomLogit and MPRT on
liecheck's maps and models, beside liecheck's random-logit test and cascade.

What the tests pin (quantus/... paths are files of the installed Quantus 0.6.0):

* RandomLogit equals :func:`liecheck.random_logit` exactly when Quantus is given the
  paper's 2-D SSIM (with the sign flip) as ``similarity_func``, liecheck's percentile
  normalisation as ``normalise_func``, ``abs=False``, and liecheck draws the same other
  class. The draws themselves differ: Quantus reseeds numpy's global generator at
  every batch (metrics/randomisation/random_logit.py, line 293), so an image's other
  class depends on its position in its batch; liecheck's depends on the image's number.
* Quantus's default similarity is a 1-D SSIM of the flattened maps
  (random_logit.py, line 304: ``a_batch.reshape(batch_size, -1)``; functions/
  similarity_func.py, lines 296-301: skimage with ``win_size=None`` = 7 and
  ``data_range`` = the pair's range), without the sign flip. Its value changes when
  both maps are transposed; the 2-D SSIM cannot (its window is square).
* MPRT re-initialises the modules that have ``reset_parameters`` in registration order
  (``named_modules()``, reversed for ``top_down``; helpers/model/pytorch_model.py,
  lines 322-325) and calls ``torch.manual_seed(seed + 1)`` before every layer (line
  330). liecheck's cascade follows execution order (the traced graph,
  :func:`liecheck.metrics.sanity.parametrised_layers`) and seeds each module with
  :func:`liecheck.metrics.sanity.layer_seed` (seed, module name). With the order and the
  seeds made equal, the two agree exactly.

Everything runs on a small float64 CNN on 16 x 16 inputs (CPU, well under a second a test).
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

quantus = pytest.importorskip("quantus")
from quantus.functions.similarity_func import ssim as quantus_ssim
from skimage.metrics import structural_similarity

import liecheck
from liecheck.heatmap import heatmap
from liecheck.metrics import random_logit as random_logit_module
from liecheck.metrics import sanity as sanity_module
from liecheck.metrics.similarity import normalize, percentiles_for, prepare, similarity, ssim

METHODS = ["gradient", "lrp_a1b0", "guided_bp"]
SIDE = 16          # maps are SIDE x SIDE
N_CLASSES = 10
QSEED = 42         # Quantus's default seed for both metrics


def ordered_net() -> nn.Module:
    """Registration order = execution order (conv, conv, dense)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(8 * 8 * 8, N_CLASSES))
    return model.double().eval()


class Shuffled(nn.Module):
    """Modules registered fc, conv2, conv1, conv3; ``forward`` runs conv1, conv2, conv3, fc.
    conv2 and conv3 have one shape (8 -> 8, 3 x 3)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8 * 8 * 8, N_CLASSES)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def shuffled_net() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Shuffled()
    return model.double().eval()


def inputs(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1),
                       dtype=torch.float64)


def make_explain(log: list | None = None):
    """Quantus's ``explain_func``: liecheck's relevance reduced to a map as liecheck does
    (:func:`liecheck.heatmap.heatmap`), ``(N, 1, H, W)``. ``log`` collects, per call, the
    explained classes and a copy of the explained model's weights."""
    def explain(model, inputs, targets, method, **_):
        if log is not None:
            log.append((np.asarray(targets).copy(),
                        {k: v.detach().clone() for k, v in model.state_dict().items()}))
        r = liecheck.attribute(model, torch.as_tensor(inputs), method,
                               target=torch.as_tensor(targets))
        return heatmap(r, method).unsqueeze(1).numpy()
    return explain


def percentile_normalise(method: str):
    """Quantus's ``normalise_func`` doing liecheck's per-image percentile normalisation."""
    low, high = percentiles_for(method)
    return lambda a: normalize(torch.from_numpy(a[:, 0]), low, high).unsqueeze(1).numpy()


def ssim_2d(a: np.ndarray, b: np.ndarray, batched: bool = True, **_) -> np.ndarray:
    """Quantus's ``similarity_func`` giving liecheck's score: Quantus hands over flattened
    maps, so fold them back to 2-D and take max(SSIM(a, b), SSIM(a, 1 - b))."""
    n = a.shape[0]
    return similarity(torch.from_numpy(a).view(n, SIDE, SIDE),
                      torch.from_numpy(b).view(n, SIDE, SIDE), "ssim").numpy()


def quantus_other(y: torch.Tensor, seed: int = QSEED) -> torch.Tensor:
    """Quantus's off-class draw for one batch (random_logit.py, lines 293-300): after
    ``np.random.seed(seed)``, index ``k`` uniform in ``0 .. C-2`` into the classes with the
    target removed, i.e. class ``k`` below the target and ``k + 1`` from it on."""
    np.random.seed(seed)
    k = torch.as_tensor(np.random.randint(0, N_CLASSES - 1, len(y)))
    return k + (k >= y).long()


def run_random_logit(model, x, y, method, log, batch_size=64, **kw):
    metric = quantus.RandomLogit(num_classes=N_CLASSES, seed=QSEED, abs=False,
                                 normalise_func=percentile_normalise(method),
                                 disable_warnings=True, **kw)
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                             explain_func=make_explain(log),
                             explain_func_kwargs={"method": method}, device="cpu",
                             batch_size=batch_size))


def run_mprt(model, x, y, method, log=None, **kw) -> dict:
    metric = quantus.MPRT(layer_order="top_down", seed=QSEED, abs=False,
                          normalise_func=percentile_normalise(method),
                          disable_warnings=True, **kw)
    return metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                  explain_func=make_explain(log), explain_func_kwargs={"method": method},
                  device="cpu", batch_size=64)


@pytest.mark.parametrize("method", METHODS)
def test_random_logit_equals_liecheck_with_2d_ssim_and_the_same_draw(method, monkeypatch):
    model, x = ordered_net(), inputs()
    y = model(x).argmax(1)
    log = []
    q = run_random_logit(model, x, y, method, log, similarity_func=ssim_2d)
    other = quantus_other(y)
    assert [list(t) for t, _ in log] == [y.tolist(), other.tolist()]  # target, then off-class
    assert (other != y).all()
    # liecheck with Quantus's draw instead of its own
    monkeypatch.setattr(random_logit_module, "other_classes", lambda t, n, seed, ids: other)
    df = liecheck.random_logit(model, x, method, target=y)
    assert (df["other"].to_numpy() == other.numpy()).all()
    np.testing.assert_allclose(q, df["score"].to_numpy(), rtol=0, atol=1e-12)


def test_random_logit_draw_depends_on_the_batch_position():
    """Quantus reseeds per batch: with batches of 3, images 3..5 get the off-class indices
    of images 0..2. liecheck's draw keys on the image number, not on the batching."""
    model, x = ordered_net(), inputs()
    y = model(x).argmax(1)
    log = []
    run_random_logit(model, x, y, "gradient", log, similarity_func=ssim_2d, batch_size=3)
    off = np.concatenate([t for t, _ in log[1::2]])  # calls: target, off-class per batch
    assert off.tolist() == torch.cat([quantus_other(y[:3]), quantus_other(y[3:])]).tolist()
    assert off.tolist() != quantus_other(y).tolist()  # not the draw of one batch of 6
    ours = [liecheck.random_logit(model, x, "gradient", target=y, batch_size=b)["other"].tolist()
            for b in (3, 6)]
    assert ours[0] == ours[1]


@pytest.mark.parametrize("method", METHODS)
def test_random_logit_default_is_1d_ssim_of_flattened_maps(method):
    model, x = ordered_net(), inputs()
    y = model(x).argmax(1)
    q = run_random_logit(model, x, y, method, [])  # Quantus's own ssim
    other = quantus_other(y)
    a = prepare(liecheck.attribute(model, x, method, target=y), method).numpy()
    b = prepare(liecheck.attribute(model, x, method, target=other), method).numpy()

    def flat(u, v):  # quantus/functions/similarity_func.py, lines 296-301
        rng = max(u.max(), v.max()) - min(u.min(), v.min())
        return structural_similarity(u.ravel(), v.ravel(), win_size=7, data_range=rng)

    np.testing.assert_allclose(q, [flat(u, v) for u, v in zip(a, b)], rtol=0, atol=1e-12)
    # the 2-D SSIM is a property of the maps: transposing both leaves it unchanged ...
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(ssim(ta, tb), ssim(ta.transpose(1, 2), tb.transpose(1, 2)),
                               rtol=0, atol=1e-12)
    # ... the 1-D one depends on which axis is stored first
    q_t = np.array([flat(u.T, v.T) for u, v in zip(a, b)])
    assert np.abs(q - q_t).max() > 0.01


def _stripes_ssim(mu: float, n: int, data_range: float) -> float:
    """SSIM of one window of n pixels in {0, 1}, a fraction ``mu`` of them 1, against its
    complement: means mu and 1 - mu, both variances n / (n - 1) mu (1 - mu), covariance
    minus the variance."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    var = n / (n - 1) * mu * (1 - mu)
    return ((2 * mu * (1 - mu) + c1) / (mu ** 2 + (1 - mu) ** 2 + c1)
            * (-2 * var + c2) / (2 * var + c2))


def test_flattening_changes_the_score_materially():
    """Stripes of period 2 against their complement (what a sign flip of a map gives).

    2-D SSIM (5 x 5 windows, data_range 2): every window holds 2 or 3 ones of 5 per row
    or column -> mu = 2/5 (or 3/5, the same value), whichever way the stripes run;
    liecheck's score, max over the flip, is 1.
    Quantus (flattened, 7-windows, data_range 1, no flip): vertical stripes flatten to
    0101... -> every window has mu = 3/7 or 4/7. Horizontal stripes flatten to runs of
    16: of the 256 - 6 = 250 windows, 6 per row boundary (15 of them) straddle it with
    m = 1 .. 6 pixels of the next row; the other 160 are constant (value C1 / (1 + C1)).
    """
    vertical = np.tile(np.arange(SIDE) % 2, (SIDE, 1)).astype(float)
    horizontal = vertical.T.copy()
    two_d = _stripes_ssim(2 / 5, 25, 2.0)
    c1 = 0.01 ** 2
    flat_vertical = _stripes_ssim(3 / 7, 7, 1.0)
    flat_horizontal = (160 * c1 / (1 + c1)
                       + 15 * sum(_stripes_ssim(m / 7, 7, 1.0) for m in range(1, 7))) / 250
    for s in (vertical, horizontal):
        t = torch.from_numpy(s)[None]
        np.testing.assert_allclose(ssim(t, 1 - t).item(), two_d, rtol=1e-12)
        assert similarity(t, 1 - t, "ssim").item() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(quantus_ssim(vertical.ravel(), 1 - vertical.ravel()),
                               flat_vertical, rtol=1e-12)
    np.testing.assert_allclose(quantus_ssim(horizontal.ravel(), 1 - horizontal.ravel()),
                               flat_horizontal, rtol=1e-12)
    assert flat_horizontal - flat_vertical > 0.5  # one pair of maps, two orientations


def test_default_normalisation_couples_the_images_of_a_batch():
    """Quantus's default normalise_by_max divides by the maximum over all axes, the batch
    included (quantus/functions/normalise_func.py, lines 42-49), and its SSIM's data_range
    is the pair's range, so an image's score depends on its batch mates. Image 0 keeps its
    target and off-class (the draw at position 0 only depends on its target)."""
    model, x = ordered_net(), inputs()
    y = model(x).argmax(1)
    scores = []
    for mate in (1, 2, 3, 4, 5):
        idx = [0, mate]
        metric = quantus.RandomLogit(num_classes=N_CLASSES, seed=QSEED, abs=False,
                                     disable_warnings=True)
        scores.append(metric(model=model, x_batch=x[idx].numpy(), y_batch=y[idx].numpy(),
                             explain_func=make_explain(),
                             explain_func_kwargs={"method": "lrp_a1b0"}, device="cpu")[0])
    assert np.ptp(scores) > 1e-3
    # with a per-image normalisation image 0's score is the same whatever its mate
    per_image = [run_random_logit(model, x[[0, mate]], y[[0, mate]], "lrp_a1b0", [])[0]
                 for mate in (1, 2, 3, 4, 5)]
    assert np.ptp(per_image) == 0


@pytest.mark.parametrize("method", METHODS)
def test_mprt_equals_liecheck_cascade_with_registration_order_and_quantus_seed(
        method, monkeypatch):
    """On a model registered in execution order, with liecheck's per-layer seed replaced
    by Quantus's one seed (``seed + 1`` for every layer), Quantus's top-down MPRT with the
    2-D SSIM is liecheck's cascade, step by step."""
    model, x = ordered_net(), inputs(4)
    y = model(x).argmax(1)
    q = run_mprt(model, x, y, method, similarity_func=ssim_2d)
    monkeypatch.setattr(sanity_module, "layer_seed", lambda seed, name: QSEED + 1)
    df = liecheck.sanity(model, x, method, target=y)
    steps = list(df.groupby("step"))
    assert list(q)[1:] == [g["layer"].iloc[0] for _, g in steps] == ["6", "2", "0"]
    np.testing.assert_allclose(q["original"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(df.attrs["trained"], 1.0, rtol=0, atol=1e-12)
    for (_, g), name in zip(steps, list(q)[1:]):
        np.testing.assert_allclose(q[name], g["score"].to_numpy(), rtol=0, atol=1e-12)


def _changed(weights: dict, trained: dict) -> set[str]:
    return {k.rsplit(".", 1)[0] for k in weights if not torch.equal(weights[k], trained[k])}


def test_mprt_follows_registration_order_liecheck_execution_order(monkeypatch):
    model, x = shuffled_net(), inputs(4)
    y = model(x).argmax(1)
    registered = [n for n, m in model.named_modules() if hasattr(m, "reset_parameters")]
    executed = ["conv1", "conv2", "conv3", "fc"]  # Shuffled.forward
    assert registered == ["fc", "conv2", "conv1", "conv3"]
    log = []
    q = run_mprt(model, x, y, "guided_bp", log, similarity_func=ssim_2d)
    assert list(q)[1:] == registered[::-1]
    # what each step's explained model had re-initialised: prefixes of the reversed
    # registration order; step 2 already re-initialised the first layer, conv1
    trained = model.state_dict()
    randomised = [_changed(w, trained) for _, w in log[2:]]  # after a_batch and 'original'
    assert randomised == [set(registered[::-1][:k]) for k in range(1, 5)]
    assert "conv1" in randomised[1]

    monkeypatch.setattr(sanity_module, "layer_seed", lambda seed, name: QSEED + 1)
    assert [g[0] for g in sanity_module.parametrised_layers(model)] == executed
    df = liecheck.sanity(model, x, "guided_bp", target=y)
    steps = [g for _, g in df.groupby("step")]
    assert [g["layer"].iloc[0] for g in steps] == executed[::-1]
    # same seeds, same final set of re-initialised layers -> the last step agrees ...
    np.testing.assert_allclose(q["fc"], steps[-1]["score"].to_numpy(), rtol=0, atol=1e-12)
    # ... the steps before it randomise other layers and give other numbers
    for name, g in zip(list(q)[1:4], steps[:3]):
        assert np.abs(np.asarray(q[name]) - g["score"].to_numpy()).max() > 1e-3


def test_mprt_one_seed_for_every_layer_liecheck_one_per_module():
    """conv2 and conv3 have one shape: Quantus gives them identical weights; liecheck
    seeds each module from (seed, its name)."""
    model, x = shuffled_net(), inputs(2)
    y = model(x).argmax(1)
    log = []
    run_mprt(model, x, y, "gradient", log, similarity_func=ssim_2d)
    final = log[-1][1]

    def fresh(seed: int) -> nn.Conv2d:
        with torch.random.fork_rng(devices=[]):
            conv = nn.Conv2d(8, 8, 3, padding=1).double()
            torch.manual_seed(seed)
            conv.reset_parameters()
        return conv

    for name in ("conv2", "conv3"):
        assert torch.equal(final[f"{name}.weight"], fresh(QSEED + 1).weight)
        assert torch.equal(final[f"{name}.bias"], fresh(QSEED + 1).bias)
    ours = sanity_module.randomize(copy.deepcopy(model), ["conv2", "conv3"], seed=0)
    assert not torch.equal(ours.conv2.weight, ours.conv3.weight)
    for name in ("conv2", "conv3"):
        expected = fresh(sanity_module.layer_seed(0, name))
        assert torch.equal(getattr(ours, name).weight, expected.weight)


def test_quantus_ssim_cannot_be_mprt_similarity():
    """Quantus 0.6.0's ssim returns a list; MPRT calls ``.tolist()`` on the similarity
    (quantus/metrics/randomisation/mprt.py, line 348): pass a function returning an array
    (as ssim_2d does)."""
    model, x = ordered_net(), inputs(2)
    y = model(x).argmax(1)
    with pytest.raises(AttributeError, match="tolist"):
        run_mprt(model, x, y, "gradient", similarity_func=quantus_ssim)
