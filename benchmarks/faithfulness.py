"""Time the faithfulness tests per method on VGG-16 (or another model).

CSC from the protocol's start layers (VGG-16: fc3, fc1, conv4_3, conv3_3, conv2_2)
with 5 vectors per image, the full cascading randomisation and the random-logit
test, for every method (CSC skips methods that are not one walk, e.g. SmoothGrad).

    python benchmarks/faithfulness.py --n 200 --device cuda
    python benchmarks/faithfulness.py --n 2 --methods gradient,lrp_a1b0 --extrapolate 200

Times are wall-clock seconds on the given images (scikit-image's sample photos,
repeated if ``--n`` exceeds them); ``--extrapolate N`` also prints the linear
extrapolation to ``N`` images (the tests are linear in the number of images).
"""

from __future__ import annotations

import argparse
import time

import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> int:
    import liecheck
    from liecheck.data import sample_photos
    from liecheck.metrics import csc, paper_starts, random_logit, sanity
    from liecheck.models import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg16")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--methods", default="all")
    p.add_argument("--tests", default="csc,sanity,random_logit")
    p.add_argument("--n-vectors", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--extrapolate", type=int, default=None)
    args = p.parse_args(argv)

    model, src = load(args.model, verbose=False)
    model = model.to(args.device)
    photos = sample_photos(size=args.size).images
    reps = -(-args.n // len(photos))
    x = photos.repeat(reps, 1, 1, 1)[: args.n]
    names = liecheck.method_names() if args.methods == "all" else args.methods.split(",")
    tests = args.tests.split(",")
    ex = liecheck.Explainer(model, device=args.device)
    starts = paper_starts(ex.graph, args.model)
    print(f"{src}; {args.n} images at {args.size}px; device {args.device}; "
          f"torch threads {torch.get_num_threads()}; CSC starts {starts}")
    header = f"{'method':24s}" + "".join(f"{t:>14s}" for t in tests)
    print(header + ("" if not args.extrapolate else f"   (x {args.extrapolate / args.n:.0f} "
                                                    f"for {args.extrapolate} images)"))
    totals = dict.fromkeys(tests, 0.0)
    for name in names:
        m = liecheck.get_method(name)
        row = f"{name:24s}"
        for t in tests:
            if t == "csc" and not m.walkable:
                row += f"{'n/a':>14s}"
                continue
            _sync(args.device)
            t0 = time.perf_counter()
            if t == "csc":
                csc(ex, x, m, start=starts, n_vectors=args.n_vectors,
                    batch_size=args.batch_size)
            elif t == "sanity":
                sanity(model, x, m, batch_size=args.batch_size)
            elif t == "random_logit":
                random_logit(ex, x, m, batch_size=args.batch_size)
            _sync(args.device)
            dt = time.perf_counter() - t0
            totals[t] += dt
            row += f"{dt:13.1f}s"
            if args.extrapolate:
                row += f" ({dt * args.extrapolate / args.n / 60:.0f} min)"
        print(row, flush=True)
    print(f"{'total':24s}" + "".join(f"{totals[t]:13.1f}s" for t in tests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
