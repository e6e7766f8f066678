"""Random-logit test: the other class is seeded and never the target; a method that
ignores the explained class scores 1; z+ is class-insensitive, the gradient is not."""

import torch

import liecheck
from liecheck.methods import GRADIENT_COMPOSITE, Method
from liecheck.metrics.random_logit import other_classes
from liecheck.models import cifar_net


def test_other_classes_uniform_seeded_never_target():
    t = torch.randint(0, 10, (5000,), generator=torch.Generator().manual_seed(0))
    o = other_classes(t, 10, seed=0)
    assert (o != t).all() and o.min() >= 0 and o.max() <= 9
    assert torch.equal(o, other_classes(t, 10, seed=0))
    assert not torch.equal(o, other_classes(t, 10, seed=1))
    counts = torch.bincount(o, minlength=10).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.15  # uniform over classes


def test_scores_class_blind_method_one_and_z_plus_vs_gradient():
    model = liecheck.Explainer(cifar_net())  # one trace for all calls
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    blind = Method("blind", "class-blind gradient", "explains the sum of all logits",
                   GRADIENT_COMPOSITE, start=lambda logits, t, p: torch.ones_like(logits),
                   reduce="maxabs")
    df = liecheck.random_logit(model, x, blind, seed=0)
    assert list(df.columns) == ["method", "image", "target", "other", "measure", "score"]
    assert torch.allclose(torch.tensor(df["score"].to_numpy()), torch.ones(3,
                                                                          dtype=torch.float64))
    zp = liecheck.random_logit(model, x, "lrp_a1b0", seed=0)
    grad = liecheck.random_logit(model, x, "gradient", seed=0)
    assert (zp["other"] == grad["other"]).all()  # same draws for every method
    assert zp["score"].min() > 0.99 and grad["score"].max() < 0.6
    l1 = liecheck.random_logit(model, x, "lrp_a1b0", target=2, similarity="l1")
    assert (l1["target"] == 2).all() and (l1["score"] < 0.05).all()
