"""``liecheck groundtruth``: the ground-truth class-sensitivity benchmark (two digits)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("groundtruth",
                       help="ground-truth class sensitivity: two digits side by side, does "
                            "the map point at the explained one?")
    p.add_argument("--methods", default="all",
                   help="comma-separated method names, 'occlusion', 'random', or 'all' "
                        "(every walkable method plus both references)")
    p.add_argument("--n", "--num-images", dest="n", type=int,
                   default=100, help="test images drawn (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--all-images", action="store_true",
                   help="also measure images the model gets wrong")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run_groundtruth)


def run_groundtruth(args) -> int:
    from ..groundtruth import plot_two_digits, two_digits
    from ..groundtruth.benchmark import resolve_methods

    resolve_methods(args.methods)        # a typo fails here, before --out is created
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df, per = two_digits(args.methods, n=args.n, seed=args.seed,
                         correct_only=not args.all_images, raw=True)
    df.to_csv(out / "groundtruth.csv", index=False)
    per.to_csv(out / "groundtruth_items.csv", index=False)
    plot_two_digits(df, out / "groundtruth")
    acc = df.attrs.get("model_accuracy")
    print(f"model test accuracy (both digits in the top 2): {acc:.3f}; "
          f"{int(df['n_images'].iloc[0])} of {df.attrs['n_drawn']} images measured")
    cols = ["method", "mass_accuracy", "pointing", "l1_class_diff"]
    print(df.sort_values("mass_accuracy", ascending=False)[cols].to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"written: {out / 'groundtruth.csv'}, {out / 'groundtruth.png'}")
    return 0
