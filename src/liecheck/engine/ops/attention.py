"""Attention: softmax, the product of two activations as a matrix product (matmul,
``@``, bmm, einsum), and two torchvision functions that are leaves of torch.fx (Swin's
``shifted_window_attention`` and ``_patch_merging_pad``).

``nn.MultiheadAttention`` is not an op: the trace rewrites it into its projections,
the two matrix products and the softmax (:mod:`liecheck.engine.attention`), so every
part gets its own rule. ``F.scaled_dot_product_attention`` and Swin's window attention
are one node each (:class:`SDPA`, :class:`WindowAttention`): their computation is the
library's own function, differentiated exactly by autograd, and the LRP family gives
them its attention rules in the gradient-times-input form (``docs/rules.md``).
"""

from __future__ import annotations

import inspect
import operator
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..fxutil import bind, call_arguments, refuse_batch_dims
from .base import Op, UnsupportedOperation, register
from .structure import Rearrange, Transpose, _named

try:  # torchvision's fx leaves
    from torchvision.models import maxvit as _maxvit
    from torchvision.models import swin_transformer as _swin
except ImportError:  # pragma: no cover - torchvision is a dependency
    _swin = _maxvit = None


@register
class Softmax(Op):
    """``softmax`` over one non-batch dimension (``F.softmax``, ``torch.softmax``,
    ``x.softmax``, ``nn.Softmax``)."""

    name, computes = "softmax", True
    modules, functions, methods = (nn.Softmax,), (F.softmax, torch.softmax), ("softmax",)

    def __init__(self, dim: int, node: str = ""):
        self.dim, self.node = dim, node

    @classmethod
    def from_fx(cls, fxn, module, info):
        if module is not None:
            dim = module.dim
        else:
            a = call_arguments(fxn, {"dim": None, "_stacklevel": 3, "dtype": None})
            if a["dtype"] is not None:
                raise UnsupportedOperation(f"node '{fxn.name}': softmax with dtype= has no "
                                           "rule; cast the input instead")
            dim = a["dim"]
        if not isinstance(dim, int):
            raise UnsupportedOperation(f"node '{fxn.name}': softmax needs an explicit "
                                       "integer dim")
        return _named(cls(dim, fxn.name), fxn, (dim,))

    def forward(self, x):
        refuse_batch_dims(self.node, "softmax", self.dim, x.dim())
        return torch.softmax(x, self.dim)

    def nonneg(self, inputs):
        return True


_MATMUL_FUNCS = (torch.matmul, operator.matmul, torch.bmm)
_EINSUM = re.compile(r"^([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]*)$")


@register
class Matmul(Op):
    """The matrix product of two activations with the same batch dimension: ``a @ b``,
    ``torch.matmul``, ``torch.bmm`` (both operands with the same number of dimensions,
    at least 3, so dimension 0 is the batch of both) and ``torch.einsum`` with two
    operands whose first index is the output's first index (the batch) and appears
    nowhere else."""

    name, routes, computes = "matmul", None, True
    functions = (*_MATMUL_FUNCS, torch.einsum)
    methods = ("matmul", "__matmul__", "bmm")

    def __init__(self, equation: str | None = None, node: str = ""):
        self.equation, self.node = equation, node

    @classmethod
    def from_fx(cls, fxn, module, info):
        if fxn.target is torch.einsum:
            return cls._einsum(fxn, info)
        if len(fxn.args) != 2 or fxn.kwargs:
            raise UnsupportedOperation(f"node '{fxn.name}': matmul needs two operands")
        acts = [a for a in fxn.args if info.is_activation(a)]
        if len(acts) != 2:
            raise UnsupportedOperation(
                f"node '{fxn.name}': a matrix product with a constant is a linear layer "
                "without a rule here; use nn.Linear (or F.linear with the weight)")
        return cls(None, fxn.name)

    @classmethod
    def _einsum(cls, fxn, info):
        eq, *operands = fxn.args
        m = _EINSUM.match(eq.replace(" ", "")) if isinstance(eq, str) else None
        ok = (m is not None and len(operands) == 2 and not fxn.kwargs
              and all(info.is_activation(o) for o in operands))
        if ok:
            a, b, out = m.groups()
            ok = (out[:1] == a[:1] == b[:1] and a[0] not in a[1:] + b[1:] + out[1:])
        if not ok:
            raise UnsupportedOperation(
                f"node '{fxn.name}': einsum {eq!r} has no rule: supported are two "
                "activations with an explicit '->' whose first index is the batch of both "
                "and of the output")
        return cls(eq.replace(" ", ""), fxn.name)

    def forward(self, a, b):
        if self.equation is not None:
            return torch.einsum(self.equation, a, b)
        if a.dim() != b.dim() or a.dim() < 3 or a.shape[0] != b.shape[0]:
            raise UnsupportedOperation(
                f"node '{self.node}': matmul of shapes {tuple(a.shape)} and {tuple(b.shape)} "
                "mixes samples (both operands need the same rank >= 3 and the batch first)")
        return torch.matmul(a, b)


class LibraryFunction(Op):
    """A library function that is one node (a torch.fx leaf): it computes by calling
    the function with the node's tensors (``routes = None``: its constants too, read on
    every forward pass) and its other arguments as traced; only ``activation`` (the
    names of the arguments that may carry relevance) are activations."""

    routes, computes = None, True
    fn = None
    activations: tuple[str, ...] = ()

    def __init__(self, names: tuple, static: dict, node: str = ""):
        self.names, self.static, self.node = names, static, node

    @classmethod
    def from_fx(cls, fxn, module, info):
        if bind(fxn) is None:
            raise UnsupportedOperation(f"node '{fxn.name}': cannot read its arguments")
        params = list(inspect.signature(cls.fn).parameters)
        names, static = [], {}  # names in the order of the node's tensor inputs
        for k, v in [*zip(params, fxn.args), *fxn.kwargs.items()]:
            if isinstance(v, torch.fx.Node):
                if not info.is_tensor(v):
                    raise UnsupportedOperation(
                        f"node '{fxn.name}': argument {k} is computed at run time")
                if info.is_activation(v) != (k in cls.activations):
                    raise UnsupportedOperation(
                        f"node '{fxn.name}': argument {k} must "
                        f"{'' if k in cls.activations else 'not '}depend on the input")
                names.append(k)
            else:
                static[k] = v
        op = cls(tuple(names), static, fxn.name)
        op.check()
        return op

    def check(self) -> None:
        """Refuse settings the op's rules do not cover."""

    def call(self, tensors: dict):
        return type(self).fn(**tensors, **self.static)

    def forward(self, *ts):
        return self.call(dict(zip(self.names, ts)))

    def is_activation(self, k: int) -> bool:
        return self.names[k] in self.activations


@register
class SDPA(LibraryFunction):
    """``F.scaled_dot_product_attention(q, k, v)`` without a mask, dropout or
    ``is_causal`` (``scale`` allowed)."""

    name, functions = "sdpa", (F.scaled_dot_product_attention,)
    fn = staticmethod(F.scaled_dot_product_attention)
    activations = ("query", "key", "value")

    @classmethod
    def from_fx(cls, fxn, module, info):
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
                 "enable_gqa")
        args = dict(zip(names, fxn.args)) | dict(fxn.kwargs)
        bad = [k for k, v in args.items() if k not in ("query", "key", "value", "scale")
               and v not in (None, 0, 0.0, False)]
        if bad or len(fxn.args) > len(names) or set(args) - set(names):
            raise UnsupportedOperation(
                f"node '{fxn.name}': scaled_dot_product_attention with "
                f"{', '.join(bad) or 'these arguments'} has no rule (supported: query, key, "
                "value and scale; no mask, dropout or is_causal)")
        tensors = [k for k in ("query", "key", "value") if k in args]
        if len(tensors) != 3 or not all(info.is_activation(args[k]) for k in tensors):
            raise UnsupportedOperation(f"node '{fxn.name}': scaled_dot_product_attention "
                                       "needs query, key and value computed from the input")
        return cls(("query", "key", "value"),
                   {"scale": args["scale"]} if args.get("scale") is not None else {},
                   fxn.name)

    def forward(self, q, k, v):
        for t in (q, k, v):
            if t.dim() < 3 or t.shape[0] != q.shape[0]:
                raise UnsupportedOperation(
                    f"node '{self.node}': scaled_dot_product_attention on shapes "
                    f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} mixes samples")
        return F.scaled_dot_product_attention(q, k, v, **self.static)


if _swin is not None:
    @register
    class WindowAttention(LibraryFunction):
        """Swin's ``shifted_window_attention`` (torchvision; a torch.fx leaf): window
        partition, cyclic shift with its attention mask, relative position bias, the
        qkv and output projections. Swin V2's cosine attention (``logit_scale``) and
        dropout in training are refused."""

        name, functions = "window_attention", (_swin.shifted_window_attention,)
        fn = staticmethod(_swin.shifted_window_attention)
        activations = ("input",)

        def check(self):
            s = self.static
            if "logit_scale" in self.names or s.get("logit_scale") is not None:
                raise UnsupportedOperation(
                    f"node '{self.node}': Swin V2's cosine attention (logit_scale) has no "
                    "rule; Swin V1 (swin_t, swin_s, swin_b) is supported")
            if s.get("training", True) and (s.get("dropout", 0.0) or
                                            s.get("attention_dropout", 0.0)):
                raise UnsupportedOperation(f"node '{self.node}': window attention with "
                                           "dropout in training mode is random")
            self.static = {**s, "training": False}

    @register
    class PatchMergingPad(Rearrange):
        """Swin's ``_patch_merging_pad``: pad H and W to even sizes, then stack the four
        interleaved sub-grids on the channels; a rearrangement (zeros from the padding)."""

        name, computes = "patch_merging_pad", True
        functions = (_swin._patch_merging_pad,)

        def forward(self, x):
            if x.dim() < 4:
                raise UnsupportedOperation("_patch_merging_pad needs (N, ..., H, W, C)")
            return _swin._patch_merging_pad(x)

        def transpose(self, r, in_shape):
            with torch.enable_grad():
                z = r.new_zeros(in_shape, requires_grad=True)
                (g,) = torch.autograd.grad(_swin._patch_merging_pad(z), z, r)
            return g


if _maxvit is not None:
    @register
    class SwapAxes(Transpose):
        """MaxViT's ``SwapAxes`` module: ``torch.swapaxes(x, a, b)``."""

        modules, functions, methods = (_maxvit.SwapAxes,), (), ()

        @classmethod
        def from_fx(cls, fxn, module, info):
            return _named(cls(module.a, module.b), fxn, (module.a, module.b))
