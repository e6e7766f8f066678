"""Cosine similarity convergence (CSC), Sixt et al. (2020), section 5.

Instead of the explained logit, random vectors ``v ~ N(0, I)`` of the start
node's output shape enter the method's backward walk. If the method's chain of
relevance matrices converges to rank 1, the relevance vectors of different ``v``
align layer by layer. CSC measures this alignment: at every recorded layer below
the start, for each pair of the ``n_vectors`` walks of one image, the absolute
cosine similarity between the channel vectors at each spatial position (one value
per position for conv outputs and the input, one per pair for dense outputs).
Values are pooled over images; zero vectors (NaN cosines) are dropped.

The reference is the median |cos| of two independent ``N(0, I_c)`` vectors,
:func:`baseline` (exact: ``cos^2 ~ Beta(1/2, (c - 1)/2)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attribution import Explainer, to_device
from ..methods import Method, get_method
from ..methods.peers import PeerMethod
from .csc_hooks import csc_hook_values
from .csc_setup import (
    RECORD_POINTS,
    VALUE_COLUMNS,
    CSCSetup,
    abs_cos,
    baseline,
    default_record,
    pair_indices,
    pool_values,
    random_vectors,
)

__all__ = ["HIST_COLUMNS", "PAPER_BINS", "PERCENTILES", "RECORD_POINTS", "VALUE_COLUMNS",
           "CSCSetup", "abs_cos", "baseline", "csc", "csc_rows", "csc_values",
           "default_record", "pair_indices", "pool_values", "random_vectors"]

PAPER_BINS = (0.9, 0.99, 0.999, 0.9999)
PERCENTILES = (1, 5, 25, 75, 95, 99)
HIST_COLUMNS = ("h_0_0.9", "h_0.9_0.99", "h_0.99_0.999", "h_0.999_0.9999", "h_0.9999_1")


def csc(model: nn.Module | Explainer, inputs, method: str | Method,
        start: str | Iterable[str] = "output", layers: Iterable[str] | None = None,
        n_vectors: int = 5, seed: int = 0, raw: bool = False, batch_size: int | None = None,
        image_ids: Sequence[int] | None = None, device: str | torch.device | None = None,
        record_points: str = "post_relu"):
    """Cosine similarity convergence of ``method`` on ``model``.

    Parameters
    ----------
    model : the network (deep-copied, never modified) or an :class:`~liecheck.Explainer`
        to reuse one trace across methods.
    inputs : ``(N, C, H, W)`` tensor (or an object with ``.images``, e.g.
        :class:`liecheck.data.ImageSet`).
    method : registry name or :class:`~liecheck.Method`; must be a single backward
        walk (SmoothGrad is excluded, as in the paper).
    start : node or module name (``"output"`` / ``"logits"`` = the logits), or a list
        of them; all starts share one traced model.
    layers : node or module names to record (default: the input and every conv and
        dense layer's output, after its ReLU; see ``record_points``; on a model with
        attention the input and the residual stream after every attention and MLP
        sub-block, one |cos| per token: :func:`~liecheck.metrics.csc_setup.channel_dim`);
        only those below each start are measured.
    n_vectors : random vectors per image (5 in the paper, giving 10 pairs).
    seed : seed of the random vectors (independent of the method).
    raw : also return the pooled |cos| values.
    batch_size : images per forward pass (its walks carry ``batch_size * n_vectors``
        relevance samples); default 8.
    image_ids : ``(N,)`` the images' numbers, which key their random vectors
        (default ``0 ... N-1``); a part of a larger image set passes its positions in
        the whole set, so its values equal those of the whole set's run.
    device : where to run (default: the model's device; ignored for an Explainer).
    record_points : where the default ``layers`` sit: ``"post_relu"`` (the paper's
        ``h_l``, default) or ``"pre_relu"`` (the conv / dense outputs before their
        ReLU); see :func:`default_record`. Ignored when ``layers`` is given.

    Notes
    -----
    One forward pass per batch of images serves every start and vector
    (:meth:`Explainer.walks`, relevance batch ``N * n_vectors``); quantities the rules
    derive from the forward pass alone are computed once per image. Methods that
    post-process the walk do so there: DeepLIFT returns *contributions*
    (multiplier x delta) at the recorded nodes, as the paper measures it; a
    ``post="x_input"`` method is multiplied by the input at the input node.
    The statistics are computed from the pooled values by :func:`csc_rows`, so
    values computed in parts (:func:`csc_values`) pool to the same table.

    Precision: ``1 - |cos|`` is computed exactly (float64) from the relevance, but the
    relevance itself is as precise as the model's dtype allows. Rules with a near-zero
    stabiliser (LRP-z, LRP-epsilon with epsilon = 1e-10 as in the LRP-CMP methods) divide
    by denominators that can be far below their own float32 rounding error, which moves
    the median |cos| most at the dense layers and least at the first convs (measured in
    benchmarks/RESULTS.md, "CSC through the peers' hooks": float32 against float64). To
    check a value, run the model and inputs in float64 (``model.double()``,
    ``x.double()``).

    Returns
    -------
    ``DataFrame`` with one row per (start, recorded layer): ``method, start,
    start_node, layer, module, kind, depth`` (0 = input, counting the recorded layers
    upward), ``channels, n_values, median, p1 ... p99, baseline`` (see
    :func:`baseline`) and the counts ``h_0_0.9 ... h_0.9999_1`` of |cos| in the
    paper's bins. With ``raw=True`` a tuple ``(df, values)`` where ``values[(start,
    layer)]`` is the float64 array of pooled |cos| values (large: about
    ``N x 10 x H x W`` per conv layer).
    """
    parts = csc_values(model, inputs, method, start, layers, n_vectors, seed, batch_size,
                       image_ids, device, record_points)
    df = csc_rows(parts)
    if not raw:
        return df
    values = {(r["start"], r["layer"]): 1.0 - r["values"].astype(np.float64)
              for _, r in parts.iterrows()}
    return df, values


def csc_values(model: nn.Module | Explainer, inputs, method: str | Method,
               start: str | Iterable[str] = "output", layers: Iterable[str] | None = None,
               n_vectors: int = 5, seed: int = 0, batch_size: int | None = None,
               image_ids: Sequence[int] | None = None,
               device: str | torch.device | None = None,
               record_points: str = "post_relu") -> pd.DataFrame:
    """The pooled values behind :func:`csc` (same parameters), before any statistic.

    Returns
    -------
    ``DataFrame`` with one row per (start, recorded layer): ``method, start,
    start_node, layer, module, kind, depth, channels`` and ``values``, the float32
    array of ``1 - |cos|`` over the images (image by image, in input order; NaNs of
    zero vectors dropped). :func:`csc_rows` turns one or several such frames (e.g.
    of consecutive parts of an image set) into the CSC table.
    """
    m = get_method(method)
    if isinstance(m, PeerMethod):  # Zennit / Captum / function adapters
        return csc_hook_values(model, inputs, m, start, layers, n_vectors, seed, batch_size,
                               image_ids, device, record_points)
    if not m.walkable:
        raise ValueError(f"CSC needs a method that is a single backward walk; '{m.name}' is "
                         "not (SmoothGrad averages walks over noisy inputs, so random "
                         "relevance vectors cannot be injected; the paper excludes it).")
    if n_vectors < 2:
        raise ValueError(f"n_vectors must be at least 2 (pairs are compared), got {n_vectors}")
    setup = CSCSetup.build(model, inputs, start, layers, image_ids, device, record_points,
                           check_inputs=True)
    setup.measure_shapes()
    explainer, x_all, ids = setup.explainer, setup.x, setup.ids
    starts, start_nodes, shapes = setup.starts, setup.start_nodes, setup.shapes
    bs = batch_size or 8
    pooled: dict[tuple[str, str], list[np.ndarray]] = {}
    recs = [setup.below(s) for s in start_nodes]
    for b0 in range(0, x_all.shape[0], bs):
        xb = to_device(x_all[b0:b0 + bs], explainer.device)
        injects = [{s_node: to_device(torch.cat([
            random_vectors(seed, s_node, ids[b0 + i], n_vectors, shapes[s_node][1:])
            for i in range(xb.shape[0])]), explainer.device).to(xb.dtype)}
            for s_node in start_nodes]
        # one forward pass of the batch for every start and vector
        outs = explainer.walks(xb, m, injects, recs, fan=n_vectors, post=True)
        for s_name, rec, out in zip(starts, recs, outs):  # one walk's relevance at a time
            pool_values(pooled, s_name, rec, out, n_vectors, setup.channels)
            del out  # before the next walk runs
    return setup.value_frame(m.name, pooled)


def csc_rows(parts: pd.DataFrame | Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The CSC table (see :func:`csc`) from the output of :func:`csc_values`, or from
    several such outputs (parts of one image set, in order): the values of each
    (method, start, layer) are pooled, then summarised."""
    if not isinstance(parts, pd.DataFrame):
        parts = pd.concat(list(parts), ignore_index=True)
    rows = []
    for _, g in parts.groupby(["method", "start", "layer"], sort=False):
        r = g.iloc[0]
        d = np.concatenate([np.asarray(v, dtype=np.float32) for v in g["values"]])
        row = _row(r["method"], r["start"], r["start_node"], r["layer"], r["module"],
                   r["kind"], int(r["depth"]), int(r["channels"]), d)
        if "image_medians" in g:
            row.update(_image_interval(np.concatenate(
                [np.asarray(v, dtype=np.float64) for v in g["image_medians"]])))
        rows.append(row)
    return pd.DataFrame(rows)


def _image_interval(medians: np.ndarray, confidence: float = 0.99,
                    n_resamples: int = 2000) -> dict:
    """The median over images of each image's median |cos| and its percentile bootstrap
    interval over images (``median_images``, ``median_low``, ``median_high``): the
    interval the zoo and the verdicts compare, since values of one image are not
    independent (seed 0; NaN without images)."""
    from .stats import bootstrap_median

    mid, low, high = bootstrap_median(medians, confidence, n_resamples, seed=0)
    return {"median_images": 1.0 - mid, "median_low": 1.0 - high, "median_high": 1.0 - low}


def _row(method, start, start_node, layer, module, kind, depth, channels, d: np.ndarray
         ) -> dict:
    """Summary of the pooled values ``d = 1 - |cos|`` (quantiles of |cos| = 1 - those of d)."""
    row = {"method": method, "start": start, "start_node": start_node, "layer": layer,
           "module": module, "kind": kind, "depth": depth, "channels": channels,
           "n_values": int(d.size)}
    dd = d.astype(np.float64)
    if dd.size:
        row["median"] = 1.0 - float(np.median(dd))
        # one selection for all percentiles (the same order statistics and interpolation
        # as one call each)
        qs = np.percentile(dd, [100 - p for p in PERCENTILES])
        for p, q in zip(PERCENTILES, qs):
            row[f"p{p}"] = 1.0 - float(q)
    else:
        row["median"] = np.nan
        row.update({f"p{p}": np.nan for p in PERCENTILES})
    row["baseline"] = baseline(channels)
    edges = np.concatenate([[0.0], PAPER_BINS, [np.inf]])
    # np.histogram's counts for these bins ([e_k, e_k+1); the last edge is inf), by a
    # search among the 6 edges instead of a sort of all values
    counts = (np.bincount(np.searchsorted(edges, 1.0 - dd, side="right") - 1,
                          minlength=len(HIST_COLUMNS))[:len(HIST_COLUMNS)]
              if dd.size else np.zeros(len(HIST_COLUMNS)))
    row.update({k: int(v) for k, v in zip(HIST_COLUMNS, counts)})
    return row
