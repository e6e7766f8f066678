"""Public attribution API: ``attribute(model, x, method)`` and the reusable
:class:`Attribution` (Captum-shaped: ``Attribution(model, method).attribute(x, target=...)``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

from . import trace_cache
from .engine.graph import Graph, trace
from .inputs import check_output, resolve_targets, validate_inputs
from .methods import Method, get_method
from .methods.run import MethodRun


class Explainer:
    """A model traced once and shared by every map and test of it.

    The verb is :meth:`attribute` (as everywhere in liecheck). :meth:`walk` and
    :meth:`walks` are the lower level the faithfulness tests use: reverse walks with
    relevance injected at any node and recorded at any nodes.

    Parameters
    ----------
    model : ``nn.Module`` (left untouched) or an already traced :class:`Graph`.
    device : where to run (default: the model's device).
    check_forward : compare the traced graph with the model's own forward on the first
        batch (see :mod:`liecheck.engine.equivalence`); ignored for a :class:`Graph`, which
        carries its own setting.
    """

    def __init__(self, model: nn.Module | Graph, device: str | torch.device | None = None,
                 check_forward: bool = True):
        self.graph = (model if isinstance(model, Graph)
                      else trace(model, check_forward=check_forward))
        if device is None:
            p = next(self.graph.module.parameters(), None)
            device = p.device if p is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.graph.to(self.device)
        self._rules: dict = {}
        self._n_classes: dict = {}

    def check_inputs(self, x: torch.Tensor, classes: bool = True) -> int | None:
        """Refuse a batch the model cannot explain exactly (one sentence, before any
        work; see :func:`liecheck.inputs.validate_inputs`) and return the model's
        number of classes (its output is checked to be ``(N, classes)`` logits). With
        ``classes=False`` (walks with injected relevance) the output is not checked."""
        validate_inputs(x, self.graph)
        if not classes:
            return None
        key = (tuple(x.shape[1:]), x.dtype)
        if key not in self._n_classes:  # one single-sample forward per input shape
            out = self.logits(x[:1], check=False)
            check_output(out.shape, 1)
            self._n_classes[key] = out.shape[1]
        return self._n_classes[key]

    def targets(self, x: torch.Tensor, target=None) -> torch.Tensor:
        """``(N,)`` class indices on the device: ``target`` checked and broadcast, or
        the predicted classes (see :func:`liecheck.inputs.resolve_targets`)."""
        n_classes = self.check_inputs(x)
        return resolve_targets(target, x.shape[0], n_classes,
                               lambda: self.logits(x).argmax(1), self.device)

    def predict(self, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Predicted classes ``(N,)`` on the CPU, ``batch_size`` samples per forward."""
        return torch.cat([self.logits(x[i:i + batch_size]).argmax(1).cpu()
                          for i in range(0, x.shape[0], batch_size)])

    def rules(self, method: Method, params: dict):
        key = (method.name, id(method), tuple(sorted((k, repr(v)) for k, v in params.items())))
        if key not in self._rules:
            self._rules[key] = method.rules(self.graph, **params)
        return self._rules[key]

    @torch.no_grad()
    def logits(self, x: torch.Tensor, check: bool = True) -> torch.Tensor:
        """The model's logits ``(N, classes)``; the input is checked first (``check``)."""
        if check:
            self.check_inputs(x)
        x = to_device(x, self.device)
        return self.graph.forward(x, keep=lambda n: False)[self.graph.output]

    def given_targets(self, x: torch.Tensor, target=None) -> torch.Tensor | None:
        """``target`` checked and broadcast to ``(N,)`` class indices, or ``None`` (the
        walk then explains the predicted classes of its own forward pass)."""
        n_classes = self.check_inputs(x)
        return None if target is None else resolve_targets(target, x.shape[0], n_classes)

    def run(self, x: torch.Tensor, method: Method, params: dict,
            records: Iterable[Iterable[str]] = (), fan: int = 1, shared: bool = False
            ) -> MethodRun:
        """The method's forward pass of ``x`` (on the device), ready for walks; see
        :meth:`liecheck.methods.run.MethodRun.forward`."""
        x = to_device(x, self.device)
        with torch.no_grad():
            return MethodRun.forward(self.graph, method, params, self.rules(method, params), x,
                                     records, fan, shared)

    def walk(self, x: torch.Tensor, method: str | Method, inject=None, record: Iterable[str] = (),
             target=None, **params) -> dict[str, torch.Tensor]:
        """One forward + reverse walk; see :func:`liecheck.engine.walk.propagate`.

        Without ``inject``, relevance starts at the logits as the method says
        (explaining ``target``, default: the predicted class). The result at the
        recorded nodes is the method's (DeepLIFT: contributions), before the
        post-processing of the input map (``post``).
        """
        m = get_method(method)
        m.check_params(params)
        p = {**m.params, **params}
        _check_walkable(m)
        n_classes = self.check_inputs(x, classes=inject is None)
        given = None
        if inject is None and target is not None:
            given = resolve_targets(target, x.shape[0], n_classes)
        record = list(record)
        run = self.run(x, m, p, [record])
        with torch.no_grad():
            return run.walk(run.start(given) if inject is None else inject, record)

    def walks(self, x: torch.Tensor, method: str | Method, injects, records, fan: int = 1,
              post: bool = False, **params):
        """Several walks over one forward pass of ``x``; see
        :func:`liecheck.engine.walk.propagate_many`.

        ``injects[k]`` (node -> relevance of batch ``N * fan``: sample ``i * fan + j``
        belongs to image ``i``) and ``records[k]`` describe walk ``k``. Methods that
        finish a walk (DeepLIFT's contributions) do so per walk, as :meth:`walk` does;
        ``post=True`` also post-processes the relevance at the input into the method's
        map. A generator: walk ``k + 1`` starts when walk ``k``'s result has been taken
        (and may be dropped, to bound memory).
        """
        m = get_method(method)
        p = {**m.params, **params}
        _check_walkable(m)
        records = [list(rec) for rec in records]
        run = self.run(x, m, p, records, fan, shared=len(injects) > 1)
        for inj, rec in zip(injects, records, strict=True):
            with torch.no_grad():
                out = run.walk(inj, rec, post=post)
            yield out

    def attribute(self, x: torch.Tensor, method: str | Method, target=None, **params
                  ) -> torch.Tensor:
        """Attribution map of the input's shape ``(N, C, H, W)`` (:meth:`Method.attribute`)."""
        m = get_method(method)
        m.check_params(params)
        self.check_inputs(x)
        x = to_device(x, self.device)
        return m.attribute(self, x, target, {**m.params, **params})


def _check_walkable(m: Method) -> None:
    if not m.walkable:
        raise ValueError(f"method '{m.name}' is not a single backward walk")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; from the CPU to a GPU through pinned memory, asynchronously."""
    if x.device == device:
        return x
    if x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


class Attribution:
    """Captum-style wrapper: trace once in the constructor, reuse across calls.

    >>> attr = Attribution(model, "lrp_a1b0")
    >>> maps = attr.attribute(images, target=labels)
    """

    def __init__(self, model: nn.Module, method: str | Method, device=None,
                 check_forward: bool = True, **params):
        self.method = get_method(method)
        self.method.check_params(params)
        self.params = params
        self.explainer = Explainer(model, device=device, check_forward=check_forward)

    def attribute(self, inputs: torch.Tensor, target=None, **params) -> torch.Tensor:
        return self.explainer.attribute(inputs, self.method, target=target,
                                        **{**self.params, **params})


def attribute(model: nn.Module, inputs: torch.Tensor, method: str | Method, target=None,
              device=None, check_forward: bool = True, **params) -> torch.Tensor:
    """Explain ``model`` on ``inputs`` with ``method``.

    Parameters
    ----------
    model : any torch.fx-traceable CNN. It is deep-copied; the original keeps its
        weights, hooks and training flag. The traced copy is kept for the next call
        with the same model object as long as the model is unchanged (see
        :mod:`liecheck.trace_cache`), so a loop of calls costs what a reused
        :class:`Attribution` costs.
    inputs : ``(N, C, H, W)`` batch in the model's input space.
    method : a registry name (see :func:`liecheck.methods`) or a :class:`Method`.
    target : class indices (int or ``(N,)``); default: the predicted classes.
    check_forward : on the first batch, compare the traced graph's logits with the
        model's own eval-mode forward and raise on a difference (default; see
        :mod:`liecheck.engine.equivalence`). False skips the check.
    **params : method parameters (e.g. ``epsilon=1e-3``).

    Returns
    -------
    Tensor ``(N, C, H, W)``: the relevance at the input.
    """
    m = get_method(method)
    m.check_params(params)
    if not check_forward:  # an unchecked trace is never shared with checked calls
        return Attribution(model, m, device=device, check_forward=False,
                           **params).attribute(inputs, target=target)
    return explainer_for(model, device).attribute(inputs, m, target=target, **params)


def explainer_for(model: nn.Module, device=None) -> Explainer:
    """The :class:`Explainer` of ``model``, traced once per state of the model: it is
    kept (weakly) for the model object and re-traced when the model's parameters,
    buffers, modules, hooks or training flags change (:mod:`liecheck.trace_cache`)."""
    if not isinstance(model, nn.Module):
        return Explainer(model, device=device)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    key = str(torch.device(device))
    return trace_cache.cached(model, key, lambda: Explainer(model, device=device))
