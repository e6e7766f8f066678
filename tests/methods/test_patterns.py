"""PatternNet / PatternAttribution (Kindermans et al. 2018): estimator and rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import liecheck
from liecheck import patterns


def signal_distractor(n=4000, d=8, seed=0):
    """x = a_s s + a_d e (+ small noise); the filter w extracting s is orthogonal to a_d,
    so it does not point along a_s (Kindermans et al. 2018, section 2)."""
    gen = torch.Generator().manual_seed(seed)
    a_s = torch.randn(d, generator=gen)
    a_d = torch.randn(d, generator=gen) + a_s  # a distractor direction close to a_s
    s = torch.randn(n, generator=gen)
    e = 3.0 * torch.randn(n, generator=gen)
    x = s[:, None] * a_s + e[:, None] * a_d + 0.01 * torch.randn(n, d, generator=gen)
    # w: w^T a_d = 0, w^T a_s = 1 (least-norm solution)
    m = torch.stack([a_s, a_d])
    w = torch.linalg.lstsq(m, torch.tensor([1.0, 0.0]).unsqueeze(1)).solution.squeeze(1)
    return x, w, a_s


@pytest.mark.parametrize("kind", ["linear", "relu"])
def test_pattern_recovers_signal_direction(kind):
    x, w, a_s = signal_distractor()
    net = nn.Sequential(nn.Linear(8, 1)).eval()
    with torch.no_grad():
        net[0].weight.copy_(w[None])
        net[0].bias.zero_()
    ps = patterns.fit(net, torch.utils.data.DataLoader(x, batch_size=500), kind=kind)
    (a,) = ps.patterns.values()
    assert F.cosine_similarity(a[0], a_s, dim=0) > 0.99
    assert F.cosine_similarity(w, a_s, dim=0).abs() < 0.9
    # y = w^T x ~ s, so the pattern has the signal's scale: w^T a = 1
    torch.testing.assert_close((a[0] * w).sum(), torch.tensor(1.0), atol=1e-4, rtol=0)


def test_patternnet_one_layer_is_pattern_times_output():
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 3)).eval()
    x = torch.randn(300, 6, generator=gen) @ torch.randn(6, 6, generator=gen)
    ps = patterns.fit(net, x, kind="linear")
    (a,) = ps.patterns.values()
    xs = x[:4]
    y = net(xs).detach()
    t = torch.tensor([0, 1, 2, 1])
    out = liecheck.attribute(net, xs, "patternnet", target=t, patterns=ps)
    torch.testing.assert_close(out, a[t] * y[torch.arange(4), t][:, None])
    pa = liecheck.attribute(net, xs, "patternattribution", target=t, patterns=ps)
    torch.testing.assert_close(pa, (a * net[0].weight.detach())[t] * y[torch.arange(4), t][:, None])


def _dense_relu_estimator(x, y, w):
    """a_i = cov+[x, y_i] / (w_i^T cov+[x, y_i]) over samples with y_i > 0 (dense form)."""
    rows = []
    for i in range(y.shape[1]):
        m = y[:, i] > 0
        xs, ys = x[m].double(), y[m, i].double()
        cov = (xs * ys[:, None]).mean(0) - xs.mean(0) * ys.mean()
        rows.append(cov / (cov @ w[i].double()))
    return torch.stack(rows).float()


def test_conv_patterns_match_patchwise_dense_estimator():
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(0)  # the layers' initialisation (was the global RNG: order-dependent)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    x = torch.randn(20, 2, 8, 8, generator=gen)
    ps = patterns.fit(net, [x[:10], x[10:]], kind="relu")
    cols = F.unfold(x, 3, padding=1, stride=2).transpose(1, 2).reshape(-1, 18)
    y = conv(x).detach().flatten(2).transpose(1, 2).reshape(-1, 3)
    w = conv.weight.detach().reshape(3, -1)
    names = [n for n in ps.patterns]
    torch.testing.assert_close(ps.patterns[names[0]].reshape(3, -1),
                               _dense_relu_estimator(cols, y, w), atol=1e-5, rtol=1e-4)
    h = net[1](conv(x)).detach().flatten(1)
    ref_fc = _dense_relu_estimator(h, net[3](h).detach(), net[3].weight.detach())
    torch.testing.assert_close(ps.patterns[names[1]], ref_fc, atol=1e-5, rtol=1e-4)
    # PatternNet through the ReLU: A2^T r, gated by the forward mask, then A1^T (conv)
    xs = x[:2]
    out = liecheck.attribute(net, xs, "patternnet", target=1, patterns=ps)
    logit = net(xs)[:, 1].detach()
    r = (ps.patterns[names[1]][1][None] * logit[:, None]).reshape(2, 3, 4, 4)
    r = r * (conv(xs) > 0)
    ref = torch.nn.grad.conv2d_input(xs.shape, ps.patterns[names[0]], r, stride=2, padding=1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_save_load_and_mismatch(tmp_path):
    gen = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    ps = patterns.fit(net, torch.randn(50, 4, generator=gen))
    ps.save(tmp_path / "p.pt")
    raw = torch.load(tmp_path / "p.pt", weights_only=True)
    assert raw["format"] == patterns.FORMAT
    back = patterns.PatternSet.load(tmp_path / "p.pt")
    assert back.kind == "relu" and list(back.patterns) == list(ps.patterns)
    for k in ps.patterns:
        torch.testing.assert_close(back.patterns[k], ps.patterns[k])
    x = torch.randn(2, 4, generator=gen)
    torch.testing.assert_close(liecheck.attribute(net, x, "patternattribution", patterns=back),
                               liecheck.attribute(net, x, "patternattribution", patterns=ps))
    other = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    with pytest.raises(ValueError, match="another model"):
        liecheck.attribute(other, x, "patternnet", patterns=back)
    with pytest.raises(ValueError, match="needs patterns"):
        liecheck.attribute(net, x, "patternnet")


def test_cnn_with_pooling_and_batchnorm_runs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4)).eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    ps = patterns.fit(model, x, dtype=torch.float32)
    assert len(ps.patterns) == 3  # BatchNorm folded into the first conv
    for m in ("patternnet", "patternattribution"):
        a = liecheck.attribute(model, x, m, patterns=ps)
        assert a.shape == x.shape and torch.isfinite(a).all() and a.abs().sum() > 0


def test_unit_that_is_never_active_gets_a_zero_pattern():
    """With the relu estimator a unit whose output is never positive has no statistics
    (0 / 0 in the dense formula); fit returns a zero pattern, not NaN. (Seed 39 gives a
    dense unit that is dead on these 20 inputs; found when an unseeded test hit it.)"""
    torch.manual_seed(39)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 2)).eval()
    x = torch.randn(20, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    dead = (net(x) <= 0).all(0)
    assert dead.any()
    ps = patterns.fit(net, x, kind="relu")
    fc = list(ps.patterns.values())[1]
    assert torch.isfinite(fc).all() and (fc[dead] == 0).all()
