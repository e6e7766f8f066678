"""Singular-value ratios of Figure 3 (Sixt et al. 2020, section 2.2, PatternNet and
PatternAttribution).

Per layer, with 3x3 kernels sliced to their centre tap (:mod:`.taps`):

* ``sigma1 / sigma2`` of ``W_l``, of the pattern ``A_l`` and of ``W_l (*) A_l``
  (Figure 3a, b);
* of the inter-layer chain members ``T_l = sqrt(S_l) V_l U_{l+1} sqrt(S_{l+1})``
  (Figure 3c), where ``M_l^T = U_l S_l V_l`` is the SVD of the transposed layer
  matrix (``M_l`` is ``(out, in)``, so ``M_l^T`` maps the relevance at the layer's
  output back to its input) and layer ``l + 1`` follows layer ``l`` in the forward
  pass. Then ``M_l^T M_{l+1}^T = U_l sqrt(S_l) T_l sqrt(S_{l+1}) V_{l+1}``: a large
  ``sigma1(T_l) / sigma2(T_l)`` means the top singular directions of consecutive
  layers line up and the chain collapses quickly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .taps import LayerMatrix, layer_matrices


def sv_ratio(m: torch.Tensor | np.ndarray) -> float:
    """``sigma1 / sigma2`` of a matrix (inf if ``sigma2 == 0``, NaN for rank < 2 shapes)."""
    s = np.linalg.svd(np.asarray(torch.as_tensor(m).detach().cpu().double()),
                      compute_uv=False)
    if s.size < 2:
        return float("nan")
    return float(s[0] / s[1]) if s[1] > 0 else float("inf")


def inter_layer(m_l: torch.Tensor, m_next: torch.Tensor) -> np.ndarray:
    """``T_l = sqrt(S_l) V_l U_{l+1} sqrt(S_{l+1})`` for consecutive layer matrices.

    Parameters
    ----------
    m_l, m_next : ``(out, in)`` matrices of layer ``l`` and the layer after it
        (``m_next.shape[1] == m_l.shape[0]``).

    Returns
    -------
    ``(k_l, k_next)`` array, ``k = min(out, in)`` of each layer (reduced SVDs). Its
    singular values are those of ``sqrt(S_l) V_l U_{l+1} sqrt(S_{l+1})``.
    """
    a = np.asarray(torch.as_tensor(m_l).detach().cpu().double()).T       # M_l^T
    b = np.asarray(torch.as_tensor(m_next).detach().cpu().double()).T    # M_{l+1}^T
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"layers do not chain: {m_l.shape} then {m_next.shape}")
    _, s_l, v_l = np.linalg.svd(a, full_matrices=False)
    u_n, s_n, _ = np.linalg.svd(b, full_matrices=False)
    return np.sqrt(s_l)[:, None] * (v_l @ u_n) * np.sqrt(s_n)[None, :]


def _kinds(m: LayerMatrix) -> dict[str, torch.Tensor]:
    out = {"W": m.weight}
    if m.pattern is not None:
        out["A"] = m.pattern
        out["W*A"] = m.weight * m.pattern
    return out


def singular_ratios(model: nn.Module, patterns: Mapping[str, torch.Tensor] | None = None,
                    spatial: Mapping[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """Figure 3 as a table: ``sigma1 / sigma2`` per layer for W, A, W (*) A and for
    the inter-layer matrices.

    Parameters
    ----------
    model : any traceable CNN (conv and dense layers are used; BatchNorm after a
        conv is folded into it, as everywhere in liecheck).
    patterns : optional node or module name -> pattern tensor of the weight's shape
        (e.g. from :mod:`liecheck.patterns`). Without patterns only ``W`` is reported.
    spatial : ``(H, W)`` of the map a flattening dense layer reads, per layer name
        (default: square; see :func:`~liecheck.theory.taps.layer_matrices`).

    Returns
    -------
    DataFrame with columns ``layer`` (node name), ``module``, ``index`` (position in
    execution order), ``kind`` (``W``, ``A``, ``W*A``), ``part`` (``"layer"`` for the
    matrix itself, ``"inter"`` for ``T_l`` between this layer and the next one),
    ``shape``, ``sigma1``, ``sigma2``, ``ratio``. Inter-layer rows exist only where
    the next layer's input size equals this layer's output size.
    """
    mats = layer_matrices(model, patterns, spatial)
    rows = []
    for i, m in enumerate(mats):
        for kind, w in _kinds(m).items():
            s = np.linalg.svd(w.detach().cpu().double().numpy(), compute_uv=False)
            rows.append(_row(m, i, kind, "layer", tuple(w.shape), s))
        if i + 1 < len(mats) and mats[i + 1].weight.shape[1] == m.weight.shape[0]:
            nxt = _kinds(mats[i + 1])
            for kind, w in _kinds(m).items():
                if kind not in nxt:
                    continue
                t = inter_layer(w, nxt[kind])
                s = np.linalg.svd(t, compute_uv=False)
                rows.append(_row(m, i, kind, "inter", t.shape, s))
    return pd.DataFrame(rows)


def _row(m: LayerMatrix, i: int, kind: str, part: str, shape, s: np.ndarray) -> dict:
    s1 = float(s[0])
    s2 = float(s[1]) if s.size > 1 else float("nan")
    ratio = s1 / s2 if s.size > 1 and s2 > 0 else (float("inf") if s.size > 1 else np.nan)
    return {"layer": m.name, "module": m.module, "index": i, "kind": kind, "part": part,
                "shape": tuple(int(d) for d in shape), "sigma1": s1, "sigma2": s2, "ratio": ratio}
