"""``liecheck explain`` and ``liecheck methods``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain",
                       help="explain images with one or more methods, save a heatmap grid",
                       description="Explain images with one or more methods. IMAGE is a file "
                       "path or the name of a scikit-image sample photo (e.g. astronaut).")
    p.add_argument("images", nargs="*", metavar="IMAGE", default=["astronaut"],
                   help="image files or scikit-image sample photo names (default astronaut)")
    p.add_argument("--model", default="vgg16", help="cifar_net | vgg16 | resnet50")
    p.add_argument("--size", type=int, default=None,
                   help="input side in pixels (default 32 for cifar_net, 224 otherwise)")
    p.add_argument("--weights", default=None,
                   help="torchvision weights name (IMAGENET1K_V1), a checkpoint path, or omit "
                        "(cifar_net: the built-in digits model; others: a seeded random "
                        "initialisation)")
    p.add_argument("--method", "--methods", dest="methods", default="lrp_a1b0",
                   help="comma-separated method names (see `liecheck methods`), or 'all'")
    p.add_argument("--patterns", default=None, metavar="FILE",
                   help="pattern file for PatternNet / PatternAttribution (saved with "
                        "liecheck.patterns.PatternSet.save); default: fitted now, on the "
                        "digits training images for cifar_net, else on the given images")
    p.add_argument("--target", type=int, default=None, help="class index (default: predicted)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("-o", "--out", default="explanation.png", help="output PNG/SVG/PDF")
    p.set_defaults(func=run_explain)

    m = sub.add_parser("methods", help="list the attribution methods (fits 100 columns)")
    m.set_defaults(func=run_methods)


def methods_text(width: int = 100) -> str:
    """The method registry as left-aligned text no wider than ``width`` columns: name,
    paper name, then the description wrapped under them."""
    import textwrap

    from ..methods import method_table

    df = method_table()
    w_name = max(len("name"), *(len(v) for v in df["name"]))
    w_paper = max(len("paper name"), *(len(v) for v in df["paper_name"]))
    indent = w_name + w_paper + 4
    lines = [f"{'name'.ljust(w_name)}  {'paper name'.ljust(w_paper)}  what it does"]
    for _, r in df.iterrows():
        desc = textwrap.wrap(str(r["description"]), max(20, width - indent)) or [""]
        lines.append(f"{r['name'].ljust(w_name)}  {r['paper_name'].ljust(w_paper)}  {desc[0]}")
        lines += [" " * indent + d for d in desc[1:]]
    return "\n".join(lines)


def run_methods(args) -> int:
    print(methods_text())
    print("\nreferences and families: liecheck.method_table() in Python")
    return 0


def _load_images(specs: list[str], size: int):
    import numpy as np
    from PIL import Image

    from ..data.images import ImageSet, preprocess, sample_photos

    raws, names = [], []
    for s in specs:
        path = Path(s)
        if path.exists():
            with Image.open(path) as im:
                raws.append(np.asarray(im.convert("RGB")))
            names.append(path.name)
        elif path.suffix or "/" in s:  # looks like a path
            raise FileNotFoundError(f"image not found: {path} (no such file)")
        else:
            _check_sample_name(s)
            one = sample_photos([s], size=size)
            raws.append(one.raw[0])
            names.append(s)
    import torch

    imgs = torch.stack([preprocess(r, size=size, resize=int(round(size * 256 / 224)))
                        for r in raws])
    return ImageSet(imgs, names, [None] * len(names), raws)


def _check_sample_name(name: str) -> None:
    """``FileNotFoundError`` when ``name`` is neither a file nor a scikit-image sample
    photo: it says so, suggests the nearest sample name and lists them."""
    import difflib

    import skimage.data as sd

    from ..data.images import SAMPLE_PHOTOS

    if name in SAMPLE_PHOTOS or callable(getattr(sd, name, None)) and not name.startswith("_"):
        return
    names = [n for n in SAMPLE_PHOTOS if hasattr(sd, n)]
    close = difflib.get_close_matches(name, names, n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise FileNotFoundError(f"no such file '{name}', and '{name}' is not a scikit-image "
                            f"sample photo.{hint} Sample photos: {', '.join(names)}.")


def _with_patterns(methods, args, model, x):
    """The methods, with PatternNet / PatternAttribution given patterns: loaded from
    ``--patterns``, else fitted now (said on stderr)."""
    import sys

    needs = [m for m in methods if "patterns" in m.params and m.params["patterns"] is None]
    if not needs:
        return methods
    if args.patterns:
        from ..methods.patterns import PatternSet

        pats = PatternSet.load(args.patterns)
    else:
        from ..data.images import ImageSet
        from ..reproduce.config import ModelPlan
        from ..reproduce.setup import fit_patterns

        plan = ModelPlan(args.model, args.weights, size=x.shape[-1])
        where = ("the digits training images (512)" if args.model == "cifar_net" else
                 f"the {len(x)} given image(s); more images give better patterns: save "
                 "patterns fitted on a folder with liecheck.patterns.fit(model, x).save(FILE) "
                 "and pass --patterns FILE")
        print(f"liecheck: note: fitting the patterns of {', '.join(m.name for m in needs)} "
              f"on {where}", file=sys.stderr, flush=True)
        pats = fit_patterns(plan, model, ImageSet(x, [""] * len(x), [None] * len(x), []))
    return [m.with_params(patterns=pats) if any(m is n for n in needs) else m for m in methods]


def run_explain(args) -> int:
    from .. import Explainer, get_method
    from ..models import check_model_name
    from ..plots.grid import heatmap_grid
    from .faithfulness import load_cli_model, method_list

    methods = [get_method(m) for m in method_list(args.methods)]
    check_model_name(args.model)
    size = args.size or (32 if args.model == "cifar_net" else 224)
    data = _load_images(args.images, size)  # bad paths fail before the model loads
    x = data.images
    model, src = load_cli_model(args.model, args.weights)   # random weights: said on stderr
    methods = _with_patterns(methods, args, model, x)
    ex = Explainer(model, device=args.device)
    target = ex.targets(x, args.target)  # checks the images and the class first
    maps = {m.name: ex.attribute(x, m, target=target).cpu() for m in methods}
    note = (f"{args.model} with seeded RANDOM weights (no --weights): these maps test the "
            "rules on its architecture, not a trained model." if src.kind == "random" else None)
    fig = heatmap_grid(data.raw, data.names, maps, methods, target=target.tolist(), note=note)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    print(f"wrote {out}")
    return 0
