"""Per-layer matrices of a CNN: conv kernels sliced to their centre tap, dense weights.

The paper's appendix B and Figure 3 treat every 3x3 convolution as a 1x1
convolution ("we sliced the 3x3 convolutional kernels to 1x1 kernels"): the
kernel ``(c_out, c_in, kh, kw)`` becomes the ``(c_out, c_in)`` matrix of its centre
position ``(kh // 2, kw // 2)``. The first dense layer after a flatten of a
``(C, H, W)`` feature map has a weight ``(out, C * H * W)``; it is viewed as
``(out, C, H * W)`` and its centre position ``(H // 2, W // 2)`` is taken, giving an
``(out, C)`` matrix (the reference code did the same for VGG-16's 7x7 map).

All matrices are in PyTorch's orientation ``(out, in)``: the backward pass maps a
vector at the layer's output ``r`` (``out``) to ``r @ M`` (``in``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..engine.graph import Graph, trace


def centre_tap(weight: torch.Tensor) -> torch.Tensor:
    """The centre position of a conv kernel.

    Parameters
    ----------
    weight : ``(c_out, c_in, kh, kw)`` conv kernel, or a 2-D ``(out, in)`` matrix
        (returned unchanged).

    Returns
    -------
    ``(c_out, c_in)`` tensor ``weight[:, :, kh // 2, kw // 2]``.
    """
    if weight.dim() == 2:
        return weight
    if weight.dim() != 4:
        raise ValueError(f"expected a conv kernel (c_out, c_in, kh, kw) or a matrix, got shape "
                         f"{tuple(weight.shape)}")
    kh, kw = weight.shape[-2:]
    return weight[:, :, kh // 2, kw // 2]


def dense_centre(weight: torch.Tensor, channels: int, spatial: tuple[int, int] | None = None
                 ) -> torch.Tensor:
    """Centre position of a dense layer that reads a flattened ``(C, H, W)`` map.

    Parameters
    ----------
    weight : ``(out, C * H * W)`` dense weight.
    channels : ``C``.
    spatial : ``(H, W)``; default: a square map ``H = W = sqrt(in / C)``.

    Returns
    -------
    ``(out, C)`` tensor: ``weight.view(out, C, H, W)[:, :, H // 2, W // 2]``.
    """
    out, n_in = weight.shape
    if n_in % channels:
        raise ValueError(f"dense weight with {n_in} inputs cannot read {channels} channels")
    hw = n_in // channels
    if spatial is None:
        side = math.isqrt(hw)
        if side * side != hw:
            raise ValueError(f"the flattened map has {hw} positions per channel, not a square; "
                             "pass its (H, W)")
        spatial = (side, side)
    h, w = spatial
    if h * w != hw:
        raise ValueError(f"(H, W) = {spatial} does not fit {hw} positions per channel")
    return weight.view(out, channels, h, w)[:, :, h // 2, w // 2]


@dataclass
class LayerMatrix:
    """One conv / dense layer as a matrix.

    Attributes
    ----------
    name : node name in the traced graph (e.g. ``features_0``).
    module : the module's qualified name (e.g. ``features.0``), or None.
    layer : ``"conv"`` or ``"dense"``.
    weight : ``(out, in)`` centre tap of the (BatchNorm-folded) weight.
    pattern : ``(out, in)`` centre tap of the pattern, or None.
    sliced : True if a conv centre tap or a dense layer's centre position was taken.
    """

    name: str
    module: str | None
    layer: str
    weight: torch.Tensor
    pattern: torch.Tensor | None = None
    sliced: bool = False


def _find_pattern(patterns: Mapping | None, node, graph: Graph):
    if not patterns:
        return None
    keys = [node.name, node.module] + [k for k, v in graph.aliases.items() if v == node.name]
    for k in keys:
        if k is not None and k in patterns:
            return patterns[k]
    return None


def layer_matrices(model: nn.Module | Graph, patterns: Mapping[str, torch.Tensor] | None = None,
                   spatial: Mapping[str, tuple[int, int]] | None = None) -> list[LayerMatrix]:
    """The conv and dense layers of ``model`` in execution order, as matrices.

    Parameters
    ----------
    model : a model (traced on a copy; BatchNorm after a conv is folded into it) or
        a traced :class:`~liecheck.engine.graph.Graph`.
    patterns : optional node or module name -> pattern tensor of that layer's
        weight shape (PatternNet / PatternAttribution, Kindermans et al. 2018).
    spatial : optional node or module name -> ``(H, W)`` of the flattened map a
        dense layer reads (default: square).

    Returns
    -------
    list of :class:`LayerMatrix`. Grouped convolutions are rejected.
    """
    graph = model if isinstance(model, Graph) else trace(model)
    out: list[LayerMatrix] = []
    prev_channels: int | None = None
    for node in graph.linear_nodes(("conv", "dense")):
        w = node.op.weight.detach()
        a = _find_pattern(patterns, node, graph)
        if a is not None:
            a = torch.as_tensor(a).detach().to(w)
            if tuple(a.shape) != tuple(w.shape):
                raise ValueError(f"pattern for '{node.name}' has shape {tuple(a.shape)}, the "
                                 f"weight has {tuple(w.shape)}")
        if node.layer == "conv":
            if getattr(node.op, "groups", 1) != 1:
                raise ValueError(f"'{node.name}' is a grouped convolution; its centre tap is not "
                                 "one (c_out, c_in) matrix")
            m = LayerMatrix(node.name, node.module, "conv", centre_tap(w),
                            None if a is None else centre_tap(a), sliced=w.shape[-1] > 1)
        else:
            n_in = w.shape[1]
            sp = None
            if spatial:
                sp = spatial.get(node.name, spatial.get(node.module or "", None))
            if prev_channels is not None and n_in != prev_channels and n_in % prev_channels == 0:
                m = LayerMatrix(node.name, node.module, "dense",
                                dense_centre(w, prev_channels, sp),
                                None if a is None else dense_centre(a, prev_channels, sp),
                                sliced=True)
            else:
                m = LayerMatrix(node.name, node.module, "dense", w, a)
        out.append(m)
        prev_channels = m.weight.shape[0]
    if not out:
        raise ValueError("the model has no conv or dense layers")
    return out


def backward_chain(model: nn.Module | Graph, use: str = "weight",
                   patterns: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
    """The matrices a backward pass multiplies with, from the logits down to the input.

    ``use`` is ``"weight"`` (W), ``"pattern"`` (A) or ``"pattern_x_weight"`` (W (*) A).
    Each matrix is ``(out, in)``, so a row vector at the logits is multiplied
    ``r @ M_1 @ M_2 ...``. Layers whose shapes do not chain (e.g. ResNet's
    projection shortcuts) are skipped with the main path kept.
    """
    mats = layer_matrices(model, patterns)
    if use != "weight" and any(m.pattern is None for m in mats):
        missing = [m.name for m in mats if m.pattern is None]
        raise ValueError(f"use='{use}' needs a pattern for every layer; missing: {missing}")
    pick = {"weight": lambda m: m.weight, "pattern": lambda m: m.pattern,
            "pattern_x_weight": lambda m: m.weight * m.pattern}
    if use not in pick:
        raise ValueError(f"use must be one of {list(pick)}, not '{use}'")
    chain: list[torch.Tensor] = []
    for m in reversed(mats):
        w = pick[use](m)
        if chain and chain[-1].shape[1] != w.shape[0]:
            continue  # a side branch: it does not continue the chain
        chain.append(w)
    return chain
