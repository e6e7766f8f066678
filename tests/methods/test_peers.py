"""Agreement with the peer libraries Zennit (0.5) and Captum where the rules coincide.

Differences we configure away, and why (read from Zennit's ``rules.py`` and
``composites.py``):

* **stabiliser**: every Zennit rule divides by ``z + 1e-6 sign(z)``; liecheck divides
  exactly (``0 / 0 := 0``) except in the epsilon rule. We give Zennit a stabiliser of
  1e-30, which in float64 changes nothing but the zero denominators.
* **bias in z+**: Zennit's ``ZPlus`` keeps the positive bias in the activator (it is
  alpha=1, beta=0 with ``b+``): that is liecheck's ``lrp_a1b0``. liecheck's
  ``ZPlus`` is the z+ rule of the paper (eq. 5) without bias: Zennit's
  ``ZPlus(zero_params='bias')``. ``WSquare`` in Zennit squares the bias too and adds
  it to the denominator; liecheck's w^2 rule has no bias: ``zero_params='bias'``.
* **BatchNorm**: liecheck folds a BN that follows a conv into it; Zennit does the
  same with the ``SequentialMergeBatchNorm`` canonizer (without it Zennit passes
  relevance through BN unchanged). Its merge leaves a BN that scales by
  ``1/sqrt(1 + eps)``, so the test BN has ``eps = 0``.
* **pooling**: both send max-pool relevance to the arg-max (the gradient);
  average pooling gets the z-rule in liecheck and ``Norm`` (z-rule) in Zennit.
* **ReLU in DTD**: liecheck passes relevance through ReLUs; Zennit's
  ``NameMapComposite`` leaves unnamed ReLUs with their gradient, which differs
  below the w^2 layer (w^2 gives dead units relevance), so we map them to ``Pass``.
* **Excitation BP**: Zennit's composite is ``ZPlus`` (with ``b+`` and the ``x- W-``
  term) and no ReLU rule. liecheck drops the bias (Zhang et al.) and uses ``x W+`` on
  non-negative inputs and the same ``x+ W+ + x- W-`` split on signed ones; with
  ``zero_params='bias'`` the two coincide on any input, and the ReLU gradient changes
  nothing because every rule above a dead unit already gives it zero (``x_j = 0``).
* **start**: Zennit takes the output relevance from the caller: we pass the
  liecheck start (one-hot times the logit for LRP, one-hot for gradient methods).
"""

from __future__ import annotations

import copy

import pytest
import torch
from nets import TARGET, TINY, peer_net
from nets import peer_x as _x
from torch import nn

import liecheck
from liecheck.methods import Method, lrp_composite
from liecheck.rules import lrp as rl

zennit = pytest.importorskip("zennit")
captum_attr = pytest.importorskip("captum.attr")

from zennit import composites as zc
from zennit import rules as zr
from zennit import types as zt
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm

ZPLUS = Method("zplus_test", "z+", "z+ everywhere (paper eq. 5)",
               lrp_composite(lambda node, graph, p: rl.ZPlus()))


def zennit_attr(model, x, comp, start):
    """Zennit's attribution with output relevance ``start``, on a copy of the model."""
    m = copy.deepcopy(model)
    with Gradient(model=m, composite=comp) as attributor:
        _, rel = attributor(x.clone(), start)
    return rel


def onehot(x, model, times_logit: bool):
    with torch.no_grad():
        y = model(x)
    oh = torch.zeros_like(y)
    oh[torch.arange(len(x)), TARGET] = 1.0
    return oh * y if times_logit else oh


def _close(ours, theirs, rtol=1e-9):
    scale = theirs.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=rtol * scale)


def _lrp_map(rule_for_linear):
    return [(zt.Activation, zr.Pass()), (zt.AvgPool, zr.Norm(stabilizer=TINY)),
            (zt.Linear, rule_for_linear)]


LRP_CASES = {
    # liecheck method (name or Method, params) -> Zennit composite factory
    "lrp_z": ("lrp_z", {}, lambda: zc.LayerMapComposite(
        _lrp_map(zr.Epsilon(epsilon=0.0)), canonizers=[SequentialMergeBatchNorm()])),
    "lrp_epsilon": ("lrp_epsilon", {"epsilon": 0.05}, lambda: zc.LayerMapComposite(
        _lrp_map(zr.Epsilon(epsilon=0.05)), canonizers=[SequentialMergeBatchNorm()])),
    "zplus_nobias": (ZPLUS, {}, lambda: zc.LayerMapComposite(
        _lrp_map(zr.ZPlus(stabilizer=TINY, zero_params="bias")),
        canonizers=[SequentialMergeBatchNorm()])),
    "a1b0_is_zennit_zplus": ("lrp_a1b0", {}, lambda: zc.LayerMapComposite(
        _lrp_map(zr.ZPlus(stabilizer=TINY)), canonizers=[SequentialMergeBatchNorm()])),
    "a2b1": ("lrp_a2b1", {}, lambda: zc.LayerMapComposite(
        _lrp_map(zr.AlphaBeta(2, 1, stabilizer=TINY)), canonizers=[SequentialMergeBatchNorm()])),
    "a5b4": ("lrp_a5b4", {}, lambda: zc.LayerMapComposite(
        _lrp_map(zr.AlphaBeta(5, 4, stabilizer=TINY)), canonizers=[SequentialMergeBatchNorm()])),
    # Zennit's own composites: epsilon on dense layers, z+ (with b+) / a2b1 on convs
    "cmp_a1b0": ("lrp_cmp_a1b0", {}, lambda: zc.EpsilonPlus(
        epsilon=1e-10, stabilizer=TINY, canonizers=[SequentialMergeBatchNorm()])),
    "cmp_a2b1": ("lrp_cmp_a2b1", {}, lambda: zc.EpsilonAlpha2Beta1(
        epsilon=1e-10, stabilizer=TINY, canonizers=[SequentialMergeBatchNorm()])),
    # DTD: z^B on the first conv, z+ after ReLUs, w^2 on the final dense layer
    "dtd": ("dtd", {"low": -4.0, "high": 4.0}, lambda: zc.NameMapComposite([
        (("0",), zr.ZBox(low=-4.0, high=4.0, stabilizer=TINY)),
        (("4", "8"), zr.ZPlus(stabilizer=TINY, zero_params="bias")),
        (("10",), zr.WSquare(stabilizer=TINY, zero_params="bias")),
        (("2", "5", "9"), zr.Pass()),
        (("6",), zr.Norm(stabilizer=TINY)),
    ], canonizers=[SequentialMergeBatchNorm()])),
}


@pytest.mark.parametrize("case", list(LRP_CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_lrp_rules_match_zennit(case, seed):
    method, params, make_composite = LRP_CASES[case]
    model, x = peer_net(seed), _x(seed)
    ours = liecheck.attribute(model, x, method, target=TARGET, **params)
    theirs = zennit_attr(model, x, make_composite(), onehot(x, model, times_logit=True))
    _close(ours, theirs)


def test_zennit_zplus_keeps_the_bias_ours_does_not():
    # the difference explained above is real: with biases the two z+ variants differ
    model, x = peer_net(0), _x(0)
    ours = liecheck.attribute(model, x, ZPLUS, target=TARGET)
    theirs = zennit_attr(model, x, LRP_CASES["a1b0_is_zennit_zplus"][2](),
                         onehot(x, model, True))
    assert not torch.allclose(ours, theirs, rtol=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_excitation_bp_matches_zennit(seed):
    model, x = peer_net(seed), _x(seed, nonneg=True)
    ours = liecheck.attribute(model, x, "excitation_bp", target=TARGET)
    comp = zc.ExcitationBackprop(stabilizer=TINY, zero_params="bias",
                                 canonizers=[SequentialMergeBatchNorm()])
    theirs = zennit_attr(model, x, comp, onehot(x, model, times_logit=False))
    _close(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1])
def test_excitation_bp_matches_zennit_on_signed_inputs(seed):
    """Signed pixels: liecheck's first layer uses Zennit's cancellation-free split."""
    model, x = peer_net(seed), _x(seed)
    assert (x < 0).any()
    ours = liecheck.attribute(model, x, "excitation_bp", target=TARGET)
    comp = zc.ExcitationBackprop(stabilizer=TINY, zero_params="bias",
                                 canonizers=[SequentialMergeBatchNorm()])
    theirs = zennit_attr(model, x, comp, onehot(x, model, times_logit=False))
    _close(ours, theirs)


@pytest.mark.parametrize("method,make", [("guided_bp", zc.GuidedBackprop),
                                         ("deconv", zc.DeconvNet)])
@pytest.mark.parametrize("seed", [0, 1])
def test_relu_methods_match_zennit(method, make, seed):
    model, x = peer_net(seed), _x(seed)
    ours = liecheck.attribute(model, x, method, target=TARGET)
    theirs = zennit_attr(model, x, make(), onehot(x, model, times_logit=False))
    _close(ours, theirs)


@pytest.mark.parametrize("method,peer", [("gradient_x_input", "InputXGradient"),
                                         ("guided_bp", "GuidedBackprop"),
                                         ("deconv", "Deconvolution")])
@pytest.mark.parametrize("seed", [0, 1])
def test_methods_match_captum(method, peer, seed):
    model, x = peer_net(seed), _x(seed)
    ours = liecheck.attribute(model, x, method, target=TARGET)
    m = copy.deepcopy(model)
    theirs = getattr(captum_attr, peer)(m).attribute(x.clone().requires_grad_(True),
                                                     target=TARGET).detach()
    _close(ours, theirs)


def mobile_blocks(seed: int) -> nn.Sequential:
    """torchvision's Conv2dNormActivation blocks with SiLU, ReLU6 (depthwise), Hardswish
    and GELU, as in MobileNet / EfficientNet stems, then pooling and a dense layer; no
    functional ops (Zennit sees modules only)."""
    from torchvision.ops.misc import Conv2dNormActivation as Block

    torch.manual_seed(seed)
    model = nn.Sequential(
        Block(3, 8, activation_layer=nn.SiLU), Block(8, 8, groups=8, activation_layer=nn.ReLU6),
        Block(8, 12, activation_layer=nn.Hardswish), Block(12, 12, activation_layer=None),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(48, 10))
    g = torch.Generator().manual_seed(seed + 1)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean = 0.2 * torch.randn(bn.num_features, generator=g)
            bn.running_var = 0.5 + torch.rand(bn.num_features, generator=g)
            bn.eps = 0.0  # see peer_net: Zennit's merge keeps eps
    return model.double().eval()


@pytest.mark.parametrize("case", ["lrp_z", "lrp_epsilon", "a1b0_is_zennit_zplus", "a2b1"])
def test_identity_rule_on_pointwise_nonlinearities_matches_zennit_pass(case):
    """Zennit gives every activation module (SiLU, ReLU6, Hardswish, GELU) its Pass rule,
    liecheck's LRP family the identity rule: the same maps where Zennit sees every op."""
    method, params, make_composite = LRP_CASES[case]
    model, x = mobile_blocks(0), _x(0)
    ours = liecheck.attribute(model, x, method, target=TARGET, **params)
    theirs = zennit_attr(model, x, make_composite(), onehot(x, model, times_logit=True))
    _close(ours, theirs)
