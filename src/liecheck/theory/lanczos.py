"""Top singular values of a matrix given only as products, by Golub-Kahan-Lanczos
bidiagonalisation with full reorthogonalisation (Golub & Van Loan, Matrix
Computations, 4th ed., section 10.4).

Why not ``scipy.sparse.linalg.svds``: its default ARPACK solver works on the normal
operator ``A^T A``, so a product computed with relative rounding ``eps`` leaves an
error of about ``eps * sigma1^2`` in the eigenvalues and ``sqrt(eps) * sigma1`` in a
small singular value: ``sigma2 / sigma1`` cannot be resolved below about 1e-8 in
float64 and 3e-4 in float32. The bidiagonalisation works with ``A`` and ``A^T``
separately and resolves ``sigma2`` down to about ``eps * sigma1``, which matters
exactly for the nearly rank-1 derivation matrices this toolkit is about.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np


def golub_kahan_svd(matvec: Callable[[np.ndarray], np.ndarray],
                    rmatvec: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int],
                    k: int = 2, tol: float = 1e-6, floor: float = 1e-13,
                    max_steps: int | None = None,
                    seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """Largest ``k`` singular values of ``A`` (``shape = (m, n)``).

    Parameters
    ----------
    matvec : ``v (n,) -> A v (m,)``.
    rmatvec : ``u (m,) -> A^T u (n,)``.
    shape : ``(m, n)``.
    k : how many singular values.
    tol, floor : stop when each of the top ``k`` Ritz triplets ``(s_i, u_i, v_i)`` has
        residual ``||A^T u_i - s_i v_i|| <= tol * s_i + floor * s_1`` (``A v_i = s_i u_i``
        holds exactly, so some singular value lies within the residual of ``s_i``):
        relative accuracy ``tol`` for each value, down to ``floor * sigma1``, which
        should match the rounding of the products (about 1e-13 for float64
        products, 1e-6 for float32).
    max_steps : at most this many steps (default ``min(m, n, 300)``).
    seed : seed of the random start vector.

    Returns
    -------
    ``(k,)`` float64, descending. Zeros are appended when ``A`` has rank < k (the
    Krylov space became invariant).
    """
    m, n = shape
    if not 0 < k <= min(m, n):
        raise ValueError(f"k={k} must be between 1 and min(m, n) = {min(m, n)}")
    steps = max_steps or min(m, n, 300)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n)
    vs = [v / np.linalg.norm(v)]
    us: list[np.ndarray] = []
    alphas: list[float] = []
    betas: list[float] = []
    s = np.zeros(0)
    beta = 0.0
    converged = False
    for j in range(steps):
        u = np.asarray(matvec(vs[-1]), dtype=np.float64).ravel()
        if us:
            u = u - beta * us[-1]
            u = _reorth(u, np.stack(us))
        alpha = float(np.linalg.norm(u))
        if alpha == 0.0:  # invariant subspace: the Ritz values so far are exact
            converged = True
            break
        us.append(u / alpha)
        alphas.append(alpha)
        w = np.asarray(rmatvec(us[-1]), dtype=np.float64).ravel() - alpha * vs[-1]
        w = _reorth(w, np.stack(vs))
        beta = float(np.linalg.norm(w))
        b = np.diag(alphas) + np.diag(betas, 1)
        p, s, _ = np.linalg.svd(b)
        betas.append(beta)
        if j + 1 >= k:
            res = beta * np.abs(p[-1, :k])
            if np.all(res <= tol * s[:k] + floor * s[0]):
                converged = True
                break
        if beta <= np.finfo(np.float64).eps * max(alphas):
            converged = True  # invariant subspace: the Ritz values are exact
            break
        vs.append(w / beta)
    if not converged and len(alphas) == steps and steps < min(m, n):
        warnings.warn(f"Golub-Kahan-Lanczos: top {k} singular values not converged to "
                      f"tol={tol}, floor={floor} within {steps} steps", RuntimeWarning,
                      stacklevel=2)
    out = np.zeros(k)
    out[: min(k, s.size)] = s[:k]
    return out


def _reorth(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Remove the components along the (orthonormal) rows of ``basis``, twice."""
    for _ in range(2):
        x = x - basis.T @ (basis @ x)
    return x
