"""``nn.MultiheadAttention`` rewritten into its parts before canonicalisation.

torch.fx keeps ``nn.MultiheadAttention`` as one leaf call. :func:`decompose` replaces
each call (self-attention, ``batch_first=True``) by the computation it performs:

    qkv = F.linear(x, in_proj_weight, in_proj_bias); q, k, v = qkv.chunk(3, -1)
    q, k, v -> (N, heads, L, head_dim)      (unflatten, transpose)
    a = softmax((q * head_dim ** -0.5) @ k^T, -1)
    out_proj((a @ v) -> (N, L, E))          (transpose, flatten)

so that the projections are dense layers, the two products :class:`~.ops.Matmul` nodes
and the softmax a :class:`~.ops.Softmax` node, each with its own rule. What this
decomposition does not reproduce is refused, naming the node: masks
(``attn_mask``, ``key_padding_mask``, ``is_causal``), ``add_bias_kv``,
``add_zero_attn``, separate key / value dimensions, cross-attention, sequence-first
inputs and the attention weights used as an output.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from .fxutil import UnsupportedOperation

MHA_PROJECTION = "liecheck_mha_projection"  # fx meta key: the MHA an in / out projection is of
_ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
         "average_attn_weights", "is_causal")


def decompose(gm: fx.GraphModule) -> None:
    """Rewrite every ``nn.MultiheadAttention`` call of ``gm`` in place (see above)."""
    for n in list(gm.graph.nodes):
        if n.op == "call_module" and isinstance(gm.get_submodule(n.target),
                                                nn.MultiheadAttention):
            _rewrite(gm, n, gm.get_submodule(n.target))


def _refuse(n: fx.Node, what: str) -> None:
    raise UnsupportedOperation(
        f"node '{n.name}' (nn.MultiheadAttention): {what} has no rule; liecheck decomposes "
        "self-attention with batch_first=True, packed projections and no mask")


def _check(n: fx.Node, m: nn.MultiheadAttention) -> fx.Node:
    """The attention's input, after refusing what the decomposition does not cover."""
    args = dict(zip(_ARGS, n.args)) | dict(n.kwargs)
    if set(args) - set(_ARGS):
        _refuse(n, f"the argument(s) {sorted(set(args) - set(_ARGS))}")
    for k in ("key_padding_mask", "attn_mask"):
        if args.get(k) is not None:
            _refuse(n, f"{k}")
    if args.get("is_causal", False):
        _refuse(n, "is_causal=True")
    if not m.batch_first:
        _refuse(n, "batch_first=False (sequence first: the batch is not dimension 0)")
    if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
        _refuse(n, "kdim / vdim, add_bias_kv or add_zero_attn")
    q, k, v = (args.get(a) for a in ("query", "key", "value"))
    if not (isinstance(q, fx.Node) and q is k is v):
        _refuse(n, "cross-attention (query, key and value not the same tensor)")
    for u in n.users:
        if u.target is not operator.getitem or u.args[1] not in (0, 1) or (
                u.args[1] == 1 and u.users):
            _refuse(n, f"using its output as '{u.name}' (only output[0] is supported; the "
                    "attention weights are not)")
    return q


def _rewrite(gm: fx.GraphModule, n: fx.Node, m: nn.MultiheadAttention) -> None:
    x = _check(n, m)
    g, t = gm.graph, n.target
    heads, dim = m.num_heads, m.head_dim
    with g.inserting_before(n):
        w = g.get_attr(f"{t}.in_proj_weight")
        b = g.get_attr(f"{t}.in_proj_bias") if m.in_proj_bias is not None else None
        qkv = g.call_function(F.linear, (x, w, b))
        parts = g.call_function(torch.chunk, (qkv, 3), {"dim": -1})
        q, k, v = (g.call_method("transpose", (g.call_method(
            "unflatten", (g.call_function(operator.getitem, (parts, i)), -1, (heads, dim))),
            1, 2)) for i in range(3))
        q = g.call_function(operator.mul, (q, float(dim) ** -0.5))
        s = g.call_function(torch.matmul, (q, g.call_method("transpose", (k, -2, -1))))
        a = g.call_function(F.softmax, (s,), {"dim": -1})
        o = g.call_function(torch.matmul, (a, v))
        o = g.call_method("flatten", (g.call_method("transpose", (o, 1, 2)), 2))
        out = g.call_module(f"{t}.out_proj", (o,))
    qkv.meta[MHA_PROJECTION] = out.meta[MHA_PROJECTION] = t
    for u in list(n.users):
        if u.args[1] == 0:
            u.replace_all_uses_with(out)
        g.erase_node(u)
    g.erase_node(n)
