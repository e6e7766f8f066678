"""``liecheck audit``: Zennit composites and Captum methods through the paper's tests.

Writes ``audit.csv``, ``audit.md`` (the table with the paper's verdicts) and
``audit.png`` (per method: the target's map, a random class's map, the map after
re-initialising the last layer) into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit Zennit composites / Captum methods with CSC, the "
                                     "random-logit test and the cascade",
                       description="Run Zennit composites, Captum attribution classes and "
                       "liecheck methods through the paper's three tests (CSC, the random-logit "
                       "test, cascading randomisation) on one model and give each a verdict. "
                       "Writes audit.csv, audit.md (the table with the verdicts) and audit.png "
                       "(per method: the target's map, a random class's map, the map after "
                       "re-initialising the last layer) into --out.")
    p.add_argument("--zennit", default="", help="comma-separated zennit.composites classes, "
                   "e.g. EpsilonPlusFlat,EpsilonAlpha2Beta1 ('all': Zennit's built-ins)")
    p.add_argument("--captum", default="", help="comma-separated captum.attr classes, e.g. "
                   "Saliency,LRP ('all': the main ones)")
    p.add_argument("--methods", default="", help="liecheck methods to audit alongside (names or "
                   "package.module:object; 'all': every registered method)")
    p.add_argument("--model", default="cifar_net", help="cifar_net (the built-in digits model "
                   "unless --weights) | vgg16 | resnet50")
    p.add_argument("--weights", default=None, help="torchvision weights name or checkpoint "
                   "path (default: built-in digits model / seeded random initialisation)")
    p.add_argument("--images", default=None, help="image folder (ImageNet models)")
    p.add_argument("--n", "--num-images", dest="n", type=int,
                   default=8, help="number of images (default 8)")
    p.add_argument("--size", type=int, default=None,
                   help="input size (default 32 for cifar_net, 224 otherwise)")
    p.add_argument("--n-vectors", type=int, default=5,
                   help="random vectors per image for CSC (paper: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def _names(arg: str, default: tuple[str, ...]) -> list[str]:
    return list(default) if arg == "all" else [s.strip() for s in arg.split(",") if s.strip()]


def run(args) -> int:
    from ..adapters import audit as au
    from ..models import check_model_name
    from ..reproduce.config import ModelPlan
    from ..reproduce.setup import applicable_methods, load_images, load_model, targets
    from .faithfulness import method_list, say_random_weights

    check_model_name(args.model)
    ours = method_list(args.methods) if args.methods else []   # a typo fails before loading
    size = args.size or (32 if args.model == "cifar_net" else 224)
    plan = ModelPlan(args.model, args.weights, n=args.n, size=size, methods=tuple(ours))
    model, source = load_model(plan, args.seed)
    if source.get("kind") == "random":
        say_random_weights(args.model, args.seed)
    images, notes = load_images(plan, args.images, args.seed)
    for note in notes:
        print(note)
    target, kind = targets(model.eval(), images)
    mine, more = applicable_methods(plan, model.eval(), images)  # fits patterns if needed
    for note in more:
        print(note)
    methods = ([au.zennit_method(n, images) for n in _names(args.zennit, au.ZENNIT_COMPOSITES)]
               + [au.captum_method(n) for n in _names(args.captum, au.CAPTUM_METHODS)]
               + mine)
    if not methods:
        raise ValueError("nothing to audit: pass --zennit, --captum and/or --methods")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save(df):  # after every method, so a long run keeps what it has
        df.assign(model=args.model, weights=source.get("weights"), n_images=len(images.images),
                  size=size, targets=kind).to_csv(out / "audit.csv", index=False)

    df = au.audit(model, images, methods, target=target, seed=args.seed,
                  n_vectors=args.n_vectors, progress=True, on_row=save)
    table = au.markdown(df)
    (out / "audit.md").write_text(f"model: {args.model} ({source.get('kind')}), "
                                  f"{len(images.images)} images of {size} px, {kind} "
                                  f"targets\n\n{table}\n")
    print(table)
    if not args.no_figure:
        fig = au.figure(model, images, methods, target=target, seed=args.seed)
        fig.savefig(out / "audit.png", dpi=110)
    print(f"wrote {out}/audit.csv, audit.md" + ("" if args.no_figure else ", audit.png"))
    return 0
