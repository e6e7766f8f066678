"""Peer adapters (``liecheck.methods.from_zennit / from_captum / from_function``).

Agreement: where a Zennit composite or a Captum method implements the same rules as
a liecheck method, the adapted peer gives the same maps, CSC (through the peer's
hooks), sanity and random-logit numbers, to float64 tolerance. The configurations
that make the rules coincide (stabiliser 1e-30, BatchNorm eps 0, the merge
canonizer, the epsilon of the dense layers) are explained in ``tests/methods/test_peers.py``.

Also: no hook or attribute is left on the user's model, CSC is refused with the
paper's reason where a peer method is not one backward walk, and the finding that
Captum's LRP is wrong on torchvision ResNets because the residual ``+`` has no rule.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision
from torch import nn

import liecheck
from liecheck.engine import ops
from liecheck.methods import Method, from_captum, from_function, from_zennit, lrp_composite
from liecheck.rules import base as rb
from liecheck.rules import lrp as rl

pytest.importorskip("zennit")
ca = pytest.importorskip("captum.attr")

from nets import TARGET, TINY, peer_net
from nets import peer_x as _x
from zennit import composites as zc
from zennit.attribution import SmoothGrad
from zennit.canonizers import SequentialMergeBatchNorm

from liecheck.adapters import hooks_on


def _flat_plus_eps(node, graph, p):
    """liecheck's composite equal to Zennit's EpsilonPlusFlat: flat on the first
    linear layer, Zennit's ZPlus (= alpha 1, beta 0 with b+) on convs, epsilon 1e-6 on
    dense layers."""
    if node is graph.linear_nodes()[0]:
        return rl.Flat()
    if node.layer == "dense":
        return rl.Epsilon(1e-6)
    return rl.AlphaBeta(1, 0)


EPS_PLUS_FLAT = Method("eps_plus_flat", "EpsilonPlusFlat", "liecheck's EpsilonPlusFlat",
                       lrp_composite(_flat_plus_eps))


def _merge():
    return [SequentialMergeBatchNorm()]


# (peer method factory, liecheck method)
CASES = {
    "zennit_EpsilonPlusFlat": (lambda: from_zennit(zc.EpsilonPlusFlat(
        stabilizer=TINY, canonizers=_merge()), start="logit"), EPS_PLUS_FLAT),
    "zennit_EpsilonAlpha2Beta1": (lambda: from_zennit(zc.EpsilonAlpha2Beta1(
        epsilon=1e-10, stabilizer=TINY, canonizers=_merge()), start="logit"), "lrp_cmp_a2b1"),
    "captum_Saliency": (lambda: from_captum(ca.Saliency), "gradient"),
    "captum_GuidedBackprop": (lambda: from_captum(ca.GuidedBackprop), "guided_bp"),
}
# CSC start points: the logits, the ReLU after the second conv, the dense ReLU
STARTS = ["output", "5", "9"]


def _close(a, b, rtol=1e-9):
    scale = b.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("case", list(CASES))
def test_maps_agree(case):
    make, ours = CASES[case]
    model, x = peer_net(0), _x(0)
    theirs = liecheck.attribute(model, x, make(), target=TARGET)
    mine = liecheck.attribute(model, x, ours, target=TARGET)
    if case == "captum_Saliency":  # Captum's Saliency returns |gradient|
        mine = mine.abs()
    _close(theirs, mine)


@pytest.mark.parametrize("case", list(CASES))
def test_csc_through_hooks_agrees(case):
    make, ours = CASES[case]
    model, x = peer_net(1), _x(1)
    a = liecheck.csc(model, x, make(), start=STARTS, n_vectors=3, seed=3)
    b = liecheck.csc(model, x, ours, start=STARTS, n_vectors=3, seed=3)
    # one row per (start, recorded layer below it); the record points are liecheck's
    # default (after each ReLU), so the peer's rows must be exactly liecheck's
    assert len(a) == len(b) > len(STARTS)
    assert (a["layer"].tolist(), a["start_node"].tolist()) == (b["layer"].tolist(),
                                                                 b["start_node"].tolist())
    cols = ["median", "p1", "p5", "p25", "p75", "p95", "p99", "n_values"]
    torch.testing.assert_close(torch.tensor(a[cols].to_numpy(float)),
                               torch.tensor(b[cols].to_numpy(float)), rtol=1e-6, atol=1e-6)
    # and the numbers are not trivial: they differ from another method's
    c = liecheck.csc(model, x, "lrp_epsilon" if case.startswith("captum") else "gradient",
                     start=STARTS, n_vectors=3, seed=3)
    assert (a["median"] - c["median"]).abs().max() > 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_sanity_and_random_logit_agree(case):
    make, ours = CASES[case]
    model, x = peer_net(2), _x(2)
    peer = make()
    for fn, kw in ((liecheck.sanity, {"layers": 2}), (liecheck.random_logit, {})):
        a = fn(model, x, peer, target=TARGET, seed=1, **kw)
        b = fn(model, x, ours, target=TARGET, seed=1, **kw)
        assert len(a) == len(b) > 0
        torch.testing.assert_close(torch.tensor(a["score"].to_numpy()),
                                   torch.tensor(b["score"].to_numpy()), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ the user's model
def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [sorted(vars(m)) for m in model.modules()], model.training)


@pytest.mark.parametrize("make", [
    lambda: from_zennit(zc.EpsilonPlusFlat(canonizers=_merge())),
    lambda: from_zennit(zc.GuidedBackprop()),
    lambda: from_captum(ca.GuidedBackprop),
    lambda: from_captum(ca.LRP),
    lambda: from_function(lambda m, x, t: x),
], ids=["zennit_flat", "zennit_gbp", "captum_gbp", "captum_lrp", "function"])
def test_user_model_is_untouched(make):
    model, x = peer_net(0), _x(0)
    model.train()  # the flag must survive too
    before = _snapshot(model)
    m = make()
    with pytest.warns(UserWarning, match="train mode"):
        liecheck.attribute(model, x, m, target=TARGET)
    if m.hooks is not None:
        with pytest.warns(UserWarning, match="train mode"):
            liecheck.csc(model, x, m, start=["output", "5"], n_vectors=2)
    after = _snapshot(model)
    assert hooks_on(model) == []
    assert before[1:] == after[1:]
    for k, v in before[0].items():
        assert torch.equal(v, after[0][k]), k


def test_hooks_left_by_a_function_are_reported():
    def leaky(model, x, t):
        model[0].register_forward_hook(lambda *a: None)
        return x

    with pytest.raises(RuntimeError, match="left hooks on the model: 0: forward_hooks"):
        liecheck.attribute(peer_net(0), _x(0), from_function(leaky), target=TARGET)


def test_captum_lrp_state_is_removed_from_the_copy():
    ex = liecheck.Explainer(peer_net(0))
    before = [sorted(vars(m)) for m in ex.graph.module.modules()]
    ex.attribute(_x(0), from_captum(ca.LRP), target=TARGET)
    assert [sorted(vars(m)) for m in ex.graph.module.modules()] == before
    assert hooks_on(ex.graph.module) == []


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("make,reason", [
    (lambda: from_captum(ca.IntegratedGradients), "path of inputs"),
    (lambda: from_captum(ca.Occlusion, attribute_kwargs={"sliding_window_shapes": (3, 8, 8),
                                                         "strides": 8}),
     "no backward pass"),
    (lambda: from_captum(ca.LRP), "LRP.attribute"),
    (lambda: from_zennit(zc.EpsilonPlus(), attributor=SmoothGrad), "noisy inputs"),
    (lambda: from_function(lambda m, x, t: x), "opaque"),
])
def test_csc_refused_with_the_reason(make, reason):
    m = make()
    assert not m.walkable
    with pytest.raises(ValueError, match=reason):
        liecheck.csc(peer_net(0), _x(0), m)
    # maps still work
    assert liecheck.attribute(peer_net(0), _x(0)[:1], m, target=2).shape[0] == 1


def test_csc_refuses_functional_ops():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 14 * 14, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    m = from_zennit(zc.EpsilonPlus())
    with pytest.raises(ValueError, match="not a module call"):
        liecheck.csc(Functional().eval(), torch.randn(2, 3, 16, 16), m, start="relu")
    # the default record point after the conv is its (functional) ReLU: refused too ...
    with pytest.raises(ValueError, match="not a module call"):
        liecheck.csc(Functional().eval(), torch.randn(2, 3, 16, 16), m, n_vectors=2)
    # ... module outputs are fine
    df = liecheck.csc(Functional().eval(), torch.randn(2, 3, 16, 16), m, n_vectors=2,
                      record_points="pre_relu")
    assert list(df["layer"]) == ["x", "conv"]


def test_missing_peer_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "zennit", None)
    with pytest.raises(ImportError, match="pip install zennit"):
        from_zennit(None)
    monkeypatch.setitem(sys.modules, "captum", None)
    with pytest.raises(ImportError, match="pip install captum"):
        from_captum(object)


def test_from_function_checks_its_output():
    with pytest.raises(ValueError, match="returned shape"):
        liecheck.attribute(peer_net(0), _x(0), from_function(lambda m, x, t: x[:, 0, :4]),
                           target=TARGET)
    grad = from_function(lambda m, x, t: torch.autograd.grad(
        m(x.requires_grad_())[torch.arange(len(t)), t].sum(), x)[0], name="my_grad")
    model, x = peer_net(0), _x(0)
    _close(liecheck.attribute(model, x, grad, target=TARGET),
           liecheck.attribute(model, x, "gradient", target=TARGET))


def test_module_object_on_the_command_line(tmp_path, monkeypatch):
    # `--methods package.module:object` imports an adapted method
    (tmp_path / "my_methods.py").write_text(
        "import captum.attr\nfrom liecheck.methods import from_captum\n"
        "SAL = from_captum(captum.attr.Saliency, name='my_saliency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert liecheck.get_method("my_methods:SAL").name == "my_saliency"


# ------------------------------------------------------- Captum's LRP on a ResNet
def _resnet(seed=0):
    """torchvision ResNet-18 (10 classes) with random BatchNorm statistics, float64."""
    torch.manual_seed(seed)
    m = torchvision.models.resnet18(num_classes=10).double().eval()
    g = torch.Generator().manual_seed(seed + 1)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean = 0.1 * torch.randn(c, generator=g, dtype=torch.float64)
            bn.running_var = 0.5 + torch.rand(c, generator=g, dtype=torch.float64)
            bn.weight.data = 1 + 0.2 * torch.randn(c, generator=g, dtype=torch.float64)
            bn.bias.data = 0.1 * torch.randn(c, generator=g, dtype=torch.float64)
    return m


def _corr(a, b):
    return torch.stack([torch.corrcoef(torch.stack([u.flatten(), v.flatten()]))[0, 1]
                        for u, v in zip(a, b)])


# Captum's LRP rules (epsilon 1e-9 on conv, BatchNorm, dense and pooling; ReLU passes)
# with the residual `+` given no rule, i.e. the plain gradient: both summands get the
# whole relevance of the sum
CAPTUM_LRP_AS_LIECHECK = Method(
    "captum_lrp_rules", "Captum LRP", "epsilon 1e-9 everywhere, gradient at the residual +",
    lrp_composite(lambda node, graph, p: rl.Epsilon(1e-9),
                  {ops.PoolingOp: lambda node, graph, p: rl.Epsilon(1e-9),
                   ops.Add: lambda node, graph, p: rb.AddPass()}))


def test_captum_lrp_is_wrong_on_resnet_because_the_residual_add_has_no_rule():
    """The finding (docs/audit_zennit_captum.md). If this test fails, Captum has fixed
    its LRP on ResNets (or changed its rules): update the audit page."""
    model = _resnet()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    t = torch.tensor([1, 3])
    captum_map = liecheck.attribute(model, x, from_captum(ca.LRP), target=t)
    gxi = liecheck.attribute(model, x, "gradient_x_input", target=t)
    # 1. Captum's map has nothing to do with gradient x input (LRP-epsilon with a tiny
    #    epsilon should be close to it) and is not conservative: the relevance compounds
    assert _corr(captum_map, gxi).abs().max() < 0.3
    with torch.no_grad():
        logit = model(x)[torch.arange(2), t]
    assert (captum_map.sum((1, 2, 3)).abs() > 1e3 * logit.abs()).all()
    # 2. the cause: the same rules with the gradient at `+` reproduce Captum's map ...
    same_rules_gradient_add = liecheck.attribute(model, x, CAPTUM_LRP_AS_LIECHECK, target=t)
    assert _corr(captum_map, same_rules_gradient_add).min() > 0.99
    # 3. ... and a rule at `+` (LRP-z splits the relevance between the summands) gives
    #    gradient x input, as LRP-z must on a ReLU network
    assert _corr(liecheck.attribute(model, x, "lrp_z", target=t), gxi).min() > 0.999


def test_reproduce_plans_take_module_objects(tmp_path, monkeypatch):
    from liecheck.reproduce.config import ModelPlan
    from liecheck.reproduce.setup import applicable_methods

    (tmp_path / "my_plan_methods.py").write_text(
        "import captum.attr\nfrom liecheck.methods import from_captum\n"
        "SAL = from_captum(captum.attr.Saliency)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plan = ModelPlan("cifar_net", methods=("gradient", "my_plan_methods:SAL", "no_such_method"))
    methods, notes = applicable_methods(plan, peer_net(0), None)
    assert [m.name for m in methods] == ["gradient", "captum:Saliency"]
    assert len(notes) == 1 and "no_such_method" in notes[0]


# ------------------------------------------------------------------ the audit CLI
def test_audit_cli_writes_table_and_figure(tmp_path):
    import pandas as pd

    from liecheck.battery.csc import CONVERGED
    from liecheck.cli import main
    from liecheck.models import cifar_net

    ckpt = tmp_path / "net.pt"
    torch.save(cifar_net(seed=5).state_dict(), ckpt)  # random weights: fast, still valid
    out = tmp_path / "audit"
    assert main(["audit", "--zennit", "EpsilonPlus", "--captum", "Saliency,LRP",
                 "--model", "cifar_net", "--weights", str(ckpt), "--n", "2", "--n-vectors",
                 "2", "--out", str(out)]) == 0
    df = pd.read_csv(out / "audit.csv").set_index("method")
    assert list(df.index) == ["zennit:EpsilonPlus", "captum:Saliency", "captum:LRP"]
    ok = df.loc[["zennit:EpsilonPlus", "captum:Saliency"]]
    assert ok["csc_first_conv"].between(0, 1).all()
    assert ((ok["csc_first_conv"] >= CONVERGED) == (ok["csc_verdict"] == "converges")).all()
    assert df["ssim_random_logit"].notna().all() and df["ssim_cascade_last"].notna().all()
    # Captum's LRP: CSC refused with the reason, the two SSIM tests still run
    assert df.loc["captum:LRP", "csc_verdict"] == "not applicable"
    assert "LRP.attribute" in df.loc["captum:LRP", "note"]
    assert "| captum:Saliency |" in (out / "audit.md").read_text()
    assert (out / "audit.png").stat().st_size > 0


def test_audit_names_the_mechanism_against_the_gradient_it_audits_too():
    """Issue 24: the audit's verdict names the failures against the model's gradient on
    the same images (audited even when not asked for, and not added as a row)."""
    from liecheck.adapters.audit import audit, captum_method, markdown
    from liecheck.models import cifar_net

    model = cifar_net(seed=5).eval()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    df = audit(model, x, ["lrp_a1b0", captum_method("Saliency")], n_vectors=3)
    df = df.set_index("method")
    assert list(df.index) == ["lrp_a1b0", "captum:Saliency"]
    # z+ converges to rank 1 on any weights (Theorem 1): far more parallel than the gradient
    assert df.loc["lrp_a1b0", "mechanism"].startswith("rank-1 convergence (CSC at the first")
    # Captum's Saliency is the gradient: it cannot change less than itself
    assert df.loc["captum:Saliency", "mechanism"] == "passes"
    assert "verdict (mechanism shown, against the gradient)" in markdown(df.reset_index())
