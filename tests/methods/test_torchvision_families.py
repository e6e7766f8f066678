"""Every torchvision CNN family (issue 21): random init, BatchNorm with random statistics,
float64, small inputs.

For each of the 18 families, the family's own blocks (the smallest torchvision member;
for the five largest, the same block classes at reduced depth and width, so the suite
stays fast):

* the gradient equals autograd to 1e-10 (relative to its largest entry);
* with every bias and BatchNorm / LayerNorm shift zeroed, ``lrp_z`` conserves relevance:
  the input's total equals the explained logit;
* where the net is piecewise linear and positively homogeneous (ReLU, max / average
  pooling, no bias), ``lrp_z`` equals gradient x input;
* DeepLIFT Rescale sums to ``f(x) - f(x0)``, or is refused naming the op (LayerNorm);
* on the families with new ops, every registered method runs (a finite map of the
  input's shape) or is refused with :class:`liecheck.UnsupportedOperation` naming the
  method and the node.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import convnext, efficientnet, resnet

import liecheck
from liecheck.engine import ops
from liecheck.methods import lrp_composite

tvm = torchvision.models


def _small_convnext():
    cfg = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(cfg, num_classes=10, layer_scale=0.5)


def _small_efficientnet_v2():
    cfg = [efficientnet.FusedMBConvConfig(1, 3, 1, 16, 16, 1),
           efficientnet.FusedMBConvConfig(4, 3, 2, 16, 24, 1),
           efficientnet.MBConvConfig(4, 3, 2, 24, 32, 2)]
    return efficientnet.EfficientNet(cfg, dropout=0.2, last_channel=64, num_classes=10)


def _small_vgg():
    m = tvm.VGG(tvm.vgg.make_layers([8, "M", 16, "M", 16, 16, "M"]), num_classes=10)
    m.classifier = nn.Sequential(nn.Linear(16 * 49, 32), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(32, 10))  # VGG's head at reduced width
    return m


FAMILIES = {
    "alexnet": lambda: tvm.alexnet(num_classes=10),
    "vgg": lambda: _small_vgg(),
    "resnet": lambda: tvm.resnet18(num_classes=10),
    "resnext": lambda: resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=10,
                                     groups=4, width_per_group=4),
    "wide_resnet": lambda: resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=10,
                                         width_per_group=32),
    "densenet": lambda: tvm.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=8,
                                     num_classes=10),
    "squeezenet": lambda: tvm.squeezenet1_1(num_classes=10),
    "googlenet": lambda: tvm.googlenet(num_classes=10, aux_logits=False, init_weights=True),
    "inception": lambda: tvm.inception_v3(num_classes=10, aux_logits=False,
                                          init_weights=True),
    "mobilenet_v2": lambda: tvm.mobilenet_v2(num_classes=10, width_mult=0.25),
    "mobilenet_v3": lambda: tvm.mobilenet_v3_small(num_classes=10),
    "mnasnet": lambda: tvm.mnasnet0_5(num_classes=10),
    "shufflenet": lambda: tvm.shufflenet_v2_x0_5(num_classes=10),
    "efficientnet": lambda: tvm.efficientnet_b0(num_classes=10),
    "efficientnet_v2": _small_efficientnet_v2,
    "regnet_x": lambda: tvm.regnet_x_400mf(num_classes=10),
    "regnet_y": lambda: tvm.regnet_y_400mf(num_classes=10),
    "convnext": _small_convnext,
}
# piecewise linear and positively homogeneous (ReLU, pooling) once biases are zero
HOMOGENEOUS = {"alexnet", "vgg", "resnet", "resnext", "wide_resnet", "densenet",
               "squeezenet", "googlenet", "inception", "mnasnet", "shufflenet", "regnet_x"}
SIZE = {"inception": 80, "alexnet": 64}


def _randomise_stats(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            if m.affine:
                m.weight.data.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def _zero_shifts(model: nn.Module) -> None:
    """Every bias, BatchNorm shift and LayerNorm bias zero (BN: zero running mean)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.zero_()
        for name in ("bias",):
            p = getattr(m, name, None)
            if isinstance(p, torch.Tensor):
                p.data.zero_()


@functools.cache
def _model(family: str, biased: bool = True) -> nn.Module:
    torch.manual_seed(0)
    m = FAMILIES[family]()
    with torch.no_grad():
        _randomise_stats(m, 0)
        if not biased:
            _zero_shifts(m)
    return m.double().eval()


def _x(family: str, n: int = 2) -> torch.Tensor:
    s = SIZE.get(family, 48)
    return torch.randn(n, 3, s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_gradient_equals_autograd(family):
    model, x = _model(family), _x(family)
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    t = out.argmax(1)
    (ref,) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), xr)
    got = liecheck.attribute(model, x, "gradient", target=t)
    assert ref.abs().max() > 0
    assert (got - ref).abs().max() <= 1e-10 * ref.abs().max()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_lrp_z_conserves_relevance_without_biases(family):
    model, x = _model(family, biased=False), _x(family)
    with torch.no_grad():
        logits = model(x)
    t = logits.argmax(1)
    r = liecheck.attribute(model, x, "lrp_z", target=t)
    total = r.flatten(1).sum(1)
    want = logits.gather(1, t[:, None]).squeeze(1)
    torch.testing.assert_close(total, want, rtol=1e-7, atol=1e-9 * want.abs().max().item())
    if family in HOMOGENEOUS:  # LRP-z = gradient x input on piecewise-linear homogeneous nets
        gxi = liecheck.attribute(model, x, "gradient_x_input", target=t)
        torch.testing.assert_close(r, gxi, rtol=1e-7, atol=1e-9 * gxi.abs().max().item())


# max pooling takes DeepLIFT's gradient mode (as the paper's reference code), which is
# not summation-to-delta exact: there only a finite map is checked
MAXPOOL = {"alexnet", "vgg", "resnet", "resnext", "wide_resnet", "densenet", "squeezenet",
           "googlenet", "inception", "shufflenet"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_deeplift_rescale_sums_to_delta_or_refuses_by_name(family):
    model, x = _model(family), _x(family)
    with torch.no_grad():
        logits, ref_logits = model(x), model(torch.zeros_like(x))
    t = logits.argmax(1)
    try:
        c = liecheck.attribute(model, x, "deeplift_rescale", target=t)
    except liecheck.UnsupportedOperation as exc:
        assert family == "convnext"  # LayerNorm: no rule keeps summation-to-delta
        assert "deeplift_rescale" in str(exc) and "LayerNorm" in str(exc)
        return
    assert bool(torch.isfinite(c).all()) and c.abs().max() > 0
    has_maxpool = any(isinstance(n.op, ops.MaxPool) for n in liecheck.trace(model).nodes)
    assert has_maxpool == (family in MAXPOOL)
    if has_maxpool:
        return
    want = (logits - ref_logits).gather(1, t[:, None]).squeeze(1)
    # the 1e-12 floor: where |x - x0| < 1e-7 Rescale takes the derivative (the deeplift
    # package's threshold), which moves the sum by far less on these small logits
    torch.testing.assert_close(c.flatten(1).sum(1), want, rtol=1e-6, atol=1e-12)


NEW_OP_FAMILIES = ["mobilenet_v3", "efficientnet_v2", "shufflenet", "regnet_y", "convnext"]


@pytest.mark.parametrize("family", NEW_OP_FAMILIES)
def test_every_method_runs_or_refuses_by_name(family):
    model = copy.deepcopy(_model(family)).float()  # .float() is in place: not the cache's
    x = _x(family).float()
    ex = liecheck.Explainer(model)
    t = torch.tensor([1, 2])
    ran, refused = [], []
    for name in liecheck.method_names():
        method = liecheck.get_method(name)
        if method.family in ("pattern", "peer"):
            continue  # need fitted patterns / a peer library: tested elsewhere
        params = {"n_samples": 2} if "n_samples" in method.params else {}
        if "steps" in method.params:
            params["steps"] = 2
        try:
            a = ex.attribute(x, name, target=t, **params)
        except liecheck.UnsupportedOperation as exc:
            assert f"method '{name}'" in str(exc) and "node '" in str(exc), str(exc)
            refused.append(name)
            continue
        want = (x.shape[0], 1, *x.shape[2:]) if name == "gradcam" else x.shape  # one channel
        assert a.shape == want and bool(torch.isfinite(a).all()), name
        ran.append(name)
    assert {"gradient", "lrp_z", "lrp_epsilon", "lrp_a1b0", "excitation_bp"} <= set(ran)
    # Guided BP, Deconv and RectGrad modify ReLUs only: refused on SiLU / GELU / ...
    assert {"guided_bp", "deconv", "rectgrad"} & set(refused) or family == "shufflenet"


def test_product_rules_on_a_gate():
    """``x * sigmoid(w x)`` gates: the gradient is exact, the uniform rule gives each
    factor half, signal-takes-all gives the gate nothing; both conserve."""
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 6, bias=False), nn.Linear(6, 1, bias=False)
            self.out = nn.Linear(6, 3, bias=False)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.out(h * torch.sigmoid(self.b(x)))  # a (N, 1) gate, broadcast

    torch.manual_seed(0)
    model = Gate().double().eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    (ref,) = torch.autograd.grad(out[:, 0].sum(), xr)
    got = liecheck.attribute(model, x, "gradient", target=0)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    r = liecheck.attribute(model, x, "lrp_z", target=0)
    torch.testing.assert_close(r.sum(1), out[:, 0].detach(), rtol=1e-9, atol=1e-12)
    from liecheck.rules import lrp as rl
    signal = liecheck.Method("lrp_z_signal", "z, signal takes all", "test",
                             lrp_composite(
                                 lambda n, g, p: rl.Epsilon(0.0),
                                 {ops.Product: lambda n, g, p: rl.ProductSignal()}))
    ex = liecheck.Explainer(model)
    prod = next(n.name for n in ex.graph.nodes if isinstance(n.op, ops.Product))
    inputs = ex.graph.by_name[prod].inputs
    for method, gate_share in ((liecheck.get_method("lrp_z"), 0.5), (signal, 0.0)):
        rec = ex.walk(x, method, record=inputs, target=0)
        gate = rec[inputs[1]].sum() if inputs[1] in rec else 0.0  # not reached: no share
        total = rec[inputs[0]].sum() + gate
        torch.testing.assert_close(total, out[:, 0].sum().detach(), rtol=1e-9, atol=1e-12)
        assert float(gate / total) == pytest.approx(gate_share, abs=1e-9)


@pytest.mark.parametrize("op", ["layernorm", "groupnorm"])
def test_norm_identity_rule_conserves_and_gradient_is_exact(op):
    norm = nn.LayerNorm(8) if op == "layernorm" else nn.GroupNorm(2, 8)
    model = nn.Sequential(nn.Linear(5, 8, bias=False), norm, nn.GELU(),
                          nn.Linear(8, 3, bias=False)).double().eval()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.zero_()
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    (ref,) = torch.autograd.grad(out[:, 1].sum(), xr)
    torch.testing.assert_close(liecheck.attribute(model, x, "gradient", target=1), ref,
                               rtol=1e-12, atol=1e-14)
    r = liecheck.attribute(model, x, "lrp_z", target=1)
    torch.testing.assert_close(r.sum(1), out[:, 1].detach(), rtol=1e-9, atol=1e-12)


def test_a_model_in_training_mode_is_explained_in_eval_mode_and_says_so():
    """Stochastic depth, dropout and BatchNorm in train mode would make the map random;
    liecheck explains the eval-mode function (one warning) and leaves the model as it was."""
    model = _model("efficientnet_v2")
    x = _x("efficientnet_v2")
    want = liecheck.attribute(model, x, "lrp_epsilon", target=1)
    model.train()
    try:
        with pytest.warns(UserWarning, match="train mode"):
            got = liecheck.attribute(model, x, "lrp_epsilon", target=1)
        assert model.training
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    finally:
        model.eval()


RELU_ONLY_METHODS = {"deconv", "guided_bp", "rectgrad", "patternnet", "patternattribution"}
DEEPLIFT_METHODS = {"deeplift_rescale", "deeplift_revealcancel", "deeplift_ablation"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_method_has_a_documented_rule_or_refuses_by_name(family):
    """Family x every registered method, without running (liecheck.coverage.check): a
    method runs, or refuses naming the method's node and op, exactly where docs/rules.md
    says: ReLU-only methods on other nonlinearities (and PatternNet / PatternAttribution on
    products and norms), DeepLIFT on LayerNorm; every other method runs."""
    from liecheck.coverage import check

    model = _model(family)
    graph = liecheck.trace(model, check_forward=False)
    kinds = {type(n.op) for n in graph.nodes}
    non_relu = any(issubclass(k, ops.Pointwise) and k is not ops.ReLU for k in kinds)
    norms = any(issubclass(k, ops.Norm) for k in kinds)
    products = ops.Product in kinds
    cov = check(graph)
    for name, runs, why in zip(cov.methods.method, cov.methods.runs, cov.methods.why_not):
        refused = set()
        if non_relu or (name in ("patternnet", "patternattribution") and (norms or products)):
            refused = RELU_ONLY_METHODS
        if norms:
            refused = refused | DEEPLIFT_METHODS
        assert runs == (name not in refused), (name, why)
        if not runs:
            assert why.startswith("node '") and "(" in why, why
