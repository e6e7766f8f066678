"""CIFAR-10 through torchvision, from files the user already has (never downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

from .images import ImageSet, select

# per-channel statistics of the CIFAR-10 training set
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


def cifar10_dataset(root: str | Path, train: bool, augment: bool = False):
    """torchvision's ``CIFAR10(root, train, download=False)`` with normalisation.

    ``augment`` adds the paper's shifts and flips (random crop with 4-pixel padding,
    horizontal flip). Raises ``FileNotFoundError`` naming the expected folder when
    the files are missing.
    """
    import torchvision
    import torchvision.transforms as T

    root = Path(root).expanduser()
    folder = root / "cifar-10-batches-py"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected the folder {folder} (the extracted "
            "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html); "
            "pass its parent with --data-dir")
    tf = [T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    if augment:
        tf = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] + tf
    try:
        return torchvision.datasets.CIFAR10(str(root), train=train, download=False,
                                            transform=T.Compose(tf))
    except RuntimeError as exc:
        raise FileNotFoundError(f"CIFAR-10 files in {folder} are incomplete or corrupt: "
                                f"{exc}") from None


def cifar10_test_images(root: str | Path, n: int, seed: int = 0) -> ImageSet:
    """``n`` test images drawn with ``seed`` (the paper's selection, no replacement)."""

    ds = cifar10_dataset(root, train=False)
    idx = select(len(ds), n, seed=seed)
    xs, ys, raw = [], [], []
    for i in idx:
        x, y = ds[i]
        xs.append(x)
        ys.append(int(y))
        raw.append(ds.data[i])
    return ImageSet(torch.stack(xs), [f"cifar{i:05d}" for i in idx], ys, raw)
