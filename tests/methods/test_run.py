"""The shared-forward engine gives the numbers of the implementation it replaced.

Reference implementations kept callable here, built only from public pieces:

* CSC as it was: one ``Explainer.walk`` per start layer on the images repeated
  ``n_vectors`` times (``x.repeat_interleave(V)``), so every vector had its own copy
  of the forward pass and of every rule quantity;
* the cascade as it was: a deep copy of the model, re-initialised with
  :func:`~liecheck.metrics.sanity.randomize` and traced again at every step.

New and old run in float64, so "the same numbers" means equal to 1e-9 relative
(the arithmetic per relevance sample is the same; only batch sizes differ).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DEVICES
from nets import small_resnet, small_vgg
from torch import nn

import liecheck
from liecheck.engine.graph import trace
from liecheck.engine.walk import NonFiniteRelevance, propagate
from liecheck.metrics.csc import _row
from liecheck.metrics.csc_setup import (
    _as_channels,
    abs_cos,
    default_record,
    random_vectors,
)
from liecheck.metrics.sanity import _steps, randomize
from liecheck.metrics.similarity import prepare
from liecheck.metrics.similarity import similarity as compare
from liecheck.reproduce.paper import paper_starts
from liecheck.rules.base import Rule

# every walkable method except PatternNet / PatternAttribution (they need fitted patterns;
# their rule reads no activation, so the fan cannot change it)
WALKABLE = [n for n in liecheck.method_names() if liecheck.get_method(n).walkable
            and not n.startswith("pattern")]


def _x(seed, n=2, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def csc_reference(ex, x, method, starts, n_vectors=3, seed=0):
    """The pre-shared-forward CSC loop (one walk per start on repeated images)."""
    m = liecheck.get_method(method)
    graph = ex.graph
    start_nodes = [graph.resolve(s) for s in starts]
    record = default_record(graph)
    shapes = {}
    graph.forward(x[:1].to(ex.device), keep=lambda n: False, shapes=shapes)
    x_rep = x.to(ex.device).repeat_interleave(n_vectors, 0)
    rows = []
    for s_name, s_node in zip(starts, start_nodes):
        rec = [r for r in record if graph.by_name[r].index < graph.by_name[s_node].index]
        v = torch.cat([random_vectors(seed, s_node, i, n_vectors, shapes[s_node][1:])
                       for i in range(x.shape[0])]).to(ex.device, x.dtype)
        out = ex.walk(x_rep, m, inject={s_node: v}, record=rec)
        if m.post == "x_input" and graph.input in out:
            out[graph.input] = out[graph.input] * x_rep
        for depth, r in enumerate(record):
            if r not in rec or r not in out:
                continue
            rr = _as_channels(out[r], n_vectors)
            d = np.concatenate([(1.0 - abs_cos(rr[i]).flatten()).cpu().numpy()
                                for i in range(rr.shape[0])]).astype(np.float32)
            node = graph.by_name[r]
            c = shapes[r][1] if len(shapes[r]) > 1 else 1
            rows.append(_row(m.name, s_name, s_node, node.name, node.module, "", depth, c,
                             d[~np.isnan(d)]))
    return pd.DataFrame(rows)


COLS = ["median", "p1", "p5", "p25", "p75", "p95", "p99", "n_values"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", WALKABLE)
def test_csc_equals_one_walk_per_start_and_vector(method, device):
    resnet = "deeplift" in method or "a2b1" in method  # residual adds, RevealCancel pairs
    model = small_resnet(3) if resnet else small_vgg(3)
    ex = liecheck.Explainer(model, device=device)
    starts = paper_starts(ex.graph, "resnet50")[::2] if resnet else ["output", "9", "5"]
    x = _x(1, size=16 if resnet else 32)
    new = liecheck.csc(ex, x, method, start=starts, n_vectors=3)
    old = csc_reference(ex, x, method, starts, n_vectors=3)
    assert len(new) == len(old) > 0
    assert list(new["layer"]) == list(old["layer"])
    np.testing.assert_allclose(new[COLS].to_numpy(float), old[COLS].to_numpy(float),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["lrp_a1b0", "deeplift_revealcancel", "rectgrad"])
def test_walks_with_fan_equal_walks_on_repeated_images(method, device):
    """Engine level, every recorded tensor: fan V over N images == N * V images."""
    model = small_resnet(5)
    ex = liecheck.Explainer(model, device=device)
    g = ex.graph
    x, fan = _x(2, size=16).to(device), 3
    record = [g.input] + [n.name for n in g.linear_nodes()]
    gen = torch.Generator().manual_seed(0)
    injects, records = [], []
    shapes = {}
    g.forward(x[:1], keep=lambda n: False, shapes=shapes)
    for node in paper_starts(g, "resnet50")[:3]:
        shape = (x.shape[0] * fan,) + shapes[node][1:]
        injects.append({node: torch.randn(shape, generator=gen, dtype=x.dtype).to(device)})
        records.append([r for r in record if g.by_name[r].index < g.by_name[node].index])
    new = list(ex.walks(x, method, injects, records, fan=fan))
    x_rep = x.repeat_interleave(fan, 0)
    for inj, rec, out in zip(injects, records, new):
        old = ex.walk(x_rep, method, inject=inj, record=rec)
        assert set(old) == set(out)
        for k in rec:
            scale = old[k].abs().max().item()
            torch.testing.assert_close(out[k], old[k], rtol=1e-9, atol=1e-9 * scale)


def sanity_reference(model, x, method, layers="all", seed=0, mode="cascading", bs=16):
    """The pre-in-graph cascade: deep copy, randomise and re-trace at every step."""
    m = liecheck.get_method(method)
    tgt = liecheck.Explainer(model).predict(x, bs)  # the predicted classes

    def explain(mod):
        ex = liecheck.Explainer(mod)
        return torch.cat([ex.attribute(x[i:i + bs], m, target=tgt[i:i + bs])
                          for i in range(0, len(x), bs)])

    groups, chosen = _steps(model, layers, mode)
    ref = prepare(explain(model), m)
    rows, work = [], copy.deepcopy(model)
    for k, names in enumerate(groups):
        if k > max(chosen, default=-1):
            break
        if mode == "independent":
            if k not in chosen:
                continue
            work = randomize(copy.deepcopy(model), names, seed)
        else:
            randomize(work, names, seed)
        if k in chosen:
            s = compare(ref, prepare(explain(work), m), "ssim")
            rows += [{"method": m.name, "mode": mode, "image": i, "target": int(tgt[i]),
                      "step": k + 1, "layer": "+".join(names), "measure": "ssim",
                      "score": float(s[i])} for i in range(len(s))]
    return pd.DataFrame(rows)


class _BNNet(nn.Module):
    """A BatchNorm folded into a conv, a stand-alone BatchNorm, a residual add."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 6, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(6)
        self.norm = nn.BatchNorm2d(6)
        self.conv_b = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.bn_a(self.conv_a(x)))
        x = self.norm(x)
        x = x + torch.relu(self.conv_b(x))
        x = self.pool(x)
        return self.head(torch.flatten(x, 1))


@pytest.mark.parametrize("method,mode,layers", [
    ("lrp_a1b0", "cascading", "all"), ("gradient", "independent", "all"),
    ("deeplift_rescale", "cascading", ["conv_a"]), ("lrp_epsilon", "cascading", 2),
    ("smoothgrad", "cascading", "all"), ("lrp_a2b1", "independent", ["norm", "head"])])
@pytest.mark.parametrize("device", DEVICES)
def test_cascade_without_retracing_equals_retracing(method, mode, layers, device):
    from nets import randomize_bn
    torch.manual_seed(0)
    model = randomize_bn(_BNNet(), 1).double().eval().to(device)
    x = _x(4, n=3, size=8)
    old = sanity_reference(model, x, method, layers=layers, seed=2, mode=mode, bs=2)
    new = liecheck.sanity(model, x, method, layers=layers, seed=2, mode=mode, batch_size=2)
    pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-9, atol=1e-12)
    assert len(new["step"].unique()) >= 1


def test_cascade_on_a_resnet_matches_retracing():
    model = small_resnet(7)
    x = _x(5, n=2, size=16)
    layers = ["layer4.0.conv2", "layer4.0.downsample.0"]  # the residual block's two paths
    old = sanity_reference(model, x, "lrp_a1b0", layers=layers, seed=1)
    new = liecheck.sanity(model, x, "lrp_a1b0", layers=layers, seed=1)
    pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-9, atol=1e-12)


def test_non_finite_relevance_names_the_first_bad_node():
    lin1, lin2 = nn.Linear(4, 3), nn.Linear(3, 2)
    with torch.no_grad():
        lin1.weight.zero_()
        lin1.bias.zero_()  # z = 0 everywhere at lin1's output
    model = nn.Sequential(lin1, nn.ReLU(), lin2).double().eval()
    g = trace(model)
    rules = liecheck.get_method("lrp_epsilon").rules(g)
    rules[g.resolve("2")] = _Explode()  # inf at the ReLU's output, NaN further down
    x = torch.ones(2, 4, dtype=torch.float64)
    r = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(NonFiniteRelevance, match=f"'{g.resolve('1')}'"):
        propagate(g, x, rules, inject={g.output: r}, record=[g.input])
    rules[g.resolve("2")] = liecheck.get_method("lrp_epsilon").rules(g)[g.resolve("2")]
    out = propagate(g, x, rules, inject={g.output: r}, record=[g.input])
    assert torch.isfinite(out[g.input]).all()


class _Explode(Rule):
    needs_inputs = False

    def backward(self, ctx, node, r):
        return [torch.full(ctx.shape(node.inputs[0]), float("inf"), dtype=r.dtype)]
