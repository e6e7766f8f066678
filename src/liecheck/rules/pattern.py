"""PatternNet / PatternAttribution linear rule (Kindermans et al. 2018).

Both methods are the gradient walk with a substituted weight at every conv and
dense layer: PatternNet uses the pattern ``A`` (paper eq. 10, ``A^T r``),
PatternAttribution uses ``A (*) W`` (paper eq. 11, ``(W (*) A)^T r``). ReLUs keep
the forward gate (the gradient mask).
"""

from __future__ import annotations

import torch

from .base import Rule


class SubstitutedTranspose(Rule):
    """``r_in = M^T r`` with a fixed substitute ``M`` for the layer's weight.

    ``weight`` has the shape of the layer's weight (``(out, in)`` or
    ``(out, in, kh, kw)``).
    """

    needs_inputs = False

    def __init__(self, weight: torch.Tensor):
        self.weight = weight

    def backward(self, ctx, node, r):
        w = self.weight.to(dtype=r.dtype, device=r.device)
        return [node.op.transpose(r, ctx.shape(node.inputs[0]), w)]

    def __repr__(self) -> str:
        return f"SubstitutedTranspose(shape={tuple(self.weight.shape)})"
