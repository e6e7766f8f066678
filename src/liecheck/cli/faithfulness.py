"""``liecheck csc | sanity | random-logit``: the paper's faithfulness tests.

Each writes its table (CSV) and figures (PNG + SVG) into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="vgg16", help="cifar_net | vgg16 | resnet50")
    p.add_argument("--weights", default=None,
                   help="torchvision weights name, a checkpoint path, or omit for a seeded "
                        "random initialisation")
    p.add_argument("--methods", default="gradient,lrp_z,lrp_a1b0",
                   help="comma-separated method names (or package.module:attr), or 'all'")
    p.add_argument("--images", default=None,
                   help="image folder (ImageNet-style sub-folders give labels); default: "
                        "scikit-image's sample photographs")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--size", type=int, default=None,
                   help="input size (default 32 for cifar_net, 224 otherwise)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--out", required=True, help="output directory")


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("csc", help="cosine similarity convergence (paper section 5, Fig. 5)")
    _common(c)
    c.add_argument("--start", default="paper",
                   help="comma-separated start nodes/modules, 'output', or 'paper' (the "
                        "protocol's start layers for the paper's models)")
    c.add_argument("--n-vectors", type=int, default=5)
    c.set_defaults(func=run_csc)

    s = sub.add_parser("sanity", help="cascading parameter randomisation (Fig. 4b)")
    _common(s)
    s.add_argument("--mode", default="cascading", choices=("cascading", "independent"))
    s.add_argument("--similarity", default="ssim", choices=("ssim", "spearman", "l1"))
    s.add_argument("--grid-image", type=int, default=0,
                   help="index of the image shown in the saliency grid (-1: no grid)")
    s.set_defaults(func=run_sanity)

    r = sub.add_parser("random-logit", help="target vs random class maps (Fig. 4a)")
    _common(r)
    r.add_argument("--similarity", default="ssim", choices=("ssim", "spearman", "l1"))
    r.set_defaults(func=run_random_logit)


def _setup(args):
    import torch

    from ..attribution import explainer_for
    from ..data.images import load_folder, sample_photos, select
    from ..inputs import resolve_targets
    from ..methods import get_method, method_names
    from ..models import load

    model, source = load(args.model, args.weights, seed=args.seed)
    model = model.to(args.device)
    size = args.size or (32 if args.model == "cifar_net" else 224)
    imgs = (load_folder(args.images, size=size) if args.images
            else sample_photos(size=size))
    n = min(args.n, len(imgs))
    if n < args.n:
        print(f"using {n} images (only {len(imgs)} available)")
    imgs = imgs.subset(select(len(imgs), n, seed=args.seed))
    names = method_names() if args.methods == "all" else [
        s.strip() for s in args.methods.split(",") if s.strip()]
    methods = [get_method(s) for s in names]
    labels = imgs.labels
    target = (torch.tensor(labels) if labels and all(v is not None for v in labels) else None)
    # images and labels are checked against the model once, before any method runs
    n_classes = explainer_for(model, args.device).check_inputs(imgs.images)
    if target is not None:
        resolve_targets(target, len(imgs), n_classes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return model, source, imgs, methods, target, out


def _run(m, fn):
    """Run one method; a method that cannot run here (e.g. PatternNet without
    patterns) is skipped with its error message instead of ending the whole run."""
    try:
        return fn(m)
    except ValueError as exc:
        print(f"skipping {m.name}: {exc}")
        return None


def _concat(frames):
    import pandas as pd

    frames = [f for f in frames if f is not None]
    if not frames:
        raise ValueError("no method could be run (see the messages above)")
    return pd.concat(frames, ignore_index=True)


def _write(df, out: Path, name: str, source) -> Path:
    path = out / f"{name}.csv"
    df.assign(model=source.name, weights=source.weights).to_csv(path, index=False)
    print(f"wrote {path}")
    return path


def run_csc(args) -> int:
    from tqdm import tqdm

    from ..attribution import explainer_for
    from ..metrics import csc, paper_starts
    from ..plots.faithfulness import csc_curve, csc_histogram, save

    model, source, imgs, methods, _, out = _setup(args)
    ex = explainer_for(model, args.device)
    if args.start == "paper":
        try:
            starts = paper_starts(ex.graph, args.model)
        except ValueError:
            starts = ["output"]
    else:
        starts = [s.strip() for s in args.start.split(",")]
    skipped = [m.name for m in methods if not m.walkable]
    if skipped:
        print(f"skipping {', '.join(skipped)}: not a single backward walk (no CSC, as in the "
              "paper)")
    frames = [_run(m, lambda m: csc(ex, imgs.images, m, start=starts,
                                    n_vectors=args.n_vectors, seed=args.seed,
                                    batch_size=args.batch_size))
              for m in tqdm([m for m in methods if m.walkable], desc="csc", unit="method")]
    df = _concat(frames)
    _write(df, out, "csc", source)
    for st in starts:
        tag = st.replace(".", "_")
        for log in (False, True):
            save(csc_curve(df, start=st, log=log), out / f"csc_{tag}{'_log' if log else ''}")
    save(csc_histogram(df, start=starts[0]), out / "csc_histogram_first_conv")
    if len(starts) > 1:
        for m in df["method"].unique():
            save(csc_curve(df[df.method == m], log=True, title=f"CSC of {m}, several starts"),
                 out / f"csc_starts_{m}")
    return 0


def run_sanity(args) -> int:
    from tqdm import tqdm

    from ..metrics.sanity import cascade_maps, sanity
    from ..plots.faithfulness import sanity_curve, save
    from ..plots.saliency import cascade_grid

    model, source, imgs, methods, target, out = _setup(args)
    frames = [_run(m, lambda m: sanity(model, imgs.images, m, target, seed=args.seed,
                                       mode=args.mode, similarity=args.similarity,
                                       batch_size=args.batch_size))
              for m in tqdm(methods, desc="sanity", unit="method")]
    df = _concat(frames)
    methods = [m for m in methods if m.name in set(df["method"])]
    _write(df, out, "sanity", source)
    save(sanity_curve(df, seed=args.seed), out / "sanity")
    i = args.grid_image
    if 0 <= i < len(imgs):
        t = None if target is None else target[i:i + 1]
        rows = {m.name: [("trained" if k == 0 else names[0], r[0]) for k, names, r in
                         cascade_maps(model, imgs.images[i:i + 1], m, t, seed=args.seed,
                                      mode=args.mode)] for m in methods}
        pic = None
        if imgs.raw:
            from ..plots.grid import _centre_crop

            pic = _centre_crop(imgs.raw[i], imgs.images.shape[-1])
        save(cascade_grid(rows, image=pic), out / "sanity_grid")
    return 0


def run_random_logit(args) -> int:
    from tqdm import tqdm

    from ..attribution import explainer_for
    from ..metrics import random_logit
    from ..plots.faithfulness import random_logit_boxplot, save

    model, source, imgs, methods, target, out = _setup(args)
    ex = explainer_for(model, args.device)
    frames = [_run(m, lambda m: random_logit(ex, imgs.images, m, target, seed=args.seed,
                                             similarity=args.similarity,
                                             batch_size=args.batch_size))
              for m in tqdm(methods, desc="random logit", unit="method")]
    df = _concat(frames)
    _write(df, out, "random_logit", source)
    save(random_logit_boxplot(df), out / "random_logit")
    return 0
