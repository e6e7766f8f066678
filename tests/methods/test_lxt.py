"""Agreement with LXT (Achtibat et al., ICML 2024; PyPI ``lxt``, an optional test
dependency: ``pip install liecheck[peers-lxt]``) on torchvision's ViT (issue 23).

LXT's default map for torchvision ViT (``lxt.efficient.monkey_patch(vision_transformer)``
with Zennit's Gamma on Conv2d and Linear modules, as in LXT's ViT example) is CP-LRP:
the identity rule on GELU, LayerNorm with its standard deviation held constant, the
queries and keys of ``nn.MultiheadAttention`` detached, and the gradient elsewhere, read
as gradient x input. liecheck's equivalent is ``cp_lrp_gamma`` with
``gamma_attention=False``.

By design the two differ in one place: Zennit's rules are module hooks, and
``nn.MultiheadAttention`` computes its input and output projections inside
``F.multi_head_attention_forward`` from the weights, without calling its ``out_proj``
module; so under LXT the projections get the plain gradient (the z-rule), not Gamma.
liecheck's ``cp_lrp_gamma`` applies Gamma to them too by default (they are dense
layers like the MLP's); ``gamma_attention=False`` reproduces LXT.

LXT patches torch.nn classes and Zennit globally; the fixture restores them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import vision_transformer
from torchvision.models.vision_transformer import VisionTransformer

import liecheck

pytest.importorskip("zennit")
pytest.importorskip("lxt.efficient", exc_type=ImportError)

GAMMA_CONV, GAMMA_LINEAR = 0.25, 0.05


@pytest.fixture
def lxt_patched():
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from zennit.core import BasicHook

    saved = [(cls, name, cls.__dict__.get(name)) for cls, name in (
        (nn.GELU, "forward"), (nn.GELU, "original_forward"), (nn.LayerNorm, "forward"),
        (nn.MultiheadAttention, "forward"), (nn.MultiheadAttention, "original_forward"),
        (BasicHook, "forward"), (BasicHook, "backward"))]
    with _quiet():
        monkey_patch(vision_transformer)
        monkey_patch_zennit()
    try:
        yield
    finally:
        for cls, name, value in saved:
            if value is None:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, value)


class _quiet:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def _vit():
    torch.manual_seed(0)
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                          hidden_dim=16, mlp_dim=32, num_classes=5)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():  # the head is zero-initialised; biases random too
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return m.double().eval(), x.double()


def _lxt(model, x, target):
    from zennit.composites import LayerMapComposite
    from zennit.rules import Gamma

    comp = LayerMapComposite([(nn.Conv2d, Gamma(GAMMA_CONV)), (nn.Linear, Gamma(GAMMA_LINEAR))])
    comp.register(model)
    try:
        xr = x.clone().requires_grad_(True)
        model(xr)[:, target].sum().backward()
    finally:
        comp.remove()
    return (xr * xr.grad).detach()


def _liecheck(model, x, target, attention):
    return liecheck.attribute(model, x, "cp_lrp_gamma", target=target, gamma_conv=GAMMA_CONV,
                              gamma_linear=GAMMA_LINEAR, gamma_attention=attention)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_lxt_default_vit_map_agrees(lxt_patched):
    model, x = _vit()
    # liecheck traces a copy of the model before LXT's patches act: compute it first
    ours = _liecheck(model, x, 3, attention=False)
    with _quiet():
        ref = _lxt(model, x, 3)
    assert ref.abs().max() > 0
    assert _rel(ours, ref) < 1e-6


def test_lxt_differs_by_design_on_attention_projections(lxt_patched):
    """liecheck's default gamma on MHA's projections is not LXT's (module hooks never
    see them); the difference is large, not rounding."""
    model, x = _vit()
    ours = _liecheck(model, x, 3, attention=True)
    with _quiet():
        ref = _lxt(model, x, 3)
    assert _rel(ours, ref) > 1e-3


def test_patches_restored():
    """The fixture's restore leaves torch.nn as it was (other tests trace these)."""
    assert "original_forward" not in nn.GELU.__dict__
    assert nn.LayerNorm.forward.__module__.startswith("torch.nn")
