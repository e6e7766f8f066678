"""``liecheck simulate``, ``liecheck spectrum`` and ``liecheck singular``: the theory toolkit.

* ``simulate``: the appendix-B matrix chain (Figure 7): CSV and figures;
* ``spectrum``: sigma1/sigma2 of a method's derivation matrix per start layer,
  next to CSC (matrix-free, per image);
* ``singular``: Figure 3's sigma1/sigma2 of W (and patterns, if given) per layer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY_STEPS = (1, 3, 7, 16)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("simulate", help="matrix-chain convergence simulation (paper Fig. 7)",
                       description="Multiply random vectors by chains of random matrices with "
                       "VGG-16's backward shapes and measure how their directions collapse "
                       "(Sixt et al. 2020, appendix B). Writes chain.csv and figure7.png/svg.")
    s.add_argument("--family", "--families", dest="families", default=None,
                   help="comma-separated families (default: all random ones: "
                        "vanilla, relu, non-negative, positive, stochastic, alpha<a>-beta<a-1> "
                        "for a in 1..5,10); 'learned'/'relu-learned' use --model's weights")
    s.add_argument("--model", default=None, help="model for the learned families "
                   "(cifar_net | vgg16 | resnet50; random init unless --weights)")
    s.add_argument("--weights", default=None)
    s.add_argument("--n-vectors", type=int, default=32)
    s.add_argument("--repeats", type=int, default=20)
    s.add_argument("--shapes", default="vgg16",
                   help="'vgg16' or a list such as '100x80,80x60,60x3'")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--include-diagonal", action="store_true",
                   help="count each vector with itself, as the reference code did")
    s.add_argument("--float64", action="store_true", help="compute in float64 (slower)")
    s.add_argument("--out", required=True, help="output directory")
    s.set_defaults(func=run_simulate)

    p = sub.add_parser("spectrum", help="singular values of a method's derivation matrix vs CSC",
                       description="Top singular values of the matrix that maps relevance at "
                       "a layer to relevance at the input, per image, without forming it; "
                       "next to CSC. Writes spectrum.csv and spectrum.png/svg.")
    p.add_argument("--model", default="vgg16", help="cifar_net | vgg16 | resnet50")
    p.add_argument("--weights", default=None, help="torchvision weights, checkpoint, or "
                   "omit for a seeded random initialisation")
    p.add_argument("--method", "--methods", dest="methods", default="lrp_a1b0",
                   help="comma-separated methods linear in the relevance")
    p.add_argument("--layer", "--layers", dest="layers", default=None,
                   help="comma-separated node/module names (default: the paper's CSC starts)")
    p.add_argument("--images", type=int, default=1, help="number of sample photos / inputs")
    p.add_argument("--size", type=int, default=None, help="input size (224 for ImageNet "
                   "models, 32 for cifar_net)")
    p.add_argument("-k", type=int, default=2, help="number of singular values")
    p.add_argument("--float64", action="store_true", help="compute in float64 (slower)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="relative accuracy of each singular value (default 1e-4)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap on Lanczos steps per image and layer (default: min(dims, 300))")
    p.add_argument("--no-csc", action="store_true", help="skip the CSC column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run_spectrum)

    g = sub.add_parser("singular", help="sigma1/sigma2 per layer of W, A, W*A (paper Fig. 3)")
    g.add_argument("--model", default="vgg16")
    g.add_argument("--weights", default=None)
    g.add_argument("--patterns", default=None, help="a pattern file (liecheck.patterns)")
    g.add_argument("--out", required=True)
    g.set_defaults(func=run_singular)


def _families(spec: str | None) -> list[str]:
    from ..theory.chain import FAMILIES

    if not spec:
        return [f for f in FAMILIES if "learned" not in f]
    return [f.strip() for f in spec.split(",") if f.strip()]


def _shapes(spec: str):
    if spec == "vgg16":
        return spec
    try:
        return [tuple(int(d) for d in part.lower().split("x")) for part in spec.split(",")]
    except ValueError:
        raise ValueError(f"--shapes must be 'vgg16' or like '100x80,80x3', not '{spec}'") from None


def run_simulate(args) -> int:
    import torch

    from ..theory import figures
    from ..theory.chain import simulate_chain

    fams = _families(args.families)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = None
    if any("learned" in f for f in fams):
        if not args.model:
            raise ValueError("the learned families need --model")
        from ..models import load

        model, _ = load(args.model, args.weights)
    dtype = torch.float64 if args.float64 else torch.float32
    random_f = [f for f in fams if "learned" not in f]
    parts = []
    if random_f:
        parts.append(simulate_chain(random_f, _shapes(args.shapes), args.n_vectors,
                                    repeats=args.repeats, seed=args.seed, dtype=dtype,
                                    include_diagonal=args.include_diagonal))
    learned = [f for f in fams if "learned" in f]
    if learned:
        parts.append(simulate_chain(learned, n_vectors=args.n_vectors, repeats=args.repeats,
                                    seed=args.seed, include_diagonal=args.include_diagonal,
                                    model=model, dtype=dtype))
    import pandas as pd

    df = pd.concat(parts, ignore_index=True)
    df.to_csv(out / "chain.csv", index=False)
    figures.plot_chain_figure7(df, out / "figure7")
    steps = [s for s in SUMMARY_STEPS if s <= df["step"].max()]
    table = df[df["step"].isin(steps)].pivot(index="family", columns="step", values="median")
    table = table.reindex(list(dict.fromkeys(df["family"])))
    with pd.option_context("display.width", 160):
        print("median |cos| after k products:")
        print(table.map("{:.6f}".format).to_string())
        print("1 - median |cos| (0: the vectors became identical in this precision):")
        print((1 - table).map("{:.2e}".format).to_string())
    print(f"wrote {out / 'chain.csv'}, {out / 'figure7.png'}, {out / 'figure7.svg'}")
    return 0


def _inputs(name: str, n: int, size: int | None, seed: int):
    import torch

    if name == "cifar_net":
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, 3, size or 32, size or 32, generator=g)
    from ..data.images import SAMPLE_PHOTOS, sample_photos

    names = list(SAMPLE_PHOTOS)
    if n > len(names):
        raise ValueError(f"only {len(names)} sample photos available, asked for {n}")
    return sample_photos(names[:n], size=size or 224).images


def run_spectrum(args) -> int:
    import pandas as pd
    import torch

    from ..attribution import Explainer
    from ..metrics.csc import paper_starts
    from ..models import load
    from ..theory import figures
    from ..theory.spectrum import spectrum_table

    model, src = load(args.model, args.weights)
    if args.float64:
        model = model.double()
    explainer = Explainer(model, device=args.device)
    x = _inputs(args.model, args.images, args.size, args.seed)
    x = x.to(args.device, next(model.parameters()).dtype)
    layers = ([s.strip() for s in args.layers.split(",") if s.strip()] if args.layers
              else paper_starts(explainer.graph, args.model))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        t = spectrum_table(explainer, x, method, layers, k=args.k, with_csc=not args.no_csc,
                           seed=args.seed, tol=args.tol, max_steps=args.max_steps)
        t.insert(0, "model", str(src))
        tables.append(t)
        with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
            print(t.drop(columns=["model"]).to_string(index=False))
    df = pd.concat(tables, ignore_index=True)
    df.to_csv(out / "spectrum.csv", index=False)
    figures.plot_spectrum(df, out / "spectrum")
    print(f"wrote {out / 'spectrum.csv'}, {out / 'spectrum.png'}, {out / 'spectrum.svg'}"
          f" ({src}; dtype {torch.float64 if args.float64 else torch.float32})")
    return 0


def run_singular(args) -> int:
    import pandas as pd

    from ..models import load
    from ..theory import figures
    from ..theory.singular import singular_ratios

    model, src = load(args.model, args.weights)
    patterns = None
    if args.patterns:
        from ..patterns import PatternSet

        patterns = PatternSet.load(args.patterns).patterns
    df = singular_ratios(model, patterns)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "singular.csv", index=False)
    figures.plot_singular_ratios(df, out / "figure3")
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(df[["layer", "kind", "part", "shape", "ratio"]].to_string(index=False))
    print(f"wrote {out / 'singular.csv'}, {out / 'figure3.png'} ({src})")
    return 0
