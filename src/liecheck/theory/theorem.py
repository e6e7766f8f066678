"""Theorem 1 of Sixt et al. (2020), checked numerically on a chain of matrices.

Setting (paper appendix A): non-negative matrices ``A_1, A_2, ...`` without zero
columns, ``M_n = A_1 A_2 ... A_n`` and ``s_n`` the cosine of the largest angle
between two columns of ``M_n`` (eq. 19). Appendix B derives
``s_{n+1} >= s_n + lambda (1 - s_n)`` (eq. 27/30), hence

    s_n >= 1 - (1 - lambda)^n (1 - s_0)                                  (eq. 36)

with ``lambda = eps_dot / L^2``. Our reading of the definitions (eq. 27 and the
conditions above the theorem): ``eps_dot`` is the smallest dot product of two
distinct *raw* (not normalised) columns of any ``A_k``, and ``L`` the largest L1
norm of any column of any ``A_k``. Both are what eq. 27 needs:
``<a, b> / (|a|_1 |b|_1) >= eps_dot / L^2``. ``s_0`` belongs to ``M_0 = I`` (orthogonal
columns, ``s_0 = 0``), so the bound starts at ``s_1 >= lambda``.

Three lambdas are reported:

* ``lambda_paper``: ``eps_dot / L^2`` over the whole chain (the paper's constant);
* ``lambda_pairs``: per matrix, ``min_{a != b} <a, b> / (|a|_1 |b|_1)``: the quantity
  eq. 27 actually bounds, scale-invariant per column, hence tighter;
* ``lambda_exact``: as ``lambda_pairs`` but with ``a_i`` weighted by the norm of the
  i-th column of ``M_{n-1}``. The paper's eq. 21-27 assume unit-norm columns of
  ``M_n`` ("since the angle is independent of length"), but rescaling the columns
  of ``M_n`` changes ``M_n a``; with the weights the step ``s_{n+1} >= s_n +
  lambda (1 - s_n)`` holds exactly, so ``bound_exact`` is a proven lower bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch


def _as_matrices(matrices: Sequence) -> list[np.ndarray]:
    mats = [np.asarray(torch.as_tensor(m).detach().cpu().double()) for m in matrices]
    for k, m in enumerate(mats):
        if m.ndim != 2:
            raise ValueError(f"matrix {k} has shape {m.shape}; expected 2-D")
        if (m < 0).any():
            raise ValueError(f"matrix {k} has negative entries; Theorem 1 needs non-negative "
                             "matrices")
        if (m.sum(0) == 0).any():
            raise ValueError(f"matrix {k} has a zero column; Theorem 1 excludes zero columns "
                             "(the angle to a zero vector is undefined)")
        if m.shape[1] < 2:
            raise ValueError(f"matrix {k} has one column; the angle needs two")
        if k and mats[k - 1].shape[1] != m.shape[0]:
            raise ValueError(f"matrix {k} ({m.shape}) does not chain with matrix {k - 1} "
                             f"({mats[k - 1].shape})")
    return mats


def min_column_cosine(m: np.ndarray) -> float:
    """``s`` of eq. 19: the smallest cosine between two distinct columns of ``m``."""
    u = m / np.linalg.norm(m, axis=0, keepdims=True)
    c = u.T @ u
    np.fill_diagonal(c, np.inf)
    return float(min(c.min(), 1.0))


def _min_pair_ratio(a: np.ndarray, weights: np.ndarray | None = None) -> float:
    """``min_{i != j} <a_i, a_j> / (|a_i|_1 |a_j|_1)`` over columns (rows scaled by weights)."""
    if weights is not None:
        a = a * weights[:, None]
    l1 = a.sum(0)
    r = (a.T @ a) / np.outer(l1, l1)
    np.fill_diagonal(r, np.inf)
    return float(r.min())


def paper_lambda(matrices: Sequence) -> tuple[float, float, float]:
    """``(lambda, eps_dot, L)`` of the paper: smallest dot product of two distinct
    columns over all matrices, largest column L1 norm, and ``eps_dot / L^2``."""
    mats = _as_matrices(matrices)
    eps = min(float(np.min((m.T @ m)[~np.eye(m.shape[1], dtype=bool)])) for m in mats)
    big_l = max(float(m.sum(0).max()) for m in mats)
    return eps / big_l ** 2, eps, big_l


def theorem1(matrices: Sequence) -> pd.DataFrame:
    """Measured ``s_n`` of a non-negative chain against the Theorem 1 bounds.

    Parameters
    ----------
    matrices : ``A_1, ..., A_N`` (tensors or arrays, non-negative, no zero columns;
        ``A_k`` of shape ``(m_{k-1}, m_k)``). The columns of ``M_n = A_1 ... A_n``
        are compared; for a backward pass ``r @ W_1 @ W_2 ...`` pass the transposed
        weights in reverse order.

    Returns
    -------
    DataFrame, one row per step ``n = 0..N``: ``s`` (measured, eq. 19),
    ``one_minus_s``, ``lambda_paper``/``bound_paper`` (eq. 36 with the chain's
    ``eps_dot / L^2``), ``lambda_pairs``/``bound_pairs`` (per-matrix constant, product
    of ``1 - lambda_k``), ``lambda_exact``/``bound_exact`` (with the column norms of
    ``M_{n-1}``; a proven bound). Row 0 is ``M_0 = I`` (``s_0 = 0``).
    """
    mats = _as_matrices(matrices)
    lam_paper, _, _ = paper_lambda(mats)
    m = np.eye(mats[0].shape[0])
    s_prev = 0.0 if m.shape[0] > 1 else 1.0
    rows = [{"step": 0, "s": s_prev, "lambda_paper": lam_paper, "bound_paper": s_prev,
                 "lambda_pairs": np.nan, "bound_pairs": s_prev, "lambda_exact": np.nan,
                 "bound_exact": s_prev}]
    b_pairs = b_exact = s_prev
    for n, a in enumerate(mats, start=1):
        col_norms = np.linalg.norm(m, axis=0)
        lam_pairs = _min_pair_ratio(a)
        lam_exact = _min_pair_ratio(a, col_norms)
        m = m @ a
        m = m / np.abs(m).max()  # one global scale: keeps the columns' relative norms
        s = min_column_cosine(m)
        b_pairs = b_pairs + lam_pairs * (1 - b_pairs)
        b_exact = b_exact + lam_exact * (1 - b_exact)
        rows.append({"step": n, "s": s, "lambda_paper": lam_paper,
                         "bound_paper": 1 - (1 - lam_paper) ** n * (1 - rows[0]["s"]),
                         "lambda_pairs": lam_pairs, "bound_pairs": b_pairs,
                         "lambda_exact": lam_exact, "bound_exact": b_exact})
        s_prev = s
    df = pd.DataFrame(rows)
    df.insert(2, "one_minus_s", 1 - df["s"])
    return df


def convergence_rate(steps, one_minus_s, floor: float = 1e-12) -> tuple[float, float]:
    """Fit ``1 - s_n = C exp(-rate n)`` by least squares on ``log(1 - s_n)``.

    Points at or below ``floor`` (converged up to rounding) are left out.

    Returns
    -------
    ``(rate, lambda_fit)`` with ``lambda_fit = 1 - exp(-rate)``, the per-step
    constant comparable to eq. 36's ``lambda``. NaN with fewer than two points.
    """
    x = np.asarray(steps, dtype=float)
    y = np.asarray(one_minus_s, dtype=float)
    keep = np.isfinite(y) & (y > floor)
    if keep.sum() < 2:
        return float("nan"), float("nan")
    slope, _ = np.polyfit(x[keep], np.log(y[keep]), 1)
    rate = -float(slope)
    return rate, float(1 - np.exp(-rate))


def random_nonneg_chain(shapes: Sequence[tuple[int, int]], kind: str = "positive",
                        seed: int = 0) -> list[np.ndarray]:
    """Random non-negative matrices: ``"positive"`` (``|N(0,1)|``) or ``"uniform"`` (U(0,1)).

    (``max(0, N)`` can have zero columns for few rows, which Theorem 1 excludes.)
    """
    rng = np.random.default_rng(seed)
    if kind == "positive":
        return [np.abs(rng.standard_normal(s)) for s in shapes]
    if kind == "uniform":
        return [rng.uniform(size=s) for s in shapes]
    raise ValueError(f"kind must be 'positive' or 'uniform', not '{kind}'")
