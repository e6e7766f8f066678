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

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from ..attribution import Explainer, to_device
from ..graph import INPUT, LINEAR, Graph
from ..methods import Method, get_method
from ..rules.base import times

PAPER_BINS = (0.9, 0.99, 0.999, 0.9999)
PERCENTILES = (1, 5, 25, 75, 95, 99)
HIST_COLUMNS = ("h_0_0.9", "h_0.9_0.99", "h_0.99_0.999", "h_0.999_0.9999", "h_0.9999_1")


def baseline(channels: int) -> float:
    """Median |cos| of two independent ``N(0, I_c)`` vectors.

    For isotropic vectors in ``c`` dimensions ``cos^2 ~ Beta(1/2, (c - 1)/2)``, so the
    median is ``sqrt(Beta.ppf(0.5; 1/2, (c - 1)/2))``: 0.5 for c = 3, 0.085 for 64,
    0.030 for 512, 0.0105 for 4096 (about 0.674 / sqrt(c) for large c).
    """
    if channels <= 1:
        return 1.0
    return float(np.sqrt(stats.beta.ppf(0.5, 0.5, (channels - 1) / 2)))


def pair_indices(n: int) -> list[tuple[int, int]]:
    """All pairs ``i < j`` of ``n`` vectors (10 for 5)."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def abs_cos(r: torch.Tensor, chunk: int = 2**18) -> torch.Tensor:
    """Per-position absolute cosine over channels for every pair of vectors.

    Parameters
    ----------
    r : ``(V, C, P)``: the relevance of ``V`` walks of one image, ``C`` channels,
        ``P`` positions.
    chunk : float64 elements per block of positions (``V x C x block``); the work runs
        block by block so that each block's float64 copy stays in the CPU's cache.

    Returns
    -------
    ``(n_pairs, P)`` float64; NaN where a vector is zero.

    Notes
    -----
    ``cos_ij = <r_i, r_j> / (|r_i| |r_j|)`` in float64. The float32 inputs' products
    are exact in float64, so ``1 - |cos|`` is accurate to about 1e-16 absolute, also
    where it is far below float32's resolution of ``cos`` (converged z+ maps).
    """
    v, c, p = r.shape
    pairs = pair_indices(v)
    first, second = [i for i, _ in pairs], [j for _, j in pairs]
    out = torch.empty(len(pairs), p, dtype=torch.float64, device=r.device)
    block = max(1, chunk // max(v * c, 1))
    u_buf = torch.empty(v, c, min(block, p), dtype=torch.float64, device=r.device)
    prod_buf = torch.empty(c, min(block, p), dtype=torch.float64, device=r.device)
    sq = torch.empty(v, min(block, p), dtype=torch.float64, device=r.device)
    for p0 in range(0, p, block):
        b = min(block, p - p0)
        u, prod = u_buf[:, :, :b], prod_buf[:, :b]
        u.copy_(r[:, :, p0:p0 + b])
        # one product per pair (on CPU a batched (b, V, C) bmm, or linalg.vector_norm
        # over dim 1, is several times slower for V = 5); squared norms first
        for k, (i, j) in enumerate([(i, i) for i in range(v)] + pairs):
            torch.mul(u[i], u[j], out=prod)
            torch.sum(prod, 0, out=sq[i, :b] if k < v else out[k - v, p0:p0 + b])
        norms = sq[:, :b].sqrt()  # 0 for a zero vector
        out[:, p0:p0 + b] /= norms[first] * norms[second]  # 0 / 0 -> NaN
    return out.abs_().clamp_(max=1.0)


def _as_channels(r: torch.Tensor, n_vectors: int) -> torch.Tensor:
    """``(N * V, C, ...)`` -> ``(N, V, C, P)`` with channels on dim 2."""
    nv = r.shape[0]
    r = r.reshape(nv // n_vectors, n_vectors, r.shape[1] if r.dim() > 1 else 1, -1)
    return r


def _kind(node, graph: Graph | None = None) -> str:
    """``input``, ``conv``, ``linear``, ...; a ReLU right after a conv / dense layer
    (that layer's post-ReLU record point) reports the layer's kind."""
    if graph is not None and node.kind == "relu" and len(node.inputs) == 1:
        prev = graph.by_name[node.inputs[0]]
        if prev.kind == LINEAR and prev.layer in ("conv", "dense"):
            node = prev
    if node.kind == INPUT:
        return "input"
    if node.kind == LINEAR:
        return {"dense": "linear"}.get(node.layer, node.layer)
    return node.kind


RECORD_POINTS = ("post_relu", "pre_relu")


def default_record(graph: Graph, points: str = "post_relu") -> list[str]:
    """The input and every conv and dense layer's output, in execution order.

    Parameters
    ----------
    graph : the traced model.
    points : ``"post_relu"`` (default, as in the paper): a layer's output includes its
        ReLU, i.e. the ReLU node when it is the layer's only consumer (BatchNorm is
        folded into the conv first), else the layer's own output (the logits; a conv
        that feeds a residual addition). The paper defines ``r_l = df/dh_l`` with
        ``h_l`` after the ReLU, its Keras layers include their ReLU, and
        :func:`paper_starts` starts there too, so starts and record points agree.
        ``"pre_relu"``: the conv / dense outputs before their ReLU (liecheck < 0.2's
        default). The two differ only for methods whose ReLU step changes the
        relevance (gradient, Guided BP, Deconv, RectGrad); LRP and DeepLIFT pass
        relevance through the ReLU unchanged.

    Returns
    -------
    Node names, the input first.
    """
    if points not in RECORD_POINTS:
        raise ValueError(f"points must be one of {RECORD_POINTS}, not '{points}'")
    names = [n.name for n in graph.linear_nodes(("conv", "dense"))]
    if points == "post_relu":
        names = [_relu_after(graph, n) for n in names]
    return [graph.input] + names


def _relu_after(graph: Graph, name: str) -> str:
    """The ReLU that is ``name``'s only consumer, else ``name`` itself."""
    nxt = graph.consumers[name]
    if len(nxt) == 1 and graph.by_name[nxt[0]].kind == "relu":
        return nxt[0]
    return name


def _vector_seed(seed: int, start: str, image: int) -> int:
    return int(np.random.SeedSequence([seed, image, zlib.crc32(start.encode())])
               .generate_state(1)[0])


def random_vectors(seed: int, start: str, image: int, n_vectors: int,
                   shape: Sequence[int]) -> torch.Tensor:
    """The ``n_vectors`` N(0, I) vectors for one image and start node, ``(V, *shape)``.

    They depend only on ``seed``, the start node's name and the image's position in
    the inputs, so every method and every batch size sees the same vectors.
    """
    g = torch.Generator().manual_seed(_vector_seed(seed, start, image))
    return torch.randn((n_vectors, *shape), generator=g)


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
        dense layer's output, after its ReLU; see ``record_points``); only those below
        each start are measured.
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


VALUE_COLUMNS = ["method", "start", "start_node", "layer", "module", "kind", "depth",
                 "channels", "values"]


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
    if getattr(m, "peer", None) is not None:  # Zennit / Captum / function adapters
        from .csc_hooks import csc_hook_values
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
    explainer, graph, x_all, ids = setup.explainer, setup.graph, setup.x, setup.ids
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
        outs = explainer.iter_walks(xb, m, injects, recs, fan=n_vectors)
        for s_name, rec, out in zip(starts, recs, outs):  # one walk's relevance at a time
            if m.post == "x_input" and graph.input in out:
                out[graph.input] = times(xb, out[graph.input])
            pool_values(pooled, s_name, rec, out, n_vectors)
            del out  # before the next walk runs
    return setup.value_frame(m.name, pooled)


@dataclass
class CSCSetup:
    """What a CSC run fixes before any walk: the traced model, the inputs and their
    numbers, the start nodes, the recorded nodes (in execution order) and every node's
    output shape. Shared by :func:`csc_values` and the hook-based
    :func:`liecheck.metrics.csc_hooks.csc_hook_values`."""

    explainer: Explainer
    x: torch.Tensor
    ids: list[int]
    starts: list[str]
    start_nodes: list[str]
    record: list[str]
    shapes: dict[str, tuple]

    @property
    def graph(self) -> Graph:
        return self.explainer.graph

    @classmethod
    def build(cls, model, inputs, start, layers, image_ids, device, record_points,
              check_inputs: bool = False) -> CSCSetup:
        explainer = model if isinstance(model, Explainer) else Explainer(model, device=device)
        graph = explainer.graph
        x_all = getattr(inputs, "images", inputs)
        if not isinstance(x_all, torch.Tensor) or x_all.dim() < 2:
            raise TypeError("inputs must be an (N, C, H, W) tensor or an ImageSet")
        x_all = x_all.detach()  # the statistics never need the inputs' graph
        ids = list(range(x_all.shape[0])) if image_ids is None else [int(i) for i in image_ids]
        if len(ids) != x_all.shape[0]:
            raise ValueError(f"image_ids has {len(ids)} entries for {x_all.shape[0]} images")
        if check_inputs:  # relevance is injected, not a class
            explainer.check_inputs(x_all, classes=False)
        starts = [start] if isinstance(start, str) else list(start)
        record = (default_record(graph, record_points) if layers is None
                  else [graph.resolve(r) for r in layers])
        record = sorted(dict.fromkeys(record), key=lambda n: graph.by_name[n].index)
        return cls(explainer, x_all, ids, starts, [graph.resolve(s) for s in starts], record,
                   {})

    def measure_shapes(self) -> None:
        """Every node's output shape, from one forward pass of the first image."""
        with torch.no_grad():
            self.graph.forward(self.x[:1].to(self.explainer.device), keep=lambda n: False,
                               shapes=self.shapes)

    def below(self, start_node: str) -> list[str]:
        """The recorded nodes below ``start_node``."""
        index = self.graph.by_name
        return [r for r in self.record if index[r].index < index[start_node].index]

    def value_frame(self, method: str, pooled: dict[tuple[str, str], list[np.ndarray]]
                    ) -> pd.DataFrame:
        """The :data:`VALUE_COLUMNS` frame of the pooled ``1 - |cos|`` values."""
        depth = {n: i for i, n in enumerate(self.record)}
        rows = []
        for s_name, s_node in zip(self.starts, self.start_nodes):
            for r in self.record:
                if (s_name, r) not in pooled:
                    continue
                node = self.graph.by_name[r]
                d = pooled.pop((s_name, r))
                shape = self.shapes[r]
                rows.append({"method": method, "start": s_name, "start_node": s_node,
                             "layer": node.name, "module": node.module,
                             "kind": _kind(node, self.graph), "depth": depth[r],
                             "channels": shape[1] if len(shape) > 1 else 1,
                             "values": np.concatenate(d) if d else np.zeros(0, np.float32)})
        return pd.DataFrame(rows, columns=VALUE_COLUMNS)


def pool_values(pooled: dict[tuple[str, str], list[np.ndarray]], start: str,
                record: list[str], out: dict[str, torch.Tensor], n_vectors: int) -> None:
    """Append each recorded node's ``1 - |cos|`` values (float32, NaNs of zero vectors
    dropped, image by image) of one walk's relevance ``out`` to ``pooled``."""
    for r in record:
        vals = pooled.setdefault((start, r), [])
        if r not in out:
            continue
        rr = _as_channels(out[r], n_vectors)
        d = torch.cat([(1.0 - abs_cos(rr[i])).flatten().float()
                       for i in range(rr.shape[0])]).cpu().numpy()
        vals.append(d[~np.isnan(d)])


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
        rows.append(_row(r["method"], r["start"], r["start_node"], r["layer"], r["module"],
                         r["kind"], int(r["depth"]), int(r["channels"]), d))
    return pd.DataFrame(rows)


def _row(method, start, start_node, layer, module, kind, depth, channels, d: np.ndarray
         ) -> dict:
    """Summary of the pooled values ``d = 1 - |cos|`` (quantiles of |cos| = 1 - those of d)."""
    row = {"method": method, "start": start, "start_node": start_node, "layer": layer,
           "module": module, "kind": kind, "depth": depth, "channels": channels,
           "n_values": int(d.size)}
    dd = d.astype(np.float64)
    if dd.size:
        row["median"] = 1.0 - float(np.median(dd))
        for p in PERCENTILES:
            row[f"p{p}"] = 1.0 - float(np.percentile(dd, 100 - p))
    else:
        row["median"] = np.nan
        row.update({f"p{p}": np.nan for p in PERCENTILES})
    row["baseline"] = baseline(channels)
    edges = np.concatenate([[0.0], PAPER_BINS, [np.inf]])
    counts = np.histogram(1.0 - dd, bins=edges)[0] if dd.size else np.zeros(len(HIST_COLUMNS))
    row.update({k: int(v) for k, v in zip(HIST_COLUMNS, counts)})
    return row


def paper_starts(graph: Graph, model_name: str) -> list[str]:
    """The start nodes of PROTOCOL.md for the paper's networks (node names).

    The paper's Keras layers include their ReLU, so "the output of conv4_3" is the
    ReLU after it. VGG-16 (torchvision): fc3 (logits), fc1, conv4_3, conv3_3, conv2_2;
    CIFAR net: fc6, fc5, conv4, conv3, conv2; ResNet-50: the logits and the outputs of
    the residual stages layer4 ... layer1.
    """
    def after(module: str) -> str:
        node = graph.by_name[graph.resolve(module)]
        nxt = graph.consumers[node.name]
        relu = [c for c in nxt if graph.by_name[c].kind == "relu"]
        return relu[0] if relu else node.name

    if model_name == "vgg16":
        return [graph.output] + [after(m) for m in ("classifier.0", "features.21",
                                                    "features.14", "features.7")]
    if model_name == "cifar_net":
        return [graph.output] + [after(m) for m in ("fc5", "conv4", "conv3", "conv2")]
    if model_name == "resnet50":
        out = [graph.output]
        for stage in ("layer4", "layer3", "layer2", "layer1"):
            names = [n.name for n in graph.nodes if (n.module or "").startswith(stage + ".")
                     or n.name.startswith(stage + "_")]
            if names:
                out.append(names[-1])
        return out
    raise ValueError(f"no paper start layers for '{model_name}'; pass start=[...] yourself")
