"""Tracing: every way of writing a ReLU CNN gives the same attributions.

A "messy" model (a reused in-place ReLU module, ``F.relu``, ``torch.relu``,
``x.relu()``, ``out += identity``, ``torch.add``, ``torch.cat``,
``x.view(x.size(0), -1)``, ``torch.flatten``, BN after a conv, BN after a ReLU,
Dropout and Identity) is compared with the same network written plainly: separate
ReLU modules, out-of-place ops, no Dropout / Identity, and the conv-BN pairs folded
*by hand in the test* (so the engine's folding is checked against an independent
computation). All 14 built-in methods must agree in float64.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import liecheck
from liecheck.engine import ops
from liecheck.engine.classify import CLAIMS

BUILTIN = ["gradient", "gradient_x_input", "lrp_z", "lrp_epsilon", "lrp_a1b0", "lrp_a2b1",
           "lrp_a5b4", "lrp_cmp_a1b0", "lrp_cmp_a2b1", "dtd", "excitation_bp", "deconv",
           "guided_bp", "rectgrad"]


def _random_bn(bn: nn.BatchNorm2d, g: torch.Generator) -> None:
    c = bn.num_features
    bn.running_mean = 0.2 * torch.randn(c, generator=g)
    bn.running_var = 0.5 + torch.rand(c, generator=g)
    bn.weight.data = 1 + 0.5 * torch.randn(c, generator=g)
    bn.bias.data = 0.1 * torch.randn(c, generator=g)


class Messy(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv3, self.conv4 = nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.conv5 = nn.Conv2d(8, 8, 1)
        self.bn3 = nn.BatchNorm2d(8)  # after a ReLU: stays a stand-alone affine node
        self.relu = nn.ReLU(inplace=True)  # used four times
        self.pool, self.avg = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(2)
        self.drop, self.ident = nn.Dropout(0.5), nn.Identity()
        self.fc1, self.fc2 = nn.Linear(32, 16), nn.Linear(16, 10)
        g = torch.Generator().manual_seed(seed + 1)
        for bn in (self.bn1, self.bn2, self.bn3):
            _random_bn(bn, g)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        identity = x
        out = self.bn2(self.conv2(x))
        out += identity
        out = self.relu(out)
        a = F.relu(self.conv3(out))
        b = torch.relu(self.conv4(out))
        c = self.conv5(out).relu()
        y = torch.add(torch.cat([a, b], 1), c)
        y = self.bn3(self.relu(y))
        y = self.ident(self.drop(self.pool(y)))
        y = torch.flatten(self.avg(y), 1)
        y = self.relu(self.fc1(y))
        y = y.view(y.size(0), -1)
        return self.fc2(self.drop(y))


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv then eval-BN as one conv: W' = s W, b' = s (b - mu) + beta,
    s = gamma / sqrt(var + eps)."""
    s = bn.weight.data / torch.sqrt(bn.running_var + bn.eps)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                    padding=conv.padding).to(conv.weight.dtype)
    out.weight.data = conv.weight.data * s.view(-1, 1, 1, 1)
    out.bias.data = s * (conv.bias.data - bn.running_mean) + bn.bias.data
    return out


class Plain(nn.Module):
    def __init__(self, m: Messy):
        super().__init__()
        self.conv1, self.conv2 = fold(m.conv1, m.bn1), fold(m.conv2, m.bn2)
        self.conv3, self.conv4, self.conv5, self.bn3 = m.conv3, m.conv4, m.conv5, m.bn3
        self.r1, self.r2, self.r3, self.r4, self.r5, self.r6, self.r7 = (
            nn.ReLU() for _ in range(7))
        self.pool, self.avg, self.flat = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        self.fc1, self.fc2 = m.fc1, m.fc2

    def forward(self, x):
        x = self.r1(self.conv1(x))
        out = self.r2(self.conv2(x) + x)
        a, b = self.r3(self.conv3(out)), self.r4(self.conv4(out))
        c = self.r5(self.conv5(out))
        y = self.bn3(self.r6(torch.cat([a, b], 1) + c))
        y = self.flat(self.avg(self.pool(y)))
        return self.fc2(self.r7(self.fc1(y)))


@pytest.fixture(scope="module")
def pair():
    messy = Messy(0).double().eval()
    plain = Plain(messy).double().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return messy, plain, x


def test_plain_is_the_same_function(pair):
    messy, plain, x = pair
    with torch.no_grad():
        torch.testing.assert_close(plain(x), messy(x), rtol=1e-12, atol=1e-12)
        graph = liecheck.trace(messy)
        torch.testing.assert_close(graph.forward(x)[graph.output], messy(x), rtol=1e-12,
                                   atol=1e-12)


def test_builtin_methods_are_registered():
    assert set(BUILTIN) <= set(liecheck.method_names())


@pytest.mark.parametrize("method", BUILTIN)
def test_messy_and_plain_give_the_same_attributions(pair, method):
    messy, plain, x = pair
    target = torch.tensor([1, 6])
    a = liecheck.attribute(messy, x, method, target=target)
    b = liecheck.attribute(plain, x, method, target=target)
    assert a.abs().max() > 0
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * b.abs().max().item())


def test_node_kinds_of_the_messy_model():
    graph = liecheck.trace(Messy(0).eval())
    kinds = [n.kind for n in graph.nodes]
    assert kinds.count("relu") == 7  # 4 calls of the module + F.relu, torch.relu, .relu()
    assert kinds.count("add") == 2 and kinds.count("cat") == 1
    assert kinds.count("reshape") == 2 and kinds.count("maxpool") == 1
    assert [n.layer for n in graph.nodes if n.is_linear] == [
        "conv", "conv", "conv", "conv", "conv", "affine", "pool", "dense", "dense"]
    # BN after a conv is folded (and resolves to the conv), BN after a ReLU is not
    assert graph.resolve("bn1") == graph.resolve("conv1")
    assert graph.resolve("bn2") == graph.resolve("conv2")
    assert graph.by_name[graph.resolve("bn3")].layer == "affine"
    assert graph.by_name[graph.resolve("bn3")].nonneg_input


def test_names_stable_in_execution_order_and_one_node_per_call():
    model = Messy(0).eval()
    g1, g2 = liecheck.trace(model), liecheck.trace(model)
    names = [n.name for n in g1.nodes]
    assert names == [n.name for n in g2.nodes]
    assert len(set(names)) == len(names)
    assert [n.index for n in g1.nodes] == list(range(len(names)))
    # module calls, recorded with hooks on a *copy*, come in the same order as the nodes
    spy, calls = copy.deepcopy(model), []
    for name, m in spy.named_modules():
        if name and name not in ("bn1", "bn2"):  # folded into conv1 / conv2
            m.register_forward_hook(lambda mod, i, o, name=name: calls.append(name))
    spy(torch.randn(1, 3, 8, 8))
    assert [n.module for n in g1.nodes if n.module is not None] == calls
    assert calls.count("relu") == 4 and calls.count("drop") == 2
    relu_nodes = [n.name for n in g1.nodes if n.module == "relu"]
    assert len(relu_nodes) == 4
    # a node name wins over a module name: "relu" is the first call's node
    assert g1.resolve("relu") == relu_nodes[0] == "relu"
    # a nested module's name ("body.relu") differs from its nodes' names: ambiguous
    wrapped = liecheck.trace(_Wrap().eval())
    with pytest.raises(KeyError, match="called 4 times"):
        wrapped.resolve("body.relu")
    # every input of a node comes before it
    for n in g1.nodes:
        assert all(g1.by_name[i].index < n.index for i in n.inputs)


class _Wrap(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = Messy(0)

    def forward(self, x):
        return self.body(x)


class _LSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        return out


class _Div(nn.Module):  # sigmoid, y * x and x[:, :2] used to be refused; now ops
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = torch.sigmoid(self.fc(x))
        return x / y


class _Index(nn.Module):
    def forward(self, x):
        return torch.relu(x)[:, [0, 2]]


class _Exp(nn.Module):
    def forward(self, x):
        return torch.exp(x)


@pytest.mark.parametrize("model,node,op", [
    (_Exp(), "exp", "exp"),
    (_LSTM(), "lstm", "LSTM"),
    (_Div(), "truediv", "truediv"),
    (_Index(), "getitem", "getitem"),
])
def test_unsupported_operation_fails_at_trace_time(model, node, op):
    with pytest.raises(liecheck.UnsupportedOperation) as info:
        liecheck.trace(model.eval())
    msg = str(info.value)
    assert f"'{node}'" in msg and op in msg and "register_op" in msg


class _Leaky(nn.Module):
    def forward(self, x):
        return F.leaky_relu(x, 0.5)


class _ClampReLU(nn.Module):  # a ReLU written another way: registrable as "relu"
    def forward(self, x):
        return x.clamp(min=0)


class _ClampNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.act, self.conv = _ClampReLU(), nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.conv(self.act(x))


def test_registered_relu_like_module_keeps_its_forward():
    # regression: a module registered as kind "relu" used to be replaced by torch.relu
    # in the forward pass. (The test used to register LeakyReLU as "relu"; since issue 15
    # register_op checks the claim on a probe input and refuses that: a leaky ReLU is
    # not max(0, x), and explaining it as one was silently wrong.)
    with pytest.raises(ValueError, match="not like ReLU"):
        liecheck.register_op(_Leaky, like=ops.ReLU)
    assert _Leaky not in CLAIMS
    liecheck.register_op(_ClampReLU, like=ops.ReLU)
    try:
        model = _ClampNet().double().eval()
        graph = liecheck.trace(model)
        assert graph.by_name["act"].kind == "relu"
        x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(graph.forward(x)[graph.output], model(x))
    finally:
        CLAIMS.pop(_ClampReLU, None)


class _AddConst(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c, self.conv = c, nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.conv(torch.relu(x) + self.c)


@pytest.mark.parametrize("c,nonneg", [(-1.0, False), (1.0, True)])
def test_adding_a_negative_constant_clears_nonneg(c, nonneg):
    # regression: relu(x) - 1 was marked non-negative, and alpha-beta then dropped x-
    graph = liecheck.trace(_AddConst(c).eval())
    assert graph.by_name["conv"].nonneg_input is nonneg


def test_alpha_beta_correct_after_negative_constant():
    # the same check end to end: a2b1 on relu(x) - 1 equals a2b1 on an explicit input
    torch.manual_seed(0)
    model = _AddConst(-1.0).double().eval()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    shifted = nn.Sequential(model.conv).double().eval()
    ex = liecheck.Explainer(model)
    r = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    got = ex.walk(x, "lrp_a2b1", inject={"output": r}, record=["add"])["add"]
    ex2 = liecheck.Explainer(shifted)
    expected = ex2.walk(torch.relu(x) - 1.0, "lrp_a2b1", inject={"output": r},
                        record=[ex2.graph.input])[ex2.graph.input]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


def test_folded_batchnorm_values_are_released():
    graph = liecheck.trace(Messy(0).eval())
    released = {v for vs in graph._last_use.values() for v in vs}
    assert {"bn1", "bn2", "conv1", "conv2"} <= released


def test_batchnorm1d_after_linear_is_folded():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6)
    bn.running_mean, bn.running_var = torch.randn(6), 0.5 + torch.rand(6)
    bn.weight.data, bn.bias.data = torch.randn(6), torch.randn(6)
    model = nn.Sequential(nn.Linear(4, 6), bn, nn.ReLU(), nn.Linear(6, 3)).double().eval()
    graph = liecheck.trace(model)
    assert [n.layer for n in graph.nodes if n.is_linear] == ["dense", "dense"]
    x = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(graph.forward(x)[graph.output], model(x))
    # and the folded layer explains like the original: LRP-z = gradient x input
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xr)[:, 1].sum(), xr)
    torch.testing.assert_close(liecheck.attribute(model, x, "lrp_z", target=1), g * x)
