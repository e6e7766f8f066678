"""Theorem 1 of Sixt et al. (2020), checked numerically on a chain of matrices.

Setting (paper appendix A): non-negative matrices ``A_1, A_2, ...`` without zero
columns, ``M_n = A_1 A_2 ... A_n`` and ``s_n`` the cosine of the largest angle
between two columns of ``M_n`` (eq. 19). ``s_0`` belongs to ``M_0 = I`` (orthogonal
columns, ``s_0 = 0``). Four lower bounds on ``s_n`` are reported; :data:`BOUNDS` says
which are valid in general (docs/theory.md has the derivations):

* ``bound_paper`` (eq. 36), **not valid in general**: ``1 - (1 - lambda)^n`` with the
  paper's ``lambda = eps_dot / L^2`` (``eps_dot`` the smallest dot product of two
  distinct raw columns of any ``A_k``, ``L`` the largest column L1 norm). Eq. 21-27
  assume unit-norm columns of ``M_n`` ("since the angle is independent of length"),
  but rescaling the columns of ``M_n`` changes ``M_n a``. Counterexample:
  ``J = [[1, 1], [0, 1]]`` repeated satisfies every condition (``eps_dot = 1``,
  ``L = 2``, ``lambda = 1/4``), yet ``1 - s_n = 1 - n / sqrt(n^2 + 1) ~ 1 / (2 n^2)``
  exceeds ``(3/4)^n`` for every ``n >= 25``: the convergence is polynomial.
* ``bound_pairs`` (eq. 27 applied per matrix), **not valid in general**:
  ``lambda_k = min_{a != b} <a, b> / (|a|_1 |b|_1)`` over the columns of ``A_k``;
  fails on the 2x2 pair of :data:`PAIR_COUNTEREXAMPLE` (``s_2 = 0.56 < 0.72``).
* ``bound_exact`` (corrected per-matrix bound), **valid**: as ``bound_pairs`` but with
  the rows of ``A_n`` weighted by the column norms of ``M_{n-1}``; with the weights
  eq. 21-27 are exact, so ``s_n >= s_{n-1} + lambda_n (1 - s_{n-1})`` holds.
* ``bound_global`` (Birkhoff-Hopf), **valid**: a bound from chain quantities alone.
  Columns ``x, y`` at Hilbert projective distance ``d`` have ``cos >= 1 / cosh(d / 2)``
  (Kantorovich), a non-negative matrix never expands that distance, and a strictly
  positive one contracts it by ``tanh(Delta(A) / 4)`` (Birkhoff), ``Delta(A)`` the
  largest distance between two of its columns. It is exponential, and it is 0 (says
  nothing) unless some ``A_k`` is strictly positive: with zero entries no
  exponential bound can hold in general (``J``).

Theorem 1's conclusion ``s_n -> 1`` survives (``bound_exact`` -> 1 whenever
infinitely many ``lambda_n`` stay away from 0, and ``J`` converges), but not the
rate, and only under the reading "*every* pair of columns has ``<a, b> >= eps_dot``":
read literally ("two column vectors"), ``block-diag(J, 1)`` satisfies it and keeps
an orthogonal column forever (``s_n = 0``). :func:`conditions` reports both readings.
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


BOUNDS = {
    "bound_paper": False,
    "bound_pairs": False,
    "bound_exact": True,
    "bound_global": True,
}
"""Bound column -> valid in general (a proven lower bound on ``s_n``)."""

J_COUNTEREXAMPLE = np.array([[1.0, 1.0], [0.0, 1.0]])
"""``J``: repeated, every condition of Theorem 1 holds but eq. 36 fails for n >= 25."""

PAIR_COUNTEREXAMPLE = (np.array([[0.1, 0.6], [3.8, 0.1]]), np.array([[0.1, 0.2], [5.1, 0.4]]))
"""Two 2x2 matrices on which the per-matrix eq. 27 bound fails (``s_2 = 0.56 < 0.72``)."""


def conditions(matrices: Sequence) -> dict[str, float]:
    """The quantities in Theorem 1's conditions, under both readings of "two columns".

    Returns
    -------
    dict with ``eps0`` (smallest column norm), ``L`` (largest column L1 norm),
    ``eps_dot_every_pair`` (smallest dot product of two distinct columns of any
    ``A_k``: the reading the proof needs), ``eps_dot_some_pair`` (per matrix the
    largest such dot product, smallest over the chain: the literal reading "two
    column vectors have a dot product of at least eps"), ``lambda_paper``
    (``eps_dot_every_pair / L^2``).
    """
    mats = _as_matrices(matrices)
    off = [(m.T @ m)[~np.eye(m.shape[1], dtype=bool)] for m in mats]
    big_l = max(float(m.sum(0).max()) for m in mats)
    every = min(float(o.min()) for o in off)
    return {"eps0": min(float(np.linalg.norm(m, axis=0).min()) for m in mats), "L": big_l,
            "eps_dot_every_pair": every,
            "eps_dot_some_pair": min(float(o.max()) for o in off),
            "lambda_paper": every / big_l ** 2}


def projective_diameter(a: np.ndarray) -> float:
    """Birkhoff's ``Delta(A)``: the largest Hilbert projective distance between two
    columns, ``max_{i,j,k,l} log(a_ki a_lj / (a_kj a_li))``; ``inf`` with a zero entry."""
    if (a <= 0).any():
        return float("inf")
    la = np.log(a)
    d = la[:, :, None] - la[:, None, :]  # (rows, i, j): log(a_ki / a_kj)
    return float((d.max(0) - d.min(0)).max())


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
    ``eps_dot / L^2``; not valid in general), ``lambda_pairs``/``bound_pairs``
    (per-matrix eq. 27 constant; not valid in general), ``lambda_exact``/``bound_exact``
    (with the column norms of ``M_{n-1}``; valid), ``diameter``/``bound_global``
    (Birkhoff-Hopf: ``1 / cosh(D_n / 2)`` with ``D_n`` a bound on the Hilbert diameter
    of the columns of ``M_n``; valid). Row 0 is ``M_0 = I`` (``s_0 = 0``).
    ``df.attrs["valid"]`` is :data:`BOUNDS`; ``df.attrs["violated"]`` lists the bound
    columns that exceed the measured ``s`` somewhere (beyond 1e-12).
    """
    mats = _as_matrices(matrices)
    lam_paper, _, _ = paper_lambda(mats)
    m = np.eye(mats[0].shape[0])
    s_prev = 0.0 if m.shape[0] > 1 else 1.0
    rows = [{"step": 0, "s": s_prev, "lambda_paper": lam_paper, "bound_paper": s_prev,
                 "lambda_pairs": np.nan, "bound_pairs": s_prev, "lambda_exact": np.nan,
                 "bound_exact": s_prev, "diameter": np.inf, "bound_global": s_prev}]
    b_pairs = b_exact = s_prev
    contraction, diam = 1.0, np.inf  # prod_{i<n} tanh(Delta_i / 4); bound on diam(M_n)
    for n, a in enumerate(mats, start=1):
        delta = projective_diameter(a)
        # the columns of M_n = M_{n-1} A_n lie in M_{n-1}'s image of A_n's cone: the
        # old diameter does not grow, and A_n's own diameter shrinks by prod tanh
        diam = min(diam, contraction * delta)
        contraction *= np.tanh(delta / 4) if np.isfinite(delta) else 1.0
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
                         "lambda_exact": lam_exact, "bound_exact": b_exact,
                         "diameter": diam,
                         "bound_global": (1 / np.cosh(diam / 2) if np.isfinite(diam)
                                          else 0.0)})
    df = pd.DataFrame(rows)
    df.insert(2, "one_minus_s", 1 - df["s"])
    df.attrs["valid"] = dict(BOUNDS)
    df.attrs["violated"] = [b for b in BOUNDS if (df[b] > df["s"] + 1e-12).any()]
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
