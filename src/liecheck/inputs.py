"""Checks at the API boundary: the input batch, the model's output and the targets.

Every public entry point (``attribute``, ``Attribution``, ``Explainer``, ``csc``,
``sanity``, ``random_logit`` and the CLI) runs these before any work, so that a
batch liecheck does not understand is refused with one sentence instead of a raw
torch error deep inside a walk (or, worse, a silently truncated target):

* :func:`validate_inputs`: a non-empty, finite, floating-point batch whose rank,
  channel count and dtype fit the model's first layer (the first conv or dense
  node of the traced graph);
* :func:`check_output`: the model's output is ``(N, classes)`` logits;
* :func:`resolve_targets`: the one place where a ``target`` argument becomes
  ``(N,)`` class indices.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .engine import ops
from .engine.graph import Graph, Node

# what a NumPy dtype kind holds, in words (for targets that are not integers)
_KINDS = {"b": "booleans", "f": "floats", "c": "complex numbers", "U": "strings",
          "S": "strings"}
# ops between the input and the first layer that keep the channel axis
_CHANNEL_KEEPING = (ops.Identity, ops.Pointwise, ops.MaxPool, ops.AvgPoolOp,
                    ops.AdaptiveAvgPoolOp, ops.AffineOp, ops.Pad)


def first_layer(graph: Graph) -> tuple[Node | None, list[Node]]:
    """The first conv / dense node in execution order and the nodes on the path
    (first argument to first argument) from the input up to it, input excluded.

    The path is empty when the layer does not read the input through a chain of
    single-input nodes (then only what the layer itself tells is checked).
    """
    layers = graph.linear_nodes(("conv", "dense"))
    if not layers:
        return None, []
    layer, path = layers[0], []
    node = layer
    while node.inputs:
        prev = graph.by_name[node.inputs[0]]
        if prev.name == graph.input:
            return layer, path[::-1]
        path.append(prev)
        node = prev
    return layer, []


def _shape(x: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def validate_inputs(x, graph: Graph) -> None:
    """Refuse, with one sentence, a batch the traced model cannot explain exactly.

    Parameters
    ----------
    x : the input batch ``(N, ...)``, e.g. ``(N, C, H, W)`` images.
    graph : the traced model.

    Raises
    ------
    TypeError : ``x`` is not a tensor, or not floating point.
    ValueError : an empty batch; a rank, channel count or dtype that does not fit the
        model's first layer; NaN or infinite values.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"inputs must be a tensor batch (N, C, H, W), not "
                        f"{type(x).__name__}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"the input batch is empty (shape {_shape(x)}); pass at least one "
                         "sample")
    if not x.is_floating_point():
        raise TypeError(f"inputs must be floating point, not {x.dtype}; convert them with "
                        "x.float() (after any scaling the model expects)")
    layer, path = first_layer(graph)
    if layer is not None:
        _check_first_layer(x, layer, path)
    if not bool(torch.isfinite(x.sum())):  # one reduction; NaN / Inf (or an overflow) show
        _check_finite(x)


def _check_finite(x: torch.Tensor) -> None:
    bad = ~torch.isfinite(x)
    if bad.any():
        n_nan = int(torch.isnan(x).sum())
        first = int(bad.reshape(x.shape[0], -1).any(1).nonzero()[0, 0])
        raise ValueError(f"the inputs hold {n_nan} NaN and {int(bad.sum()) - n_nan} infinite "
                         f"values (first in sample {first}); liecheck explains finite inputs "
                         "only")


def _check_first_layer(x: torch.Tensor, layer: Node, path: list[Node]) -> None:
    kind = "Conv2d" if layer.layer == "conv" else "Linear"
    op, where = layer.op, f"'{layer.module or layer.name}' ({kind})"
    if x.dtype != op.weight.dtype:
        raise ValueError(f"inputs are {x.dtype} but the model's first layer {where} holds "
                         f"{op.weight.dtype} weights; convert one to the other (e.g. "
                         f"x.to({op.weight.dtype}))")
    keeps = all(isinstance(n.op, _CHANNEL_KEEPING) for n in path)
    if layer.layer == "conv":
        c = op.weight.shape[1] * op.groups
        if any(isinstance(n.op, ops.Rearrange) and not isinstance(n.op, (ops.Identity, ops.Pad))
               for n in path):
            return
        if x.dim() != 4:
            hint = " (add the batch axis with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise ValueError(f"inputs must be a (N, C, H, W) batch for the model's first layer "
                             f"{where} with {c} input channels, got shape {_shape(x)}{hint}")
        if keeps and x.shape[1] != c:
            raise ValueError(f"the model's first layer {where} takes {c} input channels, the "
                             f"inputs have {x.shape[1]} (shape {_shape(x)})")
        return
    features = op.weight.shape[1]  # dense
    if not path and x.dim() != 2:
        raise ValueError(f"inputs must be a (N, features) batch for the model's first layer "
                         f"{where} with {features} features, got shape {_shape(x)}")
    if all(isinstance(n.op, (ops.Reshape, ops.Identity)) for n in path):
        per_sample = int(np.prod(x.shape[1:]))
        if per_sample != features:
            raise ValueError(f"the model's first layer {where} takes {features} features per "
                             f"sample, the inputs have {per_sample} (shape {_shape(x)})")


def check_output(shape: tuple[int, ...] | torch.Size, n: int) -> None:
    """Refuse a model output that is not ``(n, classes)`` logits for a batch of ``n``."""
    if len(shape) != 2 or shape[0] != n:
        raise ValueError(f"the model's output for a batch of {n} has shape {tuple(shape)}; "
                         "liecheck explains classifiers whose output is (N, classes) logits")


def resolve_targets(target, n: int, n_classes: int | None,
                    predict: Callable[[], torch.Tensor] | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The explained class of each of ``n`` samples, ``(n,)`` int64 on ``device``.

    Parameters
    ----------
    target : ``None`` (the predicted classes), an int, or ``n`` integer class indices
        (a sequence, NumPy array or integer tensor); one index is used for every
        sample. Floats (even ``2.0``), booleans and strings are refused: a class is an
        index, never a rounded number.
    n : batch size.
    n_classes : the model's number of classes (``None``: range not checked here).
    predict : called (only) for ``target=None``; returns the ``(n,)`` predicted classes.
    device : where the result lives (default: the given tensor's device, else CPU).
    """
    if target is None:
        if predict is None:
            raise ValueError("target=None needs the model's prediction")
        return predict().long().to(device) if device is not None else predict().long()
    if isinstance(target, torch.Tensor):
        t, dev = target.detach(), target.device
        bad_kind = (None if not (t.is_floating_point() or t.is_complex()
                                 or t.dtype == torch.bool) else str(t.dtype))
    else:
        t, dev = None, torch.device("cpu")
        try:
            arr = np.asarray(target)
        except ValueError:  # a ragged nesting
            arr = np.asarray(target, dtype=object)
        bad_kind = None if arr.dtype.kind in "iu" else _KINDS.get(arr.dtype.kind, "objects")
        if bad_kind is None:
            t = torch.as_tensor(arr)
    if bad_kind is not None:
        shown = "" if isinstance(target, torch.Tensor) else f" ({target!r:.60})"
        raise ValueError(f"target must hold integer class indices, not {bad_kind}{shown}")
    if t.dim() > 1:
        raise ValueError(f"target must be an int or a 1-D sequence of class indices, not "
                         f"shape {tuple(t.shape)}")
    t = t.reshape(-1).long()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries for a batch of {n}")
    if n_classes is not None and t.numel() and (t.min() < 0 or t.max() >= n_classes):
        bad = t[(t < 0) | (t >= n_classes)][0]
        raise ValueError(f"target {int(bad)} is out of range: the model has {n_classes} "
                         f"classes (0 ... {n_classes - 1})")
    return t.to(device if device is not None else dev)
