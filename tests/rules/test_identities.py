"""Identities the rules must satisfy on whole networks.

* LRP-z (z-rule with bias everywhere) equals gradient x input on ReLU / max-pool
  networks. Derivation: suppose the relevance at a layer's output is ``z * g_z``
  (``g_z`` the gradient of the explained logit w.r.t. ``z``). The z-rule gives
  ``x * W^T (R / z) = x * W^T g_z = x * g_x``; a ReLU passes ``a * g_a``, which equals
  ``z * g_z`` because ``g_z = g_a 1[z > 0]`` and ``a = z 1[z > 0]``; the max-pool
  switch routes ``y * g_y`` to the arg-max where ``x = y``; the add split gives
  ``x_i / z * z * g = x_i * g``. The start ``onehot * logit`` is ``z * g_z`` at the
  logits, so by induction the input relevance is ``x * g_x``.
* ``gradient`` equals autograd.
* z+ / LRP-a1b0 / DTD relevance is non-negative at every node for a positive start:
  every step multiplies and adds non-negative numbers (``x+ W+`` and ``x- W-`` are
  both >= 0, and so is the activator ``z+``).
* Conservation where the rule promises it: each conservative rule maps ``R`` to
  ``R_in`` with ``sum R_in = sum R`` where no denominator is zero (z+ without bias;
  the z-rule and alpha-beta with alpha - beta = 1 when all biases are zero).
* Excitation BP's input relevance sums to 1 (a probability) for a one-hot start on a
  network with non-negative inputs.

Everything runs in float64 on copies so that tolerances can be 1e-9 relative.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from nets import randomize_bn, small_resnet, small_vgg
from torch import nn

import liecheck
from liecheck.methods import Method, lrp_composite
from liecheck.rules import lrp as rl


def autograd_grad(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    xr = x.clone().requires_grad_(True)
    y = model(xr)
    (g,) = torch.autograd.grad(y[torch.arange(len(x)), target].sum(), xr)
    return g


def _close(actual, expected, rtol=1e-9):
    scale = expected.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale)


def _x(seed, n, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


# ---------------------------------------------------- LRP-z == gradient x input
@pytest.mark.parametrize("make", [small_vgg, small_resnet], ids=["vgg", "resnet"])
@pytest.mark.parametrize("seed", [0, 1])
def test_lrp_z_and_gradient_match_autograd_small(make, seed):
    model = make(seed)
    x = _x(seed, 2)
    target = torch.tensor([3, 7])
    g = autograd_grad(model, x, target)
    ex = liecheck.Explainer(model)
    _close(ex.attribute(x, "lrp_z", target=target), g * x)
    _close(ex.attribute(x, "gradient", target=target), g)
    _close(ex.attribute(x, "gradient_x_input", target=target), g * x)
    # the identity holds only for eps = 0: a visible epsilon breaks it
    eps = ex.attribute(x, "lrp_epsilon", target=target, epsilon=1.0)
    assert not torch.allclose(eps, g * x, rtol=1e-3)


def _check_torchvision(model, x, target, tol):
    g = autograd_grad(model, x, target)
    ex = liecheck.Explainer(model)
    for method, expected in (("lrp_z", g * x), ("gradient", g)):
        got = ex.attribute(x, method, target=target)
        scale = expected.abs().max().item()
        assert (got - expected).abs().max().item() <= tol * scale, method
        assert ((got - expected).norm() / expected.norm()).item() <= tol, method


@pytest.mark.slow
def test_lrp_z_equals_gradient_x_input_vgg16_224():
    # float32 (float64 VGG-16 takes ~30 s on 2 cores): engine and autograd sum in
    # different orders; measured max difference ~1e-6 of the largest entry. A wrong
    # rule is off by O(1), so 1e-4 of the largest entry separates the two.
    torch.manual_seed(0)
    model = torchvision.models.vgg16().eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    _check_torchvision(model, x, torch.tensor([417]), tol=1e-4)


@pytest.mark.slow
def test_lrp_z_equals_gradient_x_input_resnet50_224():
    # float64: in float32 the residual add split R * a / (a + b) loses digits where
    # a + b nearly cancels (random BN statistics make the logits ~1e3), and lrp_z then
    # differs from gradient x input by ~1% of the largest entry; in float64 by 1e-15.
    torch.manual_seed(0)
    model = randomize_bn(torchvision.models.resnet50(), 1).double().eval()
    _check_torchvision(model, _x(1, 1, 224), torch.tensor([999]), tol=1e-9)


# ------------------------------------------------------------- non-negativity
ZPLUS = Method("zplus_test", "z+", "z+ everywhere (paper eq. 5)",
                  lrp_composite(lambda node, graph, p: rl.ZPlus()))


@pytest.mark.parametrize("method", ["lrp_a1b0", "dtd", ZPLUS, "excitation_bp"],
                         ids=["a1b0", "dtd", "zplus", "excitation"])
@pytest.mark.parametrize("seed", [0, 1])
def test_positive_start_stays_non_negative_everywhere(method, seed):
    # Excitation BP's x W+ is signed for signed inputs: give it non-negative inputs
    # and no stand-alone BN (whose output, read by the next conv, is signed)
    excitation = method == "excitation_bp"
    model = small_vgg(seed, standalone_bn=not excitation)
    x = _x(seed, 2).abs() if excitation else _x(seed, 2)
    ex = liecheck.Explainer(model)
    names = [n.name for n in ex.graph.nodes]
    r0 = torch.rand(2, 10, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = ex.walk(x, method, inject={"output": r0}, record=names)
    assert set(names) <= set(out)
    for name in names:
        assert out[name].min().item() >= 0, name
    assert out[ex.graph.input].sum() > 0  # not vacuous: relevance reached the input


# ---------------------------------------------------------------- conservation
def _sums(ex, x, method, target):
    """Start value and the relevance sums at every *cut* of the graph: the inputs of
    conv / dense layers that are not inside a residual block, and the block inputs
    (nodes read twice: by the branch and by the skip connection)."""
    g = ex.graph
    fan_out = {n.name for n in g.nodes if len(g.consumers[n.name]) > 1}
    if fan_out:  # residual net: a branch's conv input carries only the branch's share
        ins = [g.input, *sorted(fan_out, key=lambda k: g.by_name[k].index)]
    else:
        ins = [g.by_name[n.name].inputs[0] for n in g.linear_nodes(("conv", "dense"))]
    out = ex.walk(x, method, record=ins, target=target)
    start = out["output"][torch.arange(len(x)), target]
    return start, {i: out[i].flatten(1).sum(1) for i in ins}


@pytest.mark.parametrize("seed", [0, 1])
def test_zplus_conserves_relevance(seed):
    # z+ drops the bias, so no relevance leaks into it; the start is onehot x logit
    model = small_vgg(seed, bias=True, standalone_bn=False)
    x, target = _x(seed, 2), torch.tensor([1, 8])
    start, sums = _sums(liecheck.Explainer(model), x, ZPLUS, target)
    for name, s in sums.items():
        torch.testing.assert_close(s, start, rtol=1e-9, atol=0, msg=name)


@pytest.mark.parametrize("method", ["lrp_z", "lrp_a2b1", "lrp_a5b4"])
@pytest.mark.parametrize("make", [small_vgg, small_resnet], ids=["vgg", "resnet"])
def test_zero_bias_nets_conserve_relevance(method, make):
    # with every bias 0 (BN shift 0 too), z = sum_i C_i exactly: nothing is absorbed
    # (no stand-alone BN: a diagonal layer has z+ = 0 or z- = 0, and alpha-beta
    # conserves only where both are non-zero)
    if make is small_vgg:
        model = small_vgg(2, bias=False, standalone_bn=False)
    else:
        model = small_resnet(2, zero_bias=True)
    x, target = _x(2, 2), torch.tensor([0, 5])
    ex = liecheck.Explainer(model)
    assert all(n.op.bias is None or not n.op.bias.any() for n in ex.graph.linear_nodes())
    start, sums = _sums(ex, x, method, target)
    for name, s in sums.items():
        torch.testing.assert_close(s, start, rtol=1e-8, atol=0, msg=f"{method} {name}")


def test_biases_break_conservation_of_lrp_z():
    # the check above can fail: with biases the z-rule absorbs relevance
    model = small_vgg(3, bias=True, standalone_bn=False)
    x, target = _x(3, 2), torch.tensor([0, 5])
    start, sums = _sums(liecheck.Explainer(model), x, "lrp_z", target)
    assert not torch.allclose(sums[next(iter(sums))], start, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_excitation_bp_is_a_probability(seed):
    # one-hot start (P = 1 at the target); Excitation ignores biases, so each layer
    # maps a distribution to a distribution when the inputs are non-negative
    model = small_vgg(seed, bias=True, standalone_bn=False)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed),
                   dtype=torch.float64)
    r = liecheck.attribute(model, x, "excitation_bp", target=[2, 9])
    torch.testing.assert_close(r.flatten(1).sum(1), torch.ones(2, dtype=torch.float64),
                               rtol=1e-9, atol=0)
    assert r.min() >= 0
