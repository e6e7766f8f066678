"""The method registry: every named attribution method, by name."""

from __future__ import annotations

import difflib
import importlib

import pandas as pd

from .protocol import Method

_REGISTRY: dict[str, Method] = {}


def register_method(method: Method, overwrite: bool = False) -> Method:
    """Add a method to the registry so every API, metric and the CLI accept its name.

    A name that is taken is refused unless ``overwrite=True`` (registering the very
    same object again changes nothing). liecheck's own catalogues register without
    ``overwrite``, so they never replace a method of yours.
    """
    if not isinstance(method, Method):
        raise TypeError("register_method expects a liecheck.Method")
    old = _REGISTRY.get(method.name)
    if old is method:
        return method
    if old is not None and not overwrite:
        raise ValueError(f"a method named '{method.name}' is registered already "
                         f"({old.paper_name}); pass overwrite=True to replace it")
    _REGISTRY[method.name] = method
    return method


def get_method(method: str | Method) -> Method:
    """Look up a method by name (or return a :class:`Method` unchanged).

    ``"package.module:attr"`` imports a user's method object; ``"smoothgrad[guided_bp]"``
    is a wrapping procedure around a base method (see :mod:`liecheck.methods.baselines`).
    """
    if isinstance(method, Method):
        return method
    if isinstance(method, str) and method.endswith("]") and "[" in method:
        outer, _, inner = method[:-1].partition("[")
        wrapper = get_method(outer)
        if not hasattr(wrapper, "around"):
            raise ValueError(f"'{outer}[...]': method '{outer}' does not wrap another method "
                             "(smoothgrad and integrated_gradients do)")
        return wrapper.around(inner)
    if isinstance(method, str) and ":" in method:
        mod, _, attr = method.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import method '{method}': {exc}") from exc
        if not isinstance(obj, Method):
            raise ValueError(f"'{method}' is a {type(obj).__name__}, not a liecheck.Method")
        return obj
    try:
        return _REGISTRY[method]
    except KeyError:
        close = difflib.get_close_matches(str(method), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown method '{method}'.{hint} Run `liecheck methods` for the "
                         "list.") from None


def method_table() -> pd.DataFrame:
    """The registry as a table: name, paper name, family, description, citation."""
    rows = [dict(name=m.name, paper_name=m.paper_name, family=m.family,
                 description=m.description, citation=m.citation) for m in _REGISTRY.values()]
    return pd.DataFrame(rows)


def method_names() -> list[str]:
    return list(_REGISTRY)
