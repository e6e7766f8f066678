"""Write the zoo's measured tables (markdown) and figure from a ``liecheck zoo`` run.

    python scripts/zoo_table.py runs/zoo > /tmp/zoo_tables.md   # then paste into docs/zoo.md
    python scripts/zoo_table.py runs/zoo --figure docs/img/zoo.png

Prints: the families (blocks, parameters, test accuracy, images, refused methods), how
often each method shows each mechanism over the families, and the full table with 99 %
bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from liecheck.store import RunStore
from liecheck.zoo import build, checkpoint, plot_zoo, table
from liecheck.zoo.run import accuracies

MECHANISMS = ("rank-1 convergence", "ignores later layers", "class-insensitive")
COLUMNS = (("csc_logits", "CSC first layer (logits)"), ("csc_mid", "CSC first layer (mid)"),
           ("ssim_random_logit", "random-logit SSIM"),
           ("ssim_cascade_last", "cascade SSIM last"), ("ssim_cascade_all", "cascade SSIM all"),
           ("mass_accuracy", "mass accuracy"), ("l1_class_diff", "L1 two digits"))


def cell(r, col: str) -> str:
    v, lo, hi = r.get(col), r.get(f"{col}_low"), r.get(f"{col}_high")
    if v is None or v != v:
        return "-"
    digits = 4 if col.startswith("csc") and v > 0.99 else 2 if not col.startswith("csc") else 3
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--figure")
    a = p.parse_args()
    store = RunStore(a.run)
    df = table({t: store.read(t) for t in store.tables()}, accuracies(store))
    m = store.manifest()
    if a.figure:
        plot_zoo(df, a.figure)
    skipped = m.get("skipped", [])
    print("| family | blocks | parameters | training | test accuracy | images | refused |")
    print("|---|---|---|---|---|---|---|")
    for name, info in m["models"].items():
        src = info.get("source", {})
        refused = [s.split(": ")[1].split(" refused")[0] for s in skipped
                   if s.startswith(f"{name}: ") and " refused:" in s]
        acc = src.get("test_accuracy")
        params = sum(p.numel() for p in build(name).parameters()) / 1e6
        meta = checkpoint(name).with_suffix(".json")
        st = json.loads(meta.read_text())["settings"] if meta.exists() else {}
        how = (f"{st.get('epochs')} ep. at {st.get('lr'):g}"
               + (", softmax" if "softmax" in str(st.get("loss")) else "")
               + (", BN re-estimated" if st.get("recalibrate_bn") else "")) if st else "-"
        print(f"| {name} | {src.get('blocks', '-')} | {params:.2f} M | {how} | "
              f"{'-' if acc is None else f'{acc:.3f}'} | {info.get('n_images')} of "
              f"{src.get('drawn', '-')} | {', '.join(refused) or '-'} |")
    print()
    d = df[~df["method"].isin(["gradient", "occlusion", "random"])]
    print("| method | families | " + " | ".join(MECHANISMS) + " | passes |")
    print("|---|---|" + "---|" * (len(MECHANISMS) + 1))
    for method, g in d.groupby("method", sort=False):
        counts = Counter()
        for text in g["mechanism"]:
            for mech in MECHANISMS:
                counts[mech] += mech in str(text)
            counts["passes"] += str(text) == "passes"
        print(f"| `{method}` | {len(g)} | " + " | ".join(str(counts[x]) for x in MECHANISMS)
              + f" | {counts['passes']} |")
    print()
    head = ["family", "method"] + [h for _, h in COLUMNS] + ["verdict"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for _, r in df[df["method"] != "random"].iterrows():
        cells = [r["model"], f"`{r['method']}`"] + [cell(r, c) for c, _ in COLUMNS]
        cells.append(str(r.get("mechanism", "-")))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
