"""Why the ground truth's L1 ranked LRP a1b0 first: maps turned over by a negative logit.

    python benchmarks/groundtruth_l1_signs.py [--n 60] [--digits 100] [--seed 0]

Part 1, the ground-truth benchmark (``liecheck.groundtruth``, cached benchmark model,
``--n`` test images drawn, the recognised ones measured): per image the two explained
logits, and per method the L1 between the two classes' [0, 1]-normalised maps without
and with the flip (``l1_distance(..., flip=True)``), split by whether the two logits have
opposite signs; the correlation of the raw maps; whether the sign of a map's total is the
sign of its logit (LRP's conservation); and, for comparison, the alternative the
benchmark does not use: each map turned by the sign of its starting relevance (the
explained logit for ``start="logit"`` methods) before a plain L1.

Part 2, the class-insensitivity test's setting (Figure 1e: the built-in digits
``cifar_net``, an image explained for its label and for the runner-up class,
LRP a1b0): the same split over the first ``--digits`` digits test images (the test
itself uses the first one).
"""

from __future__ import annotations

import argparse

import torch

from liecheck.attribution import Explainer
from liecheck.data.digits import digits_test_images
from liecheck.groundtruth import TwoDigits, load_two_digits_net, two_digit_images
from liecheck.groundtruth.benchmark import _maps
from liecheck.methods import get_method
from liecheck.methods import patterns as pt
from liecheck.metrics.similarity import l1_distance, normalize, percentiles_for, prepare
from liecheck.train import default_model

METHODS = ("lrp_a1b0", "dtd", "patternattribution", "excitation_bp", "lrp_epsilon",
           "gradient_x_input", "deeplift_rescale", "occlusion", "random")


def _split(l1: torch.Tensor, opposite: torch.Tensor) -> str:
    if not opposite.any():
        return f"mean {l1.mean():.3f} (no image with opposite signs)"
    return (f"opposite signs {l1[opposite].mean():.3f} [{l1[opposite].min():.3f}, "
            f"{l1[opposite].max():.3f}], same signs {l1[~opposite].mean():.3f} "
            f"[{l1[~opposite].min():.3f}, {l1[~opposite].max():.3f}]")


def ground_truth(n: int, seed: int) -> None:
    model, info = load_two_digits_net(progress=False)
    data = two_digit_images(n, "test", seed)
    with torch.no_grad():
        out = model(data.x)
    keep = (out.topk(2, 1).indices.sort(1).values == data.labels.sort(1).values).all(1)
    d = TwoDigits(data.x[keep], data.labels[keep], data.source[keep.numpy()], data.mean,
                  data.std)
    k = len(d)
    la = out[keep].gather(1, d.labels[:, :1])[:, 0]
    lb = out[keep].gather(1, d.labels[:, 1:])[:, 0]
    opposite = (la < 0) ^ (lb < 0)
    print(f"ground truth: {k} of {n} images recognised; explained logits < 0: "
          f"{int((la < 0).sum() + (lb < 0).sum())} of {2 * k} explanations; images with the "
          f"two logits of opposite signs: {int(opposite.sum())}, both negative: "
          f"{int(((la < 0) & (lb < 0)).sum())}")
    pats = pt.fit(model, two_digit_images(512, "train", seed).x.split(64), kind="relu")
    fill = -d.mean / d.std
    for name in METHODS:
        maps, mname = _maps(model, d, name, seed, fill, pats)
        maps = maps.double()
        h = normalize(maps, *(percentiles_for(mname) if mname else (0.5, 99.5)))
        plain = l1_distance(h[:k], h[k:])
        flip = l1_distance(h[:k], h[k:], flip=True)
        corr = torch.stack([torch.corrcoef(torch.stack([maps[i].flatten(),
                                                        maps[k + i].flatten()]))[0, 1]
                            for i in range(k)])
        if mname is None:
            sign = torch.ones(2 * k, dtype=torch.float64)
        else:
            m = get_method(name)
            t2 = torch.cat([d.labels[:, 0], d.labels[:, 1]])
            start = m.start_relevance(torch.cat([out[keep], out[keep]]), t2, m.params)
            sign = torch.where(start.gather(1, t2[:, None])[:, 0] < 0, -1.0, 1.0).double()
        ho = normalize(maps * sign[:, None, None],
                       *(percentiles_for(mname) if mname else (0.5, 99.5)))
        by_start = l1_distance(ho[:k], ho[k:])
        total = maps.flatten(1).sum(1)
        same_sign = float((total.sign() == torch.cat([la, lb]).sign()).double().mean())
        no_pos = int((maps.flatten(1).clamp(min=0).sum(1) == 0).sum())
        print(f"\n{name}: L1 without flip mean {plain.mean():.3f}, with flip {flip.mean():.3f}")
        print(f"  without flip: {_split(plain, opposite)}")
        print(f"  with flip:    {_split(flip, opposite)}")
        print(f"  (alternative, maps turned by their start's sign: mean {by_start.mean():.3f})")
        if opposite.any():
            print(f"  correlation of the raw maps: opposite signs {corr[opposite].mean():.3f}, "
                  f"same signs {corr[~opposite].mean():.3f}")
        print(f"  sign(map total) == sign(logit) in {same_sign:.2f} of the maps; maps without "
              f"positive relevance: {no_pos}")


def insensitivity(n_images: int) -> None:
    model, _, _ = default_model(progress=False)
    model.eval()
    imgs = digits_test_images(n_images, 0)
    x, y = imgs.images, torch.tensor(imgs.labels)
    with torch.no_grad():
        out = model(x)
    ex, m = Explainer(model), get_method("lrp_a1b0")
    rows = []
    for i in range(len(x)):
        a = int(y[i])
        b = [int(c) for c in out[i].argsort(descending=True) if int(c) != a][0]
        h = prepare(ex.attribute(x[i:i + 1].repeat(2, 1, 1, 1), m, target=torch.tensor([a, b])),
                    m)
        rows.append((float(out[i, a]), float(out[i, b]), float(l1_distance(h[:1], h[1:])[0]),
                     float(l1_distance(h[:1], h[1:], flip=True)[0])))
    t = torch.tensor(rows, dtype=torch.float64)
    opposite = (t[:, 0] < 0) ^ (t[:, 1] < 0)
    print(f"\ninsensitivity setting (cifar_net on digits, LRP a1b0, label vs runner-up, first "
          f"{len(x)} test images): image 0 logits {t[0, 0]:.2f} / {t[0, 1]:.2f}, L1 "
          f"{t[0, 2]:.4f} without flip, {t[0, 3]:.4f} with; runner-up logit < 0 on "
          f"{int((t[:, 1] < 0).sum())} images, opposite signs on {int(opposite.sum())}")
    print(f"  without flip: {_split(t[:, 2], opposite)}")
    print(f"  with flip:    {_split(t[:, 3], opposite)}")
    print(f"  median logits: label {t[:, 0].median():.2f}, runner-up {t[:, 1].median():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--digits", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ground_truth(args.n, args.seed)
    insensitivity(args.digits)


if __name__ == "__main__":
    main()
