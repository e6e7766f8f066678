"""Vision transformers (issue 23): torchvision's ViT, Swin and MaxViT at tiny sizes
(random init, float64), nn.MultiheadAttention and F.scaled_dot_product_attention.

* the gradient equals autograd to 1e-10 (relative to its largest entry);
* what the attention decomposition does not reproduce is refused, naming the node;
* the gradient-form rules of the one-node attention functions (SDPA, Swin's window
  attention) equal the node-by-node rules on the same attention written out;
* with biases, positional embeddings, the class token and relative position biases
  zeroed, CP-LRP (z-rule) conserves the logit exactly; AttnLRP's softmax rule absorbs
  exactly what the relevance at the softmax nodes says;
* Zennit's generalised gamma equals ``cp_lrp_gamma``'s gamma rule;
* CSC on ViT: one |cos| per token, equal to |cos| of autograd's gradients.

The agreement with LXT is in ``tests/methods/test_lxt.py`` (LXT is an optional dependency).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.maxvit import MaxVit
from torchvision.models.swin_transformer import ShiftedWindowAttention, SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

import liecheck
from liecheck import Explainer
from liecheck.engine import ops
from liecheck.metrics.csc_setup import baseline, pair_indices, random_vectors

HEADS = ("heads", "head", "classifier")


def _init(m: nn.Module, seed: int = 0) -> nn.Module:
    """float64, eval, every parameter random (torchvision zero-initialises ViT's head
    and Swin's relative position tables), BatchNorm statistics random."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(1 + 0.1 * torch.rand(mod.running_var.shape, generator=g))
    return m.double().eval()


def _zero_shifts(m: nn.Module) -> nn.Module:
    """Biases, positional embeddings, the class token, relative position tables and
    BatchNorm means zeroed (the running means: BatchNorm's shift is then 0)."""
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias") or any(k in n for k in (
                    "pos_embedding", "class_token", "relative_position_bias_table")):
                p.zero_()
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.zero_()
    return m


MODELS = {
    "vit": (lambda: VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                      hidden_dim=16, mlp_dim=32, num_classes=5), 32),
    # 8 x 8 tokens, windows of 2: the odd blocks shift (roll and the attention mask)
    "swin": (lambda: SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2],
                                     num_heads=[2, 2], window_size=[2, 2], num_classes=5), 32),
    # 9 x 9 tokens: window attention pads to 10 x 10, patch merging pads to even sizes
    "swin_padded": (lambda: SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2],
                                            num_heads=[2, 2], window_size=[2, 2],
                                            num_classes=5), 36),
    "maxvit": (lambda: MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2,
                              block_channels=[8, 16], block_layers=[1, 1], head_dim=4,
                              stochastic_depth_prob=0.0, num_classes=5), 32),
}


def _model(name: str) -> tuple[nn.Module, torch.Tensor]:
    make, size = MODELS[name]
    torch.manual_seed(0)
    m = _init(make())
    x = torch.randn(2, 3, size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    return m, x


def _autograd(m: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m(xr)[:, target].sum(), xr)
    return g


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    scale = b.abs().max().item()
    assert scale > 0
    assert (a - b).abs().max().item() <= tol * scale


# ------------------------------------------------------------------ the gradient
@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_equals_autograd(name):
    m, x = _model(name)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    _close(liecheck.attribute(m, x, "gradient", target=2), _autograd(m, x, 2), 1e-10)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())  # untouched


class MHANet(nn.Module):
    """Patches -> tokens -> one self-attention -> mean over tokens -> logits."""

    def __init__(self, bias: bool = True, need_weights: bool = False, **kw):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, 4)
        self.attn = nn.MultiheadAttention(8, 2, bias=bias, batch_first=True, **kw)
        self.head = nn.Linear(8, 3)
        self.need_weights = need_weights

    def tokens(self, x):
        return self.embed(x).flatten(2).transpose(1, 2)

    def forward(self, x):
        t = self.tokens(x)
        y, _ = self.attn(t, t, t, need_weights=self.need_weights)
        return self.head((y + t).mean(1))


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"need_weights": True}])
def test_multihead_attention_gradient(kw):
    m = _init(MHANet(**kw))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _close(liecheck.attribute(m, x, "gradient", target=1), _autograd(m, x, 1), 1e-10)
    kinds = [n.kind for n in liecheck.trace(m).nodes]
    assert kinds.count("matmul") == 2 and kinds.count("softmax") == 1  # decomposed


class _Masked(MHANet):
    def forward(self, x):
        t = self.tokens(x)
        mask = torch.zeros(4, 4, dtype=torch.bool, device=x.device)
        return self.head(self.attn(t, t, t, attn_mask=mask)[0].mean(1))


class _Padded(MHANet):
    def forward(self, x):
        t = self.tokens(x)
        pad = t[:, :, 0] > 1e9  # (N, L), all False
        return self.head(self.attn(t, t, t, key_padding_mask=pad)[0].mean(1))


class _Cross(MHANet):
    def forward(self, x):
        t = self.tokens(x)
        return self.head(self.attn(t, 2 * t, 2 * t)[0].mean(1))


class _Weights(MHANet):
    def forward(self, x):
        t = self.tokens(x)
        y, w = self.attn(t, t, t)
        return self.head(y.mean(1)) + w.mean((1, 2)).unsqueeze(1)


class _SeqFirst(MHANet):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2)

    def forward(self, x):
        t = self.tokens(x)
        return self.head(self.attn(t, t, t)[0].mean(1))


@pytest.mark.parametrize("cls, words", [
    (_Masked, "attn_mask"), (_Padded, "key_padding_mask"), (_Cross, "cross-attention"),
    (_Weights, "attention weights"), (_SeqFirst, "batch_first=False")])
def test_multihead_attention_refusals(cls, words):
    with pytest.raises(liecheck.UnsupportedOperation, match=words) as exc:
        liecheck.trace(cls().double().eval())
    assert "node 'attn'" in str(exc.value)


def test_add_bias_kv_refused():
    m = MHANet()
    m.attn = nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True)
    with pytest.raises(liecheck.UnsupportedOperation, match="add_bias_kv"):
        liecheck.trace(m.double().eval())


# --------------------------------------------- one-node attention = written out
class SDPANet(nn.Module):
    """Self-attention through F.scaled_dot_product_attention, or (``explicit``) the
    same computation written as matmul, softmax, matmul."""

    def __init__(self, explicit: bool):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, 4, bias=False)
        self.qkv = nn.Linear(8, 24, bias=False)
        self.head = nn.Linear(8, 3, bias=False)
        self.explicit = explicit

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        parts = self.qkv(t).chunk(3, -1)
        q, k, v = (parts[i].unflatten(-1, (2, 4)).transpose(1, 2) for i in range(3))
        if self.explicit:
            a = torch.softmax((q * 0.5) @ k.transpose(-2, -1), -1)
            o = a @ v
        else:
            o = F.scaled_dot_product_attention(q, k, v)
        return self.head((o.transpose(1, 2).flatten(2) + t).mean(1))


@pytest.mark.parametrize("method", ["lrp_z", "cp_lrp", "gradient"])
def test_sdpa_rule_equals_written_out(method):
    one = _init(SDPANet(False))
    out = SDPANet(True)
    out.load_state_dict(one.state_dict())
    out = out.double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert [n.kind for n in liecheck.trace(one).nodes].count("sdpa") == 1
    _close(liecheck.attribute(one, x, method, target=0),
           liecheck.attribute(out, x, method, target=0), 1e-10)


class WindowNet(nn.Module):
    """(N, C, H, W) -> tokens (N, H, W, C) -> Swin window attention (no shift) -> mean ->
    logits; ``explicit``: the same attention written out (partition, qkv, scaled q @ k^T +
    relative position bias, softmax, @ v, projection, merge)."""

    def __init__(self, explicit: bool):
        super().__init__()
        self.attn = ShiftedWindowAttention(8, [2, 2], [0, 0], 2)
        self.head = nn.Linear(8, 3)
        self.explicit = explicit

    def forward(self, x):
        t = x.permute(0, 2, 3, 1)
        y = self.written_out(t) if self.explicit else self.attn(t)
        return self.head((y + t).mean((1, 2)))

    def written_out(self, t):
        a = self.attn
        n, h, w, c = t.shape
        win = t.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(
            n, (h // 2) * (w // 2), 4, c)
        qkv = a.qkv(win).unflatten(-1, (3, 2, c // 2))  # (n, windows, 4, 3, heads, d)
        q, k, v = (qkv[:, :, :, i].permute(0, 1, 3, 2, 4) for i in range(3))
        scale = (a.qkv.in_features // a.num_heads) ** -0.5
        s = (q * scale) @ k.transpose(-2, -1) + a.get_relative_position_bias()
        o = (torch.softmax(s, -1) @ v).permute(0, 1, 3, 2, 4).flatten(3)
        o = a.proj(o).reshape(n, h // 2, w // 2, 2, 2, c).permute(0, 1, 3, 2, 4, 5)
        return o.reshape(n, h, w, c)


@pytest.mark.parametrize("method", ["lrp_z", "cp_lrp", "gradient"])
def test_window_attention_rule_equals_written_out(method):
    one = _init(WindowNet(False))
    out = WindowNet(True)
    out.load_state_dict(one.state_dict())
    out = out.double().eval()
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(one(x), out(x), atol=1e-12)  # the same function
    kinds = [n.kind for n in liecheck.trace(one).nodes]
    assert "window_attention" in kinds and "window_attention" not in [
        n.kind for n in liecheck.trace(out).nodes]
    _close(liecheck.attribute(one, x, method, target=0),
           liecheck.attribute(out, x, method, target=0), 1e-10)


def test_window_attention_refused_under_other_linear_rules():
    m = _init(WindowNet(False))
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    with pytest.raises(liecheck.UnsupportedOperation, match="'lrp_epsilon'.*z-rule"):
        liecheck.attribute(m, x, "lrp_epsilon", target=0)
    with pytest.raises(liecheck.UnsupportedOperation, match="gamma_attention=False"):
        liecheck.attribute(m, x, "cp_lrp_gamma", target=0)
    # the projections inside get the z-rule, as asked: cp_lrp_gamma = cp_lrp there when the
    # only other dense layer (the head) gets gamma 0, i.e. the z-rule with zennit's eps
    a = liecheck.attribute(m, x, "cp_lrp_gamma", target=0, gamma_attention=False,
                           gamma_linear=0.0, gamma_eps=0.0)
    _close(a, liecheck.attribute(m, x, "cp_lrp", target=0), 1e-10)


# ------------------------------------------------------------------ conservation
@pytest.mark.parametrize("name", ["vit", "swin", "maxvit"])
def test_cp_lrp_conserves(name):
    m, x = _model(name)
    _zero_shifts(m)
    r = liecheck.attribute(m, x, "cp_lrp", target=1)
    logit = m(x)[:, 1].detach()
    assert logit.abs().min() > 1e-3
    _close(r.flatten(1).sum(1), logit, 1e-10)


def test_attnlrp_absorbs_at_the_softmax_only():
    """AttnLRP (lrp_z) on ViT with the shifts zeroed: the input's total is the logit
    less what the softmax rule absorbs, ``sum R(softmax out) - sum R(softmax in)`` at
    each softmax node (every other rule conserves). That share is not small."""
    m, x = _model("vit")
    _zero_shifts(m)
    e = Explainer(m)
    soft = [n for n in e.graph.nodes if isinstance(n.op, ops.Softmax)]
    assert len(soft) == 2 and all(len(e.graph.consumers[n.inputs[0]]) == 1 for n in soft)
    record = [e.graph.input] + [n.name for n in soft] + [n.inputs[0] for n in soft]
    rel = e.walk(x, "lrp_z", record=record, target=1)
    total = {k: v.flatten(1).sum(1) for k, v in rel.items()}
    absorbed = sum(total[n.name] - total[n.inputs[0]] for n in soft)
    logit = m(x)[:, 1].detach()
    _close(total[e.graph.input], logit - absorbed, 1e-10)
    assert (absorbed.abs() > 1e-2 * logit.abs()).all()


# ------------------------------------------------------------------ gamma vs Zennit
def test_gamma_equals_zennit():
    zennit = pytest.importorskip("zennit")
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.rules import Gamma, Pass

    torch.manual_seed(0)
    m = _init(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)))
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)  # signed inputs: the generalised form
    comp = LayerMapComposite([(nn.Conv2d, Gamma(0.3)), (nn.Linear, Gamma(0.7)),
                              (nn.ReLU, Pass())])
    assert zennit is not None
    out = torch.zeros(2, 5, dtype=torch.float64)
    out[:, 4] = 1
    with Gradient(model=m, composite=comp) as attributor:
        logits, ref = attributor(x, lambda y: y * out)
    got = liecheck.attribute(m, x, "cp_lrp_gamma", target=4, gamma_conv=0.3,
                             gamma_linear=0.7)
    _close(got, ref, 1e-10)


# ------------------------------------------------------------------ CSC per token
def test_csc_per_token_on_vit():
    """CSC of the gradient at the first block's output (``add_2``, (N, 17, 16)): one
    value per token and pair of vectors, equal to |cos| of autograd's gradients of
    ``<v, logits>`` with respect to the block's output, token by token."""
    m, x = _model("vit")
    df, values = liecheck.csc(m, x, "gradient", n_vectors=3, raw=True)
    assert list(df["layer"]) == ["x", "add_1", "add_2", "add_3", "add_4"]
    row = df.set_index("layer").loc["add_2"]
    assert row["channels"] == 16 and row["n_values"] == 2 * 3 * 17  # images x pairs x tokens
    want = []
    for i in range(2):
        v = random_vectors(0, "heads_head", i, 3, (5,)).double()
        grads = []
        for vk in v:
            keep: dict = {}
            h = m.encoder.layers[0].register_forward_hook(
                lambda mod, a, o, keep=keep: keep.update(o=o))
            y = m(x[i:i + 1])
            h.remove()
            (g,) = torch.autograd.grad((y[0] * vk).sum(), keep["o"])
            grads.append(g[0])
        for a, b in pair_indices(3):
            want.append(F.cosine_similarity(grads[a], grads[b], dim=-1).abs())
    want = torch.cat(want).numpy()
    got = values[("output", "add_2")]
    np.testing.assert_allclose(np.sort(got), np.sort(want), atol=1e-6)  # stored as float32
    assert math.isclose(row["baseline"], baseline(16))


# ------------------------------------------------- random logit and the cascade
def test_random_logit_and_cascade_on_vit():
    """The random-logit test runs on ViT; each cascade step's map equals the method on a
    copy of the model with the same modules re-initialised (traced afresh), so the
    cascade's reuse of the trace is exact on attention too."""
    import copy

    from liecheck.metrics.sanity import cascade_maps, randomize

    m, x = _model("vit")
    rl = liecheck.random_logit(m, x, "cp_lrp", target=2)
    assert len(rl) == 2 and rl["score"].notna().all()
    steps = list(cascade_maps(m, x, "cp_lrp", target=2, layers=3))
    assert [s for s, _, _ in steps] == [0, 1, 2, 3]
    done: list[str] = []
    for _step, names, maps in steps[1:]:
        done += names
        fresh = randomize(copy.deepcopy(m), done, seed=0)
        _close(maps, liecheck.attribute(fresh, x, "cp_lrp", target=2), 1e-10)


def test_cascade_refuses_swin_window_attention():
    m, x = _model("swin")
    with pytest.raises(liecheck.UnsupportedOperation, match="shifted_window_attention"):
        liecheck.sanity(m, x, "cp_lrp", layers=2)


class _SDPAMasked(SDPANet):
    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        q = t.unflatten(-1, (2, 4)).transpose(1, 2)
        return self.head(F.scaled_dot_product_attention(q, q, q, is_causal=True)
                         .transpose(1, 2).flatten(2).mean(1))


def test_sdpa_with_is_causal_refused():
    with pytest.raises(liecheck.UnsupportedOperation, match="is_causal"):
        liecheck.trace(_SDPAMasked(False).double().eval())


def test_csc_through_swins_window_attention():
    """CSC walks several random vectors at once (a fan): through Swin's window attention
    the weights must not be repeated with the relevance (they were: a shape error). At the
    input, CSC of the gradient equals |cos| over the channels of autograd's input
    gradients of ``<v, logits>``, pixel by pixel."""
    m, x = _model("swin")
    df, values = liecheck.csc(m, x, "gradient", n_vectors=3, raw=True)
    start = df["start_node"].iloc[0]
    want = []
    for i in range(2):
        v = random_vectors(0, start, i, 3, (5,)).double()
        grads = []
        for vk in v:
            xi = x[i:i + 1].clone().requires_grad_(True)
            (g,) = torch.autograd.grad((m(xi)[0] * vk).sum(), xi)
            grads.append(g[0])
        for a, b in pair_indices(3):
            want.append(F.cosine_similarity(grads[a], grads[b], dim=0).abs().flatten())
    want = torch.cat(want).numpy()
    got = values[("output", "x")]
    np.testing.assert_allclose(np.sort(got), np.sort(want), atol=1e-6)
    liecheck.csc(m, x, "lrp_z", n_vectors=3)        # AttnLRP's window-attention rule too
