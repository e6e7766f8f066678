"""The paper's layer names next to liecheck's node names.

liecheck names a layer by its torch.fx node (``features_21``, ``relu5``); the paper
uses the Keras names of its models (VGG-16 ``conv4_3``, ``fc1``; CIFAR net
``conv1`` ... ``fc6``), and a Keras layer includes its ReLU. ResNet-50 is named as
in the Keras/Caffe release of He et al. (2016) that the paper's code loaded: stage
``s`` block ``b`` is ``res{s}{b}`` (``layer4.2`` -> ``res5c``), its convolutions
``res5c_branch2a/2b/2c`` and the shortcut ``res5c_branch1``, the logits ``fc1000``.
:func:`paper_name` maps a node or module name (either spelling, ``features_21`` or
``features.21``) to the paper's name; :func:`layer_label` gives the text a figure or
table shows, :func:`label_layers` applies it to a table's layer columns.
"""

from __future__ import annotations

import re

import pandas as pd

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

# torchvision ResNet-50 node/module -> Keras/Caffe name (see the module docstring)
_RESNET_TOP = {"conv1": "conv1", "bn1": "conv1", "relu": "conv1", "maxpool": "pool1",
               "avgpool": "avg_pool", "fc": "fc1000"}
_RESNET_BRANCH = {"conv1": "branch2a", "bn1": "branch2a", "relu": "branch2a",
                  "conv2": "branch2b", "bn2": "branch2b", "relu_1": "branch2b",
                  "conv3": "branch2c", "bn3": "branch2c", "downsample_0": "branch1",
                  "downsample_1": "branch1"}
_RESNET_BLOCK = re.compile(r"layer([1-4])_(\d+)(?:_(.+))?$")


def _resnet50(name: str) -> str | None:
    name = name.replace(".", "_")
    if name in _RESNET_TOP:
        return _RESNET_TOP[name]
    m = _RESNET_BLOCK.match(name)
    if not m:
        return None
    block = f"res{int(m[1]) + 1}{chr(ord('a') + int(m[2]))}"
    part = m[3]
    if part is None or part == "relu_2":            # the block's output (after the add)
        return block
    return f"{block}_{_RESNET_BRANCH[part]}" if part in _RESNET_BRANCH else None


def dotted(name: str) -> str:
    """The module spelling of a node name: ``features_21`` -> ``features.21``."""
    return re.sub(r"_(\d+)", r".\1", name)


def paper_name(model: str, name: str) -> str | None:
    """The paper's name of node or module ``name`` of ``model`` (``None`` if unknown).

    ``model`` is ``vgg16``, ``cifar_net`` or ``resnet50``; ``name`` may be a node
    (``features_21``), a module (``features.21``) or a folded name (``conv+bn``).
    """
    base = str(name).split("+")[-1]
    if model == "resnet50":
        return _resnet50(base)
    table = PAPER_NAMES.get(model, {})
    for cand in (base, dotted(base), re.sub(r"_\d+$", "", base)):
        if cand in table:
            return table[cand]
    return None


def layer_label(model: str, name: str, logits: str | None = None) -> str:
    """``name`` in the node spelling (``features.29`` is shown as ``features_29``: one
    spelling in every figure and table, both are accepted as input) with the paper's
    name in parentheses when they differ, e.g. ``relu5 (fc5)``, ``features_29
    (conv5_3)``; ``logits`` marks the output node."""
    p = paper_name(model, name)
    if name == logits:
        p = f"{p}, logits" if p and p != name else "logits"
    shown = str(name).replace(".", "_")
    return shown if not p or p == shown else f"{shown} ({p})"


LAYER_COLUMNS = ("start", "layer", "first_conv")


def label_layers(df: pd.DataFrame, model: str | None = None,
                 columns: tuple[str, ...] = LAYER_COLUMNS) -> pd.DataFrame:
    """A copy of ``df`` whose layer columns (``start``, ``layer``, ``first_conv``) read
    ``node (paper name)``; the model is the row's ``model`` column, else ``model``.
    Cells that hold several layers (``a+b``) or unknown names stay as they are."""
    cols = [c for c in columns if c in df.columns]
    if not cols or df.empty:
        return df
    out = df.copy()
    models = out["model"] if "model" in out.columns else pd.Series(model or "", out.index)
    for c in cols:
        out[c] = [v if not isinstance(v, str) else layer_label(str(mo), v)
                  for mo, v in zip(models, out[c])]
    return out
