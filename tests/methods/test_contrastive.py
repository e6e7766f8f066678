"""Contrastive LRP (eq. 15) and contrastive EBP (eq. 16) against dense-matrix references."""

from __future__ import annotations

import torch
from torch import nn

import liecheck
from liecheck.methods.contrastive import normalise_by_sum


def mlp(seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 7), nn.ReLU(),
                        nn.Linear(7, 4)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.double))
    return net


def _layers(net, x):
    """Per linear layer: (W, input activation) for one sample."""
    out, h = [], x
    for i in (0, 2, 4):
        w, b = net[i].weight.detach(), net[i].bias.detach()
        out.append((w, h))
        h = (w @ h + b).clamp(min=0)
    return out


def _transition(w, h):
    """Matrix T (out, in) with T_ij = [w_ij h_j]^+ / sum_j' [w_ij' h_j']^+ (z+ rule)."""
    c = (w * h[None]).clamp(min=0)
    s = c.sum(1, keepdim=True)
    return torch.where(s == 0, torch.zeros_like(c), c / torch.where(s == 0, 1.0, s))


def _excitation(w, h):
    """EBP transition T_ij = h_j w+_ij / sum_j' h_j' w+_ij' (Zhang et al. 2018)."""
    c = w.clamp(min=0) * h[None]
    s = c.sum(1, keepdim=True)
    return torch.where(s == 0, torch.zeros_like(c), c / torch.where(s == 0, 1.0, s))


def _excitation_signed(w, h):
    """EBP on a signed input (liecheck's rl.excitation_rule, Zennit's split):
    T_ij = (h+_j w+_ij + h-_j w-_ij) / sum_j' (same)."""
    c = w.clamp(min=0) * h.clamp(min=0)[None] + w.clamp(max=0) * h.clamp(max=0)[None]
    s = c.sum(1, keepdim=True)
    return torch.where(s == 0, torch.zeros_like(c), c / torch.where(s == 0, 1.0, s))


def test_contrastive_lrp_matches_dense_reference():
    net = mlp(1)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.double)
    t = torch.tensor([0, 2, 3])
    ours = liecheck.attribute(net, x, "contrastive_lrp", target=t)
    for i in range(3):
        layers = _layers(net, x[i])
        y = net(x[i : i + 1])[0].detach()
        mk = torch.zeros(4, dtype=torch.double)
        mk[t[i]] = 1
        maps = []
        for r in (y * mk, y * (1 - mk)):
            for w, h in reversed(layers):
                r = _transition(w, h).T @ r
            maps.append(r)
        ref = (maps[0] / maps[0].sum()).clamp(min=0) - maps[1] / maps[1].sum()
        torch.testing.assert_close(ours[i], ref)


def test_contrastive_ebp_matches_dense_reference():
    net = mlp(3)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(4), dtype=torch.double)
    t = torch.tensor([1, 1, 2])
    ours = liecheck.attribute(net, x, "contrastive_ebp", target=t)
    ebp = liecheck.attribute(net, x, "excitation_bp", target=t)
    for i in range(3):
        (w1, h1), (w2, h2), (w3, h3) = _layers(net, x[i])
        mk = torch.zeros(4, dtype=torch.double)
        mk[t[i]] = 1
        r = _excitation(w3, h3).T @ mk - _excitation(-w3, h3).T @ mk   # eq. 16
        assert (h1 < 0).any() and (h2 >= 0).all()   # signed input, ReLU-fed after
        r = _excitation_signed(w1, h1).T @ (_excitation(w2, h2).T @ r)
        torch.testing.assert_close(ours[i], r)
    assert (ours - ebp).abs().max() > 1e-3  # the contrast changes the map


def test_normalise_by_sum():
    r = torch.tensor([[1.0, 3.0], [0.0, 0.0], [-1.0, -1.0]])
    torch.testing.assert_close(normalise_by_sum(r),
                               torch.tensor([[0.25, 0.75], [0.0, 0.0], [0.5, 0.5]]))


def test_csc_walk_of_clrp_is_the_zplus_walk():
    net = mlp(5)
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(6), dtype=torch.double)
    ex = liecheck.Explainer(net)
    v = torch.randn(2, 7, generator=torch.Generator().manual_seed(7), dtype=torch.double)
    node = [n.name for n in ex.graph.nodes if n.kind == "relu"][-1]
    a = ex.walk(x, "contrastive_lrp", inject={node: v}, record=["input"])
    b = ex.walk(x, liecheck.Method("zp", "z+", "", liecheck.get_method("contrastive_lrp")
                                   .composite), inject={node: v}, record=["input"])
    torch.testing.assert_close(a[ex.graph.input], b[ex.graph.input])
