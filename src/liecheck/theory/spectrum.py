"""Matrix-free spectra of a method's derivation matrix (beyond the paper).

For a method whose backward walk is linear in the relevance (LRP, DTD, Excitation
BP, PatternAttribution, the gradient, ...), the relevance at the input for a
relevance ``v`` injected at the output of ``layer`` is ``J v`` for one matrix
``J`` per image (the paper's derivation matrix ``C`` of that part of the network,
with ``J = C^T``: ``(d_input, d_layer)``). CSC (section 3) measures whether random
``v`` give aligned ``J v``; the spectrum says why: if ``sigma2 / sigma1`` of ``J``
is tiny, ``J`` is numerically rank 1 and every ``v`` gives the same map.

``J`` is never formed. One walk with autograd on, with ``v0`` (requiring grad)
injected, gives ``out = J v0``; then ``J^T u`` is one backward pass of ``out``
(``torch.autograd.grad(out, v0, u)``), and ``J v`` one backward pass of the
double-vjp graph ``h(u0) = J^T u0`` (``torch.autograd.grad(h, u0, v)``). Both graphs
are kept, so each product costs one backward pass and no forward pass.
Golub-Kahan-Lanczos bidiagonalisation (:mod:`.lanczos`) finds the top ``k``
singular values from these products; SciPy's ARPACK is available as well.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
from scipy.sparse.linalg import LinearOperator, svds
from torch import nn

from ..attribution import Explainer
from ..methods import Method, get_method
from ..methods.run import MethodRun
from ..metrics.csc import csc
from .lanczos import golub_kahan_svd


class NotLinearInRelevance(ValueError):
    """The method's backward walk is not a linear map of the relevance."""


def check_method(m: Method) -> None:
    """Refuse (:class:`NotLinearInRelevance`) a method that has no derivation matrix."""
    if not m.linear_in_relevance:
        raise NotLinearInRelevance(
            f"method '{m.name}' is not linear in the relevance (its walk applies a ReLU or a "
            "threshold to the backward signal), so it has no derivation matrix and no "
            "singular values; use liecheck.metrics.csc for it instead")
    if not (m.map_is_one_walk and m.walkable):
        raise NotLinearInRelevance(f"method '{m.name}' is not a single backward walk")


class DerivationOperator:
    """``J`` of one image as a pair of products ``J v`` and ``J^T u`` (torch tensors).

    Parameters
    ----------
    explainer : a :class:`~liecheck.Explainer` (its traced graph and rule cache).
    x : one input ``(1, C, H, W)``.
    method : a method linear in the relevance.
    layer : node or module name; ``v`` lives at its output.
    params : method parameters.

    Attributes
    ----------
    shape : ``(d_input, d_layer)``.
    in_shape, out_shape : tensor shapes of the input and of the layer's output.
    """

    def __init__(self, explainer: Explainer, x: torch.Tensor, method: str | Method,
                 layer: str, **params):
        m = get_method(method)
        check_method(m)
        if x.shape[0] != 1:
            raise ValueError(f"one image at a time, got a batch of {x.shape[0]}")
        self.method, self.explainer = m, explainer
        graph = explainer.graph
        self.node = graph.resolve(layer)
        if self.node == graph.input:
            raise ValueError("layer is the input itself; pick a layer above it")
        p = {**m.params, **params}
        self.x = x.to(explainer.device)
        rules = explainer.rules(m, p)
        shapes: dict = {}
        with torch.no_grad():
            graph.forward(self.x, keep=lambda n: False, shapes=shapes)
        self.out_shape, self.in_shape = shapes[self.node], tuple(self.x.shape)
        dtype = self.x.dtype

        def walk(v: torch.Tensor) -> torch.Tensor:
            run = MethodRun.forward(graph, m, p, rules, self.x, [[graph.input]])
            r = run.walk({self.node: v}, [graph.input], post=True,
                         check_finite=False).get(graph.input)
            if r is None:
                return torch.zeros(self.in_shape, dtype=dtype, device=self.x.device)
            return r

        self._walk = walk
        with torch.enable_grad():
            self._v0 = torch.zeros(self.out_shape, dtype=dtype, device=self.x.device,
                                   requires_grad=True)
            self._out = walk(self._v0)
            if not self._out.requires_grad:
                raise ValueError(f"the relevance at the input does not depend on '{layer}'")
            self._u0 = torch.zeros(self.in_shape, dtype=dtype, device=self.x.device,
                                   requires_grad=True)
            self._h = None
            try:  # double-vjp: h(u0) = J^T u0, differentiable in u0
                (h,) = torch.autograd.grad(self._out, self._v0, self._u0, create_graph=True,
                                           retain_graph=True)
                self._h = h if h.requires_grad else None
            except RuntimeError:  # an op without double backward: J v by a fresh walk
                self._h = None
        self.shape = (int(np.prod(self.in_shape)), int(np.prod(self.out_shape)))

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``J v``: relevance at the input for ``v`` (layer-output shape) injected."""
        v = v.reshape(self.out_shape).to(self._out)
        if self._h is None:
            with torch.no_grad():
                return self._walk(v)
        (jv,) = torch.autograd.grad(self._h, self._u0, v, retain_graph=True)
        return jv

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """``J^T u`` (``u`` of the input's shape), one backward pass."""
        u = u.reshape(self.in_shape).to(self._out)
        (jtu,) = torch.autograd.grad(self._out, self._v0, u, retain_graph=True)
        return jtu

    def linear_operator(self) -> LinearOperator:
        """The operator for SciPy (float64 vectors; computed in the model's dtype)."""
        def mv(v):
            t = torch.as_tensor(np.ascontiguousarray(v).ravel())
            return self.matvec(t).detach().reshape(-1).double().cpu().numpy()

        def rmv(u):
            t = torch.as_tensor(np.ascontiguousarray(u).ravel())
            return self.rmatvec(t).detach().reshape(-1).double().cpu().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=rmv, dtype=np.float64)

    def dense(self) -> np.ndarray:
        """``J`` formed explicitly, column by column (tests and tiny networks only)."""
        cols = [self.matvec(e).reshape(-1).double().cpu().numpy()
                for e in torch.eye(self.shape[1], dtype=self._out.dtype)]
        return np.stack(cols, axis=1)


def _explainer(model, dtype) -> Explainer:
    if isinstance(model, Explainer):
        return model
    if dtype is not None:
        p = next(model.parameters(), None)
        if p is not None and p.dtype != dtype:
            model = copy.deepcopy(model).to(dtype)
    return Explainer(model)


def spectrum(model: nn.Module | Explainer, inputs: torch.Tensor, method: str | Method,
             layer: str, k: int = 2, dtype: torch.dtype | None = None, tol: float = 1e-6,
             floor: float | None = None, solver: str = "lanczos", seed: int = 0,
             max_steps: int | None = None, **params) -> pd.DataFrame:
    """Top-``k`` singular values of the derivation matrix from the input to ``layer``.

    Parameters
    ----------
    model : the network (copied, never modified) or an :class:`~liecheck.Explainer`.
    inputs : ``(N, C, H, W)``; one matrix (and spectrum) per image.
    method : a method whose walk is linear in the relevance
        (``Method.linear_in_relevance``); Guided BP, Deconv and RectGrad are not and
        raise :class:`NotLinearInRelevance`.
    layer : node or module name whose output receives the relevance.
    k : number of singular values (``k < min(d_input, d_layer)``).
    dtype : compute in this dtype (e.g. ``torch.float64`` on a copy of the model);
        default: the model's.
    tol, floor : relative accuracy of each value, and the resolution limit relative
        to sigma1 (default: 1e-13 in float64, 1e-6 in float32, the rounding of one
        walk). A ``sigma2 / sigma1`` at or below ``floor`` means "rank 1 as far as
        this precision can tell".
    solver : ``"lanczos"`` (:func:`~liecheck.theory.lanczos.golub_kahan_svd`,
        resolves ``sigma2`` down to ``floor * sigma1``) or ``"arpack"``
        (``scipy.sparse.linalg.svds``; works on ``J^T J`` and so cannot resolve
        ``sigma2 / sigma1`` below about the square root of the rounding).
    seed : seed of the start vector.
    max_steps : at most this many Lanczos steps (one ``J v`` and one ``J^T u`` each);
        a warning says when the values did not converge.
    **params : method parameters.

    Returns
    -------
    DataFrame with one row per image (index ``image``) and the columns ``sigma1 ...
    sigma<k>`` (float64, descending) and, for ``k > 1``, ``ratio`` = sigma1 / sigma2
    (``inf`` where sigma2 is 0). ``.filter(like="sigma").to_numpy()`` is the
    ``(N, k)`` array.
    """
    explainer = _explainer(model, dtype)
    x_all = getattr(inputs, "images", inputs)
    p0 = next(explainer.graph.module.parameters(), None)
    if p0 is not None:
        x_all = x_all.to(p0.dtype)
    if floor is None:
        floor = 1e-13 if x_all.dtype == torch.float64 else 1e-6
    out = []
    for i in range(x_all.shape[0]):
        op = DerivationOperator(explainer, x_all[i:i + 1], method, layer, **params)
        if not 0 < k < min(op.shape):
            raise ValueError(f"k={k} must be between 1 and min(d_input, d_layer) - 1 = "
                             f"{min(op.shape) - 1}")
        lin = op.linear_operator()
        if solver == "lanczos":
            s = golub_kahan_svd(lin.matvec, lin.rmatvec, lin.shape, k=k, tol=tol, floor=floor,
                                seed=np.random.SeedSequence([seed, i]), max_steps=max_steps)
        elif solver == "arpack":
            v0 = np.random.default_rng([seed, i]).standard_normal(min(op.shape))
            s = svds(lin, k=k, tol=tol, v0=v0, return_singular_vectors=False)
        else:
            raise ValueError(f"solver must be 'lanczos' or 'arpack', not '{solver}'")
        out.append(np.sort(s)[::-1])
        del op
    sv = np.asarray(out, dtype=np.float64).reshape(len(out), k)
    df = pd.DataFrame(sv, columns=[f"sigma{j + 1}" for j in range(k)])
    df.index.name = "image"
    if k > 1:
        with np.errstate(divide="ignore"):
            df["ratio"] = np.where(sv[:, 1] > 0, sv[:, 0] / np.where(sv[:, 1] > 0, sv[:, 1], 1),
                                   np.inf)
    return df


def spectrum_table(model: nn.Module | Explainer, inputs: torch.Tensor, method: str | Method,
                   layers: Iterable[str], k: int = 2, dtype: torch.dtype | None = None,
                   with_csc: bool = True, n_vectors: int = 5, seed: int = 0,
                   tol: float = 1e-6, floor: float | None = None, solver: str = "lanczos",
                   max_steps: int | None = None, **params) -> pd.DataFrame:
    """Singular values per (image, layer) next to CSC at the input.

    CSC comes from :func:`liecheck.metrics.csc.csc` with ``start=layer`` and the
    input recorded: the median |cos| of the input relevance of ``n_vectors`` random
    vectors injected at the layer (per image). ``tol``, ``floor``, ``solver``,
    ``max_steps``: see
    :func:`spectrum`.

    Returns
    -------
    DataFrame: ``method, layer, depth`` (position of the layer's node), ``image,
    sigma1 ... sigma<k>, ratio`` (``sigma1 / sigma2``), ``csc_median``,
    ``csc_baseline`` (independent vectors).
    """
    explainer = _explainer(model, dtype)
    m = get_method(method)
    graph = explainer.graph
    x_all = getattr(inputs, "images", inputs)
    p0 = next(graph.module.parameters(), None)
    if p0 is not None:
        x_all = x_all.to(p0.dtype)
    rows = []
    for layer in layers:
        node = graph.resolve(layer)
        s = spectrum(explainer, x_all, m, node, k=k, seed=seed, tol=tol, floor=floor,
                     solver=solver, max_steps=max_steps, **params
                     ).filter(like="sigma").to_numpy()
        csc_by_image = [np.nan] * x_all.shape[0]
        base = np.nan
        if with_csc:
            for i in range(x_all.shape[0]):
                df = csc(explainer, x_all[i:i + 1], m.with_params(**params) if params else m,
                         start=node, layers=[graph.input], n_vectors=n_vectors, seed=seed)
                if len(df):
                    csc_by_image[i] = float(df["median"].iloc[0])
                    base = float(df["baseline"].iloc[0])
        for i in range(x_all.shape[0]):
            row = {"method": m.name, "layer": node, "depth": graph.by_name[node].index, "image": i}
            row.update({f"sigma{j + 1}": float(s[i, j]) for j in range(k)})
            row["ratio"] = float(s[i, 0] / s[i, 1]) if k > 1 and s[i, 1] > 0 else np.inf
            row["csc_median"], row["csc_baseline"] = csc_by_image[i], base
            rows.append(row)
    return pd.DataFrame(rows)
