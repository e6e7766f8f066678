"""Every rule against an independent dense-matrix reference.

For each small layer we build its explicit matrix ``W`` (shape ``(O, D)``) and bias
``b`` by applying the layer to the zero vector and to the ``D`` identity basis vectors:
``b = L(0)`` and ``W[:, i] = L(e_i) - L(0)`` (every layer here is affine). Each rule is
then written in matrix form as a *contribution matrix* ``C[n, o, d]`` (how much input
``d`` contributes to output ``o`` for sample ``n``) plus an optional extra term in the
denominator; the relevance at the input is

    R_in[n, d] = sum_o C[n, o, d] / z[n, o] * R[n, o],    z = sum_d C[n, o, d] + extra,

with ``0 / 0 := 0``. This is computed in float64 by broadcasting, sharing no code with
the engine (which uses convolutions and their transposes), and compared with the rule
run through ``liecheck.engine.walk.propagate`` on a one-layer model with injected relevance.

Three input regimes are covered: signed inputs (general path), non-negative inputs
on the general path, and inputs fed by a ReLU (the engine's ``node.nonneg_input``
fast path, which drops the ``x-`` terms).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import liecheck
from liecheck.engine.walk import propagate
from liecheck.rules import base as rb
from liecheck.rules import gradient as rg
from liecheck.rules import lrp as rl

SEEDS_BATCHES = [(0, 1), (1, 3), (2, 2)]


# ------------------------------------------------------------------ layers
def _bn(cls, c, seed):
    g = torch.Generator().manual_seed(seed + 100)
    m = cls(c)
    m.running_mean = torch.randn(c, generator=g)
    m.running_var = torch.rand(c, generator=g) + 0.3
    # signed scales: the W- parts of alpha-beta / z^B must be exercised on BN too
    m.weight.data = torch.randn(c, generator=g)
    m.bias.data = torch.randn(c, generator=g)
    return m


LAYERS = {
    # name: (factory(seed) -> module, per-sample input shape)
    "linear": (lambda s: nn.Linear(6, 4), (6,)),
    "conv": (lambda s: nn.Conv2d(2, 3, 3, padding=1), (2, 5, 5)),
    # strided, grouped: the fused W+/W- path (forward_many) falls back for groups > 1
    "conv_grouped": (lambda s: nn.Conv2d(4, 4, 2, stride=2, groups=2), (4, 5, 5)),
    "conv_dilated_nobias": (lambda s: nn.Conv2d(2, 2, 3, dilation=2, padding=1, bias=False),
                            (2, 6, 6)),
    "bn2d": (lambda s: _bn(nn.BatchNorm2d, 3, s), (3, 3, 3)),
    "bn1d": (lambda s: _bn(nn.BatchNorm1d, 5, s), (5,)),
    "avgpool": (lambda s: nn.AvgPool2d(2), (2, 4, 4)),
    "avgpool_pad": (lambda s: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                    (2, 5, 5)),
    # 5 -> 3 adaptive windows overlap (sizes 2, 3, 2)
    "adaptive": (lambda s: nn.AdaptiveAvgPool2d(3), (2, 5, 5)),
}
POOLS = {"avgpool", "avgpool_pad", "adaptive"}


def make_layer(name: str, seed: int) -> tuple[nn.Module, tuple]:
    factory, shape = LAYERS[name]
    torch.manual_seed(seed)
    return factory(seed).double().eval(), shape


@torch.no_grad()
def dense_matrix(layer: nn.Module, in_shape: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W (O, D), b (O,))`` of an affine layer, read off the identity basis."""
    d = int(np.prod(in_shape))
    b = layer(torch.zeros((1,) + in_shape, dtype=torch.float64)).reshape(-1)
    basis = torch.eye(d, dtype=torch.float64).reshape((d,) + in_shape)
    w = (layer(basis).reshape(d, -1) - b).T
    return w.contiguous(), b


# --------------------------------------------------------- matrix references
def share(c: torch.Tensor, r: torch.Tensor, extra=0.0, eps: float = 0.0) -> torch.Tensor:
    """``R_in[n, d] = sum_o c[n,o,d] / (z[n,o] + eps sign z) * r[n,o]``; 0/0 := 0."""
    z = c.sum(-1) + extra
    if eps:
        z = z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    s = torch.where(z == 0, torch.zeros_like(z), r / torch.where(z == 0, 1.0, z))
    return (c * s[..., None]).sum(1)


def ref_epsilon(x, w, b, r, eps=0.0, bias=True):
    # LRP-z / epsilon: C = w_od x_d, z = sum_d C + b (Bach et al. 2015)
    return share(w[None] * x[:, None], r, b if bias else 0.0, eps)


def ref_alpha_beta(x, w, b, r, alpha, beta, bias=True):
    # activator z+ = x+W+ + x-W- + b+, inhibitor z- = x+W- + x-W+ + b- (liecheck's rule)
    xp, xn = x.clamp(min=0)[:, None], x.clamp(max=0)[:, None]
    wp, wn = w.clamp(min=0)[None], w.clamp(max=0)[None]
    bp, bn = (b.clamp(min=0), b.clamp(max=0)) if bias else (0.0, 0.0)
    act = share(xp * wp + xn * wn, r, bp)
    inh = share(xp * wn + xn * wp, r, bn)
    return alpha * act - beta * inh


def ref_wsquare(x, w, b, r):
    # w^2 rule (Montavon et al. 2017): C = w_od^2, independent of x
    return share((w ** 2)[None].expand(x.shape[0], -1, -1), r)


def ref_flat(x, w, b, r):
    # flat rule: every input of the receptive field (w_od != 0) gets an equal share
    return share((w != 0).double()[None].expand(x.shape[0], -1, -1), r)


def ref_zbox(x, w, b, r, lo, hi):
    # z^B (Montavon et al. 2017): C = w x - w+ l - w- h, no bias
    wp, wn = w.clamp(min=0)[None], w.clamp(max=0)[None]
    return share(w[None] * x[:, None] - wp * lo[:, None] - wn * hi[:, None], r)


def ref_excitation(x, w, b, r):
    # Excitation BP (Zhang et al. 2018): C = x w+, no bias
    return share(x[:, None] * w.clamp(min=0)[None], r)


def ref_gradient(x, w, b, r):
    return r @ w


def _bounds(kind, x4):
    """Return (engine low, engine high, reference low (N, D), reference high (N, D))."""
    n = x4.shape[0]
    if kind == "scalar":
        lo, hi = -2.5, 3.0
        return lo, hi, torch.full((n, x4[0].numel()), lo).double(), \
            torch.full((n, x4[0].numel()), hi).double()
    if kind == "channel":
        c = x4.shape[1]
        lo = [-1.0 - 0.5 * i for i in range(c)]
        hi = [2.0 + 0.25 * i for i in range(c)]
        shape = (1, c) + (1,) * (x4.dim() - 2)
        tl = torch.tensor(lo).double().view(shape).expand_as(x4).reshape(n, -1)
        th = torch.tensor(hi).double().view(shape).expand_as(x4).reshape(n, -1)
        return lo, hi, tl, th
    # "input": each sample's own min and max
    flat = x4.reshape(n, -1)
    return "input", "input", flat.min(1, keepdim=True).values.expand_as(flat), \
        flat.max(1, keepdim=True).values.expand_as(flat)


RULES = {
    # name: (engine rule factory, reference(x, w, b, r))
    "lrp_z": (lambda: rl.Epsilon(0.0), ref_epsilon),
    "epsilon": (lambda: rl.Epsilon(0.25), lambda *a: ref_epsilon(*a, eps=0.25)),
    "epsilon_nobias": (lambda: rl.Epsilon(0.25, bias=False),
                       lambda *a: ref_epsilon(*a, eps=0.25, bias=False)),
    "a1b0": (lambda: rl.AlphaBeta(1, 0), lambda *a: ref_alpha_beta(*a, 1, 0)),
    "a2b1": (lambda: rl.AlphaBeta(2, 1), lambda *a: ref_alpha_beta(*a, 2, 1)),
    "a5b4": (lambda: rl.AlphaBeta(5, 4), lambda *a: ref_alpha_beta(*a, 5, 4)),
    "a2b1_nobias": (lambda: rl.AlphaBeta(2, 1, bias=False),
                    lambda *a: ref_alpha_beta(*a, 2, 1, bias=False)),
    # z+ of paper eq. 5: alpha=1, beta=0 without bias
    "zplus": (lambda: rl.ZPlus(), lambda *a: ref_alpha_beta(*a, 1, 0, bias=False)),
    "wsquare": (lambda: rl.WSquare(), ref_wsquare),
    "flat": (lambda: rl.Flat(), ref_flat),
    "excitation": (lambda: rl.Excitation(), ref_excitation),
    "gradient": (lambda: rg.GradientLinear(), ref_gradient),
}
INPUTS = ["signed", "nonneg_data", "relu_fed"]


def _inputs(kind, n, shape, seed):
    g = torch.Generator().manual_seed(seed + 7)
    x = torch.randn((n,) + shape, generator=g, dtype=torch.float64)
    if kind == "nonneg_data":
        x = x.abs()
    return x


def trace_layer(layer, kind):
    """One-layer graph (behind a ReLU for ``relu_fed``) and the layer's node."""
    model = nn.Sequential(nn.ReLU(), layer) if kind == "relu_fed" else nn.Sequential(layer)
    graph = liecheck.trace(model.double().eval())
    return graph, graph.by_name[graph.output]


def run_engine(graph, lin, x, rule, r):
    """Run ``rule`` on node ``lin`` with relevance ``r`` injected at its output;
    return the relevance at the node's input."""
    rules = {n.name: (rule if n is lin else rb.Pass()) for n in graph.nodes if n.kind != "input"}
    below = lin.inputs[0]
    out = propagate(graph, x, rules, inject={lin.name: r}, record=[below])
    return out[below]


def _check(actual, expected, msg):
    scale = expected.abs().max().item() + 1e-300
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-11 * scale,
                               msg=lambda m: f"{msg}: {m}")


def _case(layer_name, kind, seed, batch):
    layer, shape = make_layer(layer_name, seed)
    w, b = dense_matrix(layer, shape)
    x = _inputs(kind, batch, shape, seed)
    g = torch.Generator().manual_seed(seed + 11)
    r = torch.randn((batch, w.shape[0]), generator=g, dtype=torch.float64)
    with torch.no_grad():
        out_shape = layer(x[:1]).shape[1:]
    graph, lin = trace_layer(layer, kind)
    # the fast path is taken exactly when the layer reads a ReLU
    assert lin.nonneg_input == (kind == "relu_fed")
    x_eff = x.clamp(min=0) if kind == "relu_fed" else x
    return graph, lin, x, x_eff, w, b, r, r.reshape((batch,) + out_shape)


# one trace per (layer, input regime, seed); every rule runs on it (tracing dominates)
@pytest.mark.parametrize("seed,batch", SEEDS_BATCHES)
@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_rules_match_dense_reference(layer_name, kind, seed, batch):
    graph, lin, x, x_eff, w, b, r, r_out = _case(layer_name, kind, seed, batch)
    xf = x_eff.reshape(batch, -1)
    for rule_name, (factory, reference) in RULES.items():
        got = run_engine(graph, lin, x, factory(), r_out)
        _check(got.reshape(batch, -1), reference(xf, w, b, r), rule_name)
    for bounds in ("scalar", "channel", "input"):
        lo, hi, ref_lo, ref_hi = _bounds(bounds, x_eff)
        got = run_engine(graph, lin, x, rl.ZBox(lo, hi), r_out)
        _check(got.reshape(batch, -1), ref_zbox(xf, w, b, r, ref_lo, ref_hi), f"zbox {bounds}")


def test_dense_reference_is_not_trivial():
    """Guard against a vacuous reference: the rules differ from each other here."""
    layer, shape = make_layer("conv", 0)
    w, b = dense_matrix(layer, shape)
    x = _inputs("signed", 2, shape, 0).reshape(2, -1)
    r = torch.randn(2, w.shape[0], dtype=torch.float64)
    outs = {k: ref(x, w, b, r) for k, (_, ref) in RULES.items()}
    names = list(outs)
    for i, a in enumerate(names):
        for c in names[i + 1:]:
            assert not torch.allclose(outs[a], outs[c]), (a, c)
    # and the matrix is really the conv: W x + b equals the layer's output
    torch.testing.assert_close(x @ w.T + b, layer(x.reshape((2,) + shape)).reshape(2, -1))


# ------------------------------------------------------------------ ReLU rules
def _relu_walk(rule, x, r):
    graph = liecheck.trace(nn.Sequential(nn.ReLU()).double().eval())
    relu = graph.by_name[graph.output]
    out = propagate(graph, x, {relu.name: rule}, inject={relu.name: r}, record=[graph.input])
    return out[graph.input]


def _np_relu_refs(x, r, q=98.0):
    """numpy references for the ReLU rules; x, r of shape (N, ...)."""
    a = np.maximum(x, 0)
    mask = (a > 0).astype(float)  # the ReLU's derivative, read from its output
    ag = (a * r).reshape(len(x), -1)
    # RectGrad (Kim et al. 2019): per-sample q-th percentile (linear interpolation),
    # gradient kept where a*g is strictly above it. The engine also applies the
    # forward mask (a > 0); it matters only when the threshold is negative.
    tau = np.percentile(ag, q, axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
    rect = r * ((a * r > tau) & (a > 0))
    return {
        "gradient": r * mask,
        "deconv": np.maximum(r, 0),                 # forward mask dropped
        "guided": np.maximum(r * mask, 0),          # paper eq. 14: [M r]^+
        "rectgrad": rect,
    }


@pytest.mark.parametrize("shape", [(3, 3, 7, 7), (2, 51), (1, 4, 5, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_relu_rules_match_numpy(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    r = torch.randn(shape, generator=g, dtype=torch.float64)
    if shape[0] > 1:  # per-sample thresholds: give the samples different scales
        r = r * torch.arange(1, shape[0] + 1, dtype=torch.float64).view(-1, *[1] * (r.dim() - 1))
    refs = _np_relu_refs(x.numpy(), r.numpy())
    rules = {"gradient": rg.GradientReLU(), "deconv": rg.DeconvReLU(),
             "guided": rg.GuidedReLU(), "rectgrad": rg.RectGradReLU(98.0)}
    for name, rule in rules.items():
        got = _relu_walk(rule, x, r).numpy()
        np.testing.assert_allclose(got, refs[name], rtol=0, atol=0, err_msg=name)


def test_rectgrad_threshold_is_strict_on_an_exact_percentile():
    # 51 values: (51 - 1) * 0.98 = 49 is an integer, so the 98th percentile is the
    # 50th smallest a*g exactly; '>' keeps only the largest entry, '>=' would keep two.
    x = torch.arange(1, 52, dtype=torch.float64).view(1, 51)
    r = torch.ones_like(x)
    got = _relu_walk(rg.RectGradReLU(98.0), x, r)
    assert got.sum().item() == 1.0 and got[0, -1].item() == 1.0
    assert np.percentile(x.numpy(), 98) == 50.0


@pytest.mark.parametrize("q", [50.0, 90.0, 98.0, 99.9])
def test_per_sample_percentile_equals_numpy(q):
    g = torch.Generator().manual_seed(3)
    t = torch.randn(4, 3, 11, 13, generator=g, dtype=torch.float64)
    got = rg.per_sample_percentile(t, q).reshape(-1).numpy()
    np.testing.assert_allclose(got, np.percentile(t.reshape(4, -1).numpy(), q, axis=1),
                               rtol=1e-12)


# ------------------------------------------------------------------ max pooling
@pytest.mark.parametrize("params", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2},  # overlapping windows: gradients add up
    {"kernel_size": 3, "stride": 1, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 2, "stride": 1, "dilation": 2},
])
@pytest.mark.parametrize("relu_first", [False, True])
def test_maxpool_switch_equals_autograd(params, relu_first):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64)
    layers = [nn.ReLU()] if relu_first else []  # ReLU first: many tied zero windows
    model = nn.Sequential(*layers, nn.MaxPool2d(**params)).double().eval()
    graph = liecheck.trace(model)
    y = model(x)
    r = torch.randn(y.shape, generator=g, dtype=torch.float64)
    rules = {n.name: (rg.MaxPoolSwitch() if n.kind == "maxpool" else rg.GradientReLU())
             for n in graph.nodes if n.kind != "input"}
    got = propagate(graph, x, rules, inject={graph.output: r}, record=[graph.input])
    xr = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xr), xr, r)
    torch.testing.assert_close(got[graph.input], expected, rtol=0, atol=1e-14)


# ------------------------------------------------------- residual add and concat
class _TwoBranch(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 3, 1)
        self.how = how

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        if self.how == "add":
            return a + b
        if self.how == "add_const":
            return a + 1.5
        if self.how == "cat":
            return torch.cat([a, b, a], 1)
        return torch.cat((b, a), dim=-1)


def _branch_walk(how, rule_for_top):
    torch.manual_seed(0)
    model = _TwoBranch(how).double().eval()
    graph = liecheck.trace(model)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    top = graph.by_name[graph.output]
    r = torch.randn(model(x).shape, dtype=torch.float64)
    rules = {n.name: (rule_for_top if n is top else rg.GradientLinear())
             for n in graph.nodes if n.kind != "input"}
    out = propagate(graph, x, rules, inject={top.name: r}, record=["a", "b"])
    with torch.no_grad():
        return out, model.a(x), model.b(x), r


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_add_split_is_the_z_rule(eps):
    # R_a = a / (a + b + eps sign) * R, R_b likewise: the shares of each summand
    out, a, b, r = _branch_walk("add", rb.AddSplit(eps))
    z = a + b
    z = z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    torch.testing.assert_close(out["a"], a / z * r, rtol=1e-12, atol=0)
    torch.testing.assert_close(out["b"], b / z * r, rtol=1e-12, atol=0)
    if eps == 0:  # conservative: the summands' relevance adds up to R
        torch.testing.assert_close(out["a"] + out["b"], r, rtol=1e-9, atol=1e-12)


def test_add_split_constant_keeps_its_share():
    out, a, _, r = _branch_walk("add_const", rb.AddSplit())
    torch.testing.assert_close(out["a"], a / (a + 1.5) * r, rtol=1e-12, atol=0)


def test_add_pass_gives_each_summand_the_full_signal():
    out, _, _, r = _branch_walk("add", rb.AddPass())
    torch.testing.assert_close(out["a"], r)
    torch.testing.assert_close(out["b"], r)


def test_cat_split_channels_and_reused_input():
    # torch.cat([a, b, a], 1): a gets slices 0 and 2 (added), b slice 1
    out, _, _, r = _branch_walk("cat", rb.CatSplit())
    torch.testing.assert_close(out["a"], r[:, 0:3] + r[:, 6:9])
    torch.testing.assert_close(out["b"], r[:, 3:6])


def test_cat_split_negative_dim_keyword():
    out, _, _, r = _branch_walk("cat_last", rb.CatSplit())
    torch.testing.assert_close(out["b"], r[..., :4])
    torch.testing.assert_close(out["a"], r[..., 4:])


def test_rules_keep_float64():
    layer, shape = make_layer("conv", 0)
    x = _inputs("signed", 2, shape, 0)
    r = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    graph, lin = trace_layer(layer, "signed")
    for factory, _ in RULES.values():
        assert run_engine(graph, lin, x, factory(), r).dtype == torch.float64


def test_functional_relu_is_a_relu_node():
    graph = liecheck.trace(_FRelu().eval())
    assert [n.kind for n in graph.nodes] == ["input", "relu"]


class _FRelu(nn.Module):
    def forward(self, x):
        return F.relu(x)
