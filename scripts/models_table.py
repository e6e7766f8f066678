"""Write docs/models.md's table: which liecheck methods run on the smallest member of every
torchvision classification family (random init; rules do not depend on the weights).

    python scripts/models_table.py > /tmp/table.md
"""

from __future__ import annotations

import torchvision

from liecheck.coverage import check
from liecheck.engine.fxutil import UnsupportedOperation
from liecheck.methods import method_names

FAMILIES = ["alexnet", "vgg11", "resnet18", "resnext50_32x4d", "wide_resnet50_2",
            "densenet121", "squeezenet1_1", "googlenet", "inception_v3", "mobilenet_v2",
            "mobilenet_v3_small", "mnasnet0_5", "shufflenet_v2_x0_5", "efficientnet_b0",
            "efficientnet_v2_s", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny",
            "vit_b_16", "swin_t", "maxvit_t"]


def main() -> None:
    names = method_names()
    print("| model | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    notes = {}
    for fam in FAMILIES:
        kw = {"aux_logits": False, "init_weights": True} if fam in ("googlenet",
                                                                    "inception_v3") else {}
        model = torchvision.models.get_model(fam, weights=None, **kw).eval()
        try:
            cov = check(model)
        except UnsupportedOperation as exc:
            print(f"| {fam} | " + " | ".join(["trace refused"] * len(names)) + " |")
            notes[fam] = str(exc).split(". ")[0]
            continue
        runs = dict(zip(cov.methods.method, cov.methods.runs))
        why = dict(zip(cov.methods.method, cov.methods.why_not))
        cells = []
        for n in names:
            if runs[n]:
                cells.append("runs")
            else:
                op = why[n].split("(", 1)[1].split(")", 1)[0] if "(" in why[n] else "?"
                cells.append(f"refused ({op})")
        print(f"| {fam} | " + " | ".join(cells) + " |")
    for fam, why in notes.items():
        print(f"\n* {fam}: {why}.")


if __name__ == "__main__":
    main()
