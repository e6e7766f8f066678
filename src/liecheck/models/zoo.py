"""``load(name, weights=...)``: cifar_net, vgg16, resnet50 from torchvision weights,
a local checkpoint, or a seeded random initialisation. The source is reported."""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoint import MissingFile, check_state_dict, read, warn_non_finite
from .cifar_net import cifar_net

MODEL_NAMES = ("cifar_net", "vgg16", "resnet50")
# how torchvision weights are named: IMAGENET1K_V1, DEFAULT, VGG16_Weights.IMAGENET1K_V1
_WEIGHTS_NAME = re.compile(r"([A-Za-z0-9]+_Weights\.)?[A-Z][A-Z0-9_]*")


def check_model_name(name: str) -> str:
    """``name`` if it is one of :data:`MODEL_NAMES`, else a ``ValueError`` naming the
    choices and the nearest one (``VGG16`` -> did you mean vgg16?)."""
    if name in MODEL_NAMES:
        return name
    lower = {n.lower().replace("-", "").replace("_", ""): n for n in MODEL_NAMES}
    key = str(name).lower().replace("-", "").replace("_", "")
    close = ([lower[key]] if key in lower else
             [lower[k] for k in difflib.get_close_matches(key, list(lower), n=2, cutoff=0.6)])
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"unknown model '{name}'.{hint} Choose one of {', '.join(MODEL_NAMES)}.")


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
    check_model_name(name)
    raise AssertionError(name)          # unreachable: MODEL_NAMES are all built above


def load(name: str, weights: str | os.PathLike | None = None, seed: int = 0,
         num_classes: int | None = None, verbose: bool = True) -> tuple[nn.Module, ModelSource]:
    """Load a model in eval mode and say where its weights came from.

    Parameters
    ----------
    name : ``"cifar_net"``, ``"vgg16"`` or ``"resnet50"``.
    weights : ``None`` for a seeded random initialisation; a torchvision weights
        name such as ``"IMAGENET1K_V1"`` or ``"VGG16_Weights.IMAGENET1K_V1"`` (used
        when cached or downloadable); or a path to a checkpoint (a state dict, loaded
        with ``weights_only=True``). A path that does not exist, a directory, an
        empty or unreadable file and a state dict that does not fit (its missing,
        unexpected and mismatched keys listed) are refused with one sentence;
        non-finite weights give a warning.
    seed : seed of the random initialisation.

    Returns
    -------
    ``(model, source)``; with ``verbose`` the source is also printed to stderr (stdout
    stays free for a caller's own output).
    """
    check_model_name(name)
    state = torch.random.get_rng_state()
    try:
        model = _architecture(name, seed, num_classes)
    finally:
        torch.random.set_rng_state(state)
    if weights is None:
        src = ModelSource(name, f"random(seed={seed})", "random")
    elif isinstance(weights, os.PathLike) or Path(str(weights)).exists():
        src = _load_checkpoint(model, name, Path(weights))
    elif _weights_enum(name, str(weights)) is not None:
        model, src = _torchvision_weights(name, str(weights))
    elif name != "cifar_net" and _WEIGHTS_NAME.fullmatch(str(weights)):
        raise MissingFile(f"unknown torchvision weights '{weights}' for {name} (and no file of "
                          f"that name exists); choose one of {', '.join(_weights_names(name))}")
    else:
        raise FileNotFoundError(f"checkpoint not found: {weights} (no such file)")
    model.eval()
    if verbose:
        print(f"model {src}", file=sys.stderr)
    return model, src


def _load_checkpoint(model: nn.Module, name: str, path: Path) -> ModelSource:
    """Load a state dict file into ``model``; every failure is one sentence naming the file."""
    sd = read(path)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} does not hold a state dict (it holds a {type(sd).__name__})")
    check_state_dict(model, sd, f"{path} does not fit {name}")
    model.load_state_dict(sd)
    warn_non_finite(sd, f"checkpoint {path}")
    return ModelSource(name, str(path), "checkpoint", _sha256(path))


def _weights_names(name: str) -> list[str]:
    import torchvision

    return [e.name for e in torchvision.models.get_model_weights(name)] + ["DEFAULT"]


def _weights_enum(name: str, weights: str):
    """The torchvision weights enum member ``weights`` names for model ``name``, or None."""
    import torchvision

    if name == "cifar_net":
        return None
    enum = torchvision.models.get_model_weights(name)
    prefix, _, key = weights.rpartition(".")
    if prefix not in ("", enum.__name__):
        return None
    if key == "DEFAULT":
        return enum.DEFAULT
    return enum.__members__.get(key)


def _torchvision_weights(name: str, weights: str) -> tuple[nn.Module, ModelSource]:
    import torchvision

    builder = getattr(torchvision.models, name)
    w = _weights_enum(name, weights)
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
