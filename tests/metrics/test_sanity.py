"""Cascading / independent parameter randomisation: execution order, seeding, the
user's model untouched, the gradient failing to stay similar, z+ staying similar."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import liecheck
from liecheck.metrics.sanity import layer_seed, parametrised_layers, randomize
from liecheck.models import cifar_net


class _Reordered(nn.Module):
    """Registers the dense head before the convs: registration != execution order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8 * 4 * 4, 3)
        self.conv_b = nn.Conv2d(4, 8, 3, padding=1)
        self.bn_b = nn.BatchNorm2d(8)
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)  # stand-alone: follows a ReLU

    def forward(self, x):
        x = torch.relu(self.conv_a(x))
        x = self.norm(x)
        x = torch.relu(self.bn_b(self.conv_b(x)))
        return self.head(torch.flatten(x, 1))


def test_layers_in_execution_order_with_folded_batchnorm():
    assert parametrised_layers(_Reordered()) == [["conv_a"], ["norm"], ["conv_b", "bn_b"],
                                                 ["head"]]
    assert parametrised_layers(cifar_net()) == [[n] for n in
                                                ("conv1", "conv2", "conv3", "conv4", "fc5", "fc6")]


def test_randomize_seeds_per_layer_and_resets_batchnorm():
    m = _Reordered()
    with torch.no_grad():
        m.bn_b.running_mean.fill_(3.0)
        m.bn_b.weight.fill_(2.0)
    a = randomize(copy.deepcopy(m), ["conv_b", "bn_b"], seed=5)
    b = randomize(copy.deepcopy(m), ["conv_b", "bn_b"], seed=5)
    c = randomize(copy.deepcopy(m), ["conv_b", "bn_b"], seed=6)
    assert torch.equal(a.conv_b.weight, b.conv_b.weight)
    assert not torch.equal(a.conv_b.weight, c.conv_b.weight)
    assert not torch.equal(a.conv_b.weight, m.conv_b.weight)
    assert torch.equal(a.conv_a.weight, m.conv_a.weight)  # others untouched
    assert (a.bn_b.running_mean == 0).all() and (a.bn_b.weight == 1).all()
    assert layer_seed(0, "conv_a") != layer_seed(0, "conv_b")
    # PyTorch's default initialiser: kaiming_uniform(a=sqrt(5)) bound = 1/sqrt(fan_in)
    bound = 1 / np.sqrt(4 * 9)
    assert a.conv_b.weight.abs().max() <= bound


@pytest.fixture(scope="module")
def cifar():
    model = cifar_net()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return model, x


def test_cascading_gradient_falls_and_model_untouched(cifar):
    model, x = cifar
    before = copy.deepcopy(model.state_dict())
    model.train()
    with pytest.warns(UserWarning, match="train mode"):
        df = liecheck.sanity(model, x, "gradient", layers=3, seed=0)
    assert model.training  # flag kept
    model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(df["layer"].unique()) == ["fc6", "fc5", "conv4"]
    assert list(df["step"].unique()) == [1, 2, 3]
    assert len(df) == 3 * 3
    assert df.attrs["trained"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    # the trained model's map vs itself is 1; once layers are random it is far lower
    assert df.groupby("step")["score"].median().max() < 0.6
    again = liecheck.sanity(model, x, "gradient", layers=3, seed=0)
    assert np.array_equal(df["score"].to_numpy(), again["score"].to_numpy())
    other = liecheck.sanity(model, x, "gradient", layers=3, seed=1)
    assert not np.allclose(df["score"], other["score"])


def test_zplus_stays_similar_and_independent_mode(cifar):
    model, x = cifar
    zp = liecheck.sanity(model, x, "lrp_a1b0", layers=["fc6", "fc5"], target=0)
    assert (zp["score"] > 0.99).all()  # paper Fig. 4b: z+ ignores the top layers
    assert (zp["target"] == 0).all()
    ind = liecheck.sanity(model, x, "gradient", layers=["conv4"], mode="independent")
    assert list(ind["layer"].unique()) == ["conv4"] and list(ind["step"].unique()) == [3]
    with pytest.raises(ValueError, match="not parametrised"):
        liecheck.sanity(model, x, "gradient", layers=["relu1"])
    with pytest.raises(ValueError, match="mode"):
        liecheck.sanity(model, x, "gradient", mode="random")


class _Attention(nn.Module):
    """Tokens through nn.MultiheadAttention (its input projection is a bare parameter)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.embed(x.flatten(2).transpose(1, 2))           # (N, 16 tokens, 8)
        return self.head(self.attn(t, t, t, need_weights=False)[0].mean(1))


def test_the_cascade_reinitialises_attentions_input_projection():
    """Issue 24: the fully randomised step's gradient equals autograd's on a copy whose
    every layer, the attention's in_proj_weight included, is re-initialised with the
    cascade's seeds. Before, in_proj stayed trained (silently)."""
    torch.manual_seed(0)
    model = _Attention().double().eval()
    groups = parametrised_layers(model)
    assert ["attn"] in groups and ["attn.out_proj"] in groups
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    steps = list(liecheck.metrics.sanity.cascade_maps(model, x, "gradient", target=[0, 1],
                                                      layers="ends", seed=3))
    last_step, _, r = steps[-1]
    assert last_step == len(groups)
    rand = randomize(copy.deepcopy(model), [n for g in groups for n in g], seed=3)
    assert not torch.equal(rand.attn.in_proj_weight, model.attn.in_proj_weight)
    xr = x.clone().requires_grad_(True)
    out = rand(xr)
    out[[0, 1], [0, 1]].sum().backward()
    assert torch.allclose(r, xr.grad, rtol=1e-9, atol=1e-12)


def test_the_cascade_refuses_a_functional_layer_it_cannot_reinitialise():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 16))

        def forward(self, x):
            return nn.functional.linear(x.flatten(1), self.w)

    with pytest.raises(liecheck.UnsupportedOperation, match="cannot re-initialise it"):
        parametrised_layers(Functional())
