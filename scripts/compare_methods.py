"""Bit-identity check for refactorings: every registered method, CSC, sanity,
random-logit and a spectrum, saved to one file and compared with an earlier run.

Runs every method of ``liecheck.method_names()`` through ``liecheck.attribute`` on a
random-init VGG-16 and ResNet-18 (64 px, 2 seeded images; PatternNet /
PatternAttribution with patterns fitted on 4 seeded images), ``csc`` for three
methods with 2 starts, ``sanity`` and ``random_logit`` for two methods and
``spectrum`` for two methods on the built-in digits cifar_net, plus DeepLIFT
contributions of an injected walk.

Usage::

    python scripts/compare_methods.py --save /tmp/before.pt
    python scripts/compare_methods.py --compare /tmp/before.pt

``--compare`` recomputes everything and checks ``torch.equal`` on every tensor and
exact equality of every DataFrame; it prints each difference and exits 1 on any.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import torch
import torchvision

import liecheck
from liecheck import patterns
from liecheck.data.digits import digits_test_images
from liecheck.train import default_model


def _images(seed: int, n: int, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def run() -> dict:
    torch.set_num_threads(2)
    out: dict = {}
    for name in ("vgg16", "resnet18"):
        model = _model(name)
        x = _images(1, 2)
        pats = patterns.fit(model, _images(2, 4))
        for m in liecheck.method_names():
            kw = {"patterns": pats} if m in ("patternnet", "patternattribution") else {}
            out[f"{name}/attribute/{m}"] = liecheck.attribute(model, x, m, **kw)
        ex = liecheck.Explainer(model)
        for m in ("deeplift_rescale", "deeplift_revealcancel"):
            inj = {ex.graph.output: torch.randn(2, 1000, generator=torch.Generator()
                                                .manual_seed(3))}
            rec = ["features.0"] if name == "vgg16" else ["add_2", "layer2_0_conv2"]
            walk = ex.walk(x, m, inject=inj, record=[ex.graph.input, *rec])
            for k, v in walk.items():
                out[f"{name}/walk/{m}/{k}"] = v
    model, _, _ = default_model(progress=False)
    imgs = digits_test_images(4)
    x = imgs.images
    ex = liecheck.Explainer(model)
    starts = [ex.graph.output, "conv3"]
    for m in ("lrp_a1b0", "gradient", "deeplift_rescale", "gradient_x_input"):
        out[f"cifar/csc/{m}"] = liecheck.csc(model, x, m, start=starts, n_vectors=3, seed=0)
    for m in ("lrp_a1b0", "deeplift_rescale"):
        out[f"cifar/sanity/{m}"] = liecheck.sanity(model, x[:2], m, layers=2, seed=0)
        out[f"cifar/random_logit/{m}"] = liecheck.random_logit(model, x[:2], m, seed=0)
        out[f"cifar/spectrum/{m}"] = liecheck.theory.spectrum(model, x[:1], m, "conv4", k=2)
    return out


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b) and list(a.columns) == list(
            b.columns) and a.attrs == b.attrs
    return a == b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help="write the results to this file")
    g.add_argument("--compare", help="compare with the results in this file")
    args = ap.parse_args(argv)
    res = run()
    if args.save:
        torch.save(res, args.save)
        print(f"saved {len(res)} results to {args.save}")
        return 0
    ref = torch.load(args.compare, weights_only=False)
    bad = [k for k in ref if k not in res or not _same(ref[k], res[k])]
    extra = [k for k in res if k not in ref]
    for k in bad:
        print("DIFFERENT:", k)
    for k in extra:
        print("NEW (not in the reference):", k)
    print(f"{len(ref) - len(bad)} of {len(ref)} results identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
