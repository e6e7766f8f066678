"""SmoothGrad, Integrated Gradients and Grad-CAM against identities and Captum."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import liecheck
from liecheck.methods.baselines import quadrature


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 5)).double().eval()


def x_batch(seed=1, n=2):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.double)


def test_smoothgrad_zero_noise_is_gradient_and_is_seeded():
    model, x = small_cnn(), x_batch()
    ex = liecheck.Explainer(model)
    sg0 = ex.attribute(x, "smoothgrad", target=1, noise_level=0.0, n_samples=3)
    torch.testing.assert_close(sg0, ex.attribute(x, "gradient", target=1))
    a = ex.attribute(x, "smoothgrad", target=1, n_samples=6, batch_size=4)
    b = ex.attribute(x, "smoothgrad", target=1, n_samples=6, batch_size=64)
    torch.testing.assert_close(a, b)  # same seed, any internal batch
    c = ex.attribute(x, "smoothgrad", target=1, n_samples=6, seed=1)
    assert (a - c).abs().max() > 0
    with pytest.raises(ValueError, match="not a single backward walk"):
        ex.walk(x, "smoothgrad")


def test_smoothgrad_matches_explicit_mean():
    # independent: autograd on the module with the same noise sequence
    model, x = small_cnn(), x_batch(n=1)
    sg = liecheck.attribute(model, x, "smoothgrad", target=2, n_samples=4)
    gen = torch.Generator().manual_seed(0)
    sigma = 0.15 * (x.max() - x.min())
    grads = []
    for _ in range(4):
        xn = (x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)).requires_grad_()
        model(xn)[0, 2].backward()
        grads.append(xn.grad)
    torch.testing.assert_close(sg, torch.stack(grads).mean(0))


def test_integrated_gradients_completeness_improves_with_steps():
    model, x = small_cnn(2), x_batch(3)
    ex = liecheck.Explainer(model)
    with torch.no_grad():
        delta = model(x)[:, 0] - model(torch.zeros_like(x))[:, 0]
    errs = []
    for steps in (4, 32, 256):
        ig = ex.attribute(x, "integrated_gradients", target=0, steps=steps,
                          integration="riemann_trapezoid", batch_size=128)
        errs.append((ig.flatten(1).sum(1) - delta).abs().max().item())
    assert errs[2] < errs[0] / 10 and errs[2] < 1e-2 * delta.abs().max()


@pytest.mark.parametrize("method, rtol", [("gausslegendre", 1e-8), ("riemann_middle", 1e-6),
                                          ("riemann_right", 1e-6)])
def test_integrated_gradients_equals_captum(method, rtol):
    # Captum's Riemann alphas come from a float32 linspace (hence rtol 1e-6 there); its
    # riemann_trapezoid weights sum to (n-1)/n, so liecheck's (a true trapezoid) differs
    captum_attr = pytest.importorskip("captum.attr")
    model, x = small_cnn(4), x_batch(5)
    base = 0.1 * x_batch(6)
    ours = liecheck.attribute(model, x, "integrated_gradients", target=[1, 3], steps=20,
                              integration=method, baseline=base, batch_size=8)
    theirs = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=base, target=[1, 3], n_steps=20, method=method, internal_batch_size=8)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-10, rtol=rtol)


def test_quadrature_integrates_polynomials():
    for method, steps, deg in (("gausslegendre", 5, 9), ("riemann_trapezoid", 3, 1),
                               ("riemann_middle", 1, 1)):
        a, w = quadrature(steps, method)
        assert abs((w * a**deg).sum() - 1 / (deg + 1)) < 1e-12


def test_gradcam_equals_captum_layergradcam_on_vgg16():
    captum_attr = pytest.importorskip("captum.attr")
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.vgg16(weights=None).eval()
    # VGG-16's conv stack unchanged; a narrow classifier keeps the test fast (the
    # 120M-parameter fc layers only cost copying time here)
    model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 32), nn.ReLU(), nn.Dropout(),
                                     nn.Linear(32, 10)).eval()
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False  # Captum's layer hook would see the in-place ReLU's output
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    ex = liecheck.Explainer(model)
    ours = ex.attribute(x, "gradcam", target=3)
    lgc = captum_attr.LayerGradCam(model, model.features[28])
    theirs = lgc.attribute(x, target=3, relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(theirs, (64, 64), "bilinear")
    assert ours.shape == (1, 1, 64, 64)
    assert theirs.abs().max() > 0
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6 * theirs.abs().max().item(),
                               rtol=1e-4)
    # a named layer (module name) and no upsampling
    low = ex.attribute(x, "gradcam", target=3, layer="features.26", interpolate=None)
    assert low.shape == (1, 1, 4, 4)


def test_gradcam_container_name_and_errors():
    tv = pytest.importorskip("torchvision")
    model = tv.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    ex = liecheck.Explainer(model)
    cam = ex.attribute(x, "gradcam", layer="layer4", target=0)
    assert cam.shape == (1, 1, 32, 32) and (cam >= 0).all()
    with pytest.raises(KeyError):
        ex.attribute(x, "gradcam", layer="nope")
    with pytest.raises(ValueError, match="feature map"):
        ex.attribute(x, "gradcam", layer="fc")


def test_smoothgrad_wraps_any_method():
    """``smoothgrad[m]`` is the mean of ``m``'s maps over the same noisy copies (an
    independent loop over ``liecheck.attribute``); zero noise gives ``m``'s map."""
    model, x = small_cnn(), x_batch(n=2)
    ex = liecheck.Explainer(model)
    for base in ("guided_bp", "lrp_epsilon", "deeplift_rescale"):
        sg = ex.attribute(x, f"smoothgrad[{base}]", target=[2, 0], n_samples=3, batch_size=4)
        gen = torch.Generator().manual_seed(0)
        sigma = (0.15 * (x.flatten(1).max(1).values - x.flatten(1).min(1).values)
                 ).view(-1, 1, 1, 1)
        noisy = [x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)
                 for _ in range(3)]
        ref = torch.stack([liecheck.attribute(model, xn, base, target=[2, 0])
                           for xn in noisy]).mean(0)
        torch.testing.assert_close(sg, ref, rtol=1e-10, atol=1e-12)
        zero = ex.attribute(x, f"smoothgrad[{base}]", target=1, noise_level=0.0, n_samples=2)
        torch.testing.assert_close(zero, ex.attribute(x, base, target=1))
    m = liecheck.get_method("smoothgrad[lrp_epsilon]")
    assert m.name == "smoothgrad[lrp_epsilon]" and m.reduce == "sum"
    # the same through with_params, and with a Method object as the base
    own = liecheck.get_method("smoothgrad").with_params(base=liecheck.get_method("guided_bp"))
    torch.testing.assert_close(ex.attribute(x, own, target=1, n_samples=2),
                               ex.attribute(x, "smoothgrad[guided_bp]", target=1, n_samples=2))


def test_integrated_gradients_wraps_modified_gradients_only():
    model, x = small_cnn(2), x_batch(3)
    ex = liecheck.Explainer(model)
    torch.testing.assert_close(
        ex.attribute(x, "integrated_gradients[gradient]", target=0, steps=5),
        ex.attribute(x, "integrated_gradients", target=0, steps=5), rtol=0, atol=0)
    # guided IG by hand: (x - 0) * sum_k w_k guided_bp(alpha_k x)
    alphas, w = quadrature(4)
    ref = x * sum(float(wk) * liecheck.attribute(model, float(a) * x, "guided_bp", target=0)
                  for a, wk in zip(alphas, w))
    torch.testing.assert_close(
        ex.attribute(x, "integrated_gradients[guided_bp]", target=0, steps=4), ref)
    for base in ("lrp_z", "gradient_x_input", "deeplift_rescale"):
        with pytest.raises(ValueError, match="integrates a \\(modified\\) gradient"):
            liecheck.get_method(f"integrated_gradients[{base}]")
        with pytest.raises(ValueError, match="integrates a \\(modified\\) gradient"):
            ex.attribute(x, "integrated_gradients", target=0, steps=2, base=base)
    with pytest.raises(ValueError, match="does not wrap another method"):
        liecheck.get_method("lrp_z[gradient]")
    with pytest.raises(ValueError, match="unknown method"):
        liecheck.get_method("smoothgrad[no_such_method]")
