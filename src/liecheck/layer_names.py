"""The paper's layer names next to liecheck's node names.

liecheck names a layer by its torch.fx node (``features_21``, ``relu5``); the paper
uses the Keras names of its models (VGG-16 ``conv4_3``, ``fc1``; CIFAR net
``conv1`` ... ``fc6``), and a Keras layer includes its ReLU. :func:`paper_name`
maps a node or module name (either spelling, ``features_21`` or ``features.21``)
to the paper's name; :func:`layer_label` gives the text a figure or table shows.
"""

from __future__ import annotations

import re

_VGG_CONV = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_VGG_POOL = (4, 9, 16, 23, 30)


def _vgg16() -> dict[str, str]:
    names: dict[str, str] = {}
    block, idx = 1, 0
    for i in range(31):
        if i in _VGG_POOL:
            names[f"features.{i}"] = f"pool{block}"
            block, idx = block + 1, 0
        elif i in _VGG_CONV:
            idx += 1
            names[f"features.{i}"] = f"conv{block}_{idx}"
        else:                           # the ReLU after a conv belongs to it (Keras)
            names[f"features.{i}"] = names[f"features.{i - 1}"]
    names.update({"classifier.0": "fc1", "classifier.1": "fc1", "classifier.3": "fc2",
                  "classifier.4": "fc2", "classifier.6": "fc3"})
    return names


def _cifar_net() -> dict[str, str]:
    names = {f"conv{i}": f"conv{i}" for i in range(1, 5)}
    names.update({f"relu{i}": f"conv{i}" for i in range(1, 5)})
    names.update({"fc5": "fc5", "relu5": "fc5", "fc6": "fc6", "pool2": "pool2",
                  "pool4": "pool4"})
    return names


PAPER_NAMES = {"vgg16": _vgg16(), "cifar_net": _cifar_net()}


def dotted(name: str) -> str:
    """The module spelling of a node name: ``features_21`` -> ``features.21``."""
    return re.sub(r"_(\d+)", r".\1", name)


def paper_name(model: str, name: str) -> str | None:
    """The paper's name of node or module ``name`` of ``model`` (``None`` if unknown)."""
    table = PAPER_NAMES.get(model, {})
    base = name.split("+")[-1]
    for cand in (base, dotted(base), re.sub(r"_\d+$", "", base)):
        if cand in table:
            return table[cand]
    return None


def layer_label(model: str, name: str, logits: str | None = None) -> str:
    """``name`` with the paper's name in parentheses when they differ, e.g.
    ``relu5 (fc5)``, ``features_29 (conv5_3)``; ``logits`` marks the output node."""
    p = paper_name(model, name)
    if name == logits:
        p = f"{p}, logits" if p and p != name else "logits"
    return name if not p or p == name else f"{name} ({p})"
