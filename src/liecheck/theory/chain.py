"""The matrix-chain simulation of the paper's appendix B (Figure 7).

Random start vectors are multiplied by a chain of random matrices with the
shapes of VGG-16's backward pass; after every product the vectors' mean absolute
cosine similarity shows how fast the chain collapses them onto one direction
(Sixt et al. 2020, appendix B "Convergence Speed" and Figure 7).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .taps import backward_chain

# VGG-16's backward pass with 1x1 centre taps: fc3, fc2, fc1 (centre of the 7x7 map),
# conv5_3 ... conv1_1; each (in, out) of the backward map r -> r @ M.
VGG16_SHAPES: tuple[tuple[int, int], ...] = (
    (1000, 4096), (4096, 4096), (4096, 512),
    (512, 512), (512, 512), (512, 512),      # conv5_3, conv5_2, conv5_1
    (512, 512), (512, 512), (512, 256),      # conv4_3, conv4_2, conv4_1
    (256, 256), (256, 256), (256, 128),      # conv3_3, conv3_2, conv3_1
    (128, 128), (128, 64),                   # conv2_2, conv2_1
    (64, 64), (64, 3),                       # conv1_2, conv1_1
)

ALPHAS = (1, 2, 3, 4, 5, 10)
BASE_FAMILIES = ("vanilla", "relu", "non-negative", "positive", "stochastic")
FAMILIES = BASE_FAMILIES + tuple(f"alpha{a}-beta{a - 1}" for a in ALPHAS) + (
    "learned", "relu-learned")

_AB = re.compile(r"^alpha(\d+(?:\.\d+)?)-beta(\d+(?:\.\d+)?)$")


def alpha_beta_family(alpha: float, beta: float | None = None) -> str:
    """Family name for ``alpha * W+ + beta * W-`` (default ``beta = alpha - 1``)."""
    beta = alpha - 1 if beta is None else beta
    return f"alpha{alpha:g}-beta{beta:g}"


def family_coefficients(family: str) -> tuple[float, float, bool, bool]:
    """Family -> ``(a, b, relu, stochastic)``.

    The family's matrix is ``a W+ + b W-`` (``W+ = max(0, W)``, ``W- = min(0, W)``,
    ``W ~ N(0, 1)``), its columns divided by their sums when ``stochastic``, with a
    ReLU after each product when ``relu``. ``|W| = W+ - W-`` is ``(1, -1)``.
    """
    table = {"vanilla": (1.0, 1.0, False, False), "relu": (1.0, 1.0, True, False),
             "non-negative": (1.0, 0.0, False, False), "positive": (1.0, -1.0, False, False),
             # |N| with every column summing to one (the reference code's w / w.sum(0)):
             # each output entry is a weighted mean of the input vector
             "stochastic": (1.0, -1.0, False, True)}
    if family in table:
        return table[family]
    m = _AB.match(family)
    if m:
        return float(m.group(1)), float(m.group(2)), False, False
    raise ValueError(f"unknown matrix family '{family}'; choose from {', '.join(FAMILIES)} "
                     "or 'alpha<a>-beta<b>'")


def mean_abs_cosine(x: torch.Tensor, include_diagonal: bool = False) -> torch.Tensor:
    """Mean absolute cosine similarity between the rows of each batch entry.

    Parameters
    ----------
    x : ``(..., n, d)``: ``n`` vectors of dimension ``d``.
    include_diagonal : also count each vector with itself (cosine 1), as the
        reference code did (lower triangle including the diagonal).

    Returns
    -------
    ``(...)``: mean over the ``n (n - 1) / 2`` distinct pairs (``n (n + 1) / 2`` with
    the diagonal); zero vectors give NaN cosines, which are left out.
    """
    x = x.double()  # cosines in double precision, also for float32 vectors
    norm = x.norm(dim=-1, keepdim=True)
    u = x / norm
    c = (u @ u.transpose(-1, -2)).abs().clamp(max=1.0)
    n = x.shape[-2]
    i, j = torch.tril_indices(n, n, offset=0 if include_diagonal else -1, device=x.device)
    pairs = c[..., i, j]
    if include_diagonal:  # the diagonal is 1 by definition, also for a rounded norm
        pairs = torch.where(i == j, torch.ones_like(pairs), pairs)
        pairs = torch.where((norm.squeeze(-1)[..., i] == 0) | (norm.squeeze(-1)[..., j] == 0),
                            torch.full_like(pairs, float("nan")), pairs)
    return torch.nanmean(pairs, dim=-1)


def _shapes(shapes, model) -> list[tuple[int, int]]:
    if isinstance(shapes, str):
        if shapes.lower() in ("vgg16", "vgg-16"):
            return list(VGG16_SHAPES)
        raise ValueError(f"unknown shape set '{shapes}'; use 'vgg16' or a list of (in, out)")
    out = [tuple(int(d) for d in s) for s in shapes]
    for (a_in, a_out), (b_in, _) in itertools.pairwise(out):
        if a_out != b_in:
            raise ValueError(f"shapes do not chain: {(a_in, a_out)} is followed by a matrix "
                             f"with {b_in} rows")
    return out


def learned_chain(model) -> list[torch.Tensor]:
    """A model's backward chain (centre taps, dense weights) as ``(in, out)`` matrices."""

    return [w.detach().double().cpu() for w in backward_chain(model, "weight")]


def simulate_chain(family: str | Sequence[str], shapes="vgg16", n_vectors: int = 32,
                   dim: int | None = None, repeats: int = 20, seed: int = 0,
                   include_diagonal: bool = False, model=None, dtype=torch.float32,
                   max_chunk_bytes: int = 1 << 28) -> pd.DataFrame:
    """Simulate the appendix-B matrix chain and measure how the vectors align.

    ``n_vectors`` start vectors ``x ~ N(0, I_dim)`` are multiplied, one matrix after
    the other, by a chain of random matrices ``x <- x @ M_k`` (``M_k`` of shape
    ``shapes[k] = (in, out)``). After every product the mean absolute cosine
    similarity between the vectors is measured (step 0: the start vectors). Each
    repetition draws fresh vectors and matrices; the median and quartiles over
    repetitions are reported.

    Families (the matrix ``M`` from a draw ``W ~ N(0, 1)``):

    * ``vanilla``: ``W``;  ``relu``: ``W`` and a ReLU after each product;
    * ``non-negative``: ``max(0, W)`` (50% zeros);  ``positive``: ``|W|``;
    * ``stochastic``: ``|W|`` with each column normalised to sum 1;
    * ``alpha<a>-beta<b>``: ``a W+ + b W-`` with ``W+ = max(0, W)``, ``W- = min(0, W)``
      (paper Figure 7b uses ``a`` in 1..5, 10 and ``b = a - 1``);
    * ``learned`` / ``relu-learned``: ``model``'s own conv centre taps and dense
      weights (:func:`liecheck.theory.taps.backward_chain`), without / with a ReLU
      after each product (the paper's "ReLU learned"); ``shapes`` is then ignored.

    All families share the random draws (the same ``W`` per repetition and step),
    so their differences are not sampling noise. Vectors are rescaled to unit
    norm after each product (the cosine does not change; this avoids overflow).

    The paper's reference code averaged the cosine over the lower triangle
    *including* the diagonal (each vector with itself, cosine 1), which lifts small
    values (e.g. from about 0.025 to 0.055 for 32 vanilla vectors in 1000
    dimensions); ``include_diagonal=True`` reproduces that. The default counts the
    ``n (n - 1) / 2`` distinct pairs only.

    Parameters
    ----------
    family : a family name or a list of names.
    shapes : ``"vgg16"`` (:data:`VGG16_SHAPES`) or a list of ``(in, out)`` shapes.
    n_vectors : number of start vectors (32 in the paper).
    dim : dimension of the start vectors; default and required: ``shapes[0][0]``
        (1000 for VGG-16).
    repeats : repetitions (20 in the paper).
    seed : seed; repetition ``r`` uses its own generator seeded from ``(seed, r)``,
        so results do not depend on the batching or the family list.
    include_diagonal : see above.
    model : the model for the ``learned`` families.
    dtype : dtype of the matrices and vectors. The cosines are always computed in
        float64. With float32 products, once 1 - cosine reaches about 1e-7 the
        rounded vectors typically become identical, so 1 - cosine drops to 0 (drawn
        at 1e-16); with float64 (the reference code's NumPy default, about twice
        the run time) the exponential decay stays visible down to about 1e-15.
    max_chunk_bytes : memory for the batched random matrices of one step.

    Returns
    -------
    DataFrame with columns ``family, step, median, p25, p75`` (``step`` 0 is the
    start vectors, ``step k`` after the k-th matrix).
    """
    families = list(dict.fromkeys([family] if isinstance(family, str) else family))
    if not families:
        raise ValueError("no family given")
    learned = [f for f in families if f in ("learned", "relu-learned")]
    random_fams = [f for f in families if f not in learned]
    coef = {f: family_coefficients(f) for f in random_fams}
    chain_learned = None
    if learned:
        if model is None:
            raise ValueError("the 'learned' families need model=...")
        chain_learned = [w.to(dtype) for w in learned_chain(model)]
    shp = _shapes(shapes, model) if random_fams else [tuple(w.shape) for w in chain_learned]
    d0 = shp[0][0]
    if chain_learned is not None and chain_learned[0].shape[0] != d0:
        raise ValueError(f"the model's chain starts at {chain_learned[0].shape[0]} dimensions, "
                         f"the shapes at {d0}; simulate learned families separately")
    if dim is not None and dim != d0:
        raise ValueError(f"dim={dim} does not match the first matrix's {d0} rows")
    if n_vectors < 2:
        raise ValueError("need at least 2 vectors for a cosine between pairs")
    n_steps = {f: len(shp) for f in random_fams}
    n_steps.update({f: len(chain_learned) for f in learned})
    results = {f: np.full((repeats, n_steps[f] + 1), np.nan) for f in families}
    need_pos = any(a != b for a, b, _, _ in coef.values())
    need_w = any(b != 0 for _, b, _, _ in coef.values())
    biggest = max(a * b for a, b in shp) * torch.finfo(dtype).bits // 8
    chunk = max(1, min(repeats, max_chunk_bytes // max(biggest, 1)))
    gens = [torch.Generator().manual_seed(int(np.random.SeedSequence([seed, r])
                                              .generate_state(1)[0])) for r in range(repeats)]
    n, nf = n_vectors, len(random_fams)

    def unit(y):
        return y / y.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)

    for start in range(0, repeats, chunk):
        rs = range(start, min(repeats, start + chunk))
        # float32 draws for every dtype, so float32 and float64 runs share them
        x0 = torch.stack([torch.randn(n, d0, generator=gens[r]) for r in rs]).to(dtype)
        for f in families:
            results[f][rs.start:rs.stop, 0] = mean_abs_cosine(x0, include_diagonal).numpy()
        # all random families in one batch: rows [i * n, (i + 1) * n) belong to family i
        x = x0.repeat(1, nf, 1)
        for k, (n_in, n_out) in enumerate(shp if random_fams else []):
            # draws in float32 (4x faster than float64 normals), products in ``dtype``
            g = torch.empty(len(rs), n_in, n_out)
            for i, r in enumerate(rs):
                torch.randn(n_in, n_out, generator=gens[r], out=g[i])
            g = g.to(dtype)
            xp = torch.bmm(x, g.clamp(min=0)) if need_pos else None
            xw = torch.bmm(x, g) if need_w else None
            colsum = g.abs().sum(-2).unsqueeze(-2) if any(c[3] for c in coef.values()) else None
            del g
            parts = []
            for i, f in enumerate(random_fams):
                a, b, relu, stoch = coef[f]
                sl = slice(i * n, (i + 1) * n)
                # a W+ + b W- = (a - b) W+ + b W
                y = 0
                if a != b:
                    y = (a - b) * xp[:, sl]
                if b != 0:
                    y = y + b * xw[:, sl]
                if stoch:
                    y = y / colsum
                if relu:
                    y = y.clamp(min=0)
                y = unit(y)
                results[f][rs.start:rs.stop, k + 1] = mean_abs_cosine(y, include_diagonal).numpy()
                parts.append(y)
            x = torch.cat(parts, dim=1)
        for f in learned:
            y = x0
            for k, w in enumerate(chain_learned):
                y = y @ w
                if f == "relu-learned":
                    y = y.clamp(min=0)
                y = unit(y)
                results[f][rs.start:rs.stop, k + 1] = mean_abs_cosine(y, include_diagonal).numpy()
    rows = []
    for f in families:
        v = results[f]
        for step in range(v.shape[1]):
            col = v[:, step]
            col = col[~np.isnan(col)]
            q = np.percentile(col, [50, 25, 75]) if col.size else [np.nan] * 3
            rows.append({"family": f, "step": step, "median": q[0], "p25": q[1], "p75": q[2]})
    return pd.DataFrame(rows)
