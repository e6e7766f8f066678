"""Contrastive variants of z+ methods (paper section 2.5, eqs. 15 and 16).

* ``contrastive_lrp`` (CLRP, Gu, Yang & Tresp 2018), on the z+ rule::

      max(0, n(R(x | r_logits := y_k))) - n(R(x | r_logits := y_not_k))

  with ``y_k = y (*) m_k`` (the explained logit), ``y_not_k = y (*) (1 - m_k)`` (all
  other logits) and ``n(.)`` the division of a map by its sum (per sample). Both
  walks run as one batch of ``2N``. Written as the paper's eq. 15 (the max applies
  to the first term only).
* ``contrastive_ebp`` (cEBP, Zhang et al. 2018): Excitation BP whose final dense
  layer uses ``(Z+ - N+) m_k`` (eq. 16): ``Z+`` is the excitation transition with
  ``W``, ``N+`` the one with ``-W`` (the "dual" neuron), both normalised as in EBP.
  Every other layer is plain Excitation BP (``rl.excitation_rule``: the split
  ``x+ W+ + x- W-`` on signed inputs).

A CSC walk (injected relevance below the logits) of either method is the walk of
its underlying rule (z+ / Excitation), as in the paper.
"""

from __future__ import annotations

import torch

from ..inputs import resolve_targets
from ..rules import lrp as rl
from ..rules.base import Rule, cached, divide, safe_divide, times, zero_free
from .composites import DEFAULTS, lrp_composite
from .protocol import Method
from .registry import register_method


def normalise_by_sum(r: torch.Tensor) -> torch.Tensor:
    """``n(r)``: each sample divided by its sum (zero maps stay zero)."""
    s = r.reshape(r.shape[0], -1).sum(1).view(-1, *[1] * (r.dim() - 1))
    return safe_divide(r, s)


class ContrastiveLRP(Method):
    """CLRP (eq. 15): its map is two z+ walks, of the explained logit and of all the
    others, run as one batch of ``2N``; its walk with injected relevance is z+'s."""

    def attribute(self, explainer, x: torch.Tensor, target, params: dict) -> torch.Tensor:
        logits = explainer.logits(x)
        t = resolve_targets(target, x.shape[0], logits.shape[1], lambda: logits.argmax(1),
                            logits.device)
        onehot = torch.zeros_like(logits).scatter_(1, t.view(-1, 1), 1.0)
        start = torch.cat([onehot * logits, (1 - onehot) * logits])
        out = explainer.walk(torch.cat([x, x]), self, inject={explainer.graph.output: start},
                             record=[explainer.graph.input], **params)
        r = out[explainer.graph.input]
        n = x.shape[0]
        return normalise_by_sum(r[:n]).clamp(min=0) - normalise_by_sum(r[n:])


class ContrastiveExcitation(Rule):
    """Eq. 16 at one layer: ``x (*) W+^T (r / W+ x) - x (*) (-W)+^T (r / (-W)+ x)``."""

    def backward(self, ctx, node, r):
        x = ctx.inputs(node)[0]
        op = node.op
        wp, wd = op.pos(), -op.neg()            # W+ and (-W)+
        zp, zd = cached(ctx, node, ("cebp",), lambda: tuple(
            zero_free(z, fresh=False) for z in op.forward_many(x, [wp, wd], [None, None])))
        shape = (r.shape[0],) + tuple(x.shape[1:])
        return [times(x, op.transpose_many([divide(r, zp), -divide(r, zd)], shape, [wp, wd]))]


def _cebp_linear(node, graph, params):
    final = graph.by_name[graph.output]
    last = final if (final.is_linear and final.layer in ("conv", "dense")) \
        else graph.last("dense")
    return ContrastiveExcitation() if node is last else rl.excitation_rule(node)


METHODS = [
    ContrastiveLRP("contrastive_lrp", "contrastive LRP (CLRP)",
                   "max(0, n(R(y_k))) - n(R(y_not_k)) with the z+ rule, n = divide by the sum "
                   "(eq. 15)", lrp_composite(lambda node, graph, p: rl.ZPlus()),
                   params={"add_eps": DEFAULTS["add_eps"]}, family="contrastive",
                   citation="Gu, Yang & Tresp 2018 (ACCV)"),
    Method("contrastive_ebp", "contrastive EBP (cEBP)",
           "Excitation BP; the final dense layer uses (Z+ - N+) m_k, N+ from -W (eq. 16)",
           lrp_composite(_cebp_linear), start="onehot", family="contrastive",
           params={"add_eps": DEFAULTS["add_eps"]},
           citation="Zhang et al. 2018, Top-down neural attention by excitation "
                    "backprop (IJCV)"),
]

for _m in METHODS:
    register_method(_m)
