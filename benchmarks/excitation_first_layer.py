"""Excitation BP on signed inputs: how stable is the first layer's rule?

Zhang et al. (2018) define Excitation BP for non-negative inputs:
``P(x_i) = sum_j x_i w+_ij / (sum_k x_k w+_kj) P(y_j)``. On the first layer the input
pixels are signed, so ``z_j = sum_k x_k w+_kj`` can cancel to nearly 0. Two rules on
layers with signed inputs:

* ``xW+`` (liecheck < 0.2's default): the literal definition, ``z = x W+``;
* ``split`` (Zennit's ``ZPlus``): ``z = x+ W+ + x- W-``, a sum of non-negative terms
  (cancellation-free), relevance ``x+ W+ s + x- W- s``; no bias, as in Zhang et al.

For each rule the map is computed with an exact division (0 where ``z = 0``) and with
the stabiliser ``z + 1e-6 sign(z)``; printed is ``||exact - stabilised|| / ||exact||``
(how much a rounding-size change of the denominators moves the map), plus the
correlation with Zennit's ``ExcitationBackprop`` (``zero_params='bias'`` and with its
default ``b+``) on random VGG-16 (64 px photos) and the built-in digits model.

    python benchmarks/excitation_first_layer.py
"""

from __future__ import annotations

import numpy as np
import torch

import liecheck
from liecheck.methods import Method, composite
from liecheck.rules.base import Rule, stabilize


class SignedFirst(Rule):
    """Excitation BP with ``rule`` on signed-input layers, stabiliser ``eps``."""

    def __init__(self, rule: str, eps: float):
        self.rule, self.eps = rule, eps

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        wp = op.pos() if op.weight is not None else None
        if node.nonneg_input or self.rule == "xW+" or wp is None:
            z = op(x, wp, None)
            s = r / torch.where(z == 0, 1.0, stabilize(z, self.eps))
            return [x * op.transpose(s, x.shape, wp)]
        wn = op.weight.clamp(max=0)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        z = op(xp, wp, None) + op(xn, wn, None)
        s = r / torch.where(z == 0, 1.0, stabilize(z, self.eps))
        return [xp * op.transpose(s, x.shape, wp) + xn * op.transpose(s, x.shape, wn)]


def method(rule: str, eps: float) -> Method:
    return Method(f"ebp_{rule}_{eps}", "EBP", "", composite(
        lambda node, graph, p: SignedFirst(rule, eps)), start="onehot")


def zennit(model, x, target, bias: bool):
    import zennit.composites as zc
    from zennit.attribution import Gradient
    from zennit.torchvision import VGGCanonizer

    kw = {} if bias else {"zero_params": "bias"}
    comp = zc.ExcitationBackprop(canonizers=[VGGCanonizer()], **kw)
    onehot = torch.zeros(len(x), model(x).shape[1], dtype=x.dtype)
    onehot[torch.arange(len(x)), target] = 1
    with Gradient(model=model, composite=comp) as attributor:
        _, r = attributor(x.clone().requires_grad_(True), onehot)
    return r.detach()


def rel(a, b):
    return float((a - b).norm() / a.norm())


def corr(a, b):
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


def main() -> None:
    from liecheck.data import sample_photos
    from liecheck.data.digits import digits_test_images
    from liecheck.models import load
    from liecheck.train import default_model

    vgg, _ = load("vgg16", verbose=False)
    digits, _, _ = default_model(progress=False)
    cases = [("vgg16 (random init), 2 photos 64 px", vgg.double().eval(),
              sample_photos(["astronaut", "coffee"], size=64).images.double()),
             ("cifar_net on digits (trained), 8 test digits", digits.double().eval(),
              digits_test_images(8).images.double())]
    for name, model, x in cases:
        target = model(x).argmax(1)
        ex = liecheck.Explainer(model)
        maps = {(r, e): ex.attribute(x, method(r, e), target=target).detach()
                for r in ("xW+", "split") for e in (0.0, 1e-6)}
        print(name)
        for r in ("xW+", "split"):
            print(f"  {r:6s} exact vs stabiliser 1e-6: relative change "
                  f"{rel(maps[(r, 0.0)], maps[(r, 1e-6)]):.2e}")
        lc = liecheck.attribute(model, x, "excitation_bp", target=target).detach()
        same = [r for r in ("xW+", "split") if rel(maps[(r, 0.0)], lc) < 1e-9]
        print(f"  liecheck excitation_bp equals: {same or 'neither'}")
        if "vgg" in name:
            for bias in (False, True):
                z = zennit(model, x, target, bias)
                print(f"  Zennit ExcitationBackprop ({'b+' if bias else 'no bias'}): corr with "
                      f"xW+ {corr(maps[('xW+', 0.0)], z):.3f}, with split "
                      f"{corr(maps[('split', 0.0)], z):.3f}")


if __name__ == "__main__":
    main()
