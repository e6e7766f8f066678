"""Why LRP-z converges on squeeze-excitation networks (docs/zoo.md): CSC at the first conv
of the zoo's trained EfficientNet and RegNet-Y for the gradient, ``lrp_z`` (its product
rule sends half the relevance of every gate ``x * s(pool(x))`` into the gate's branch,
AttnLRP's uniform rule) and ``lrp_z`` with the signal-takes-all product rule
(``liecheck.rules.lrp.ProductSignal``: the gate gets none).

    python benchmarks/se_gate_rule.py            # 6 recognised-or-not test images, 5 vectors
"""

from __future__ import annotations

import argparse

import liecheck
from liecheck.battery.csc import first_conv_record
from liecheck.engine import ops
from liecheck.methods import get_method, lrp_composite
from liecheck.methods.composites import every_linear
from liecheck.methods.protocol import Method
from liecheck.rules import lrp as rl
from liecheck.zoo import FAMILIES, load_family, zoo_images


def signal_takes_all() -> Method:
    """``lrp_z`` with every product of two activations giving all relevance to the signal."""
    base = get_method("lrp_z")
    own = {ops.Product: lambda node, graph, p: rl.ProductSignal()}
    return Method("lrp_z_signal", "LRP-z, signal takes all", "lrp_z; a gate gets no relevance",
                  lrp_composite(every_linear(lambda p: rl.Epsilon(0.0)), own),
                  params=dict(base.params))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="efficientnet,regnet_y")
    p.add_argument("--n", type=int, default=6)
    a = p.parse_args()
    print(f"{'family':14s} {'method':14s} CSC at the first conv (median |cos|, from the logits)")
    for fam in a.families.split(","):
        model, _ = load_family(fam, progress=False)
        x = zoo_images(a.n, FAMILIES[fam].size, seed=0).x
        ex = liecheck.Explainer(model)
        rec = first_conv_record(ex.graph)
        for m in ("gradient", "lrp_z", signal_takes_all()):
            df = liecheck.csc(ex, x, m, start="output", layers=[rec], n_vectors=5)
            print(f"{fam:14s} {getattr(m, 'name', m):14s} {float(df['median'].iloc[0]):.4f}")


if __name__ == "__main__":
    main()
