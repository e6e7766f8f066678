"""The node types of the canonical graph, one class each (the open op model).

* :mod:`.base`: :class:`Op`, the registry, :class:`TraceInfo`;
* :mod:`.linear`: linear layers and their transposes (conv, dense, affine / BatchNorm,
  pooling, means, scales by constants);
* :mod:`.pointwise`: pointwise nonlinearities (ReLU, ReLU6 / clamp, LeakyReLU, ELU,
  SiLU, GELU, Hardswish, Hardsigmoid, Mish, tanh, sigmoid, softplus, abs);
* :mod:`.structure`: the input, constants, additions, concatenation, max pooling, max
  reductions, products of two activations and the rearrangements (reshape, permute,
  transpose, indexing, chunk / split, roll, pad);
* :mod:`.norm`: LayerNorm and GroupNorm;
* :mod:`.attention`: softmax, matrix products of two activations (matmul, bmm, einsum),
  ``F.scaled_dot_product_attention`` and Swin's window attention.

The classes are registered (matched against fx nodes) in the order of these modules;
:func:`liecheck.register_op` adds a user's class, matched first.
"""

from .base import OPS, USER_OPS, Op, TraceInfo, UnsupportedOperation, matching, register
from .linear import (
    AdaptiveAvgPoolOp,
    AffineOp,
    AvgPoolOp,
    ConstScale,
    ConvOp,
    DenseOp,
    InterpolateOp,
    LinearOp,
    MeanOp,
    PaddedConvOp,
    PoolingOp,
    Scale,
    unbroadcast,
)
from .norm import GroupNorm, LayerNorm, Norm  # noqa: E402  (registered after the structure ops)
from .pointwise import (
    ELU,
    GELU,
    Abs,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    Mish,
    Pointwise,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from .structure import (
    SPLITTERS,
    Add,
    AMax,
    Cat,
    Constant,
    DerivedConstant,
    Identity,
    Input,
    Mask,
    MaxPool,
    Pad,
    Permute,
    Product,
    Rearrange,
    Reshape,
    Roll,
    Select,
    Stack,
    Transpose,
    View,
    Where,
)

# isort: split
from .attention import SDPA, Matmul, Softmax  # registered after the others

__all__ = [
    "ELU", "GELU", "OPS", "SPLITTERS", "USER_OPS", "AMax", "Abs", "AdaptiveAvgPoolOp", "Add",
    "AffineOp", "AvgPoolOp", "Cat", "ConstScale", "Constant", "ConvOp", "DerivedConstant",
    "DenseOp",
    "GroupNorm", "Hardsigmoid", "Hardswish", "Hardtanh", "Identity", "Input",
    "InterpolateOp", "LayerNorm", "LeakyReLU", "LinearOp", "Mask", "MaxPool", "MeanOp", "Mish",
    "Norm", "Op", "Pad", "PaddedConvOp", "Permute", "Pointwise", "PoolingOp", "Product",
    "ReLU", "Rearrange", "Reshape", "Roll", "SDPA", "Matmul", "Softmax", "Scale", "Select",
    "Sigmoid", "SiLU", "Softplus",
    "Stack", "Tanh", "TraceInfo", "Transpose", "UnsupportedOperation", "View", "Where",
    "matching", "register", "unbroadcast",
]
