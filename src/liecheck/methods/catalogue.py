"""The paper's core methods: the gradient family (gradient, gradient x input, Deconv,
Guided BP, RectGrad) and the LRP family (z, epsilon, alpha-beta, CMP, DTD, Excitation BP).
Registered on import."""

from __future__ import annotations

from ..engine import ops
from ..engine.attention import MHA_PROJECTION
from ..engine.fxutil import UnsupportedOperation
from ..rules import attention as ra
from ..rules import gradient as rg
from ..rules import lrp as rl
from .composites import (
    ATTNLRP_WINDOW,
    CP_LRP,
    DEFAULTS,
    GRADIENT_COMPOSITE,
    RELU_ONLY,
    every_linear,
    fixed,
    gradient_composite,
    lrp_composite,
)
from .protocol import Method
from .registry import register_method


def _cmp(alpha, beta):
    def pick(node, graph, p):
        if node.layer == "dense":
            return rl.Epsilon(p["cmp_epsilon"])
        return rl.AlphaBeta(alpha, beta)
    return pick


def _dtd(node, graph, p):
    if node is graph.first("conv") or (graph.first("conv") is None
                                       and node is graph.linear_nodes()[0]):
        return rl.ZBox(p.get("low", "input"), p.get("high", "input"))
    if node is graph.last("dense"):
        return rl.WSquare()
    return rl.ZPlus()


def _gamma(node, graph, p):
    """Gamma on conv and dense layers (``gamma_conv``, ``gamma_linear``); the z-rule on
    the other linear nodes, and on the projections of ``nn.MultiheadAttention`` where
    ``gamma_attention=False``."""
    mha = node.fx_node is not None and MHA_PROJECTION in node.fx_node.meta
    if node.layer == "conv":
        return ra.Gamma(p["gamma_conv"], p["gamma_eps"])
    if node.layer == "dense" and (p["gamma_attention"] or not mha):
        return ra.Gamma(p["gamma_linear"], p["gamma_eps"])
    return rl.Epsilon(0.0)


def _window_gamma(node, graph, p):
    """Swin's window attention under cp_lrp_gamma: its projections get the z-rule inside
    the function, which is what ``gamma_attention=False`` asks for; else refused."""
    if p["gamma_attention"]:
        raise UnsupportedOperation(
            f"node '{node.name}' ({node.op.describe()}): its qkv and output projections get "
            "the z-rule inside the function, not gamma; pass gamma_attention=False (the "
            "z-rule on attention projections, as LXT) or use cp_lrp")
    return ra.AttentionGradientForm("cp")


def _rectgrad(node, graph, p):
    return rg.RectGradReLU(p["rectgrad_q"])


def _builtin() -> list[Method]:
    d = DEFAULTS
    grad = dict(family="gradient", start="onehot", reduce="maxabs")
    add = {"add_eps": d["add_eps"]}  # residual additions of the LRP composites
    return [
        Method("gradient", "Gradient", "plain gradient of the explained logit (Simonyan 2014)",
               GRADIENT_COMPOSITE, citation="Simonyan et al. 2014", **grad),
        Method("gradient_x_input", "Gradient x Input", "gradient times the input",
               GRADIENT_COMPOSITE, start="onehot", post="x_input", family="gradient",
               citation="Shrikumar et al. 2016"),
        Method("lrp_z", "LRP-z", "z-rule with bias everywhere (= gradient x input on ReLU "
               "nets; AttnLRP on transformers)",
               lrp_composite(every_linear(lambda p: rl.Epsilon(0.0)), ATTNLRP_WINDOW),
               params=dict(add), citation="Bach et al. 2015; Achtibat et al. 2024"),
        Method("lrp_epsilon", "LRP-epsilon", "epsilon rule with bias everywhere",
               lrp_composite(every_linear(lambda p: rl.Epsilon(p["epsilon"]))),
               params={"epsilon": d["epsilon"], **add}, citation="Bach et al. 2015"),
        Method("lrp_a1b0", "LRP a1b0", "alpha-beta, alpha=1 beta=0 (z+ with positive bias)",
               lrp_composite(every_linear(lambda p: rl.AlphaBeta(1, 0))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_a2b1", "LRP a2b1", "alpha-beta, alpha=2 beta=1",
               lrp_composite(every_linear(lambda p: rl.AlphaBeta(2, 1))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_a5b4", "LRP a5b4", "alpha-beta, alpha=5 beta=4",
               lrp_composite(every_linear(lambda p: rl.AlphaBeta(5, 4))), params=dict(add),
               citation="Bach et al. 2015"),
        Method("lrp_cmp_a1b0", "LRP CMP a1b0",
               "epsilon (1e-10) on dense layers, alpha-beta a1b0 on conv layers",
               lrp_composite(_cmp(1, 0)), params={"cmp_epsilon": d["cmp_epsilon"], **add},
               citation="Kohlbrenner et al. 2019"),
        Method("lrp_cmp_a2b1", "LRP CMP a2b1",
               "epsilon (1e-10) on dense layers, alpha-beta a2b1 on conv layers",
               lrp_composite(_cmp(2, 1)), params={"cmp_epsilon": d["cmp_epsilon"], **add},
               citation="Kohlbrenner et al. 2019"),
        Method("dtd", "DTD", "Deep Taylor: z^B on the first conv, z+ after ReLUs, w^2 on the "
               "final dense layer", lrp_composite(_dtd),
               params={"low": "input", "high": "input", **add}, citation="Montavon et al. 2017"),
        Method("excitation_bp", "Excitation BP",
               "z+ with positive weights, relevance as probabilities (starts at 1); "
               "signed inputs: x+ W+ + x- W- (stable; as Zennit)",
               lrp_composite(lambda node, graph, p: rl.excitation_rule(node)), start="onehot",
               params=dict(add),
               citation="Zhang et al. 2018"),
        Method("deconv", "Deconv", "ReLU on the backward signal, forward mask dropped",
               gradient_composite({ops.ReLU: fixed(rg.DeconvReLU), ops.Pointwise: RELU_ONLY}),
               linear_in_relevance=False,
               citation="Zeiler & Fergus 2014", **grad),
        Method("guided_bp", "Guided BP", "forward ReLU mask and ReLU on the backward signal",
               gradient_composite({ops.ReLU: fixed(rg.GuidedReLU), ops.Pointwise: RELU_ONLY}),
               linear_in_relevance=False,
               citation="Springenberg et al. 2014", **grad),
        Method("rectgrad", "RectGrad",
               "keep the gradient where activation x gradient is above its 98th percentile",
               gradient_composite({ops.ReLU: _rectgrad, ops.Pointwise: RELU_ONLY}),
               params={"rectgrad_q": d["rectgrad_q"]}, linear_in_relevance=False,
               citation="Kim et al. 2019", **grad),
    ]


def _attention() -> list[Method]:
    """CP-LRP (the z-rule, and LXT's gamma map for torchvision ViT); AttnLRP is lrp_z."""
    add = {"add_eps": DEFAULTS["add_eps"]}
    return [
        Method("cp_lrp", "CP-LRP", "z-rule with bias, attention weights held constant "
               "(conservative propagation)",
               lrp_composite(every_linear(lambda p: rl.Epsilon(0.0)), CP_LRP),
               params=dict(add), citation="Ali et al. 2022"),
        Method("cp_lrp_gamma", "CP-LRP gamma", "CP-LRP with Zennit's gamma rule on conv and "
               "dense layers (LXT's default map for torchvision ViT)",
               lrp_composite(_gamma, {**CP_LRP, ops.attention.LibraryFunction: _window_gamma}),
               params={"gamma_conv": 0.25, "gamma_linear": 0.25, "gamma_eps": 1e-6,
                       "gamma_attention": True, **add},
               citation="Achtibat et al. 2024"),
    ]


for _m in _builtin() + _attention():
    register_method(_m)
