"""The gradient of liecheck's traced copy against autograd on the real torchvision
transformers (random init, float64, 224 px, batch 1): issue 23's done-when check.

    PYTHONPATH=src python benchmarks/transformers_gradient.py
"""

import time

import torch
from torchvision.models import maxvit_t, swin_t, vit_b_16

import liecheck


def main() -> None:
    torch.manual_seed(0)
    for name, ctor in (("vit_b_16", vit_b_16), ("swin_t", swin_t), ("maxvit_t", maxvit_t)):
        model = ctor(weights=None).double().eval()
        for n, p in model.named_parameters():  # vit_b_16 zero-initialises its head
            if n.startswith(("heads", "classifier", "head")) and p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
        x = torch.randn(1, 3, 224, 224, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(1))
        t = time.perf_counter()
        g = liecheck.attribute(model, x, "gradient", target=3)
        t = time.perf_counter() - t
        xr = x.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(model(xr)[:, 3].sum(), xr)
        err = (g - ref).abs().max().item()
        print(f"{name}: max |liecheck - autograd| = {err:.3e} (max |grad| "
              f"{ref.abs().max().item():.3e}), {t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
