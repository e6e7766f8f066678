"""DeepLIFT (Shrikumar et al. 2017): summation-to-delta, Captum, RevealCancel reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import liecheck
from liecheck.methods.deeplift import gaussian_blur, make_reference


class Block(nn.Module):
    """Basic residual block with a reused ReLU module and a functional ReLU."""

    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        o = self.relu(self.b1(self.c1(x)))
        o = self.b2(self.c2(o))
        o += x
        return F.relu(o)


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.block1, self.block2 = Block(8), Block(8)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = self.block2(self.block1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def randomise_bn(model, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) * 0.6 - 0.3)
    return model


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return randomise_bn(SmallResNet()).eval().double()


@pytest.mark.parametrize("method", ["deeplift_rescale", "deeplift_revealcancel"])
@pytest.mark.parametrize("reference", [None, "blur"])
def test_summation_to_delta(resnet, method, reference):
    # float64; tolerance 1e-10 absolute on logit differences of order 0.1
    x = torch.randn(4, 3, 8, 8, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 2, 3])
    a = liecheck.attribute(resnet, x, method, target=t, reference=reference, blur_sigma=1.5)
    x0 = make_reference(x, reference, 1.5)
    with torch.no_grad():
        d = (resnet(x) - resnet(x0))[torch.arange(4), t]
    assert d.abs().min() > 1e-4
    torch.testing.assert_close(a.flatten(1).sum(1), d, atol=1e-10, rtol=0)


def test_revealcancel_differs_from_rescale_and_ablation_breaks_summation(resnet):
    x = torch.randn(2, 3, 8, 8, dtype=torch.double, generator=torch.Generator().manual_seed(2))
    ex = liecheck.Explainer(resnet)
    rs = ex.attribute(x, "deeplift_rescale", target=0)
    rc = ex.attribute(x, "deeplift_revealcancel", target=0)
    ab = ex.attribute(x, "deeplift_ablation", target=0)
    assert (rs - rc).abs().max() > 1e-3 * rs.abs().max()
    assert not torch.allclose(ab.flatten(1).sum(1), rs.flatten(1).sum(1))


@pytest.mark.parametrize("method", ["deeplift_rescale", "deeplift_revealcancel"])
def test_contributions_at_a_cut_sum_to_delta(resnet, method):
    # the output of block1 (node relu_1) separates input and logits: every path passes it
    x = torch.randn(2, 3, 8, 8, dtype=torch.double, generator=torch.Generator().manual_seed(3))
    ex = liecheck.Explainer(resnet)
    first_add = next(n.name for n in ex.graph.nodes if n.kind == "add")
    cut = next(n.name for n in ex.graph.nodes if n.inputs == [first_add])
    first_conv = ex.graph.resolve("conv")  # feeds a ReLU: holds a (m+, m-) pair
    out = ex.walk(x, method, record=[cut, first_conv, "input"], target=1)
    with torch.no_grad():
        d = (resnet(x) - resnet(torch.zeros_like(x)))[:, 1]
    torch.testing.assert_close(out[cut].flatten(1).sum(1), d, atol=1e-10, rtol=0)
    torch.testing.assert_close(out[first_conv].flatten(1).sum(1), d, atol=1e-10, rtol=0)
    torch.testing.assert_close(out["x"].flatten(1).sum(1), d, atol=1e-10, rtol=0)


def test_injected_multipliers_give_contributions(resnet):
    # inject at the logits: multipliers one-hot == the normal start; contributions equal
    x = torch.randn(2, 3, 8, 8, dtype=torch.double, generator=torch.Generator().manual_seed(4))
    ex = liecheck.Explainer(resnet)
    onehot = torch.zeros(2, 5, dtype=torch.double)
    onehot[:, 2] = 1
    inj = ex.walk(x, "deeplift_revealcancel", inject={"output": onehot}, record=["input"])
    ref = ex.attribute(x, "deeplift_revealcancel", target=2)
    torch.testing.assert_close(inj["x"], ref)
    mult = ex.walk(x, "deeplift_rescale", inject={"output": onehot}, record=["input"],
                   record_as="multipliers")
    torch.testing.assert_close(mult["x"] * x, ex.attribute(x, "deeplift_rescale", target=2))


class PlainNet(nn.Module):
    """Captum-supported: one ReLU module per use, no max pooling."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1, self.r1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()
        self.pool, self.fc1, self.r3 = nn.AvgPool2d(2), nn.Linear(8 * 4 * 4, 16), nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        x = self.r2(self.c2(self.r1(self.b1(self.c1(x)))))
        return self.fc2(self.r3(self.fc1(torch.flatten(self.pool(x), 1))))


def test_rescale_equals_captum_deeplift():
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(5)
    model = randomise_bn(PlainNet(), seed=5).eval().double()
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 3, 16, 16, dtype=torch.double, generator=gen)
    x0 = 0.3 * torch.randn(3, 3, 16, 16, dtype=torch.double, generator=gen)
    t = torch.tensor([0, 3, 1])
    ours = liecheck.attribute(model, x, "deeplift_rescale", target=t, reference=x0)
    theirs = captum_attr.DeepLift(model).attribute(x, baselines=x0, target=t)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-10, rtol=1e-8)


def _revealcancel_mlp(weights, biases, x, x0, k):
    """Independent dense-matrix DeepLIFT RevealCancel for Linear-ReLU-...-Linear MLPs,
    written from Shrikumar et al. (2017) eqs. in sections 3.5.1 and 3.5.3, one sample.

    Forward: per layer keep dh = h - h0 of the linear input, and the positive /
    negative parts dz+ = sum_j [w_ij dh_j]^+, dz- = sum_j [w_ij dh_j]^- of the
    pre-activation. Backward: ReLU gives m_{dz+} = m_y dy+/dz+, m_{dz-} = m_y dy-/dz-;
    a linear layer gives input j the sum over i of w_ij m_{dz+,i} where w_ij dh_j > 0
    and w_ij m_{dz-,i} where w_ij dh_j < 0 (and the mean where dh_j = 0). Where a
    part is below 1e-7 its multiplier is the gradient (liecheck's documented choice).
    """
    h, h0, cache = x, x0, []
    for li, (w, b) in enumerate(zip(weights, biases)):
        dh = h - h0
        terms = w * dh[None, :]                    # (out, in): w_ij dh_j
        zp, zn = terms.clamp(min=0).sum(1), terms.clamp(max=0).sum(1)
        z, z0 = w @ h + b, w @ h0 + b
        cache.append((dh, terms, zp, zn, z0))
        if li < len(weights) - 1:
            h, h0 = z.clamp(min=0), z0.clamp(min=0)
    m_pos = torch.zeros_like(cache[-1][2])
    m_pos[k] = 1.0
    m_neg = m_pos.clone()
    for li in reversed(range(len(weights))):
        dh, terms, zp, zn, z0 = cache[li]
        w = weights[li]
        pos_t, neg_t = (terms > 0).to(w.dtype), (terms < 0).to(w.dtype)
        m_in = ((w * pos_t) * m_pos[:, None]).sum(0) + ((w * neg_t) * m_neg[:, None]).sum(0)
        zero = dh == 0
        m_in[zero] = (0.5 * (m_pos + m_neg) @ w)[zero]
        if li == 0:
            return m_in * (x - x0)
        # the ReLU below this layer: its input is layer li-1's pre-activation
        _, _, zp_, zn_, z0_ = cache[li - 1]
        f = torch.relu
        dyp = 0.5 * (f(z0_ + zp_) - f(z0_)) + 0.5 * (f(z0_ + zn_ + zp_) - f(z0_ + zn_))
        dyn = 0.5 * (f(z0_ + zn_) - f(z0_)) + 0.5 * (f(z0_ + zp_ + zn_) - f(z0_ + zp_))
        grad = (z0_ + zp_ + zn_ > 0).to(w.dtype)   # fallback where a part is ~0
        m_pos = m_in * torch.where(zp_.abs() < 1e-7, grad, dyp / zp_)
        m_neg = m_in * torch.where(zn_.abs() < 1e-7, grad, dyn / zn_)


def min_net():
    """o = relu(i1) - relu(i1 - i2) = min(i1, i2) for i1, i2 >= 0 (Shrikumar fig. 3)."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).double().eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, -1.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        net[2].bias.zero_()
    return net


def test_revealcancel_min_example():
    # i1 > i2 > 0, zero reference: Rescale gives all of min(i1, i2) = i2 to i2;
    # RevealCancel splits it evenly (Shrikumar et al. 2017, section 3.6)
    x = torch.tensor([[3.0, 1.0], [0.5, 2.0]], dtype=torch.double)
    net = min_net()
    rs = liecheck.attribute(net, x, "deeplift_rescale", target=0)
    rc = liecheck.attribute(net, x, "deeplift_revealcancel", target=0)
    torch.testing.assert_close(rs, torch.tensor([[0.0, 1.0], [0.5, 0.0]], dtype=torch.double))
    torch.testing.assert_close(rc, torch.tensor([[0.5, 0.5], [0.25, 0.25]], dtype=torch.double))


def test_revealcancel_matches_dense_reference():
    gen = torch.Generator().manual_seed(7)
    net = nn.Sequential(nn.Linear(6, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(),
                        nn.Linear(5, 3)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.double))
    x = torch.randn(4, 6, generator=gen, dtype=torch.double)
    x0 = 0.5 * torch.randn(4, 6, generator=gen, dtype=torch.double)
    ours = liecheck.attribute(net, x, "deeplift_revealcancel", target=2, reference=x0)
    ws = [net[i].weight for i in (0, 2, 4)]
    bs = [net[i].bias for i in (0, 2, 4)]
    ref = torch.stack([_revealcancel_mlp(ws, bs, x[i], x0[i], 2) for i in range(4)])
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-9)
    rescale = liecheck.attribute(net, x, "deeplift_rescale", target=2, reference=x0)
    assert (rescale - ours).abs().max() > 1e-3


def test_ablation_drops_cross_terms_on_dense_reference():
    # x -> z = W1 x + b1 -> h = relu(z) -> o = W2 h + b2, zero reference, Rescale.
    # Eq. 13 without cross terms: an input with positive delta gets W+^T m; one with a
    # negative delta gets W+^T m ("pos", the reference code) or W-^T m ("neg", the
    # paper's sentence); a zero delta gets W^T m.
    gen = torch.Generator().manual_seed(8)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.double))
    x = torch.randn(3, 5, generator=gen, dtype=torch.double)
    w1, w2 = net[0].weight, net[2].weight
    z, z0 = x @ w1.T + net[0].bias, net[0].bias.expand(3, 6)
    dz, dh = z - z0, z.relu() - z0.relu()
    scale = torch.where(dz.abs() < 1e-7, (z > 0).double(), dh / dz)

    def ablate(w, d, m, neg):
        w_neg = w.clamp(min=0) if neg == "pos" else w.clamp(max=0)
        return torch.where(d > 0, m @ w.clamp(min=0), torch.where(d < 0, m @ w_neg, m @ w))

    for neg in ("pos", "neg"):
        m_h = ablate(w2, dh, torch.tensor([[0.0, 1.0]], dtype=torch.double).expand(3, 2), neg)
        m_x = ablate(w1, x, m_h * scale, neg)
        ours = liecheck.attribute(net, x, "deeplift_ablation", target=1, negative_weight=neg)
        torch.testing.assert_close(ours, m_x * x, atol=1e-12, rtol=1e-10)


def test_resnet50_runs_and_is_finite():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    ex = liecheck.Explainer(model)
    for method in ("deeplift_rescale", "deeplift_revealcancel", "deeplift_ablation"):
        a = ex.attribute(x, method, target=3)
        assert a.shape == x.shape and torch.isfinite(a).all() and a.abs().sum() > 0


def test_reference_handling():
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(gaussian_blur(torch.full_like(x, 0.3), 2.0),
                               torch.full_like(x, 0.3))
    b = make_reference(x, "blur", 2.0)
    assert b.shape == x.shape and b.std() < x.std()
    torch.testing.assert_close(make_reference(x, 0.5), torch.full_like(x, 0.5))
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(400, 3)).eval()
    a = liecheck.attribute(net, x, "deeplift_rescale", target=0, reference=x)
    assert a.abs().max() == 0  # x0 = x: nothing changed, nothing to attribute
    with pytest.raises(ValueError, match="reference"):
        liecheck.attribute(net, x, "deeplift_rescale", reference="noise")
    with pytest.raises(ValueError, match="broadcast"):
        liecheck.attribute(net, x, "deeplift_rescale", reference=torch.zeros(5))
