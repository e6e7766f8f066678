"""What every peer adapter shares: :class:`PeerMethod`, the optional import, the
class targets and the check that no hook is left on a model.

A peer method runs on liecheck's private deep copy of the user's model (the traced
graph's ``module``), so the user's model never sees a hook. Zennit and Captum add
and remove their hooks themselves; :func:`assert_no_hooks` verifies after every
call that the copy is clean again.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ...inputs import resolve_targets
from ..protocol import Method


@dataclass
class PeerMethod(Method):
    """A :class:`~liecheck.Method` computed by another library (or a function).

    Attributes (besides :class:`~liecheck.Method`'s)
    ----------
    peer : ``"zennit"``, ``"captum"`` or ``"function"``.
    hooks : ``hooks(module) -> context manager`` under which a plain autograd
        backward through ``module`` is the method's backward (Zennit's composite
        context, Captum's ReLU hooks); ``None`` if the method is not one backward
        pass. :func:`liecheck.csc` injects its random vectors under it.
    csc_refusal : why CSC does not apply (when ``hooks`` is ``None``).
    """

    peer: str = "function"
    hooks: Callable | None = None
    csc_refusal: str = ""

    def rules(self, graph, **params):
        raise ValueError(f"method '{self.name}' runs through {self.peer}, not liecheck's walk; "
                         "it has no liecheck rules")


def require(package: str):
    """Import an optional peer library, or fail with the pip command that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        top = package.split(".")[0]
        raise ImportError(f"this adapter needs {top}, which is not installed: "
                          f"pip install {top}  (or pip install 'liecheck[peers]')") from exc


HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
              "_backward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks")


def hooks_on(module: nn.Module) -> list[str]:
    """``"module.name: hook kind"`` for every hook registered on ``module`` or below."""
    out = []
    for name, m in module.named_modules():
        for attr in HOOK_DICTS:
            if getattr(m, attr, None):
                out.append(f"{name or '<root>'}: {attr.strip('_')}")
    return out


def assert_no_hooks(module: nn.Module, who: str) -> None:
    """Raise if ``who`` left a hook behind on ``module`` (never silently keep one)."""
    left = hooks_on(module)
    if left:
        raise RuntimeError(f"{who} left hooks on the model: {', '.join(left[:5])}")


def targets(module: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """``(N,)`` class indices: ``target`` checked and broadcast, or the predictions."""
    def predict() -> torch.Tensor:
        with torch.no_grad():
            return module(x).argmax(1)
    return resolve_targets(target, x.shape[0], None, predict, x.device)


def one_hot(output: torch.Tensor, t: torch.Tensor, times_output: bool = False
            ) -> torch.Tensor:
    """One-hot rows of ``output``'s shape at ``t`` (times the logit with ``times_output``)."""
    if (t < 0).any() or (t >= output.shape[1]).any():
        raise ValueError(f"target out of range [0, {output.shape[1]})")
    oh = torch.zeros_like(output)
    oh[torch.arange(len(t), device=output.device), t] = 1.0
    return oh * output if times_output else oh
