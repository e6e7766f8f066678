"""Functional calls reuse the trace (issue 11, item 4): ``liecheck.attribute`` keeps the
traced copy per model object, weakly, and re-traces whenever the model changed, so the
result always equals a fresh :class:`~liecheck.Attribution`'s, bit for bit."""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch
from torch import nn

import liecheck
from liecheck import attribution


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)).eval()


X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def traces(monkeypatch):
    """Counts the traces ``attribute`` makes."""
    calls = []
    real = attribution.trace

    def counting(model, **kwargs):
        calls.append(model)
        return real(model, **kwargs)

    monkeypatch.setattr(attribution, "trace", counting)
    return calls


def fresh(model, method="lrp_a1b0", x=X, target=1):
    return liecheck.Attribution(model, method).attribute(x, target=target)


def test_a_loop_of_calls_traces_once(traces):
    model = net()
    maps = [liecheck.attribute(model, X, m, target=1)
            for m in ("lrp_a1b0", "lrp_a1b0", "gradient", "lrp_a1b0")]
    assert len(traces) == 1
    assert torch.equal(maps[0], maps[1]) and torch.equal(maps[0], maps[3])
    assert torch.equal(maps[0], fresh(model))


EDITS = {
    "in-place no_grad mul_": lambda m: m[0].weight.mul_(-2.0),
    "in-place copy_": lambda m: m[8].weight.copy_(torch.randn(5, 16)),
    "bias add_": lambda m: m[4].bias.add_(1.0),
    "buffer (BN running mean)": lambda m: m[1].running_mean.add_(0.5),
    "load_state_dict": lambda m: m.load_state_dict(net(seed=5).state_dict()),
    "load_state_dict(assign=True)": lambda m: m.load_state_dict(net(seed=6).state_dict(),
                                                                assign=True),
    "parameter replaced": lambda m: setattr(m[0], "weight", nn.Parameter(-m[0].weight)),
    "module replaced": lambda m: m.__setitem__(4, nn.Conv2d(4, 4, 3, padding=1)),
    "module attribute": lambda m: setattr(m[3], "kernel_size", 1),
    "train-mode forward (BN statistics)": lambda m: (m.train(), m(X), m.eval()),
    "optimiser step": lambda m: _sgd_step(m),
}


def _sgd_step(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with torch.enable_grad():
        model(X).sum().backward()
    opt.step()
    opt.zero_grad()


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edit_between_calls_changes_the_result_exactly(edit, traces):
    model = net()
    before = liecheck.attribute(model, X, "lrp_a1b0", target=1)
    assert torch.equal(liecheck.attribute(model, X, "lrp_a1b0", target=1), before)
    assert len(traces) == 1  # unchanged model: the trace is reused
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the train-mode edit may warn
        EDITS[edit](model)
    after = liecheck.attribute(model, X, "lrp_a1b0", target=1)
    assert len(traces) == 2  # re-traced once
    assert torch.equal(after, fresh(model))
    assert not torch.equal(after, before)


def test_dtype_and_device_changes_retrace(traces):
    model = net()
    liecheck.attribute(model, X, "gradient", target=1)
    model.double()
    got = liecheck.attribute(model, X.double(), "gradient", target=1)
    assert got.dtype == torch.float64 and len(traces) == 2
    model.to("cpu")  # the same device: nothing changes, no re-trace
    liecheck.attribute(model, X.double(), "gradient", target=1)
    assert len(traces) == 2
    assert torch.equal(got, fresh(model, "gradient", X.double()))


def test_hooks_and_training_flag_are_part_of_the_fingerprint():
    from liecheck.trace_cache import fingerprint

    model = net()
    fp = fingerprint(model)
    h = model[2].register_forward_hook(lambda mod, i, o: o * 3)
    assert fingerprint(model) != fp
    h.remove()
    assert fingerprint(model) == fp
    h = model[4].register_forward_pre_hook(lambda mod, i: None)
    assert fingerprint(model) != fp
    h.remove()
    model[5].train()
    assert fingerprint(model) != fp
    model.eval()
    assert fingerprint(model) == fp


def test_the_cache_holds_no_strong_reference():
    from liecheck import trace_cache

    model = net()
    gc.collect()  # models of earlier tests
    n = trace_cache.size()
    liecheck.attribute(model, X, "gradient")
    assert trace_cache.size() == n + 1
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    assert trace_cache.size() == n


def test_metrics_share_the_cached_trace(traces):
    model = net()
    liecheck.attribute(model, X, "gradient", target=1)
    liecheck.random_logit(model, X, "gradient")
    liecheck.random_logit(model, X, "lrp_z")
    assert len(traces) == 1
