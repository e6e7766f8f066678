"""Similarity of saliency maps: 2-D SSIM, Spearman rank correlation, L1 distance.

All functions work on channel-reduced maps ``(N, H, W)`` (see
:func:`liecheck.heatmap.heatmap`) and compare map ``a[i]`` with map ``b[i]``,
batched in torch. Protocol (Sixt et al. 2020, section 5, following Adebayo et al.
2018): each map is normalised per image to [0, 1] between its 0.5th and 99.5th
percentiles (0th / 100th for RectGrad, whose maps are mostly zero) and clipped;
the score is ``max(SSIM(a, b), SSIM(a, 1 - b))`` because randomising the last
layer can flip the sign of a z+ map.

The SSIM is the image SSIM of Wang et al. (2004) on 2-D maps with a 5x5 uniform
window, K1 = 0.01, K2 = 0.03, sample covariance (N / (N - 1)), the 2-pixel border
cropped and ``data_range = 2`` (scikit-image's float default that the paper's
code used, although the maps lie in [0, 1]). It equals
``skimage.metrics.structural_similarity(a, b, win_size=5, data_range=2,
use_sample_covariance=True, gaussian_weights=False)``. (Not a 1-D SSIM of
flattened vectors, the Quantus bug.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..heatmap import heatmap
from ..methods import Method, get_method

MEASURES = ("ssim", "spearman", "l1")


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 3 or a.shape != b.shape:
        raise ValueError(f"expected two (N, H, W) maps of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}; reduce channels first with liecheck.heatmap")


def ssim(a: torch.Tensor, b: torch.Tensor, win_size: int = 5, data_range: float = 2.0,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity of 2-D maps, one value per pair.

    Parameters
    ----------
    a, b : ``(N, H, W)`` maps (compared pairwise along N).
    win_size : side of the uniform window (odd); the ``(win_size - 1) // 2`` border
        is cropped, as scikit-image does.
    data_range : dynamic range ``L`` in ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``.

    Returns
    -------
    ``(N,)`` float64 tensor: the mean SSIM over the cropped map.
    """
    _check(a, b)
    if win_size % 2 != 1 or min(a.shape[1:]) < win_size:
        raise ValueError(f"win_size must be odd and at most the map size, got {win_size} for "
                         f"maps of {tuple(a.shape[1:])}")
    x = a.double().unsqueeze(1)
    y = b.double().unsqueeze(1)
    # 'valid' windows = scikit-image's filtered maps with the border cropped
    def mean(t):
        return F.avg_pool2d(t, win_size, stride=1)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def normalize(h: torch.Tensor, low: float = 0.5, high: float = 99.5) -> torch.Tensor:
    """Per-image map to [0, 1] between its ``low``-th and ``high``-th percentiles, clipped.

    ``(N, H, W) -> (N, H, W)`` float64. A constant map becomes all zeros.
    """
    flat = h.double().flatten(1)
    q = torch.quantile(flat, torch.tensor([low / 100, high / 100], dtype=flat.dtype,
                                          device=flat.device), dim=1)
    lo, hi = q[0].view(-1, 1, 1), q[1].view(-1, 1, 1)
    span = (hi - lo)
    out = (h.double() - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return out.clamp(0, 1)


def percentiles_for(method: str | Method | None) -> tuple[float, float]:
    """Normalisation percentiles: (0, 100) for RectGrad (sparse maps), else (0.5, 99.5).

    A method can set its own with ``params["ssim_percentiles"] = (low, high)``.
    """
    if method is None:
        return 0.5, 99.5
    m = get_method(method)
    if "ssim_percentiles" in m.params:
        return tuple(m.params["ssim_percentiles"])
    return (0.0, 100.0) if m.name.startswith("rectgrad") else (0.5, 99.5)


def prepare(r: torch.Tensor, method: str | Method | None = None, how: str | None = None
            ) -> torch.Tensor:
    """Relevance ``(N, C, H, W)`` (or maps ``(N, H, W)``) -> normalised maps in [0, 1].

    Channels are reduced as :func:`liecheck.heatmap.heatmap` does for ``method``
    (signed sum for LRP-type, max |.| for gradient-type methods).
    """
    h = heatmap(r, method, how) if r.dim() == 4 else r
    return normalize(h, *percentiles_for(method))


def ssim_score(a: torch.Tensor, b: torch.Tensor, flip: bool = True, **kw) -> torch.Tensor:
    """``max(SSIM(a, b), SSIM(a, 1 - b))`` on maps normalised to [0, 1] (``(N,)``)."""
    s = ssim(a, b, **kw)
    return torch.maximum(s, ssim(a, 1 - b, **kw)) if flip else s


def _rank(t: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank) along dim 1 of ``(N, P)``."""
    n, p = t.shape
    order = t.argsort(1)
    sorted_t = t.gather(1, order)
    pos = torch.arange(p, dtype=torch.float64, device=t.device).expand(n, p)
    # tie groups: average position within each run of equal values
    new = torch.ones_like(sorted_t, dtype=torch.bool)
    new[:, 1:] = sorted_t[:, 1:] != sorted_t[:, :-1]
    gid = new.cumsum(1) - 1
    sums = torch.zeros(n, p, dtype=torch.float64, device=t.device).scatter_add_(1, gid, pos)
    cnt = torch.zeros(n, p, dtype=torch.float64, device=t.device).scatter_add_(
        1, gid, torch.ones_like(pos))
    avg = (sums / cnt.clamp(min=1)).gather(1, gid)
    return torch.empty_like(avg).scatter_(1, order, avg)


def spearman(a: torch.Tensor, b: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps (``(N,)``; |rho| if ``flip``)."""
    _check(a, b)
    ra, rb = _rank(a.double().flatten(1)), _rank(b.double().flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp(min=1e-300)
    return rho.abs() if flip else rho


def l1_distance(a: torch.Tensor, b: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Mean absolute difference of two maps normalised to [0, 1] (``(N,)``; 0 means
    the two maps are identical).

    ``flip=True`` takes the smaller of ``L1(a, b)`` and ``L1(a, 1 - b)``: the distance
    between the maps up to their sign, as the paper's SSIM takes the larger of
    ``SSIM(a, b)`` and ``SSIM(a, 1 - b)``. On [0, 1]-normalised maps ``1 - b`` is the
    normalised ``-b`` (the percentiles of ``-b`` are those of ``b``, negated and
    swapped). This is the class-insensitivity measure (Figure 1e, the ground-truth
    benchmark's L1 between the two classes' maps): the maps of a converged z+ chain
    are rank 1, and a rule that starts from the explained logit's value (LRP) turns
    the whole map over when that logit is negative, so two maps of one shape differ
    only by their sign; without the flip their L1 would count the logit's sign as a
    change of the explanation. :func:`align_sign` gives the orientation used. The
    price: two maps that are genuinely anti-correlated (the evidence for one class is
    evidence against the other) also come out closer than without the flip; measures
    that read the sign (relevance mass, pointing) tell the two cases apart
    (docs/groundtruth.md, "The sign of the explained logit").
    """
    _check(a, b)
    if flip:
        b = align_sign(a, b)
    return (a.double() - b.double()).abs().flatten(1).mean(1)


def align_sign(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b`` or ``1 - b`` per pair, whichever is nearer to ``a`` in L1 (``b`` on a tie):
    the [0, 1]-normalised map ``b`` turned to ``a``'s sign (see :func:`l1_distance`)."""
    _check(a, b)
    a, b = a.double(), b.double()
    inv = 1 - b
    nearer = (a - inv).abs().flatten(1).mean(1) < (a - b).abs().flatten(1).mean(1)
    return torch.where(nearer.view(-1, *[1] * (b.dim() - 1)), inv, b)


def similarity(a: torch.Tensor, b: torch.Tensor, measure: str = "ssim", flip: bool = True,
               **kw) -> torch.Tensor:
    """Compare normalised maps with ``measure``: ``"ssim"`` (default, max over the
    flip), ``"spearman"`` (|rho| if ``flip``) or ``"l1"`` (a distance: lower = more
    similar; ``flip`` takes the smaller of the two)."""
    fns: dict[str, Callable] = {
        "ssim": lambda: ssim_score(a, b, flip=flip, **kw),
        "spearman": lambda: spearman(a, b, flip=flip),
        "l1": lambda: l1_distance(a, b, flip=flip),
    }
    if measure not in fns:
        raise ValueError(f"unknown similarity '{measure}'; choose one of {', '.join(MEASURES)}")
    return fns[measure]()
