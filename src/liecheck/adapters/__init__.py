"""Peer adapters: Zennit composites, Captum methods and plain functions as liecheck
methods (``liecheck.methods.from_zennit``, ``from_captum``, ``from_function``).

Zennit and Captum are optional; they are imported only when an adapter is built.
"""

from .base import PeerMethod, assert_no_hooks, hooks_on
from .captum import from_captum
from .function import from_function
from .zennit import from_zennit

__all__ = ["PeerMethod", "assert_no_hooks", "from_captum", "from_function", "from_zennit",
           "hooks_on"]
