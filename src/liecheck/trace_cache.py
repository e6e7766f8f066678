"""One traced copy per model object, so that functional calls do not re-trace.

``liecheck.attribute(model, x, method)`` called in a loop would deep-copy, trace and
fold the model on every call. :func:`cached` keeps what it builds (an
:class:`~liecheck.Explainer`) per model object, weakly: when the model is garbage
collected the entry goes with it. The entry is rebuilt whenever the model's
:func:`fingerprint` changes, that is when anything that could change the traced
function changes:

* a parameter or buffer is replaced, moved (device, dtype) or written in place
  (``p.mul_(2)``, ``with torch.no_grad(): p.copy_(...)``, ``load_state_dict``, an
  optimiser step, BatchNorm running statistics updated by a train-mode forward):
  PyTorch counts every in-place write in the tensor's version counter;
* a module is added, removed or replaced; a module attribute (``inplace``,
  ``stride``, a patched ``forward``, the ``training`` flag) changes;
* a forward hook or pre-hook is added or removed.

Writes that bypass the version counter (through ``p.data`` or a NumPy view of a
parameter) are invisible to PyTorch's autograd checks and to this cache alike;
after such an edit, call :func:`clear` (or build a fresh :class:`~liecheck.Explainer`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")

_ENTRIES: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
          "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")
_PLAIN = (bool, int, float, str, type(None), torch.dtype, torch.device)


def _tensor_state(t: torch.Tensor | None) -> tuple:
    if t is None:
        return ()
    return (id(t), t._version, t.data_ptr(), t.dtype, t.device, tuple(t.shape))


def _value(v: Any) -> Any:
    if isinstance(v, _PLAIN):
        return v
    if isinstance(v, torch.Tensor):  # a plain tensor attribute
        return _tensor_state(v)
    if isinstance(v, tuple) and all(isinstance(e, _PLAIN) for e in v):
        return v
    return ("id", id(v))


def fingerprint(model: nn.Module) -> tuple:
    """Everything about ``model`` that the traced copy depends on (see the module doc).

    Cheap: no tensor data is read.
    """
    parts = []
    for name, m in model.named_modules(remove_duplicate=False):
        d = vars(m)
        parts.append((name, id(m), type(m),
                      tuple((k, _tensor_state(t)) for k, t in d["_parameters"].items()),
                      tuple((k, _tensor_state(t)) for k, t in d["_buffers"].items()),
                      tuple(tuple(d.get(h) or ()) for h in _HOOKS),
                      tuple((k, _value(v)) for k, v in d.items() if not k.startswith("_"))))
    return tuple(parts)


def cached(model: nn.Module, key: Hashable, build: Callable[[], T]) -> T:
    """``build()``'s result for ``model`` (and ``key``, e.g. the device), rebuilt only
    when :func:`fingerprint` of the model changed since it was built.

    Models that cannot be weakly referenced or hashed are not cached.
    """
    try:
        per_model = _ENTRIES.setdefault(model, {})
    except TypeError:
        return build()
    fp = fingerprint(model)
    hit = per_model.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    per_model.pop(key, None)  # free the stale copy before building the new one
    value = build()
    per_model[key] = (fp, value)
    return value


def clear(model: nn.Module | None = None) -> None:
    """Forget the cached copies of ``model`` (default: of every model)."""
    if model is None:
        _ENTRIES.clear()
    else:
        _ENTRIES.pop(model, None)


def size() -> int:
    """Number of models with a cached copy (for tests and diagnostics)."""
    return len(_ENTRIES)
