"""``liecheck simulate``, ``liecheck spectrum`` and ``liecheck singular``: the theory toolkit.

* ``simulate``: the appendix-B matrix chain (Figure 7): CSV and figures;
* ``spectrum``: sigma1/sigma2 of a method's derivation matrix per start layer,
  next to CSC (matrix-free, per image);
* ``singular``: Figure 3's sigma1/sigma2 of W (and patterns, if given) per layer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .faithfulness import load_cli_model

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
                   "(cifar_net: the built-in digits model unless --weights | vgg16 | "
                   "resnet50: random init unless --weights)")
    s.add_argument("--weights", default=None,
                   help="weights of --model: torchvision name or checkpoint path")
    s.add_argument("--n-vectors", type=int, default=32,
                   help="random vectors per chain (default 32, the paper's)")
    s.add_argument("--repeats", type=int, default=20,
                   help="repetitions per family (default 20, the paper's)")
    s.add_argument("--shapes", default="vgg16",
                   help="'vgg16' or a list such as '100x80,80x60,60x3'")
    s.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    s.add_argument("--include-diagonal", action="store_true",
                   help="count each vector with itself, as the reference code did")
    s.add_argument("--float64", action="store_true", help="compute in float64 (slower)")
    s.add_argument("--out", required=True, help="output directory")
    s.set_defaults(func=run_simulate)

    p = sub.add_parser("spectrum", help="singular values of a method's derivation matrix vs CSC",
                       description="Top singular values of the matrix that maps relevance at "
                       "a layer to relevance at the input, per image, without forming it; "
                       "next to CSC. Resumable run store in --out (one unit per method and "
                       "layer), spectrum.csv and spectrum.png/svg.")
    from .faithfulness import add_model_options

    add_model_options(p, default_n=1)
    p.add_argument("--method", "--methods", dest="methods", default="lrp_a1b0",
                   help="comma-separated methods linear in the relevance, or 'all' (every "
                        "registered one that is)")
    p.add_argument("--layer", "--layers", dest="layers", default=None,
                   help="comma-separated node/module names, features_0 or features.0 "
                        "(default: the paper's CSC starts)")
    p.add_argument("-k", type=int, default=2, help="number of singular values (default 2)")
    p.add_argument("--float64", action="store_true", help="compute in float64 (slower)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="relative accuracy of each singular value (default 1e-4)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap on Lanczos steps per image and layer (default: min(dims, 300))")
    p.add_argument("--no-csc", action="store_true", help="skip the CSC column")
    p.add_argument("--out", required=True, help="run directory (resumable), CSV and figures")
    p.add_argument("--fresh", action="store_true",
                   help="delete earlier results in --out instead of resuming")
    p.set_defaults(func=run_spectrum)

    g = sub.add_parser("singular", help="sigma1/sigma2 per layer of W, A, W*A (paper Fig. 3)")
    g.add_argument("--model", default="vgg16", help="cifar_net | vgg16 | resnet50")
    g.add_argument("--weights", default=None,
                   help="torchvision weights name, a checkpoint path, or omit (cifar_net: "
                        "the built-in digits model; others: a seeded random initialisation)")
    g.add_argument("--patterns", default=None,
                   help="a pattern file (liecheck.patterns) for A and W*A")
    g.add_argument("--out", required=True, help="output directory (singular.csv, figure3)")
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
        model, _ = load_cli_model(args.model, args.weights)
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


def _inputs(args):
    """The images of ``spectrum``: as every other subcommand (``--images DIR``, the
    sample photos, or the digits test images for cifar_net)."""
    from ..reproduce.config import ModelPlan
    from ..reproduce.setup import load_images

    if args.model == "cifar_net" and args.images:
        raise ValueError("--images is not used with cifar_net: it is evaluated on the digits "
                         "test images (use the Python API for other images)")
    size = args.size or (32 if args.model == "cifar_net" else 224)
    imgs, notes = load_images(ModelPlan(args.model, args.weights, n=args.n, size=size),
                              args.images, args.seed)
    for n in notes:
        print(f"note: {n}")
    return imgs.images


def _with_patterns(names: list[str], args, model, x) -> dict:
    """``{name: Method}``; PatternNet / PatternAttribution with patterns fitted now
    (the digits training images for cifar_net, else these images), said on stderr."""
    import sys

    from ..data.images import ImageSet
    from ..methods import get_method
    from ..reproduce.config import ModelPlan
    from ..reproduce.setup import fit_patterns

    out = {n: get_method(n) for n in names}
    needs = [n for n, m in out.items() if m.params.get("patterns", False) is None]
    if needs:
        where = ("the digits training images" if args.model == "cifar_net"
                 else f"the run's {len(x)} image(s)")
        print(f"liecheck: note: fitting the patterns of {', '.join(needs)} on {where}",
              file=sys.stderr, flush=True)
        pats = fit_patterns(ModelPlan(args.model, args.weights, size=x.shape[-1]), model,
                            ImageSet(x, [""] * len(x), [None] * len(x), []))
        out.update({n: out[n].with_params(patterns=pats) for n in needs})
    return out


def _seconds_per_walk(explainer, x, method: str) -> float:
    """Median seconds of one backward walk of ``method`` on ``x`` (3 timed walks)."""
    import time

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        explainer.attribute(x, method)
        times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def run_spectrum(args) -> int:
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from ..attribution import Explainer
    from ..layer_names import label_layers
    from ..methods import get_method
    from ..models import check_model_name
    from ..numbers import fmt
    from ..reproduce.paper import paper_starts
    from ..store import RunStore, unit_id
    from ..theory import figures
    from ..theory.spectrum import check_method, spectrum_table
    from .faithfulness import method_list

    check_model_name(args.model)
    methods = method_list(args.methods)    # a typo fails up front, with a suggestion
    if args.methods == "all":              # 'all': the methods that have a derivation matrix
        linear = []
        for m in methods:
            try:
                check_method(get_method(m))
                linear.append(m)
            except ValueError:
                pass
        print(f"note: --methods all: the {len(linear)} methods linear in the relevance "
              f"({', '.join(linear)}); the others have no derivation matrix", flush=True)
        methods = linear
    for m in methods:                      # a nonlinear method fails up front
        check_method(get_method(m))
    settings = {k: v for k, v in vars(args).items()
                if k not in ("func", "command", "out", "fresh", "device")}
    store = RunStore(args.out, settings=settings, fresh=args.fresh)
    model, src = load_cli_model(args.model, args.weights)
    if args.float64:
        model = model.double()
    explainer = Explainer(model, device=args.device)
    x = _inputs(args).to(args.device, next(model.parameters()).dtype)
    objs = _with_patterns(methods, args, model, x)
    layers = ([explainer.graph.resolve(s.strip()) for s in args.layers.split(",") if s.strip()]
              if args.layers else paper_starts(explainer.graph, args.model))
    todo = [(m, lay) for m in methods for lay in layers
            if not store.has("spectrum", unit_id("spectrum", m, lay))]
    steps = args.max_steps or 300
    t_walk = _seconds_per_walk(explainer, x[:1], objs[methods[0]])
    bound = len(todo) * len(x) * steps * 2 * t_walk
    est = f"{fmt(round(bound / 60, 1))} min" if bound >= 90 else f"{fmt(round(bound))} s"
    print(f"liecheck spectrum: {len(methods)} methods x {len(layers)} layers x {len(x)} images "
          f"= {len(methods) * len(layers) * len(x)} spectra, each up to {steps} Lanczos steps "
          f"(2 walks per step); {len(todo)} method-layer units to compute, the rest already "
          f"in {args.out}; at most {est} from a walk timed now (Lanczos usually stops "
          "earlier; resumable, Ctrl-C keeps finished units)", flush=True)
    store.update(models={args.model: {"source": {"kind": src.kind, "weights": src.weights,
                                                 "sha256": src.sha256}}})
    for m, lay in tqdm(todo, desc="spectrum", unit="layer"):
        t = spectrum_table(explainer, x, objs[m], [lay], k=args.k, with_csc=not args.no_csc,
                           seed=args.seed, tol=args.tol, max_steps=args.max_steps)
        t.insert(0, "model", str(src))
        store.write("spectrum", unit_id("spectrum", m, lay), t, ["method", "layer", "image"])
    df = store.read("spectrum")
    order = {key: i for i, key in enumerate((m, lay) for m in methods for lay in layers)}
    df["_order"] = [order.get(key, len(order)) for key in zip(df["method"], df["layer"])]
    df = df.sort_values(["_order", "image"], kind="stable").drop(columns="_order")
    out = Path(args.out)
    df.to_csv(out / "spectrum.csv", index=False)
    figures.plot_spectrum(df, out / "spectrum", model=args.model)
    cols = [c for c in df.columns if c not in ("model", "depth")]
    shown = label_layers(df[cols], model=args.model)
    with pd.option_context("display.width", 200):
        print(shown.to_string(index=False, formatters={c: fmt for c in cols}))
    print(f"wrote {out / 'spectrum.csv'}, {out / 'spectrum.png'}, {out / 'spectrum.svg'}"
          f" ({src}; dtype {torch.float64 if args.float64 else torch.float32})")
    return 0


def run_singular(args) -> int:
    import pandas as pd

    from ..layer_names import label_layers
    from ..numbers import fmt
    from ..theory import figures
    from ..theory.singular import singular_ratios

    model, src = load_cli_model(args.model, args.weights)
    patterns = None
    if args.patterns:
        from ..methods.patterns import PatternSet

        patterns = PatternSet.load(args.patterns).patterns
    df = singular_ratios(model, patterns)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "singular.csv", index=False)
    figures.plot_singular_ratios(df, out / "figure3", model=args.model)
    shown = label_layers(df[["layer", "kind", "part", "shape", "ratio"]], model=args.model)
    with pd.option_context("display.width", 200):
        print(shown.to_string(index=False, formatters={"ratio": fmt}))
    print(f"wrote {out / 'singular.csv'}, {out / 'figure3.png'} ({src})")
    return 0
