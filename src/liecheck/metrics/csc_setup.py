"""The parts of a CSC run that the walk path (:mod:`liecheck.metrics.csc`) and the hook
path (:mod:`liecheck.metrics.csc_hooks`) share: the chance level, the record points,
the seeded random vectors, the run's setup (:class:`CSCSetup`) and the per-position
``|cos|`` statistics of one walk (:func:`abs_cos`, :func:`pool_values`)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..attribution import Explainer
from ..engine import ops
from ..engine.graph import Graph


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


def _as_channels(r: torch.Tensor, n_vectors: int, channel_dim: int = 1) -> torch.Tensor:
    """``(N * V, C, ...)`` -> ``(N, V, C, P)`` with channels on dim 2; ``channel_dim=-1``:
    the channels are the last dimension (tokens ``(N * V, L, C)``, Swin's ``(N * V, H, W,
    C)``), each position (token) one vector."""
    if channel_dim == -1 and r.dim() >= 3:
        r = r.movedim(-1, 1)
    nv = r.shape[0]
    r = r.reshape(nv // n_vectors, n_vectors, r.shape[1] if r.dim() > 1 else 1, -1)
    return r


def _kind(node, graph: Graph | None = None) -> str:
    """``input``, ``conv``, ``linear``, ...; a ReLU right after a conv / dense layer
    (that layer's post-ReLU record point) reports the layer's kind."""
    if graph is not None and isinstance(node.op, ops.ReLU) and len(node.inputs) == 1:
        prev = graph.by_name[node.inputs[0]]
        if prev.is_linear and prev.layer in ("conv", "dense"):
            node = prev
    if isinstance(node.op, ops.Input):
        return "input"
    if node.is_linear:
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
        ``h_l`` after the ReLU, its Keras layers include their ReLU, and the paper's
        start layers (:func:`liecheck.reproduce.paper.paper_starts`) sit there too, so
        starts and record points agree.
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
    if is_transformer(graph):
        return [graph.input] + residual_stream(graph)
    names = [n.name for n in graph.linear_nodes(("conv", "dense"))]
    if points == "post_relu":
        names = [_relu_after(graph, n) for n in names]
    return [graph.input] + names


_ATTENTION = (ops.Softmax, ops.Matmul, ops.SDPA, ops.attention.LibraryFunction)


def is_transformer(graph: Graph) -> bool:
    """Whether the graph computes attention (a softmax, a product of two activations, an
    attention function)."""
    return any(isinstance(n.op, _ATTENTION) for n in graph.nodes)


def residual_stream(graph: Graph) -> list[str]:
    """The residual additions of two activations of one shape: on a transformer, the
    residual stream after every attention and MLP sub-block (the blocks' outputs)."""
    out = []
    for n in graph.nodes:
        if (isinstance(n.op, ops.Add) and len(n.inputs) == 2 and not any(n.constant_inputs)
                and not n.op.numbers):
            out.append(n.name)
    return out


_CHANNEL_LAST = (ops.DenseOp, ops.LayerNorm, ops.SDPA, ops.attention.LibraryFunction)
_CHANNEL_FIRST = (ops.ConvOp, ops.AffineOp, ops.PoolingOp, ops.GroupNorm, ops.Input)
_SAME_LAYOUT = (ops.Identity, ops.Pointwise, ops.ReLU, ops.Add, ops.Product)


def channel_dim(graph: Graph, name: str) -> int:
    """The dimension of ``name``'s output that holds the channels: 1 (``(N, C, H, W)``,
    the input, conv layers) or -1 (tokens ``(N, L, C)`` and Swin's ``(N, H, W, C)``: the
    output of a dense layer, a LayerNorm or attention, through residual additions,
    identities and pointwise ops). CSC compares the channel vectors at each position, so
    on a transformer one |cos| per token."""
    todo, seen = [name], set()
    while todo:
        node = graph.by_name[todo.pop(0)]
        if node.name in seen:
            continue
        seen.add(node.name)
        if isinstance(node.op, _CHANNEL_LAST):
            return -1
        if isinstance(node.op, _CHANNEL_FIRST):
            return 1
        if isinstance(node.op, _SAME_LAYOUT):
            todo.extend(i for i, c in zip(node.inputs, node.constant_inputs or
                                          (False,) * len(node.inputs)) if not c)
    return 1


def _relu_after(graph: Graph, name: str) -> str:
    """The ReLU that is ``name``'s only consumer, else ``name`` itself."""
    nxt = graph.consumers[name]
    if len(nxt) == 1 and isinstance(graph.by_name[nxt[0]].op, ops.ReLU):
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


VALUE_COLUMNS = ["method", "start", "start_node", "layer", "module", "kind", "depth",
                 "channels", "values", "image_medians"]


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
    channels: dict[str, int] | None = None  # record node -> its channel dim (1 or -1)

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
                   {}, {r: channel_dim(graph, r) for r in record})

    def measure_shapes(self) -> None:
        """Every node's output shape, from one forward pass of the first image."""
        with torch.no_grad():
            self.graph.forward(self.x[:1].to(self.explainer.device), keep=lambda n: False,
                               shapes=self.shapes)

    def below(self, start_node: str) -> list[str]:
        """The recorded nodes below ``start_node``."""
        index = self.graph.by_name
        return [r for r in self.record if index[r].index < index[start_node].index]

    def channel_of(self, name: str) -> int:
        return (self.channels or {}).get(name, 1)

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
                med = pooled.pop((s_name, r, "median"), [])
                shape = self.shapes[r]
                rows.append({"method": method, "start": s_name, "start_node": s_node,
                             "layer": node.name, "module": node.module,
                             "kind": _kind(node, self.graph), "depth": depth[r],
                             "channels": shape[self.channel_of(r)] if len(shape) > 1 else 1,
                             "values": np.concatenate(d) if d else np.zeros(0, np.float32),
                             "image_medians": (np.concatenate(med) if med
                                               else np.zeros(0, np.float64))})
        return pd.DataFrame(rows, columns=VALUE_COLUMNS)


def pool_values(pooled: dict[tuple[str, str], list[np.ndarray]], start: str,
                record: list[str], out: dict[str, torch.Tensor], n_vectors: int,
                channels: dict[str, int] | None = None) -> None:
    """Append each recorded node's ``1 - |cos|`` values (float32, NaNs of zero vectors
    dropped, image by image) of one walk's relevance ``out`` to ``pooled``, and each
    image's median of them to ``pooled[(start, node, "median")]`` (NaN for an image
    without a finite value; the bootstrap interval over images rests on these);
    ``channels``: record node -> its channel dim (:func:`channel_dim`; default 1)."""
    for r in record:
        vals = pooled.setdefault((start, r), [])
        if r not in out:
            continue
        rr = _as_channels(out[r], n_vectors, (channels or {}).get(r, 1))
        per = [v[~np.isnan(v)] for v in ((1.0 - abs_cos(rr[i])).flatten().float().cpu().numpy()
                                          for i in range(rr.shape[0]))]
        vals.append(np.concatenate(per))
        pooled.setdefault((start, r, "median"), []).append(
            np.array([np.median(v) if v.size else np.nan for v in per], dtype=np.float64))
