"""``liecheck train``, ``liecheck reproduce`` and ``liecheck report``."""

from __future__ import annotations

import os
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train", help="train the paper's CIFAR network (digits or CIFAR-10)")
    p.add_argument("model", choices=["cifar_net"], help="the paper's CIFAR network")
    p.add_argument("--data", choices=["digits", "cifar10"], default="digits",
                   help="training data (default digits: scikit-learn, offline)")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (CIFAR-10 only)")
    p.add_argument("--epochs", type=int, help="default: 2 (digits), 100 (CIFAR-10)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--out", help="state dict path (default: the cache, for digits)")
    p.set_defaults(func=_train)

    p = sub.add_parser("reproduce", help="run every experiment of the paper and write the report")
    p.add_argument("--model", default="default",
                   help="default (built-in digits model + random VGG-16 CSC; a few minutes on a "
                        "quiet 2-core CPU, see README), cifar_net, vgg16, resnet50, all, or a "
                        "comma list")
    p.add_argument("--weights", action="append", default=[],
                   help="weights for the model: a torchvision name (IMAGENET1K_V1) or a "
                        "checkpoint path; with several models NAME=WEIGHTS (repeatable)")
    p.add_argument("--images", help="image folder for VGG-16/ResNet-50 (ImageNet-style "
                                    "class folders give ground-truth labels)")
    p.add_argument("--n", "--num-images", dest="n", type=int,
                   help="images per model (paper: 200; default run: 8 digits)")
    p.add_argument("--methods", help="comma-separated method names or 'all' (default: the "
                                     "paper's; with the default model, the default run's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--fresh", action="store_true",
                   help="delete earlier results in --out instead of resuming")
    p.add_argument("--out", default="runs/default", help="run directory (default runs/default)")
    p.add_argument("--simulation-repeats", type=int,
                   help="repetitions of the appendix-B simulation (paper: 20)")
    p.add_argument("--chunk-size", type=int, default=16,
                   help="images per unit of work: what a kill can lose and what processes "
                        "share (default 16; results do not depend on it)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("report", help="build the HTML report of a run directory")
    p.add_argument("run_dir", help="a run directory of reproduce, csc, sanity, ...")
    p.add_argument("--out", help="HTML path (default RUN_DIR/report.html)")
    p.set_defaults(func=_report)


def _train(args) -> int:
    from ..train import default_checkpoint, train_cifar_net

    out = args.out
    if out is None:
        if args.data != "digits":
            raise ValueError("--out is required for --data cifar10")
        out = default_checkpoint(args.seed, args.epochs or 2)
    _, info = train_cifar_net(args.data, args.data_dir, args.epochs, args.seed, out=out)
    print(f"test accuracy {info['test_accuracy']:.4f} after {info['settings']['epochs']} "
          f"epochs in {info['train_seconds']:.0f} s; saved {out} (+ .json)")
    return 0


def _weights(items: list[str], models: list[str]) -> dict:
    out = {}
    for it in items:
        name, sep, w = it.partition("=")
        if sep and name in ("cifar_net", "vgg16", "resnet50"):
            out[name] = w
        elif len(models) == 1:
            out[models[0]] = it
        else:
            raise ValueError(f"with several models write --weights NAME=WEIGHTS, not '{it}'")
    return out


def config_from_args(args):
    from ..models import MODEL_NAMES, check_model_name
    from ..reproduce import default_config, paper_config

    if args.model == "default" and (args.weights or args.images):
        raise ValueError("--weights/--images need --model (cifar_net, vgg16, resnet50 or all)")
    if args.model == "default":
        cfg = default_config(args.device)
        cfg.seed = args.seed
        cfg.chunk_size = args.chunk_size
        if args.simulation_repeats is not None:
            cfg.simulation_repeats = args.simulation_repeats
        if args.methods:                 # the default run restricted to these methods
            from ..cli.faithfulness import method_list

            keep = method_list(args.methods)
            for plan in cfg.models:
                plan.methods = tuple(keep)
        if args.n:
            cfg.models[0].n = args.n     # the digits model's images (VGG-16: 2 photos)
        return cfg
    models = list(MODEL_NAMES) if args.model == "all" else args.model.split(",")
    for m in models:
        check_model_name(m)   # a typo fails here, with the nearest name
    methods = None
    if args.methods:
        from .faithfulness import method_list

        methods = method_list(args.methods)   # fails early with a suggestion for a typo
    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: no CUDA device is available; use --device cpu")
    cfg = paper_config(models, _weights(args.weights, models), args.n or 200, methods,
                       args.images, args.device, args.seed)
    if args.simulation_repeats is not None:
        cfg.simulation_repeats = args.simulation_repeats
    cfg.chunk_size = args.chunk_size
    return cfg


def _reproduce(args) -> int:
    from ..report.summary import format_summary, images_by_model, layers_note, summary_table
    from ..reproduce import run
    from .faithfulness import note_random_plans, plan_line

    t0 = time.perf_counter()
    cfg = config_from_args(args)
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, not {args.chunk_size}")
    if int(os.environ.get("RANK", "0")) == 0:
        note_random_plans(cfg)
    print(plan_line(cfg, "reproduce"), flush=True)
    store = run(cfg, args.out, fresh=args.fresh, report=not args.no_report, started=t0)
    if int(os.environ.get("RANK", "0")) != 0:      # torchrun: rank 0 prints the summary
        return 0
    tables = {t: store.read(t) for t in store.tables()}
    m = store.manifest()
    print()
    print(format_summary(summary_table(tables, images_by_model(m))))
    print(layers_note(tables))
    print_skipped_and_state(m, " (see the report)")
    for name, info in m.get("models", {}).items():
        if "RANDOM" in (info.get("note") or ""):
            print(f"note: {name}: {info['note']}")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; results in {store.root}")
    if not args.no_report:
        print(f"report: {Path(m['report']).resolve()}")
    return 0


def print_skipped_and_state(manifest: dict, where: str = "") -> None:
    """What a run skipped, and, unless it is complete, how many units are missing and
    that the same command computes them (``where``: where they are listed)."""
    for s in manifest.get("skipped", []):
        print(f"skipped: {s}")
    status = manifest.get("status", {})
    if status.get("state") != "complete":
        print(f"run {status.get('state')}: {status.get('missing')} planned units are missing"
              f"{where}; rerun the same command to compute them")


def _report(args) -> int:
    from ..report import build_report

    path = build_report(args.run_dir, args.out)
    print(f"report: {path.resolve()}")
    return 0
