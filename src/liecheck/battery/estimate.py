"""How long a run of the battery will take: every (test, method) of the run timed now on
a few images, scaled to the run's images (the plan line of ``liecheck reproduce`` and of
each test's command).

One walk timed for all methods misleads by 3-10x: Integrated Gradients and SmoothGrad cost
50 walks per map, alpha-beta several products per layer, CSC's walks share one forward
pass. So each test times *its own work* per method (:meth:`FaithfulnessTest.probe`), and a
method that wraps many walks is timed with one and scaled (:func:`probe_method`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..methods import Method, get_method
from .base import TESTS

SMALL_SIDE = 64   # inputs up to this side are probed on a whole chunk, larger on one image


@dataclass
class Estimate:
    seconds: float
    walks: int
    parts: list[str]


def probe_method(m: Method, n_images: int = 1) -> tuple[Method, float]:
    """``(cheaper method, factor)``: a method whose map is many walks of one kind
    (SmoothGrad's noisy copies, Integrated Gradients' steps), with as many of them as
    it batches into one call for ``n_images`` images, and how many times that its map
    costs."""
    p = m.params
    k = max(1, int(p.get("batch_size", 1)) // max(n_images, 1))   # copies per call
    if "n_samples" in p:                                  # SmoothGrad
        n = min(k, int(p["n_samples"]))
        return m.with_params(n_samples=n), p["n_samples"] / n
    if "steps" in p and "integration" in p:               # Integrated Gradients
        n = min(max(k, 2 if p["integration"] == "riemann_trapezoid" else 1), int(p["steps"]))
        return m.with_params(steps=n), p["steps"] / n
    return m, 1.0


def timed(fn) -> float:
    """Seconds of ``fn()``; a call under 2 s runs again and the faster one counts (the
    first call of a method builds its rules and meets first-time kernels)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first >= 2.0:
        return first
    t0 = time.perf_counter()
    fn()
    return min(first, time.perf_counter() - t0)


def probe_images(plan, cfg) -> torch.Tensor:
    """Seeded images like the run's: a chunk for small inputs, one image otherwise."""
    n = max(1, min(cfg.chunk_size, plan.n)) if plan.size <= SMALL_SIDE else 1
    return torch.randn(n, 3, plan.size, plan.size,
                       generator=torch.Generator().manual_seed(cfg.seed))


def estimate_plan(plan, cfg, model) -> Estimate:
    """Seconds, walks and words of ``plan``'s tests over all its methods. Each unit of
    the run (a chunk of images of one test and method) traces the model once: that
    time comes on top of the tests' probes, which share one trace."""
    from ..attribution import Explainer

    n_layers = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())
    x = probe_images(plan, cfg).to(cfg.device)
    t0 = time.perf_counter()
    ex = Explainer(model, device=cfg.device)
    ex.attribute(x[:1], "gradient")               # trace, forward check, first kernels
    per_unit = time.perf_counter() - t0
    units = -(-plan.n // max(1, cfg.chunk_size))
    seconds, walks, parts, fallback = 0.0, 0, [], {}
    for exp in plan.experiments:
        test = TESTS[exp]
        methods = [get_method(n) for n in plan.methods]
        methods = [m for m in methods if m.walkable or not test.walk_only]
        for m in methods:
            cheap, factor = probe_method(m, len(x))
            try:
                per_image = test.probe(ex, model, x, cheap, plan, cfg, n_layers, factor)
            except (ValueError, TypeError, RuntimeError):   # e.g. patterns fitted later
                per_image = fallback.get(exp, 0.0)
            fallback.setdefault(exp, per_image)
            seconds += per_image * plan.n + per_unit * units
            walks += test.walks(plan.n, n_layers, plan.n_starts, cfg.n_vectors)
        parts.append(f"{exp} {len(methods)} methods x {plan.n} images"
                     + test.plan_words(plan, cfg, n_layers) + f" on {plan.name}")
    return Estimate(seconds, walks, parts)
