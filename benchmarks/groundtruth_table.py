"""The ground-truth class-sensitivity table of docs/groundtruth.md, next to CSC.

    python benchmarks/groundtruth_table.py [--n 200] [--csc-images 8] [--out runs/groundtruth]

Runs ``liecheck.groundtruth.two_digits("all", n)`` (every walkable method plus the
``occlusion`` and ``random`` references) on the cached benchmark model, and CSC on the
same model (random vectors from the logits, median |cos| at the first conv layer's
output after its ReLU, ``--csc-images`` recognised test images, 5 vectors). Prints a
markdown table and writes ``table.csv`` and the figure ``groundtruth.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

import liecheck
from liecheck.groundtruth import (
    REFERENCES,
    load_two_digits_net,
    plot_two_digits,
    two_digit_images,
    two_digits,
)
from liecheck.methods import get_method


def first_conv_csc(model, x, methods, patterns) -> dict[str, float]:
    ex = liecheck.Explainer(model)
    out = {}
    for name in methods:
        m = get_method(name)
        if "patterns" in m.params and m.params["patterns"] is None:
            m = m.with_params(patterns=patterns)
        df = liecheck.csc(ex, x, m, start="output", n_vectors=5)
        conv = df[df["kind"] == "conv"].sort_values("depth")
        out[name] = float(conv["median"].iloc[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--csc-images", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/groundtruth")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, info = load_two_digits_net(progress=False)
    df = two_digits("all", n=args.n, seed=args.seed)
    plot_two_digits(df, out / "groundtruth")
    df.to_csv(out / "table.csv", index=False)
    print(df.to_string(), flush=True)
    data = two_digit_images(4 * args.csc_images, "test", seed=args.seed + 1)
    with torch.no_grad():
        top2 = model(data.x).topk(2, dim=1).indices.sort(1).values
    keep = (top2 == data.labels.sort(1).values).all(1)
    x = data.x[keep][:args.csc_images]
    from liecheck import patterns as pt
    pats = pt.fit(model, two_digit_images(512, "train", args.seed).x.split(64), kind="relu")
    walk = [m for m in df["method"] if m not in REFERENCES]
    csc = first_conv_csc(model, x, walk, pats)
    df["csc_conv1"] = df["method"].map(csc)
    df.to_csv(out / "table.csv", index=False)

    def ci(r, c):
        return f"{r[c]:.3f} [{r[c + '_low']:.3f}, {r[c + '_high']:.3f}]"
    rows = ["| method | mass accuracy | pointing | L1 between the classes' maps | CSC conv1 |",
            "|---|---|---|---|---|"]
    for _, r in df.sort_values("mass_accuracy", ascending=False).iterrows():
        c = "-" if pd.isna(r["csc_conv1"]) else f"{r['csc_conv1']:.4f}"
        rows.append(f"| `{r['method']}` | {ci(r, 'mass_accuracy')} | {ci(r, 'pointing')} | "
                    f"{ci(r, 'l1_class_diff')} | {c} |")
    print(f"model: two_digits_net, test accuracy (both digits in the top 2) "
          f"{info['test_accuracy']:.3f} on {info['settings']['n_test']} test pairs; "
          f"{int(df['n_images'].iloc[0])} of {df.attrs['n_drawn']} drawn test images "
          f"recognised and measured; CSC on {len(x)} images")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
