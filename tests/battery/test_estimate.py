"""The run's estimate comes from each (test, method) timed now (issue 22, item 5)."""

from __future__ import annotations

import liecheck
from liecheck.battery.estimate import estimate_plan, probe_method
from liecheck.models import cifar_net
from liecheck.reproduce.config import ModelPlan, RunConfig


def test_a_method_of_many_walks_is_timed_with_one_and_scaled():
    # as many noisy copies / steps as one call batches (batch_size 64 // 16 images = 4)
    sg, k = probe_method(liecheck.get_method("smoothgrad"), 16)
    assert sg.params["n_samples"] == 4 and k == 50 / 4
    ig, k = probe_method(liecheck.get_method("integrated_gradients").with_params(steps=20), 64)
    assert ig.params["steps"] == 1 and k == 20
    ig, k = probe_method(liecheck.get_method("integrated_gradients").with_params(
        steps=20, integration="riemann_trapezoid"), 64)
    assert ig.params["steps"] == 2 and k == 10
    m = liecheck.get_method("lrp_a1b0")
    assert probe_method(m) == (m, 1.0)


def test_each_method_is_timed_and_csc_skips_what_it_skips():
    model = cifar_net(seed=1).eval()
    plan = ModelPlan("cifar_net", None, n=4, size=32, experiments=("csc", "random_logit"),
                     methods=("gradient", "lrp_a1b0", "smoothgrad"), starts="logits")
    cfg = RunConfig([plan], n_vectors=2, theory=False)
    est = estimate_plan(plan, cfg, model)
    assert est.seconds > 0
    assert est.parts == ["csc 2 methods x 4 images x 1 starts x 2 vectors on cifar_net",
                         "random_logit 3 methods x 4 images on cifar_net"]
    # walks: CSC 4 images x 1 start x 2 vectors for two methods, random logit 2 maps
    assert est.walks == 2 * 4 * 2 + 3 * 2 * 4
    # SmoothGrad (50 walks per map) weighs more than the gradient in the estimate (both
    # carry the same trace per unit, which dominates on this tiny model; how close the
    # estimates come to the real times is measured in benchmarks/RESULTS.md, not here)
    one = estimate_plan(ModelPlan("cifar_net", None, n=4, size=32, methods=("gradient",),
                                  experiments=("random_logit",)), cfg, model)
    fifty = estimate_plan(ModelPlan("cifar_net", None, n=4, size=32, methods=("smoothgrad",),
                                    experiments=("random_logit",)), cfg, model)
    assert fifty.seconds > one.seconds
