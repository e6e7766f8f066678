"""Per model of a run: the network, its images and targets, the applicable methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attribution import explainer_for
from ..data.digits import digits_test_images, load_digits_split
from ..data.images import ImageSet, load_folder, sample_photos, select
from ..inputs import resolve_targets
from ..methods import Method, get_method, method_names
from ..methods import patterns as pt
from ..models import load
from ..train import default_model
from .config import ModelPlan

# a plan's weights that name the zoo's trained networks or their random initialisation
ZOO_WEIGHTS = ("zoo", "zoo:random")


@dataclass
class Subject:
    """A loaded model with its images, ground-truth targets and methods."""

    plan: ModelPlan
    model: nn.Module
    source: dict                  # ModelSource as a dict (+ training info)
    images: ImageSet
    target: torch.Tensor          # (N,) explained class per image
    target_kind: str              # "ground truth" | "predicted"
    methods: list[Method]
    skipped: list[str] = field(default_factory=list)
    two_digits: object = None     # TwoDigits of the images (the zoo's), else None

    def part(self, a: int, b: int):
        """Images, targets and image numbers of the chunk ``[a, b)``."""
        return self.images.images[a:b], self.target[a:b], np.arange(a, b)

    def tag(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with the model's name as its first column."""
        df = df.copy()
        df.insert(0, "model", self.plan.name)
        return df

    def with_names(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with the file name of each row's ``image``."""
        df["image_name"] = [self.images.names[i] for i in df["image"]]
        return df

    @property
    def scale(self) -> float:
        """Relative cost of one walk on this model (cifar_net at 32x32 = 1)."""
        base = {"cifar_net": 1.0, "vgg16": 180.0, "resnet50": 45.0}.get(self.plan.name, 10.0)
        return base * (self.plan.size / 224) ** 2 if self.plan.name != "cifar_net" else base


def _source_dict(src) -> dict:
    return {"name": src.name, "weights": src.weights, "kind": src.kind, "sha256": src.sha256,
            **src.extra}


def load_model(plan: ModelPlan, seed: int):
    """``(model, source dict)``: built-in digits model, torchvision weights, a checkpoint
    or the seeded random initialisation."""

    if plan.name == "cifar_net" and plan.weights is None:
        model, src, _ = default_model(seed=seed)
        return model, _source_dict(src)
    model, src = load(plan.name, weights=plan.weights, seed=seed, verbose=False)
    return model, _source_dict(src)


def load_images(plan: ModelPlan, folder: str | None, seed: int) -> tuple[ImageSet, list[str]]:
    """The run's images for ``plan`` and notes about them."""

    notes = []
    if plan.name == "cifar_net":
        if plan.weights is not None:
            notes.append("cifar_net with a checkpoint is evaluated on the digits test images; "
                         "use the Python API with liecheck.data.cifar10 for CIFAR-10 images")
        return digits_test_images(plan.n, seed), notes
    if folder:
        all_imgs = load_folder(folder, size=plan.size)
        n = min(plan.n, len(all_imgs))
        if n < plan.n:
            notes.append(f"{folder} holds {len(all_imgs)} images, fewer than n={plan.n}")
        return all_imgs.subset(select(len(all_imgs), n, seed)), notes
    photos = sample_photos(size=plan.size)
    n = min(plan.n, len(photos))
    if n < plan.n:
        notes.append(f"{plan.name}: only {len(photos)} scikit-image sample photos are shipped; "
                     f"using {n} instead of n={plan.n} (pass --images DIR for more)")
    return photos.subset(range(n)), notes


def applicable_methods(plan: ModelPlan, model: nn.Module, images: ImageSet
                       ) -> tuple[list[Method], list[str]]:
    """The plan's methods that exist in the registry, with patterns fitted where needed."""
    out, notes = [], []
    known = set(method_names())
    patterns = None
    for name in plan.methods:
        if name not in known and ":" not in name:  # 'module:object' is imported below
            notes.append(f"{plan.name}: method '{name}' is not available in this liecheck "
                         "(not registered); skipped")
            continue
        m = get_method(name)
        if "patterns" in m.params:
            if patterns is None:
                patterns = fit_patterns(plan, model, images)
            m = m.with_params(patterns=patterns)
        out.append(m)
    return out, notes


def fit_patterns(plan: ModelPlan, model: nn.Module, images: ImageSet):
    """PatternNet/PatternAttribution patterns: from the digits training split for the
    built-in model (its first 512 images), else from the run's own images."""

    if plan.name == "cifar_net":
        data = load_digits_split(0).x_train
    else:
        data = images.images
    return pt.fit(model, data[:512].split(64), kind="relu")


def targets(model: nn.Module, images: ImageSet) -> tuple[torch.Tensor, str]:
    """Ground-truth labels when every image has one, else the model's predictions.
    The images and labels are checked against the model once, before any unit runs."""

    n_classes = explainer_for(model).check_inputs(images.images)
    if images.labels and all(v is not None for v in images.labels):
        return resolve_targets(images.labels, len(images), n_classes), "ground truth"
    with torch.no_grad():
        return model(images.images).argmax(1), "predicted"


def load_subject(plan: ModelPlan, folder: str | None, seed: int, device: str) -> Subject:
    if plan.weights in ZOO_WEIGHTS:
        from ..zoo.run import zoo_subject

        return zoo_subject(plan, seed, device)
    model, source = load_model(plan, seed)
    images, notes = load_images(plan, folder, seed)
    model = model.to(device).eval()
    images.images = images.images.to(device)
    tgt, kind = targets(model, images)
    methods, more = applicable_methods(plan, model, images)
    return Subject(plan, model, source, images, tgt.cpu(), kind, methods, notes + more)


def raw_images(images: ImageSet) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 pictures for the report (centre-cropped to a square)."""
    from PIL import Image

    out = []
    side = images.images.shape[-1]
    for r in images.raw:
        pil = Image.fromarray(r)
        s = side / min(pil.size)
        pil = pil.resize((max(side, round(pil.size[0] * s)), max(side, round(pil.size[1] * s))))
        a = np.asarray(pil)
        top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        out.append(a[top:top + side, left:left + side, :3])
    return np.stack(out).astype(np.uint8)
