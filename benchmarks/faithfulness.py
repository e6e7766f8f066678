"""Time the faithfulness tests per method, as seconds per image and as gradient passes.

CSC from the protocol's start layers (VGG-16: fc3, fc1, conv4_3, conv3_3, conv2_2)
with 5 vectors per image, the full cascading randomisation and the random-logit
test, for every method (CSC skips methods that are not one walk, e.g. SmoothGrad).

    python benchmarks/faithfulness.py --n 2 --methods lrp_a1b0
    python benchmarks/faithfulness.py --models vgg16,resnet50 --n 64 --device cuda

Every number is wall-clock time on the same images (scikit-image's sample photos,
repeated if ``--n`` exceeds them). ``grad`` is one plain autograd gradient pass of
the same images (forward + input gradient of the predicted logit, batch ``--n``,
median of ``--repeats``); each test is also printed as a multiple of it (``x grad``,
against the mean of one gradient pass just before and one just after the test),
the number to compare across machines. Each test also reports the CPU time it used,
the cores it kept busy (CPU time / wall time) and the kernel's share of its CPU time
(page faults show up there). ``--allocator keep`` (the default, as the command line
does) calls ``liecheck.keep_freed_memory()`` first; ``--allocator system`` leaves glibc's
malloc as it is. ``--cold`` also times CSC on a fresh ``Explainer`` of the model (trace,
forward check and first-time kernels included) before the warm runs. ``--clock cpu``
measures this process's CPU time instead of wall time, with one torch thread: on a
machine shared with other jobs the ratios then barely move with the load (wall-time
ratios do), at the price of timing single-threaded work. The last lines extrapolate linearly to the
paper's full setting: ``--extrapolate`` images (200) for every method of every model
run here (the paper adds the CIFAR net; pass ``--models vgg16,resnet50,cifar_net``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

CLOCK = time.perf_counter  # --clock cpu: time.process_time


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gradient_pass(model, x: torch.Tensor, device: str, repeats: int, warmup: int = 1
                  ) -> float:
    """Median seconds of one autograd gradient pass of the predicted logit over ``x``."""
    params = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    times = []
    try:
        for _ in range(repeats + warmup):
            _sync(device)
            t0 = CLOCK()
            xi = x.to(device).detach().requires_grad_(True)  # not x itself (same on CPU)
            y = model(xi)
            sel = y.gather(1, y.argmax(1, keepdim=True)).sum()
            torch.autograd.grad(sel, xi)
            _sync(device)
            times.append(CLOCK() - t0)
    finally:
        for p, r in zip(model.parameters(), params):
            p.requires_grad_(r)
    return statistics.median(times[warmup:])


def run_model(name: str, args, names_arg: str) -> dict:
    import liecheck
    from liecheck import csc, random_logit, sanity
    from liecheck.data.images import sample_photos
    from liecheck.models import load
    from liecheck.reproduce.paper import paper_starts

    model, src = load(name, verbose=False)
    model = model.to(args.device)
    size = args.size if name != "cifar_net" else 32
    try:
        photos = sample_photos(size=size).images
    except Exception:  # no scikit-image or its data (a bare GPU machine): seeded noise
        photos = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        print("no scikit-image sample photos: timing on seeded random images")
    reps = -(-args.n // len(photos))
    x = photos.repeat(reps, 1, 1, 1)[: args.n]
    names = liecheck.method_names() if names_arg == "all" else names_arg.split(",")
    tests = args.tests.split(",")
    grad = gradient_pass(model, x, args.device, args.repeats)
    if args.cold:
        m = liecheck.get_method(names[0])
        t0, c0 = time.perf_counter(), os.times()
        ex = liecheck.Explainer(model, device=args.device)
        csc(ex, x, m, start=paper_starts(ex.graph, name), n_vectors=args.n_vectors,
            batch_size=args.batch_size)
        dt, c1 = time.perf_counter() - t0, os.times()
        print(f"cold CSC of {names[0]} (trace, forward check, first kernels): {dt:.2f} s = "
              f"{dt / grad:.1f} x grad; CPU {c1.user - c0.user + c1.system - c0.system:.1f} s")
    ex = liecheck.Explainer(model, device=args.device)
    starts = paper_starts(ex.graph, name)
    print(f"\n{src}; {args.n} images at {size}px; device {args.device}; torch threads "
          f"{torch.get_num_threads()}; CSC starts {starts}; one gradient pass of the "
          f"{args.n} images: {grad:.3f} s")
    print(f"{'method':24s}" + "".join(f"{t + ' s/img':>20s}{'x grad':>8s}" for t in tests))
    per_image = dict.fromkeys(tests, 0.0)
    rows = []
    for mname in names:
        m = liecheck.get_method(mname)
        row = f"{mname:24s}"
        rec = {"model": name, "method": mname, "n": args.n, "device": args.device,
               "grad_s": grad}
        for t in tests:
            if t == "csc" and not m.walkable:
                row += f"{'n/a':>20s}{'':>8s}"
                continue
            g0 = gradient_pass(model, x, args.device, 1, warmup=0)
            _sync(args.device)
            t0, c0, w0 = CLOCK(), os.times(), time.perf_counter()
            try:
                if t == "csc":
                    csc(ex, x, m, start=starts, n_vectors=args.n_vectors,
                        batch_size=args.batch_size)
                elif t == "sanity":
                    sanity(model, x, m, batch_size=args.batch_size)
                elif t == "random_logit":
                    random_logit(ex, x, m, batch_size=args.batch_size)
            except (ValueError, RuntimeError) as exc:  # e.g. PatternNet without patterns
                row += f"{'error':>20s}{'':>8s}"
                print(f"  {mname} {t}: {str(exc).splitlines()[0][:120]}")
                continue
            _sync(args.device)
            dt, c1, wall = CLOCK() - t0, os.times(), time.perf_counter() - w0
            user, system = c1.user - c0.user, c1.system - c0.system
            rec[t + "_cpu_s"], rec[t + "_kernel_share"] = user + system, system / max(
                user + system, 1e-9)
            rec[t + "_cores"] = (user + system) / max(wall, 1e-9)
            # the gradient pass right before and after: on a shared machine the load
            # changes during a run, and the ratio should see the load the test saw
            g = (g0 + gradient_pass(model, x, args.device, 1, warmup=0)) / 2
            per_image[t] += dt / args.n
            rec[t + "_s"], rec[t + "_grad_s"] = dt, g
            row += f"{dt / args.n:20.3f}{dt / g:8.1f}"
        rows.append(rec)
        print(row, flush=True)
        for t in tests:
            if t + "_cpu_s" in rec:
                print(f"  {t}: CPU {rec[t + '_cpu_s']:.1f} s, {rec[t + '_cores']:.2f} cores, "
                      f"kernel {100 * rec[t + '_kernel_share']:.0f} % of the CPU time")
    total = sum(per_image.values())
    print(f"{'all methods':24s}" + "".join(f"{per_image[t]:20.3f}{'':>8s}" for t in tests))
    print(f"{name}: {len(names)} methods x {args.extrapolate} images x ({', '.join(tests)}): "
          f"{total * args.extrapolate / 60:.1f} min (linear extrapolation)")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return {"model": name, "minutes": total * args.extrapolate / 60, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", "--models", dest="models", default="vgg16",
                   help="comma-separated: vgg16, resnet50, cifar_net (random init)")
    p.add_argument("--n", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--methods", default="all", help="comma-separated, or 'all' / 'walkable'")
    p.add_argument("--tests", default="csc,sanity,random_logit")
    p.add_argument("--n-vectors", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3, help="gradient-pass repeats (median)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--extrapolate", type=int, default=200)
    p.add_argument("--out", default=None, help="write the numbers as JSON")
    p.add_argument("--allocator", choices=("keep", "system"), default="keep",
                   help="keep: liecheck.keep_freed_memory() first (as the CLI); system: "
                        "glibc's malloc as it is")
    p.add_argument("--cold", action="store_true",
                   help="also time CSC of the first method on a fresh Explainer")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: wall-clock time; cpu: this process's CPU time with one torch "
                        "thread (ratios robust to other jobs on a shared machine)")
    args = p.parse_args(argv)
    if args.allocator == "keep":
        import liecheck

        print(f"keep_freed_memory: {liecheck.keep_freed_memory()}")
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.process_time
        torch.set_num_threads(1)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    methods = args.methods
    if methods == "walkable":
        import liecheck
        methods = ",".join(n for n in liecheck.method_names() if liecheck.get_method(n).walkable)
    results = [run_model(name, args, methods) for name in args.models.split(",")]
    total = sum(r["minutes"] for r in results)
    print(f"\nfull setting over {', '.join(r['model'] for r in results)}: {total:.1f} min "
          f"on {args.device}" + (f" ({torch.cuda.get_device_name()})"
                                 if args.device.startswith("cuda") else ""))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"total_minutes": total, "models": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
