"""Procedures that are not one backward walk: SmoothGrad, Integrated Gradients and
Grad-CAM. Each runs walks in bounded batches.

SmoothGrad and Integrated Gradients wrap a *base* method (``base=``, default
``"gradient"``): ``smoothgrad[guided_bp]`` or ``smoothgrad[lrp_epsilon]`` averages that
method's maps over the noisy copies (:func:`liecheck.get_method` reads the bracket;
the same as ``get_method("smoothgrad").with_params(base="guided_bp")``, but with the
base's channel reduction and its own name); ``integrated_gradients[guided_bp]``
integrates a modified gradient along the path. Integrated Gradients refuses a base
whose map is not a (modified) gradient (LRP, DeepLIFT, gradient x input): its
``(x - x0)`` factor turns an integrated gradient into an attribution, and would
multiply a relevance map a second time.

* ``smoothgrad`` (Smilkov et al. 2017): mean map over ``n_samples`` (50) noisy
  copies ``x + N(0, sigma^2)``, ``sigma = noise_level * (max(x) - min(x))`` per input
  (``noise_level=0.15``). Seeded (``seed=0``); the noise of sample ``s`` does not depend
  on ``batch_size``. Excluded from CSC (``walkable=False``).
* ``integrated_gradients`` (Sundararajan et al. 2017): ``(x - x0) * sum_k w_k
  grad f(x0 + alpha_k (x - x0))`` with Captum's quadrature rules
  (``integration="gausslegendre"`` default, ``"riemann_left|right|middle|trapezoid"``),
  ``steps=50``; ``baseline=`` as DeepLIFT's ``reference=`` (zeros, ``"blur"``, a
  number or a tensor). ``"riemann_trapezoid"`` is the true trapezoid rule (weights
  ``1/(n-1)``, halved at the ends); Captum's weights are ``1/n`` halved at the ends
  (they sum to ``(n-1)/n``), so the two differ there.
* ``gradcam`` (Selvaraju et al. 2017), Captum's ``LayerGradCam`` semantics:
  ``relu(sum_c mean_hw(dy_k/dA_c) A_c)`` at ``layer=`` (default: the last conv
  node; any node or module name, a container name picks its last node), upsampled
  to the input size (``interpolate="bilinear"``; ``None`` keeps the layer's size).
  Returns ``(N, 1, H, W)``.

Targets default to the class predicted on the clean input ``x``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from .deeplift import make_reference
from .protocol import Method
from .registry import get_method, register_method


def _gradient(explainer, x: torch.Tensor, t: torch.Tensor, node: str | None = None):
    node = node or explainer.graph.input
    return explainer.walk(x, "gradient", record=[node], target=t)[node]


def _map(explainer, base: Method, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The base method's map of ``x`` for the classes ``t`` (the gradient: one walk)."""
    if base.name == "gradient":
        return _gradient(explainer, x, t)
    return explainer.attribute(x, base, target=t)


def _rows(explainer, inputs: list[torch.Tensor], t: torch.Tensor, batch_size: int,
          base: Method):
    """Maps of ``len(inputs)`` copies of an ``N``-batch, ``batch_size`` rows at a time."""
    n = t.shape[0]
    k = max(1, batch_size // max(n, 1))
    out = []
    for i in range(0, len(inputs), k):
        chunk = inputs[i : i + k]
        g = _map(explainer, base, torch.cat(chunk), t.repeat(len(chunk)))
        out.extend(g.split(n))
    return out


def is_gradient(m: Method) -> bool:
    """Whether ``m``'s map is a (modified) gradient: one walk from a one-hot start,
    nothing multiplied at the input (gradient, Deconv, Guided BP, RectGrad)."""
    return (m.family == "gradient" and m.map_is_one_walk and m.post is None
            and m.start == "onehot")


def _base(p, wrapper: str, gradient_only: bool = False) -> Method:
    base = get_method(p.get("base", "gradient"))
    if gradient_only and not is_gradient(base):
        raise ValueError(f"{wrapper} integrates a (modified) gradient; the base method "
                         f"'{base.name}' is not one (its map is already an attribution): use "
                         "gradient, deconv, guided_bp, rectgrad or a gradient-family method "
                         "of yours")
    return base


def smoothgrad(explainer, x, target, p):
    t = explainer.targets(x, target)
    flat = x.reshape(x.shape[0], -1)
    sigma = (p["noise_level"] * (flat.max(1).values - flat.min(1).values)).view(
        -1, *[1] * (x.dim() - 1))
    gen = torch.Generator(device=x.device).manual_seed(int(p["seed"]))
    n = int(p["n_samples"])
    base = _base(p, "smoothgrad")
    total = None
    k = max(1, int(p["batch_size"]) // x.shape[0])
    for s in range(0, n, k):
        noisy = [x + sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                 for _ in range(min(k, n - s))]
        for g in _rows(explainer, noisy, t, int(p["batch_size"]), base):
            total = torch.zeros_like(g) if total is None else total
            total += g
    return total / n


def quadrature(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)`` on [0, 1], as Captum's ``approximation_methods``."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * nodes + 0.5, 0.5 * w
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] *= 0.5
        return np.linspace(0, 1, steps), w
    off = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method not in off:
        raise ValueError(f"unknown integration method {method!r}: use gausslegendre, "
                         "riemann_left, riemann_right, riemann_middle or riemann_trapezoid")
    return (np.arange(steps) + off[method]) / steps, np.full(steps, 1.0 / steps)


def integrated_gradients(explainer, x, target, p):
    x0 = make_reference(x, p.get("baseline"), p.get("blur_sigma", 10.0))
    base = _base(p, "integrated_gradients", gradient_only=True)
    t = explainer.targets(x, target)
    alphas, weights = quadrature(int(p["steps"]), p["integration"])
    d = x - x0
    total = torch.zeros_like(x)
    bs = int(p["batch_size"])
    k = max(1, bs // x.shape[0])
    for s in range(0, len(alphas), k):
        a = alphas[s : s + k]
        grads = _rows(explainer, [x0 + float(al) * d for al in a], t, bs, base)
        for g, w in zip(grads, weights[s : s + k]):
            total += float(w) * g
    return d * total


def _layer(graph, name):
    if name is None:
        node = graph.last("conv")
        if node is None:
            raise ValueError("gradcam: the model has no conv layer; pass layer=<node name>")
        return node.name
    try:
        return graph.resolve(name)
    except KeyError:
        inside = [n.name for n in graph.nodes if n.module and n.module.startswith(name + ".")]
        if inside:
            return inside[-1]
        raise


def gradcam(explainer, x, target, p):
    node = _layer(explainer.graph, p.get("layer"))
    t = explainer.targets(x, target)
    grad = _gradient(explainer, x, t, node)
    with torch.no_grad():
        act = explainer.graph.forward(x, keep=lambda n: n.name == node)[node]
    if act.dim() != 4:
        raise ValueError(f"gradcam: layer '{node}' has output shape {tuple(act.shape)}; "
                         "it needs a (N, C, h, w) feature map")
    cam = (grad.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True)
    if p.get("relu", True):
        cam = cam.clamp(min=0)
    mode = p.get("interpolate", "bilinear")
    if mode is not None and x.dim() == 4:
        cam = F.interpolate(cam, size=x.shape[2:], mode=mode)
    return cam


class Wrapper(Method):
    """A procedure over a base method's maps (``params["base"]``)."""

    gradient_only = False

    def around(self, base: str | Method) -> Method:
        """This procedure around ``base``, named ``name[base]``, with the base's channel
        reduction (``get_method("smoothgrad[guided_bp]")`` calls it)."""
        b = _base({"base": base}, self.name, self.gradient_only)
        return replace(self, name=f"{self.name}[{b.name}]", reduce=b.reduce,
                       family=b.family, params={**self.params, "base": _spelling(b)},
                       paper_name=f"{self.paper_name} of {b.paper_name}")


def _spelling(m: Method) -> str | Method:
    """A registered method by its name (params stay plain data), any other as is."""
    try:
        return m.name if get_method(m.name) is m else m
    except ValueError:
        return m


class SmoothGrad(Wrapper):
    """SmoothGrad's map: :func:`smoothgrad`."""

    def attribute(self, explainer, x, target, params):
        return smoothgrad(explainer, x, target, params)


class IntegratedGradients(Wrapper):
    """Integrated Gradients' map: :func:`integrated_gradients`."""

    gradient_only = True

    def attribute(self, explainer, x, target, params):
        return integrated_gradients(explainer, x, target, params)


class GradCAM(Method):
    """Grad-CAM's map: :func:`gradcam`."""

    def attribute(self, explainer, x, target, params):
        return gradcam(explainer, x, target, params)


_GRAD = {"family": "gradient", "start": "onehot", "walkable": False}
METHODS = [
    SmoothGrad("smoothgrad", "SmoothGrad", "mean gradient over 50 noisy copies, "
               "sigma = 0.15 (max - min) of each input", None, reduce="maxabs",
               params={"n_samples": 50, "noise_level": 0.15, "seed": 0, "batch_size": 64,
                       "base": "gradient"},
               citation="Smilkov et al. 2017", **_GRAD),
    IntegratedGradients("integrated_gradients", "Integrated Gradients",
                        "path integral of the gradient from a baseline (default zeros), "
                        "times x - x0", None, reduce="sum",
                        params={"steps": 50, "integration": "gausslegendre", "baseline": None,
                                "blur_sigma": 10.0, "batch_size": 64, "base": "gradient"},
                        citation="Sundararajan et al. 2017", **_GRAD),
    GradCAM("gradcam", "Grad-CAM", "relu(sum_c mean(dy/dA_c) A_c) at the last conv layer, "
            "upsampled to the input", None, reduce="sum",
            params={"layer": None, "relu": True, "interpolate": "bilinear"},
            citation="Selvaraju et al. 2017", **_GRAD),
]

for _m in METHODS:
    register_method(_m)
