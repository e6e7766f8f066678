"""CSC through a peer's hooks vs liecheck's own walk, for the same rules (issue 14).

Pairs (peer configuration -> liecheck method with the same rules):

* Zennit ``EpsilonAlpha2Beta1(epsilon=1e-10)`` -> ``lrp_cmp_a2b1``
* Zennit ``EpsilonPlus(epsilon=1e-10)`` -> ``lrp_cmp_a1b0``
* Zennit ``GuidedBackprop`` -> ``guided_bp``; Captum ``GuidedBackprop`` -> ``guided_bp``
* Captum ``Saliency`` (plain autograd, no hooks) -> ``gradient``

Each case runs ``liecheck.csc`` with the logits as start and every conv / dense output
recorded, on one shared :class:`~liecheck.Explainer` (the trace is not timed).
Timing is round-robin: in each repeat every case runs once, in an order rotated by
one per repeat, so load from other processes hits every case alike; the table gives
the median CPU time of this process (``time.process_time``, robust on a shared
machine when run with one thread) and the median wall time, and the ratios
peer / liecheck of the medians. The first
repeat's medians of |cos| are compared (same rules, same vectors). In float32 they
differ by up to about 3e-4 for the LRP-CMP pairs at the dense layers: there the rule is
LRP-epsilon with epsilon = 1e-10 (the paper's setting), whose near-zero denominators
amplify float32 rounding, and the two paths round differently (liecheck computes the
denominators once per image, the hooks once per relevance sample); each float32 value
is about 7e-4 from the float64 one. With ``--dtype float64`` they agree to about 4e-8.

Usage::

    python benchmarks/csc_hooks.py --model vgg16 --size 64 --n 2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import liecheck
from liecheck.methods import from_captum, from_zennit
from liecheck.models import load


def cases():
    import captum.attr as ca
    from zennit import composites as zc

    return [
        ("zennit EpsilonAlpha2Beta1", from_zennit(zc.EpsilonAlpha2Beta1(epsilon=1e-10),
                                                  start="logit"), "lrp_cmp_a2b1"),
        ("zennit EpsilonPlus", from_zennit(zc.EpsilonPlus(epsilon=1e-10), start="logit"),
         "lrp_cmp_a1b0"),
        ("zennit GuidedBackprop", from_zennit(zc.GuidedBackprop()), "guided_bp"),
        ("captum GuidedBackprop", from_captum(ca.GuidedBackprop), "guided_bp"),
        ("captum Saliency", from_captum(ca.Saliency), "gradient"),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="vgg16", help="vgg16 | cifar_net (seeded random init)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=2, help="images")
    p.add_argument("--n-vectors", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="model and input precision (float64: the agreement check)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    dtype = getattr(torch, args.dtype)
    model, _ = load(args.model, seed=0, verbose=False)
    model = model.to(dtype)
    x = torch.randn(args.n, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(0)).to(dtype)
    ex = liecheck.Explainer(model)
    runs = []
    for label, peer, own in cases():
        runs += [(label, "peer", peer), (label, "liecheck", liecheck.get_method(own))]
    times = {(lab, who): [] for lab, who, _ in runs}
    cpu = {(lab, who): [] for lab, who, _ in runs}
    first = {}
    for rep in range(args.repeats):
        k = rep % len(runs)
        for lab, who, m in runs[k:] + runs[:k]:
            t0, c0 = time.perf_counter(), time.process_time()
            df = liecheck.csc(ex, x, m, n_vectors=args.n_vectors, seed=0)
            times[(lab, who)].append(time.perf_counter() - t0)
            cpu[(lab, who)].append(time.process_time() - c0)
            first.setdefault((lab, who), df["median"].to_numpy())
    print(f"{args.model} {args.size}x{args.size}, {args.n} images x {args.n_vectors} vectors, "
          f"logits start, every conv/dense output recorded, {args.threads} threads, "
          f"{args.repeats} repeats (medians), {args.dtype}")
    print("| case | CPU s peer | CPU s liecheck | CPU ratio | wall s peer | wall s liecheck "
          "| wall ratio | max diff of CSC medians |")
    print("|---|---|---|---|---|---|---|---|")
    med = statistics.median
    for label, _, own in cases():
        cp, cl = med(cpu[(label, "peer")]), med(cpu[(label, "liecheck")])
        tp, tl = med(times[(label, "peer")]), med(times[(label, "liecheck")])
        diff = abs(first[(label, "peer")] - first[(label, "liecheck")]).max()
        print(f"| {label} vs {own} | {cp:.2f} | {cl:.2f} | {cp / cl:.2f}x | {tp:.2f} | {tl:.2f} "
              f"| {tp / tl:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
