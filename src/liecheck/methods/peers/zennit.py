"""Zennit composites as liecheck methods: ``from_zennit(composite, attributor=...)``.

The composite (with its canonizers, if any) is registered on liecheck's private copy
of the model for each call and removed afterwards by Zennit's own context; the copy
is then checked for left-over hooks. The user's model is never hooked.
"""

from __future__ import annotations

import contextlib

import torch

from .base import PeerMethod, assert_no_hooks, one_hot, require, targets

# why CSC does not apply to Zennit's other attributors (paper section 5 / appendix)
_NOT_ONE_WALK = {
    "SmoothGrad": "SmoothGrad averages backward passes over noisy inputs, so random "
                  "relevance vectors cannot be injected into one walk (the paper excludes it)",
    "IntegratedGradients": "Integrated Gradients averages gradients along a path of inputs, "
                           "not one backward walk, so random vectors cannot be injected "
                           "(the paper excludes gradient-averaging methods)",
    "Occlusion": "Occlusion only perturbs the input and has no backward pass into which "
                 "random vectors could be injected (a black-box method)",
}


def _checked(composite, attributor, start: str):
    """The attributor class (default ``Gradient``), after checking the arguments."""
    from zennit.attribution import Attributor, Gradient
    from zennit.core import Composite

    if composite is not None and not isinstance(composite, Composite):
        raise TypeError(f"from_zennit expects a zennit Composite, not {type(composite).__name__}")
    attributor = Gradient if attributor is None else attributor
    if not (isinstance(attributor, type) and issubclass(attributor, Attributor)):
        raise TypeError("attributor must be a zennit.attribution class, e.g. Gradient")
    if start not in ("onehot", "logit"):
        raise ValueError(f"start must be 'onehot' or 'logit', not {start!r}")
    return attributor


def from_zennit(composite, attributor=None, name: str | None = None, start: str = "onehot",
                reduce: str = "sum", **attributor_kwargs) -> PeerMethod:
    """A liecheck method computed by a Zennit composite.

    Parameters
    ----------
    composite : any ``zennit.core.Composite`` (e.g. ``EpsilonPlusFlat()``, with or
        without ``canonizers=[...]``), or ``None`` for the plain gradient.
    attributor : a ``zennit.attribution`` class (default ``Gradient``); ``SmoothGrad``,
        ``IntegratedGradients`` and ``Occlusion`` work for maps but not for CSC.
    name : the method's name (default ``"zennit:<Composite>"``).
    start : output relevance: ``"onehot"`` (Zennit's usual one-hot of the target) or
        ``"logit"`` (one-hot times the logit, liecheck's LRP start).
    reduce : heatmap channel reduction, ``"sum"`` (signed) or ``"maxabs"``.
    **attributor_kwargs : passed to the attributor (e.g. ``n_iter=20``).

    Returns
    -------
    :class:`~liecheck.methods.peers.base.PeerMethod`, accepted wherever a method name is.
    Maps are ``(N, C, H, W)``.
    """
    require("zennit")
    from zennit.attribution import Gradient

    attributor = _checked(composite, attributor, start)
    cname = type(composite).__name__ if composite is not None else "Gradient"
    aname = attributor.__name__
    label = f"zennit:{cname}" + ("" if attributor is Gradient else f"+{aname}")

    def attribute_fn(explainer, x, target, params):
        module = explainer.graph.module
        t = targets(module, x, target)
        try:
            with torch.enable_grad(), attributor(model=module, composite=composite,
                                                 **attributor_kwargs) as attr:
                _, rel = attr(x.detach().clone(),
                              lambda out: one_hot(out, t, start == "logit"))
        finally:
            assert_no_hooks(module, f"Zennit's {cname}")
        return rel.detach()

    def hooks(module):
        return composite.context(module) if composite is not None else contextlib.nullcontext()

    one_walk = attributor is Gradient or (issubclass(attributor, Gradient)
                                          and aname not in _NOT_ONE_WALK)
    refusal = "" if one_walk else _NOT_ONE_WALK.get(
        aname, f"Zennit's {aname} is not one backward walk")
    return PeerMethod(
        name or label, label, f"Zennit {cname} with the {aname} attributor", None,
        start="onehot" if start == "onehot" else "logit", reduce=reduce, attribute_fn=attribute_fn,
        walkable=one_walk, linear_in_relevance=False, family="zennit",
        citation="Anders et al. 2021 (Zennit)", peer="zennit",
        hooks=hooks if one_walk else None, csc_refusal=refusal)
