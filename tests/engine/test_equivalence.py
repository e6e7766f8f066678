"""Issue 15: the traced graph keeps the model's semantics, or the model is refused.

Every snippet of the issue's table is a tiny float64 model. Each is either explained
exactly (liecheck's gradient vs autograd to float tolerance, and LRP-z = gradient x
input, the identity of Ancona et al. 2018 for ReLU nets, which must survive the new
scalar-multiplication and subtraction nodes) or refused with a clear message. The
forward check (``liecheck.engine.equivalence``) must catch a deliberately broken graph, name
the node, and leave the user's model untouched.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import liecheck
from liecheck.engine import equivalence, ops, rewrite
from liecheck.engine import graph as lg
from liecheck.engine.classify import CLAIMS
from liecheck.engine.walk import NonFiniteRelevance, propagate


class Net(nn.Module):
    """``fc(flatten(relu(body(self, x))))`` with two 3x3 convs for the body to use."""

    def __init__(self, body, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.c1, self.c2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 6 * 6, 3)
        self.body = body

    def forward(self, x):
        y = self.body(self, x)
        return self.fc(torch.flatten(torch.relu(y), 1))


def _hy(m, x):
    h = torch.relu(m.c1(x))
    return h, m.c2(h)


CORRECT = {
    # the table
    "h.add(y, alpha=-2)": lambda m, x: (lambda h: h.add(m.c2(h), alpha=-2))(
        torch.relu(m.c1(x))),
    "c2(relu_(y)) + y": lambda m, x: (lambda y: m.c2(torch.relu_(y)) + y)(m.c1(x)),
    "F.dropout(y, 0.5, self.training)": lambda m, x: F.dropout(m.c1(x), 0.5, m.training),
    # the other spellings of subtraction, alpha and scalar multiplication
    "torch.add(h, y, alpha=0.5)": lambda m, x: torch.add(*_hy(m, x), alpha=0.5),
    "torch.sub(h, y)": lambda m, x: torch.sub(*_hy(m, x)),
    "torch.sub(h, y, alpha=3)": lambda m, x: torch.sub(*_hy(m, x), alpha=3),
    "h - y": lambda m, x: (lambda h, y: h - y)(*_hy(m, x)),
    "h.sub(y, alpha=2)": lambda m, x: (lambda h, y: h.sub(y, alpha=2))(*_hy(m, x)),
    "1 - y": lambda m, x: 1 - _hy(m, x)[1],
    "y - 0.1": lambda m, x: _hy(m, x)[1] - 0.1,
    "y * 3": lambda m, x: _hy(m, x)[1] * 3,
    "3 * y": lambda m, x: 3 * _hy(m, x)[1],
    "y / 2": lambda m, x: _hy(m, x)[1] / 2,
    "-y": lambda m, x: -_hy(m, x)[1],
    "torch.mul(y, -0.5)": lambda m, x: torch.mul(_hy(m, x)[1], -0.5),
    "y -= h": lambda m, x: _isub(*_hy(m, x)),
    # in-place writes whose input is read again, every spelling
    "F.relu(y, inplace=True) + y": lambda m, x: (
        lambda y: m.c2(F.relu(y, inplace=True)) + y)(m.c1(x)),
    "y.relu_() + y": lambda m, x: (lambda y: m.c2(y.relu_()) + y)(m.c1(x)),
    "ReLU(inplace=True) module + y": lambda m, x: (lambda y: m.c2(m.act(y)) + y)(m.c1(x)),
    "y += 1 then y read": lambda m, x: _iadd_reread(m.c1(x)),
    "nn.Dropout": lambda m, x: m.drop(m.c1(x)),
}


def _isub(h, y):
    y -= h
    return y


def _iadd_reread(y):
    z = y
    z += 1.0  # writes into y's tensor: y reads y + 1 afterwards
    return y + z


def _grad_error(model, x, target=1):
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xr)[:, target].sum(), xr)
    got = liecheck.attribute(model, x, "gradient", target=target)
    return float((got - g).norm() / g.norm()), g


@pytest.mark.parametrize("case", list(CORRECT))
def test_kept_semantics_gradient_equals_autograd(case):
    model = Net(CORRECT[case]).double().eval()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    graph = liecheck.trace(model)
    with torch.no_grad():
        torch.testing.assert_close(graph.forward(x)[graph.output], model(x.clone()),
                                   rtol=1e-12, atol=1e-12)
    err, g = _grad_error(model, x)
    assert err < 1e-10
    # LRP-z = gradient x input holds through the new nodes (scalar multiply, sub, alpha)
    torch.testing.assert_close(liecheck.attribute(model, x, "lrp_z", target=1), g * x,
                               rtol=1e-8, atol=1e-10)


def test_scalar_multiply_is_a_linear_node_not_folded():
    graph = liecheck.trace(Net(CORRECT["y * 3"]).double().eval())
    (mul,) = [n for n in graph.nodes if n.layer == "affine"]
    assert mul.is_linear and float(mul.op.scale) == 3.0 and mul.module is None
    assert graph.by_name["c2"].op.weight.shape == (4, 4, 3, 3)  # c2 itself not scaled


@pytest.mark.parametrize("method,exact", [
    ("gradient", True), ("guided_bp", True), ("lrp_z", True), ("lrp_epsilon", False),
    ("deeplift_rescale", True), ("lrp_a1b0", False), ("lrp_a2b1", False), ("dtd", False),
    ("excitation_bp", False), ("deeplift_revealcancel", False)])
def test_methods_through_alpha_equal_a_scaled_layer(method, exact):
    # h.add(c2(h), alpha=-2) is h + c2'(h) with c2' = -2 * c2: methods that are linear
    # through a linear node (gradient family, z / epsilon rule, DeepLIFT Rescale) give
    # the same map on both; the others (and lrp_epsilon, whose stabiliser sees z at the
    # conv and -2z at the scale) must at least run and stay finite
    model = Net(CORRECT["h.add(y, alpha=-2)"]).double().eval()
    scaled = Net(lambda m, x: (lambda h: h + m.c2(h))(torch.relu(m.c1(x)))).double().eval()
    scaled.load_state_dict(model.state_dict())
    with torch.no_grad():
        scaled.c2.weight.mul_(-2)
        scaled.c2.bias.mul_(-2)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    r = liecheck.attribute(model, x, method, target=0)
    assert r.shape == x.shape and torch.isfinite(r).all()
    if exact:
        torch.testing.assert_close(r, liecheck.attribute(scaled, x, method, target=0),
                                   rtol=1e-10, atol=1e-12)


def test_deeplift_rescale_sums_to_delta_through_subtraction():
    # summation-to-delta (Shrikumar et al. 2017): contributions add up to f(x) - f(0)
    model = Net(CORRECT["torch.sub(h, y, alpha=3)"]).double().eval()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    r = liecheck.attribute(model, x, "deeplift_rescale", target=0)
    with torch.no_grad():
        delta = model(x)[:, 0] - model(torch.zeros_like(x))[:, 0]
    torch.testing.assert_close(r.sum((1, 2, 3)), delta, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- refusals
def _hooked(kind):
    model = Net(lambda m, x: m.c2(torch.relu(m.c1(x)))).eval()
    if kind == "forward hook":
        model.c2.register_forward_hook(lambda mod, i, o: o * 3)
    else:
        model.c2.register_forward_pre_hook(lambda mod, i: (i[0] * 2,))
    return model


@pytest.mark.parametrize("kind", ["forward hook", "forward pre-hook"])
def test_module_hooks_are_refused(kind):
    model = _hooked(kind)
    with pytest.raises(liecheck.UnsupportedOperation,
                       match=f"module 'c2' \\(Conv2d\\) has a {kind}.*Remove the hook"):
        liecheck.trace(model)
    assert len(getattr(model.c2, "_forward_hooks" if kind == "forward hook"
                       else "_forward_pre_hooks")) == 1  # the user's hook is left alone


@pytest.mark.parametrize("register", [nn.modules.module.register_module_forward_hook,
                                      nn.modules.module.register_module_forward_pre_hook])
def test_global_hooks_are_refused(register):
    handle = register(lambda *args: None)
    try:
        with pytest.raises(liecheck.UnsupportedOperation, match="global module forward"):
            liecheck.trace(Net(lambda m, x: m.c1(x)).eval())
    finally:
        handle.remove()


REFUSED = {
    "F.dropout(y, 0.5)": (lambda m, x: F.dropout(m.c1(x), 0.5), "training=True"),
    "F.dropout(y)": (lambda m, x: F.dropout(m.c1(x)), "training=True"),
    "F.dropout2d(y, 0.2, True)": (lambda m, x: F.dropout2d(m.c1(x), 0.2, True),
                                  "training=True"),
    "view taken before an in-place write": (lambda m, x: _stale_view(m.c1(x)), "writes in place"),
    "y / h": (lambda m, x: (lambda h, y: y / h)(*_hy(m, x)), "only multiplication"),
    "y / 0": (lambda m, x: _hy(m, x)[1] / 0, "nonzero"),
    "torch.div(y, 2, rounding_mode='floor')": (
        lambda m, x: torch.div(_hy(m, x)[1], 2, rounding_mode="floor"), "true division"),
}


def _stale_view(y):
    z = y.view(y.shape)  # shares y's storage: sees the in-place write
    y.relu_()
    return z


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_a_clear_message(case):
    body, words = REFUSED[case]
    with pytest.raises(liecheck.UnsupportedOperation, match=words):
        liecheck.trace(Net(body).eval())


@pytest.mark.parametrize("target,like", [
    (nn.ReLU6, ops.ReLU), (nn.LeakyReLU, ops.ReLU), (nn.GELU, ops.ReLU), (torch.sigmoid, ops.ReLU),
    (nn.ReLU, ops.Identity), (lambda x: x.transpose(-1, -2), ops.Reshape),
    (lambda x: 2 * x, ops.Identity), (nn.GELU, ops.SiLU),
])
def test_register_op_refuses_a_wrong_claim(target, like):
    with pytest.raises(ValueError, match=f"is not like {like.__name__}"):
        liecheck.register_op(target, like=like)
    assert target not in CLAIMS


def test_register_op_refuses_string_kinds_and_non_op_classes():
    with pytest.raises(TypeError, match="op class"):
        liecheck.register_op(nn.ReLU, "relu")
    with pytest.raises(TypeError, match="subclass of liecheck.ops.Op"):
        liecheck.register_op(nn.ReLU)


def test_register_op_accepts_true_claims_and_asks_for_an_instance():
    def clamp_relu(x):
        return x.clamp(min=0)

    def flat(x):
        return x.reshape(x.shape[0], -1)

    class Scaled(nn.Module):  # needs an argument to construct
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, x):
            return x * self.c

    try:
        liecheck.register_op(clamp_relu, like=ops.ReLU)
        liecheck.register_op(flat, like=ops.Reshape)
        liecheck.register_op(Scaled(1.0), like=ops.Identity)  # an instance: its type
        assert CLAIMS[Scaled] is ops.Identity
        with pytest.raises(TypeError, match="pass an instance"):
            liecheck.register_op(Scaled, like=ops.Identity)
    finally:
        for k in (clamp_relu, flat, Scaled):
            CLAIMS.pop(k, None)


def test_relu6_is_its_own_op_and_cannot_be_declared_a_relu():
    # ReLU6 used to be refused (issue 20); it is now a Hardtanh op with its own rules.
    # Declaring it a ReLU would still be wrong, and is refused.
    tv = pytest.importorskip("torchvision")
    graph = liecheck.trace(tv.models.mobilenet_v2(weights=None).eval())
    acts = [n for n in graph.nodes if isinstance(n.op, ops.Hardtanh)]
    assert acts and all((n.op.min_val, n.op.max_val) == (0.0, 6.0) for n in acts)
    with pytest.raises(ValueError, match="ReLU6 is not like ReLU"):
        liecheck.register_op(nn.ReLU6, like=ops.ReLU)


# ------------------------------------------------------------ forward check
def _plain():
    return Net(lambda m, x: m.c2(m.act(m.c1(x)))).double()


def test_forward_check_names_the_node_of_a_broken_graph():
    graph = liecheck.trace(_plain().eval())
    node = graph.by_name["c2"]
    node.op = node.op.fold(ops.AffineOp(torch.full((4,), 1.5, dtype=torch.float64),
                                       torch.zeros(4, dtype=torch.float64)))
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    with pytest.raises(equivalence.ForwardMismatch,
                       match="First node whose output differs: 'c2' \\(module 'c2', Conv2d"):
        liecheck.Explainer(graph).attribute(x, "gradient", target=0)
    # the same broken graph without the check runs (the opt-out is explicit)
    graph.check_forward = False
    liecheck.Explainer(graph).attribute(x, "gradient", target=0)


def _old_out_of_place(graph, root, registered):
    # the pre-issue-15 rewrite: in-place ops out-of-place, later readers NOT rewired
    for n in graph.nodes:
        if n.target is torch.relu_:
            n.target = torch.relu
    return []


def test_forward_check_catches_the_old_inplace_bug(monkeypatch):
    # without the rewiring `c2(relu_(y)) + y` read y before the write (the 0.58
    # relative error); the forward check must catch that graph and point at the add
    monkeypatch.setattr(rewrite, "remove_inplace", _old_out_of_place)
    model = Net(CORRECT["c2(relu_(y)) + y"]).double().eval()
    graph = lg.Graph(model)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    with pytest.raises(equivalence.ForwardMismatch) as info:
        graph.forward(x)
    msg = str(info.value)
    assert "First node whose output differs: 'fc'" in msg
    assert "operations in between: add, relu, flatten" in msg


def test_forward_check_leaves_the_user_model_untouched_and_runs_once(monkeypatch):
    model = _plain().train()
    model.c1.register_full_backward_hook(lambda *a: None)  # not a forward hook: allowed
    state = copy.deepcopy(model.state_dict())
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    x0 = x.clone()
    calls = []
    own = equivalence.own_forward
    monkeypatch.setattr(equivalence, "own_forward", lambda *a: calls.append(1) or own(*a))
    with pytest.warns(UserWarning, match="train mode"):
        ex = liecheck.Explainer(model)
    ex.attribute(x, "lrp_epsilon", target=0)
    ex.attribute(x, "lrp_epsilon", target=1)
    assert len(calls) == 1 and ex.graph.checked
    assert model.training and model.act.inplace  # flags restored / never changed
    assert not ex.graph.module.get_submodule("act").inplace  # the graph's copy: out-of-place
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert len(model.c1._backward_hooks) == 1
    assert torch.equal(x, x0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_forward_check_opt_out_skips_the_model_call(monkeypatch):
    monkeypatch.setattr(equivalence, "own_forward", lambda *a: pytest.fail("called"))
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    liecheck.attribute(_plain().eval(), x, "gradient", target=0, check_forward=False)


def test_forward_check_tolerance_is_relative_to_scale_and_dtype():
    assert equivalence.tolerance(torch.float32) == pytest.approx(3.45e-4, rel=1e-2)
    assert equivalence.tolerance(torch.float64) == pytest.approx(1.49e-8, rel=1e-2)
    ref = torch.tensor([[1000.0, -2.0]])
    assert equivalence.difference(ref + 0.1, ref) == pytest.approx((0.1, 1000.0))
    nan = torch.tensor([[float("nan"), 1.0]])
    assert equivalence.difference(nan, nan) == (0.0, 1.0)
    assert equivalence.difference(torch.tensor([[0.0, 1.0]]), nan)[0] == float("inf")


# ------------------------------------------------------- non-finite relevance
def test_non_finite_relevance_names_a_nan_input():
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    x[0, 0, 0, 0] = float("nan")
    ex = liecheck.Explainer(_plain().eval(), check_forward=False)
    # the API refuses a non-finite input before any work (issue 15, input validation) ...
    with pytest.raises(ValueError, match="1 NaN"):
        ex.attribute(x, "lrp_epsilon", target=0)
    # ... and a walk started below that boundary still names the cause
    m = liecheck.get_method("lrp_epsilon")
    logits = ex.graph.forward(torch.nan_to_num(x))[ex.graph.output]
    with pytest.raises(NonFiniteRelevance, match="input holds 1 non-finite value"):
        propagate(ex.graph, x, ex.rules(m, dict(m.params)),
                  inject={"output": torch.ones_like(logits)}, record=["input"])


def test_non_finite_relevance_names_a_near_zero_denominator():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False)).double().eval()
    model[1].weight.data = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0 - 1e-12]], dtype=torch.float64)  # z = 1e-12
    ex = liecheck.Explainer(model)
    with pytest.raises(NonFiniteRelevance, match="computed by the rule of '_1' \\(Epsilon\\).*near-zero"):
        ex.walk(x, "lrp_z", inject={"output": torch.full((1, 1), 1e300, dtype=torch.float64)},
                record=["input"])


class _IntIadd(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        b = x.size(0)
        c = b
        c += 1  # rebinds c; b keeps its value
        return self.fc(x).reshape(b, -1)


def test_iadd_on_a_shape_number_is_not_an_inplace_write():
    model = _IntIadd().double().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    graph = liecheck.trace(model)
    with torch.no_grad():
        torch.testing.assert_close(graph.forward(x)[graph.output], model(x))
