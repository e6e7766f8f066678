"""The interface every rule implements, declared by the engine that calls it: the walk
(:mod:`liecheck.engine.walk`) asks each node's :class:`Rule` for the relevance at the
node's inputs. The rules themselves live in :mod:`liecheck.rules`."""

from __future__ import annotations

import torch


class Rule:
    """Base class. Subclasses implement :meth:`backward`:
    ``backward(ctx, node, r) -> [relevance at each input, or None]``; ``ctx`` is the
    walk (:class:`~liecheck.engine.walk.Walk`). ``needs_inputs`` / ``needs_output`` tell
    the forward pass which activations to keep."""

    needs_inputs = True
    needs_output = False

    def backward(self, ctx, node, r: torch.Tensor) -> list[torch.Tensor | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"
