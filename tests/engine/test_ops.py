"""Each op of the open op model on its own, in a small bias-free net, float64:

* the gradient equals autograd (the independent reference) to 1e-12;
* ``lrp_z`` conserves relevance: the input's total equals the explained logit (every rule
  on these ops is conservative without biases; a constant's share is absorbed, so the
  buffer-add case is left out);
* DeepLIFT Rescale sums to ``f(x) - f(x0)`` (reference zeros), except where a documented
  mode is not exact (max pooling: the gradient) or the op is refused by name (``amax``);
* ops that would mix samples (a reduction, roll or transpose over the batch written with
  a negative dim) are refused.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import liecheck
from liecheck.engine import ops


class Net(nn.Module):
    """conv -> ``body`` -> flatten -> dense, all without bias."""

    def __init__(self, body, channels_out: int = 4, features: int | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv.weight.data = torch.randn(self.conv.weight.shape, generator=g) * 0.5
        self.body = body
        self.scale = nn.Parameter(torch.rand(4, 1, 1, generator=g) + 0.5)
        self.register_buffer("shift", torch.randn(4, 1, 1, generator=g))
        self.fc = nn.LazyLinear(3, bias=False)

    def forward(self, x):
        h = self.body(self, self.conv(x))
        return self.fc(torch.flatten(h, 1))


CASES = {
    "relu6": lambda m, h: F.relu6(h),
    "clamp": lambda m, h: torch.clamp(h, min=-0.5, max=0.5),
    "clamp_min": lambda m, h: h.clamp(min=0),
    "hardtanh": lambda m, h: F.hardtanh(h, -0.3, 0.8),
    "leaky_relu": lambda m, h: F.leaky_relu(h, 0.2),
    "elu": lambda m, h: F.elu(h, 0.7),
    "silu": lambda m, h: F.silu(h),
    "gelu_tanh": lambda m, h: F.gelu(h, approximate="tanh"),
    "hardswish": lambda m, h: F.hardswish(h),
    "hardsigmoid": lambda m, h: F.hardsigmoid(h),
    "mish": lambda m, h: F.mish(h),
    "tanh": lambda m, h: torch.tanh(h),
    "sigmoid": lambda m, h: h.sigmoid(),
    "softplus": lambda m, h: F.softplus(h, beta=2.0),
    "abs": lambda m, h: h.abs(),
    "product": lambda m, h: h * torch.sigmoid(h.mean((2, 3), keepdim=True)),
    "layer_scale": lambda m, h: m.scale * h,
    "divide_by_parameter": lambda m, h: h / m.scale,
    "add_buffer": lambda m, h: torch.relu(h + m.shift),
    "permute": lambda m, h: h.permute(0, 2, 3, 1),
    "transpose": lambda m, h: torch.transpose(h, 1, 3),
    "index": lambda m, h: h[:, 1:3, ::2],
    "chunk": lambda m, h: (lambda c: torch.cat([c[1], c[0]], dim=1))(h.chunk(2, dim=1)),
    "split": lambda m, h: torch.split(h, [1, 3], dim=1)[1],
    "narrow": lambda m, h: h.narrow(2, 1, 3),
    "roll": lambda m, h: torch.roll(h, 2, dims=3),
    "pad_reflect": lambda m, h: F.pad(h, (1, 2, 0, 1), mode="reflect"),
    "pad_replicate": lambda m, h: F.pad(h, (1, 1, 1, 1), mode="replicate"),
    "pad_circular": lambda m, h: F.pad(h, (2, 0, 1, 1), mode="circular"),
    "pad_constant": lambda m, h: F.pad(h, (1, 1, 1, 1)),
    "mean": lambda m, h: h.mean((2, 3)),
    "sum_negative_dim": lambda m, h: h.sum(-1),
    "amax": lambda m, h: h.amax(-1),
    "avg_pool": lambda m, h: F.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False),
    "max_pool": lambda m, h: F.max_pool2d(h, 2, stride=1),
    "max_pool_options": lambda m, h: F.max_pool2d(h, 3, 2, padding=1, dilation=1,
                                                  ceil_mode=True),
    "adaptive_avg_pool": lambda m, h: F.adaptive_avg_pool2d(h, (2, 3)),
    "layer_norm": lambda m, h: F.layer_norm(h.permute(0, 2, 3, 1), (4,)),
    "interpolate_bilinear": lambda m, h: F.interpolate(h, scale_factor=1.5, mode="bilinear"),
    "interpolate_nearest": lambda m, h: F.interpolate(h, size=(8, 5)),
    "stack": lambda m, h: torch.stack([h, torch.relu(h)], dim=2),
    "where": lambda m, h: torch.where(h > 0, h, 0.1 * h),
    "where_number": lambda m, h: torch.where(h < 0.2, h, 0.2),
}
# the buffer's share, the constant branch's (0.2 where h >= 0.2) are absorbed, like a bias's
NOT_CONSERVED = {"add_buffer", "where_number"}
DEEPLIFT_INEXACT = {"max_pool", "max_pool_options"}       # gradient mode
DEEPLIFT_REFUSED = {"amax": "AMax", "layer_norm": "LayerNorm", "where": "Where",
                    "where_number": "Where"}


def _setup(case):
    model = Net(CASES[case]).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x)  # materialise the lazy layer
    return model.eval(), x


@pytest.mark.parametrize("case", list(CASES))
def test_gradient_exact_lrp_z_conservative_deeplift_exact(case):
    model, x = _setup(case)
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    t = torch.tensor([0, 2])
    logit = out.gather(1, t[:, None]).squeeze(1)
    (ref,) = torch.autograd.grad(logit.sum(), xr)
    got = liecheck.attribute(model, x, "gradient", target=t)
    assert ref.abs().max() > 0
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12 * ref.abs().max().item())

    if case not in NOT_CONSERVED:
        r = liecheck.attribute(model, x, "lrp_z", target=t)
        torch.testing.assert_close(r.flatten(1).sum(1), logit.detach(), rtol=1e-9, atol=1e-12)

    if case in DEEPLIFT_REFUSED:
        with pytest.raises(liecheck.UnsupportedOperation,
                           match=f"deeplift_rescale.*{DEEPLIFT_REFUSED[case]}"):
            liecheck.attribute(model, x, "deeplift_rescale", target=t)
        return
    c = liecheck.attribute(model, x, "deeplift_rescale", target=t)
    if case not in DEEPLIFT_INEXACT:
        with torch.no_grad():
            delta = (logit - model(torch.zeros_like(x)).gather(1, t[:, None]).squeeze(1))
        torch.testing.assert_close(c.flatten(1).sum(1), delta, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ["relu6", "silu", "hardswish", "tanh", "abs", "product",
                                  "layer_scale", "permute", "mean", "pad_reflect"])
def test_ops_are_their_classes(case):
    """The node type each spelling becomes (so the rules above are the documented ones)."""
    want = {"relu6": ops.Hardtanh, "silu": ops.SiLU, "hardswish": ops.Hardswish,
            "tanh": ops.Tanh, "abs": ops.Abs, "product": ops.Product,
            "layer_scale": ops.ConstScale, "permute": ops.Permute, "mean": ops.MeanOp,
            "pad_reflect": ops.Pad}[case]
    graph = liecheck.trace(_setup(case)[0])
    assert any(type(n.op) is want for n in graph.nodes)


@pytest.mark.parametrize("body", [
    lambda m, h: h - h.mean(-4, keepdim=True),
    lambda m, h: torch.roll(h, 1, dims=-4),
    lambda m, h: h.transpose(-4, 1),
    lambda m, h: torch.cat([h, h], dim=-4)[:2],
    lambda m, h: h.amax(-4, keepdim=True) * 1.0 + h,
])
def test_ops_over_the_batch_are_refused(body):
    model = Net(body).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        model(x)
    with pytest.raises(liecheck.UnsupportedOperation, match="batch"):
        liecheck.attribute(model.eval(), x, "gradient", target=0)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_padding_modes(mode):
    """Conv2d(padding_mode=...) = pad then convolve: exact gradient, conservative LRP-z,
    and z+ (LRP a1b0 without biases) still non-negative for a positive start."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, bias=False),
                          nn.ReLU(), nn.Conv2d(4, 2, 3, bias=False), nn.Flatten(),
                          nn.LazyLinear(3, bias=False)).double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    with torch.no_grad():
        model(x)
    model.eval()
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    (ref,) = torch.autograd.grad(out[:, 1].sum(), xr)
    torch.testing.assert_close(liecheck.attribute(model, x, "gradient", target=1), ref,
                               rtol=1e-12, atol=1e-13)
    r = liecheck.attribute(model, x, "lrp_z", target=1)
    torch.testing.assert_close(r.flatten(1).sum(1), out[:, 1].detach(), rtol=1e-9, atol=1e-12)
    ex = liecheck.Explainer(model)
    zplus = ex.walk(x, "lrp_a1b0", inject={ex.graph.output: torch.ones(2, 3).double()},
                    record=[ex.graph.input])[ex.graph.input]
    assert zplus.min() >= 0 and zplus.sum() > 0


@pytest.mark.parametrize("body,words", [
    (lambda m, h: h * (h > 0), "condition of torch.where"),
    (lambda m, h: F.interpolate(h, scale_factor=2, mode="bicubic"), "negative weights"),
])
def test_masks_outside_where_and_bicubic_are_refused(body, words):
    model = Net(body).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        model(x)
    with pytest.raises(liecheck.UnsupportedOperation, match=words):
        liecheck.trace(model.eval())
