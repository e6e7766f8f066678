"""``liecheck zoo``: the paper's battery over every torchvision family, trained on two
digits side by side (:mod:`liecheck.zoo`), with verdicts that name the mechanism."""

from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    from ..zoo.run import ZOO_METHODS

    p = sub.add_parser("zoo", help="the battery over every torchvision family (trained on two "
                                   "digits): CSC, random logit, cascade, ground truth, verdicts")
    p.add_argument("--models", default="all",
                   help="comma-separated families or 'all' (the 18 CNN families and vit, "
                        "swin, maxvit: see docs/zoo.md)")
    p.add_argument("--methods", default=",".join(ZOO_METHODS),
                   help="comma-separated methods (default: the zoo's ten; the gradient is "
                        "always added, as the verdicts' reference)")
    p.add_argument("--n", "--num-images", dest="n", type=int, default=12,
                   help="recognised test images per family (default 12)")
    p.add_argument("--random", action="store_true",
                   help="the families' seeded random initialisation instead of trained ones")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--fresh", action="store_true",
                   help="delete earlier results in --out instead of resuming")
    p.add_argument("--out", default="runs/zoo", help="run directory (default runs/zoo)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.set_defaults(func=_zoo)


def _zoo(args) -> int:
    from ..reproduce import run
    from ..zoo.figures import plot_zoo
    from ..zoo.run import accuracies, table, zoo_config
    from .faithfulness import method_list
    from .reproduce import print_skipped_and_state

    t0 = time.perf_counter()
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, not {args.n}")
    methods = method_list(args.methods)      # a typo fails here, with the nearest name
    cfg = zoo_config(args.models, methods, args.n, not args.random, args.seed, args.device)
    names = [p.name for p in cfg.models]
    kind = ("random initialisation" if args.random else
             "trained (cached; trained first where missing)")
    print(f"zoo: {len(names)} families x {len(cfg.models[0].methods)} methods x {args.n} "
          f"images; tests {', '.join(cfg.models[0].experiments)}; {kind}", flush=True)
    store = run(cfg, args.out, fresh=args.fresh, report=not args.no_report, started=t0)
    df = table({t: store.read(t) for t in store.tables()}, accuracies(store))
    out = Path(args.out)
    df.to_csv(out / "zoo.csv", index=False)
    if not df.empty:
        plot_zoo(df, out / "zoo")
        print()
        print(format_verdicts(df))
    m = store.manifest()
    print_skipped_and_state(m)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; table {out / 'zoo.csv'}, figure "
          f"{out / 'zoo.png'}")
    if not args.no_report and m.get("report"):
        print(f"report: {Path(m['report']).resolve()}")
    return 0


def format_verdicts(df) -> str:
    """One line per (model, method): the model's accuracy and the verdict."""
    lines = []
    for model, g in df.groupby("model", sort=False):
        acc = g["model_accuracy"].iloc[0] if "model_accuracy" in g else None
        acc = "-" if acc is None or acc != acc else f"{acc:.3f}"
        lines.append(f"{model} (test accuracy {acc})")
        for _, r in g.iterrows():
            lines.append(f"  {r['method']:<22s} {r.get('mechanism', '-')}")
    return "\n".join(lines)
