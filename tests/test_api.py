"""The public API: the user's model is never touched; targets, errors, shapes,
determinism, and the Captum-shaped ``Attribution`` class."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import liecheck

BUILTIN = ["gradient", "gradient_x_input", "lrp_z", "lrp_epsilon", "lrp_a1b0", "lrp_a2b1",
           "lrp_a5b4", "lrp_cmp_a1b0", "lrp_cmp_a2b1", "dtd", "excitation_bp", "deconv",
           "guided_bp", "rectgrad"]


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(32, 5),
    )
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = 0.1 * torch.randn(m.num_features, generator=g)
            m.running_var = 0.5 + torch.rand(m.num_features, generator=g)
    return model.eval()


def _x(n=3, seed=0):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()},
            {n: getattr(m, "inplace", None) for n, m in model.named_modules()})


def _no_hooks(model):
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_backward_hooks", "_forward_pre_hooks"):
            assert len(getattr(m, attr)) == 0, (name, attr)


@pytest.mark.parametrize("train", [False, True])
def test_model_untouched(train):
    model = net()
    model.train(train)
    model[4].weight.requires_grad_(False)  # a user's frozen layer stays frozen
    before = _snapshot(model)
    _no_hooks(model)
    x = _x()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("lrp_a2b1", "guided_bp", "rectgrad", "dtd"):
            liecheck.attribute(model, x, method)
        liecheck.Attribution(model, "lrp_z").attribute(x, target=1)
    after = _snapshot(model)
    for k, v in before[0].items():
        assert torch.equal(v, after[0][k]), k  # BN running stats not updated either
    assert before[1:] == after[1:]
    _no_hooks(model)
    assert model.training is train


def test_train_mode_warns_and_explains_in_eval_semantics():
    model = net()
    x = _x()
    expected = liecheck.attribute(model, x, "lrp_a1b0", target=2)
    model.train()
    with pytest.warns(UserWarning, match="train mode"):
        got = liecheck.attribute(model, x, "lrp_a1b0", target=2)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # dropout off, BN running stats
    assert model.training


def test_eval_mode_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        liecheck.attribute(net(), _x(), "lrp_z")


def test_attribution_class_equals_function():
    model, x = net(), _x()
    t = torch.tensor([0, 4, 2])
    for method in ("lrp_epsilon", "rectgrad"):
        a = liecheck.Attribution(model, method).attribute(x, target=t)
        b = liecheck.attribute(model, x, method, target=t)
        assert torch.equal(a, b)
    # parameters given to the constructor or to attribute() are the same parameters
    a = liecheck.Attribution(model, "lrp_epsilon", epsilon=0.5).attribute(x, target=t)
    b = liecheck.attribute(model, x, "lrp_epsilon", target=t, epsilon=0.5)
    c = liecheck.attribute(model, x, "lrp_epsilon", target=t)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_target_none_is_argmax_and_int_broadcasts():
    model, x = net(), _x()
    pred = model(x).argmax(1)
    assert torch.equal(liecheck.attribute(model, x, "lrp_z"),
                       liecheck.attribute(model, x, "lrp_z", target=pred))
    assert torch.equal(liecheck.attribute(model, x, "gradient", target=3),
                       liecheck.attribute(model, x, "gradient", target=[3, 3, 3]))
    # different targets give different maps (the target is really used)
    assert not torch.allclose(liecheck.attribute(model, x, "gradient", target=3),
                              liecheck.attribute(model, x, "gradient", target=1))


@pytest.mark.parametrize("target", [5, -1, [0, 1], [0, 1, 2, 3], [0, 1, 7], 1.5, [[0, 1, 2]],
                                    [True, False, True]])
def test_bad_target_raises(target):
    with pytest.raises(ValueError, match="target"):
        liecheck.attribute(net(), _x(), "lrp_z", target=target)


def test_unknown_method_is_helpful():
    with pytest.raises(ValueError, match="unknown method 'lrp_zz'.*lrp_z.*liecheck methods"):
        liecheck.attribute(net(), _x(), "lrp_zz")
    with pytest.raises(ValueError, match="cannot import"):
        liecheck.attribute(net(), _x(), "no_such_module:thing")


@pytest.fixture(scope="module")
def explainer():
    return liecheck.Explainer(net())


@pytest.mark.parametrize("method", BUILTIN)
def test_shape_dtype_and_determinism(explainer, method):
    x = _x(2, seed=1)
    a = explainer.attribute(x, method, target=[1, 3])
    b = explainer.attribute(x, method, target=[1, 3])
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert torch.isfinite(a).all() and a.abs().sum() > 0


def test_non_tensor_input_is_rejected():
    with pytest.raises(TypeError, match="tensor"):
        liecheck.attribute(net(), _x().numpy(), "lrp_z")


def test_one_vocabulary_no_module_hidden_behind_a_function():
    """``liecheck.methods`` is the methods package and ``liecheck.metrics.csc`` the CSC
    module (the tests are ``liecheck.csc`` etc.); ``__all__`` lists functions and
    classes only; the module paths of before the engine / methods folders are gone."""
    import importlib
    import inspect
    import types

    import liecheck

    assert liecheck.methods is importlib.import_module("liecheck.methods")
    assert callable(liecheck.method_table) and "name" in liecheck.method_table()
    for name in ("csc", "sanity", "random_logit"):
        assert isinstance(getattr(liecheck.metrics, name), types.ModuleType), name
        assert inspect.isfunction(getattr(liecheck, name)), name
    for name in liecheck.__all__:
        obj = getattr(liecheck, name)
        assert not isinstance(obj, types.ModuleType), name
    for old in ("graph", "walk", "rewrite", "equivalence", "deeplift", "contrastive",
                "baselines"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"liecheck.{old}")
    with pytest.raises(ImportError):
        from liecheck.metrics import paper_starts  # noqa: F401
