"""Reading tensor files (model checkpoints, pattern sets) with one clear sentence for
each way it can fail, and checking a state dict against a model.

Files are always read with ``torch.load(..., weights_only=True)``: a pickle that
would run code is refused by PyTorch, and that refusal is passed on unchanged.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

SHOW = 10  # keys listed per kind of mismatch


class MissingFile(FileNotFoundError, ValueError):
    """A weights argument that is neither an existing file nor a known weights name."""


def read(path: str | Path, what: str = "checkpoint"):
    """``torch.load(path, map_location="cpu", weights_only=True)``, refusing a missing
    path, a directory, an empty or unreadable file with one sentence naming ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path} (no such file)")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory, not a file; pass the file "
                                "inside it")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {path} is an empty file (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise  # PyTorch's weights-only refusal (a pickle that would run code) says why
    except (EOFError, RuntimeError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise ValueError(f"{what} {path} is not a readable PyTorch file (truncated, or "
                         f"another format): {first}") from None


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOW} more" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


def check_state_dict(model: nn.Module, state: dict, source: str) -> None:
    """Refuse a state dict that does not fit ``model``, listing (the first ten of) the
    missing, unexpected and shape-mismatched keys; ``source`` names where it came from."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and isinstance(state[k], torch.Tensor)
                  and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_listed(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
    if mismatched:
        parts.append(f"{len(mismatched)} keys with another shape, file vs model "
                     f"({_listed(mismatched)})")
    if parts:
        raise ValueError(f"{source}: " + "; ".join(parts))


def warn_non_finite(state: dict, source: str) -> list[str]:
    """Warn (and return their names) if tensors of ``state`` hold NaN or infinite values."""
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor)
           and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        warnings.warn(f"{source}: {len(bad)} tensors hold NaN or infinite values "
                      f"({_listed(bad)})", stacklevel=3)
    return bad
