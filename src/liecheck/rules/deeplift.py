"""DeepLIFT rules (Shrikumar et al. 2017), on a forward batch that stacks ``[x; x0]``.

The forward pass runs the input ``x`` and the reference ``x0`` together (``2N``
samples); every activation ``h`` seen by a rule is ``[h(x); h(x0)]`` and its
difference-from-reference is ``dh = h[:N] - h[N:]``.  The walk carries
*multipliers* ``m`` (``N`` samples), so that ``m * dh`` are contributions; the
sum of the input contributions is ``f_k(x) - f_k(x0)`` (summation-to-delta).

Positive and negative parts.  For a linear node ``z = W h + b`` DeepLIFT splits
``dz = dz+ + dz-`` into the sums of the positive and of the negative terms
``w_ij dh_j`` (:func:`split_delta`), and tracks one multiplier for each part.
A relevance tensor with ``2N`` samples is such a *pair* ``[m+; m-]``; pairs only
travel from a RevealCancel ReLU (or a residual add) to the linear / add node that
feeds it and is read by nobody else.  Everywhere else ``m+ = m-`` and a single
``N``-sample tensor is carried (Rescale never creates pairs).

Linear layers use the rule of paper eq. 13 (the ``deeplift`` package's
``SepPosAndNeg`` / ``Linear`` multipliers): an input with ``dh > 0`` receives
``W+^T m+ + W-^T m-``, one with ``dh < 0`` receives ``W-^T m+ + W+^T m-`` and one
with ``dh == 0`` receives ``W^T (m+ + m-) / 2``.  With ``m+ = m-`` this is the
chain rule ``W^T m``.

Numerical safety: where ``|dx| < NEAR_ZERO`` (1e-7, the ``deeplift`` package's
threshold) a ReLU's multiplier falls back to the gradient ``1[x > 0]``.
"""

from __future__ import annotations

import torch

from ..engine.ops import Add, LinearOp, unbroadcast
from .base import Rule, cached, times
from .gradient import MaxPoolSwitch

NEAR_ZERO = 1e-7


def halves(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a stacked ``[x; x0]`` batch into ``(x, x0)``."""
    n = t.shape[0] // 2
    return t[:n], t[n:]


def delta(t: torch.Tensor) -> torch.Tensor:
    """Difference from reference ``t[:N] - t[N:]`` of a stacked batch."""
    a, b = halves(t)
    return a - b


def is_pair(r: torch.Tensor, act: torch.Tensor, fan: int = 1) -> bool:
    """True if ``r`` holds ``[m+; m-]`` (``fan`` times as many samples as the stacked
    activation; ``fan`` relevance samples per image, see :mod:`liecheck.engine.walk`)."""
    return r.shape[0] == act.shape[0] * fan


def _where(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where`` with a per-image ``cond`` ``(N, ...)`` and relevance-batch
    ``a``, ``b`` ``(N * fan, ...)``."""
    fan = a.shape[0] // cond.shape[0]
    if fan == 1:
        return torch.where(cond, a, b)
    return torch.where(cond.unsqueeze(1), a.unflatten(0, (-1, fan)),
                       b.unflatten(0, (-1, fan))).flatten(0, 1)


def split_delta(ctx, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dz+, dz-)``: see :func:`_split_delta` (cached across walks sharing a forward)."""
    return cached(ctx, ctx.graph.by_name[name], ("split_delta",),
                  lambda: _split_delta(ctx, name))


def _split_delta(ctx, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dz+, dz-)``: the positive and negative parts of node ``name``'s delta.

    Linear node: sums of the positive / negative terms ``w_ij dh_j`` (bias cancels);
    residual add: the sum of its summands' parts; any other node: ``max(dz, 0)``,
    ``min(dz, 0)``.
    """
    node = ctx.graph.by_name[name]
    if isinstance(node.op, LinearOp):
        dh = delta(ctx.act(node.inputs[0]))
        op = node.op
        hp, hn = dh.clamp(min=0), dh.clamp(max=0)
        if op.weight is None or not op.has_negative_weights:
            w = op.weight
            return op(hp, w, None), op(hn, w, None)
        wp, wn = op.split()
        a1, i1 = op.forward_many(hp, [wp, wn], [None, None])
        i2, a2 = op.forward_many(hn, [wp, wn], [None, None])
        return a1 + a2, i1 + i2
    if isinstance(node.op, Add) and len(node.inputs) > 0:
        consts = node.constant_inputs or (False,) * len(node.inputs)
        parts = [split_delta(ctx, i) for i, c in zip(node.inputs, consts) if not c]
        return sum(p for p, _ in parts), sum(n for _, n in parts)
    d = delta(ctx.act(name))
    return d.clamp(min=0), d.clamp(max=0)


def collapse(r: torch.Tensor, dpos: torch.Tensor, dneg: torch.Tensor) -> torch.Tensor:
    """One multiplier for ``dz = dz+ + dz-`` from a pair: ``(m+ dz+ + m- dz-) / dz``.

    Contributions are preserved; where ``|dz| < NEAR_ZERO`` it is ``(m+ + m-) / 2``.
    """
    mp, mn = halves(r)
    dz = dpos + dneg
    small = dz.abs() < NEAR_ZERO
    num = times(dpos, mp) + times(dneg, mn)
    ratio = _divide(num, torch.where(small, torch.ones_like(dz), dz))
    return _where(small, 0.5 * (mp + mn), ratio)


def _divide(r: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    fan = r.shape[0] // den.shape[0]
    if fan == 1:
        return r / den
    return (r.unflatten(0, (-1, fan)) / den.unsqueeze(1)).flatten(0, 1)


def _single(ctx, name: str, r: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    if not is_pair(r, act, ctx.fan):
        return r
    return collapse(r, *split_delta(ctx, name))


def _keeps_pair(ctx, producer: str, consumer: str) -> bool:
    """A pair may go to ``producer`` if it is linear / add and read only by ``consumer``."""
    node = ctx.graph.by_name[producer]
    return isinstance(node.op, (LinearOp, Add)) and ctx.graph.consumers[producer] == [consumer]


class DeepLiftLinear(Rule):
    """Linear layers (conv, dense, BatchNorm, average pooling): paper eq. 13.

    ``cross=False`` is the paper's *DeepLIFT Ablation*: the cross terms are dropped.
    ``negative_weight="pos"`` (default) is the reference code's ablation
    (``monkey_patch_deeplift_neg_pos_mxts(cross_mxts=False)``): an input with
    ``dh > 0`` receives ``W+^T m+`` and one with ``dh < 0`` receives ``W+^T m-`` (eq. 13
    without the two cross terms). ``"neg"`` follows the sentence of paper section
    2.4 instead (``W-^T m-`` for the negative chain).
    """

    def __init__(self, cross: bool = True, negative_weight: str = "pos"):
        if negative_weight not in ("pos", "neg"):
            raise ValueError(f"negative_weight must be 'pos' or 'neg', not {negative_weight!r}")
        self.cross, self.negative_weight = cross, negative_weight

    def backward(self, ctx, node, r):
        h = ctx.inputs(node)[0]
        op = node.op
        shape = ctx.shape(node.inputs[0])
        pair = is_pair(r, h, ctx.fan)
        if self.cross and not pair:
            return [op.transpose(r, shape)]  # m+ = m-: eq. 13 is the chain rule
        mp, mn = halves(r) if pair else (r, r)
        dh = delta(h)
        if op.weight is None or not op.has_negative_weights:  # pooling: W- = 0
            tpp, tnn = op.transpose(mp, shape), op.transpose(mn, shape)
            tpos, tneg = tpp, tnn
            tzero = 0.5 * (tpp + tnn)
        else:
            wp, wn = op.split()
            if self.cross:
                tpos = op.transpose_many([mp, mn], shape, [wp, wn])
                tneg = op.transpose_many([mp, mn], shape, [wn, wp])
                tzero = 0.5 * (tpos + tneg)
            else:
                tpos = op.transpose(mp, shape, wp)
                tneg = op.transpose(mn, shape, wp if self.negative_weight == "pos" else wn)
                tzero = 0.5 * op.transpose(mp + mn, shape)
        return [_where(dh > 0, tpos, _where(dh < 0, tneg, tzero))]


class DeepLiftAdd(Rule):
    """Residual addition, a linear layer with identity weights (eq. 13 with W = I).

    A pair goes on unchanged to summands that are linear / add nodes read only here
    (their own positive / negative parts make up this node's parts); other summands
    receive ``m+`` where their delta is positive, ``m-`` where negative.
    """

    def backward(self, ctx, node, r):
        h = ctx.inputs(node)[0]
        if not is_pair(r, h, ctx.fan):
            return [r for _ in node.inputs]
        out = []
        for name in node.inputs:
            out.append(r if _keeps_pair(ctx, name, node.name) else _single(ctx, name, r, h))
        return out


def _ratio(dy: torch.Tensor, dx: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    small = dx.abs() < NEAR_ZERO
    return torch.where(small, grad, dy / torch.where(small, torch.ones_like(dx), dx))


class Rescale(Rule):
    """The Rescale rule on a pointwise nonlinearity ``f`` (the node's op):
    ``m_x = m_y * (f(x) - f(x0)) / (x - x0)``, the derivative ``f'(x)`` where
    ``|x - x0| < 1e-7``."""

    def backward(self, ctx, node, r):
        h = ctx.inputs(node)[0]
        m = _single(ctx, node.name, r, h)
        f = node.op.fn

        def rescale():
            x, x0 = halves(h)
            return _ratio(f(x) - f(x0), x - x0, node.op.derivative(x))

        return [times(cached(ctx, node, ("rescale",), rescale), m)]


class RevealCancelReLU(Rule):
    """The RevealCancel rule (Shrikumar et al. 2017, section 3.5.3).

    With ``dx+``, ``dx-`` the positive and negative parts of the input's delta
    (:func:`split_delta`) and ``f = relu``::

        dy+ = (f(x0 + dx+) - f(x0)) / 2 + (f(x0 + dx- + dx+) - f(x0 + dx-)) / 2
        dy- = (f(x0 + dx-) - f(x0)) / 2 + (f(x0 + dx+ + dx-) - f(x0 + dx+)) / 2
        m_{dx+} = m_y dy+ / dx+,   m_{dx-} = m_y dy- / dx-

    (``dy+ + dy- = f(x) - f(x0)``). Where ``|dx+|`` or ``|dx-|`` is below 1e-7 the
    multiplier falls back to the gradient at ``x`` (the ``deeplift`` package adds a
    pseudocount there instead; the contribution is ~0 either way). The pair
    ``[m_{dx+}; m_{dx-}]`` goes to the input if it is a linear / add node read only by
    this ReLU; otherwise it is collapsed to one multiplier of ``dx``.
    """

    def backward(self, ctx, node, r):
        h = ctx.inputs(node)[0]
        m = _single(ctx, node.name, r, h)
        dp, dn = split_delta(ctx, node.inputs[0])

        def ratios():
            x, x0 = halves(h)
            f = node.op.fn
            fx0 = f(x0)
            dyp = 0.5 * (f(x0 + dp) - fx0) + 0.5 * (f(x0 + dn + dp) - f(x0 + dn))
            dyn = 0.5 * (f(x0 + dn) - fx0) + 0.5 * (f(x0 + dp + dn) - f(x0 + dp))
            g = node.op.derivative(x)
            return _ratio(dyp, dp, g), _ratio(dyn, dn, g)

        rp, rn = cached(ctx, node, ("revealcancel",), ratios)
        pair = torch.cat([times(rp, m), times(rn, m)])
        if _keeps_pair(ctx, node.inputs[0], node.name):
            return [pair]
        return [collapse(pair, dp, dn)]


class DeepLiftMaxPool(Rule):
    """Max pooling by its gradient at ``x`` (what the ``deeplift`` package's default
    ``MaxPoolDeepLiftMode.gradient`` and the paper's reference code did); not
    summation-to-delta exact."""

    def backward(self, ctx, node, r):
        h = ctx.inputs(node)[0]
        m = _single(ctx, node.name, r, h)
        return MaxPoolSwitch().backward(FirstHalf(ctx), node, m)


class FirstHalf:
    """Walk context view whose activations are the ``x`` half of the stacked batch."""

    def __init__(self, ctx):
        self.ctx = ctx

    def inputs(self, node):
        return [halves(t)[0] for t in self.ctx.inputs(node)]

    def pool_indices(self, node):
        idx = self.ctx.pool_indices(node)
        return None if idx is None else halves(idx)[0]


RescaleReLU = Rescale  # the ReLU case, under the name of the paper's methods


class DeepLiftProduct(Rule):
    """The product ``z = a * b`` of two activations: the symmetric (Shapley) split of
    ``dz = a b - a0 b0 = da (b + b0) / 2 + db (a + a0) / 2``, so ``m_a = m (b + b0) / 2``
    and ``m_b = m (a + a0) / 2``; summation-to-delta holds exactly."""

    def backward(self, ctx, node, r):
        a, b = ctx.inputs(node)
        m = _single(ctx, node.name, r, a)
        (xa, ra), (xb, rb_) = halves(a), halves(b)
        sa, sb = (ctx.shape(i) for i in node.inputs)
        return [unbroadcast(times(0.5 * (xb + rb_), m), sa),
                unbroadcast(times(0.5 * (xa + ra), m), sb)]
