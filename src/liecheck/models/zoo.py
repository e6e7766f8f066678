"""``load(name, weights=...)``: cifar_net, vgg16, resnet50 from torchvision weights,
a local checkpoint, or a seeded random initialisation. The source is reported."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .cifar_net import cifar_net

MODEL_NAMES = ("cifar_net", "vgg16", "resnet50")


@dataclass
class ModelSource:
    """Where a model's weights came from (stored with every result)."""

    name: str
    weights: str            # "random(seed=0)", a torchvision weights name, or a path
    kind: str               # "random" | "torchvision" | "checkpoint"
    sha256: str | None = None
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        s = f"{self.name}: {self.kind} weights {self.weights}"
        return s + (f" (sha256 {self.sha256[:12]})" if self.sha256 else "")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _architecture(name: str, seed: int, num_classes: int | None) -> nn.Module:
    import torchvision

    torch.manual_seed(seed)
    if name == "cifar_net":
        return cifar_net(num_classes or 10, seed=seed)
    if name == "vgg16":
        return torchvision.models.vgg16(num_classes=num_classes or 1000)
    if name == "resnet50":
        return torchvision.models.resnet50(num_classes=num_classes or 1000)
    raise ValueError(f"unknown model '{name}'; choose one of {', '.join(MODEL_NAMES)}")


def load(name: str, weights: str | os.PathLike | None = None, seed: int = 0,
         num_classes: int | None = None, verbose: bool = True) -> tuple[nn.Module, ModelSource]:
    """Load a model in eval mode and say where its weights came from.

    Parameters
    ----------
    name : ``"cifar_net"``, ``"vgg16"`` or ``"resnet50"``.
    weights : ``None`` for a seeded random initialisation; a torchvision weights
        name such as ``"IMAGENET1K_V1"`` or ``"VGG16_Weights.IMAGENET1K_V1"`` (used
        when cached or downloadable); or a path to a checkpoint (a state dict, loaded
        with ``weights_only=True``).
    seed : seed of the random initialisation.

    Returns
    -------
    ``(model, source)``; the source is also printed when ``verbose``.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model '{name}'; choose one of {', '.join(MODEL_NAMES)}")
    state = torch.random.get_rng_state()
    try:
        model = _architecture(name, seed, num_classes)
    finally:
        torch.random.set_rng_state(state)
    if weights is None:
        src = ModelSource(name, f"random(seed={seed})", "random")
    elif (Path(str(weights)).suffix in (".pt", ".pth", ".ckpt", ".bin")
          or Path(str(weights)).exists()):
        path = Path(weights)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise ValueError(f"{path} does not hold a state dict")
        try:
            model.load_state_dict(sd)
        except RuntimeError as exc:
            raise ValueError(f"{path} does not fit {name}: {str(exc).splitlines()[0]}") from None
        src = ModelSource(name, str(path), "checkpoint", _sha256(path))
    else:
        model, src = _torchvision_weights(name, str(weights))
    model.eval()
    if verbose:
        print(f"model {src}")
    return model, src


def _torchvision_weights(name: str, weights: str) -> tuple[nn.Module, ModelSource]:
    import torchvision

    if name == "cifar_net":
        raise ValueError("cifar_net has no torchvision weights; pass a checkpoint path or train "
                         "one with `liecheck train cifar_net`")
    builder = getattr(torchvision.models, name)
    enum = torchvision.models.get_model_weights(name)
    key = weights.split(".")[-1]
    try:
        w = enum[key] if key != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(f"unknown torchvision weights '{weights}' for {name}; choose one of "
                         f"{', '.join(e.name for e in enum)}") from None
    try:
        model = builder(weights=w)
    except Exception as exc:  # no network and not cached
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise RuntimeError(f"could not load torchvision weights {w} ({type(exc).__name__}); "
                           f"put the file {Path(w.url).name} into {cache} or pass a checkpoint "
                           "path") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    sha = _sha256(path) if path.exists() else None
    return model, ModelSource(name, str(w), "torchvision", sha)
