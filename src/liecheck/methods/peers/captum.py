"""Captum attribution classes as liecheck methods: ``from_captum(AttrClass, **init_kwargs)``.

Each call builds the Captum object on liecheck's private copy of the model; after it,
the copy is checked for left-over hooks and any attribute Captum left on its modules
(its LRP keeps ``activations`` dicts) is removed. The user's model is never touched.
For Captum's LRP, ``nn.Flatten`` and ``nn.Identity`` modules get a rule without hooks
(relevance passes unchanged, reshaped); Captum has no default rule for them and raises.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .base import PeerMethod, assert_no_hooks, require, targets

# gradient-type maps are reduced over channels by max |.| (as the paper draws them)
_GRADIENT_TYPE = {"Saliency", "GuidedBackprop", "Deconvolution"}
# plain autograd backward (post-processing at the input only)
_PLAIN = {"Saliency": None, "InputXGradient": "x_input"}
_MODIFIED_RELU = {"GuidedBackprop", "Deconvolution"}
_REFUSALS = {
    "IntegratedGradients": "Integrated Gradients averages gradients along a path of inputs, "
                           "not one backward walk, so random vectors cannot be injected "
                           "(the paper excludes gradient-averaging methods)",
    "NoiseTunnel": "SmoothGrad (NoiseTunnel) averages backward passes over noisy inputs, so "
                   "random relevance vectors cannot be injected (the paper excludes it)",
    "Occlusion": "Occlusion only perturbs the input and has no backward pass into which "
                 "random vectors could be injected (a black-box method)",
    "LRP": "Captum's LRP changes the weights in a first forward pass and attaches its rules "
           "as tensor hooks in a second, both inside LRP.attribute, so liecheck cannot drive "
           "its backward pass from injected vectors without re-implementing those internals; "
           "use a Zennit composite with the same rules (EpsilonPlus, ...) or liecheck's lrp_*",
    "DeepLift": "Captum's DeepLift needs the reference's forward pass inside "
                "DeepLift.attribute; use liecheck's deeplift_* methods for CSC",
}


def _clean(module, before: dict[int, set]) -> None:
    """Remove attributes a peer added to the modules of ``module`` (state left behind)."""
    for m in module.modules():
        for k in set(vars(m)) - before.get(id(m), set(vars(m))):
            delattr(m, k)


def _reshapes_pass(module) -> None:
    """Captum's LRP raises on ``nn.Flatten`` / ``nn.Identity`` (no default rule; its
    ``IdentityRule`` breaks on a reshape): give them a rule that registers no hook, so
    autograd moves the relevance through them unchanged (reshaped). On liecheck's copy
    only; a rule the user set is kept."""
    from captum.attr._utils.lrp_rules import PropagationRule

    class Reshape(PropagationRule):
        def forward_hook(self, module, inputs, outputs):
            return None

        def forward_hook_weights(self, module, inputs, outputs):
            return None

        def forward_pre_hook_activations(self, module, inputs):
            return None

        def _manipulate_weights(self, module, inputs, outputs):
            return None

    for m in module.modules():
        if isinstance(m, (nn.Flatten, nn.Identity)) and not hasattr(m, "rule"):
            m.rule = Reshape()


@contextlib.contextmanager
def _modified_relu(cls, module):
    """Captum's own ReLU backward hooks (GuidedBackprop / Deconvolution), then removed."""
    attr = cls(module)
    try:
        module.apply(attr._register_hooks)
        yield module
    finally:
        attr._remove_hooks()
        assert_no_hooks(module, f"Captum's {cls.__name__}")


def from_captum(attr_class, *, name: str | None = None, reduce: str | None = None,
                attribute_kwargs: dict | None = None, **init_kwargs) -> PeerMethod:
    """A liecheck method computed by a Captum attribution class.

    Parameters
    ----------
    attr_class : a ``captum.attr`` class whose constructor takes the model and whose
        ``attribute(inputs, target=...)`` returns maps of the input's shape:
        ``Saliency``, ``InputXGradient``, ``GuidedBackprop``, ``Deconvolution``, ``LRP``,
        ``DeepLift``, ``IntegratedGradients``, ...
    name : the method's name (default ``"captum:<Class>"``).
    reduce : heatmap channel reduction (default ``"maxabs"`` for Saliency, Guided BP
        and Deconvolution, else ``"sum"``).
    attribute_kwargs : extra arguments of ``attribute`` (e.g. ``{"n_steps": 32}``).
    **init_kwargs : extra arguments of the constructor.

    Returns
    -------
    :class:`~liecheck.methods.peers.base.PeerMethod`. CSC runs through Captum's hooks for
    Saliency, InputXGradient, GuidedBackprop and Deconvolution and is refused, with
    the reason, for the others.
    """
    require("captum")
    if not isinstance(attr_class, type) or not hasattr(attr_class, "attribute"):
        raise TypeError("from_captum expects a Captum attribution class, e.g. "
                        "captum.attr.Saliency (the class, not an instance)")
    cls = attr_class.__name__
    hooks, post, refusal = _walk_hooks(attr_class, bool(init_kwargs))
    gradient_type = cls in _GRADIENT_TYPE
    return PeerMethod(
        name or f"captum:{cls}", f"captum:{cls}", f"Captum {cls}", None,
        start="onehot", post=post, reduce=reduce or ("maxabs" if gradient_type else "sum"),
        attribute_fn=_attribute_fn(attr_class, dict(attribute_kwargs or {}), init_kwargs),
        walkable=hooks is not None, linear_in_relevance=False,
        family="captum", citation="Kokhlikyan et al. 2020 (Captum)", peer="captum",
        hooks=hooks, csc_refusal=refusal)


def _attribute_fn(attr_class, kwargs: dict, init_kwargs: dict):
    """The map of ``attr_class`` on the traced copy (Captum's state removed after)."""
    cls = attr_class.__name__

    def attribute_fn(explainer, x, target, params):
        module = explainer.graph.module
        t = targets(module, x, target)
        before = {id(m): set(vars(m)) for m in module.modules()}
        try:
            if cls == "LRP":
                _reshapes_pass(module)
            with torch.enable_grad():
                out = attr_class(module, **init_kwargs).attribute(
                    x.detach().clone().requires_grad_(True), target=t, **kwargs)
        finally:
            _clean(module, before)
            assert_no_hooks(module, f"Captum's {cls}")
        out = out[0] if isinstance(out, tuple) else out
        return out.detach()
    return attribute_fn


def _walk_hooks(attr_class, configured: bool):
    """``(hooks, post, refusal)``: how CSC drives ``attr_class`` as one backward walk
    (``hooks`` is ``None`` and ``refusal`` says why where it cannot)."""
    cls = attr_class.__name__
    hooks, post = None, None
    if cls in _PLAIN and not configured:
        post = _PLAIN[cls]

        def hooks(module):
            return contextlib.nullcontext(module)
    elif cls in _MODIFIED_RELU and not configured:
        def hooks(module):
            return _modified_relu(attr_class, module)
    refusal = "" if hooks else _REFUSALS.get(
        cls, f"liecheck cannot drive one backward pass of Captum's {cls} from injected "
        "vectors (supported: Saliency, InputXGradient, GuidedBackprop, Deconvolution)")
    return hooks, post, refusal
