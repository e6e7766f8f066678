"""A plain function as a liecheck method: ``from_function(fn)``."""

from __future__ import annotations

import torch

from .base import PeerMethod, assert_no_hooks, targets


def from_function(fn, name: str | None = None, reduce: str = "sum") -> PeerMethod:
    """A liecheck method computed by ``fn(model, inputs, target) -> maps``.

    Parameters
    ----------
    fn : called with liecheck's private copy of the model (eval mode, parameters
        without ``requires_grad``), the inputs ``(N, C, H, W)`` and the targets as an
        ``(N,)`` long tensor; returns ``(N, C, H, W)`` or ``(N, H, W)`` maps.
    name : the method's name (default ``"fn:<function name>"``).
    reduce : heatmap channel reduction, ``"sum"`` (signed) or ``"maxabs"``.

    Returns
    -------
    :class:`~liecheck.methods.peers.base.PeerMethod`: works with ``attribute``, ``sanity``
    and ``random_logit``; CSC is refused (the function is opaque).
    """
    if not callable(fn):
        raise TypeError("from_function expects a callable fn(model, inputs, target) -> maps")
    label = f"fn:{getattr(fn, '__name__', type(fn).__name__)}"

    def attribute_fn(explainer, x, target, params):
        module = explainer.graph.module
        t = targets(module, x, target)
        try:
            with torch.enable_grad():
                out = fn(module, x.detach().clone(), t)
        finally:
            assert_no_hooks(module, label)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{label} returned {type(out).__name__}, not a tensor")
        n = x.shape[0]
        if out.shape != x.shape and not (out.dim() == 3 and out.shape[0] == n
                                         and out.shape[1:] == x.shape[2:]):
            raise ValueError(f"{label} returned shape {tuple(out.shape)}; expected "
                             f"{tuple(x.shape)} or {(n, *x.shape[2:])}")
        return out.detach()

    return PeerMethod(
        name or label, label, f"user function {label}", None, reduce=reduce,
        attribute_fn=attribute_fn, walkable=False, linear_in_relevance=False,
        family="function", peer="function",
        csc_refusal="a plain function is opaque: liecheck cannot inject random vectors into "
                    "its backward pass (wrap a Zennit composite or a Captum method instead)")
