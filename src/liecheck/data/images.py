"""Images for ImageNet models: scikit-image's sample photographs (offline default),
a folder of images or an ImageNet-style validation folder, and the paper's
selection (a fixed first image plus images drawn with a seed, without replacement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# colour photographs shipped with scikit-image (no download needed)
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "hubble_deep_field",
                 "immunohistochemistry", "retina")
_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp", ".JPEG"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageSet:
    """A batch of preprocessed images with their names and optional labels."""

    images: torch.Tensor                 # (N, 3, H, W), preprocessed
    names: list[str]
    labels: list[int | None] = field(default_factory=list)
    raw: list[np.ndarray] = field(default_factory=list, repr=False)  # (H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx) -> ImageSet:
        idx = list(idx)
        return ImageSet(self.images[idx], [self.names[i] for i in idx],
                        [self.labels[i] for i in idx] if self.labels else [],
                        [self.raw[i] for i in idx] if self.raw else [])


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).astype(np.uint8) if a.max() <= 1 else a.astype(np.uint8)
    return a


def preprocess(img: np.ndarray, size: int = 224, resize: int = 256,
               mean=IMAGENET_MEAN, std=IMAGENET_STD, weights=None) -> torch.Tensor:
    """torchvision's ImageNet evaluation preprocessing: resize the short side to
    ``resize``, centre-crop ``size``, scale to [0, 1], normalise with ``mean``/``std``.

    With ``weights`` (a torchvision weights enum member) its own ``transforms()`` is
    used instead. Returns ``(3, size, size)``.
    """
    from PIL import Image

    pil = Image.fromarray(_rgb(img))
    if weights is not None:
        return weights.transforms()(pil)
    import torchvision.transforms.functional as TF

    pil = TF.resize(pil, resize)
    pil = TF.center_crop(pil, size)
    t = TF.to_tensor(pil)
    return TF.normalize(t, mean, std)


def sample_photos(names=None, size: int = 224, weights=None) -> ImageSet:
    """scikit-image's sample photographs, preprocessed for ImageNet models."""
    import skimage.data as sd

    names = list(names) if names is not None else [n for n in SAMPLE_PHOTOS if hasattr(sd, n)]
    raw = []
    for n in names:
        if not hasattr(sd, n):
            raise ValueError(f"scikit-image has no sample image '{n}'")
        raw.append(_rgb(getattr(sd, n)()))
    imgs = torch.stack([preprocess(r, size=size, resize=int(round(size * 256 / 224)),
                                   weights=weights) for r in raw])
    return ImageSet(imgs, names, [None] * len(names), raw)


def load_folder(path: str | Path, size: int = 224, weights=None, limit: int | None = None,
                class_index: dict[str, int] | None = None) -> ImageSet:
    """All images below ``path``. In an ImageNet-style folder (one sub-folder per
    class, named by WordNet id) the sub-folder gives the label: its position among
    the sorted sub-folder names, or ``class_index[wnid]`` when given."""
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix in _IMAGE_EXT or
                   p.suffix.lower() in _IMAGE_EXT)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(_IMAGE_EXT))}) in {root}")
    classes = sorted({p.parent.name for p in files if p.parent != root})
    index = class_index or {c: i for i, c in enumerate(classes)}
    if limit is not None:
        files = files[:limit]
    raw, labels = [], []
    for p in files:
        with Image.open(p) as im:
            raw.append(np.asarray(im.convert("RGB")))
        labels.append(index.get(p.parent.name) if p.parent != root else None)
    imgs = torch.stack([preprocess(r, size=size, resize=int(round(size * 256 / 224)),
                                   weights=weights) for r in raw])
    return ImageSet(imgs, [str(p.relative_to(root)) for p in files], labels, raw)


def select(n_total: int, n: int, seed: int = 0, first: int = 0) -> list[int]:
    """The paper's selection: a fixed first image plus ``n - 1`` others drawn with
    ``seed`` *without* replacement (the reference code drew with replacement, a bug)."""
    if n > n_total:
        raise ValueError(f"asked for {n} images, only {n_total} available")
    rng = np.random.default_rng(seed)
    rest = [i for i in range(n_total) if i != first]
    others = rng.choice(len(rest), size=n - 1, replace=False) if n > 1 else []
    return [first] + [rest[i] for i in others]
