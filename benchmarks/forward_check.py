"""Cost of the forward check (issue 15): one extra forward of the model on a graph's
first batch, as a ratio to one walk.

    python benchmarks/forward_check.py --model vgg16 --batch 2 --device cpu

Times (median of ``--repeats`` after one warm-up): the check alone
(:func:`liecheck.engine.equivalence.check_forward`: the model's own forward plus the
comparison) and one walk per ``--methods`` entry (``Explainer.attribute`` on a graph
that is already checked). Also prints each check's measured relative difference
against its tolerance (random init, seeded input).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _median_time(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main(argv=None) -> int:
    import torchvision

    import liecheck
    from liecheck.engine import equivalence

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg16")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default="gradient,lrp_epsilon,lrp_a1b0")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    torch.manual_seed(a.seed)
    model = getattr(torchvision.models, a.model)(weights=None).eval().to(a.device)
    x = torch.randn(a.batch, 3, a.size, a.size, generator=torch.Generator().manual_seed(a.seed))
    x = x.to(a.device)
    ex = liecheck.Explainer(model, device=a.device)
    graph = ex.graph
    with torch.no_grad():
        out = graph.run(x, keep=lambda n: False)[graph.output]
        ref = equivalence.own_forward(graph.module, graph.inplace_modules, x)
    err, scale = equivalence.difference(out, ref)
    tol = equivalence.tolerance(out.dtype)
    print(f"{a.model}: max |graph - model| = {err:.3g}, {err / scale:.2g} of the logits' scale "
          f"(tolerance {tol:.2g}, {out.dtype})")

    def check():
        with torch.no_grad():
            equivalence.check_forward(graph, x, out)

    t_check = _median_time(check, a.repeats, a.device)
    print(f"check (model forward + compare): {1000 * t_check:.1f} ms")
    for m in a.methods.split(","):
        t_walk = _median_time(lambda m=m: ex.attribute(x, m), a.repeats, a.device)
        print(f"walk {m:12s}: {1000 * t_walk:.1f} ms; check / walk = {t_check / t_walk:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
