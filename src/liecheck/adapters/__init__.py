"""Peer methods and their audit: the adapters (Zennit composites, Captum methods and
plain functions as liecheck methods) live in :mod:`liecheck.methods.peers` and are
re-exported here; :mod:`.audit` runs the paper's three tests on them.

Zennit and Captum are optional; they are imported only when an adapter is built.
"""

from ..methods.peers import (
                             PeerMethod,
                             assert_no_hooks,
                             from_captum,
                             from_function,
                             from_zennit,
                             hooks_on,
)

__all__ = ["PeerMethod", "assert_no_hooks", "from_captum", "from_function", "from_zennit",
           "hooks_on"]
