"""Peer methods: Zennit composites (:mod:`.zennit`), Captum methods (:mod:`.captum`)
and plain functions (:mod:`.function`) as liecheck methods that run on the traced copy
(:class:`~.base.PeerMethod`, checked hook-free).

Zennit and Captum are optional; they are imported only when an adapter is built.
"""

from .base import PeerMethod, assert_no_hooks, hooks_on
from .captum import from_captum
from .function import from_function
from .zennit import from_zennit

__all__ = ["PeerMethod", "assert_no_hooks", "from_captum", "from_function", "from_zennit",
           "hooks_on"]
