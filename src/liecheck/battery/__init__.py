"""The faithfulness battery: every test that ``liecheck reproduce``, the report, the CLI
and ``liecheck audit`` run, one file each, registered on import in this order:
:mod:`.csc` (cosine similarity convergence), :mod:`.random_logit`, :mod:`.sanity`
(cascading randomisation), :mod:`.insensitivity` (Figure 1b-e) and :mod:`.two_digits`
(the ground truth, on images of two digits). :mod:`.mechanism` turns their numbers into
verdicts that name the failure each method shows.

A new test is one file: a :class:`FaithfulnessTest` subclass registered with
:func:`register_test` (see the base class for its hooks and docs/custom_tests.md); the
tools loop over :func:`tests`. The command line finds a test of yours through the entry
point group ``liecheck.battery`` of your package, or the environment variable
``LIECHECK_BATTERY`` (comma-separated modules to import, each registering its tests).
"""

import importlib
import os
from importlib.metadata import entry_points

from .base import NOT_APPLICABLE, TESTS, FaithfulnessTest, register_test, tests, unregister_test

from . import csc  # noqa: F401  # isort: skip  (registers the test)
from . import random_logit  # noqa: F401  # isort: skip  (registers the test)
from . import sanity  # noqa: F401  # isort: skip  (registers the test)
from . import insensitivity  # noqa: F401  # isort: skip  (registers the test)
from . import two_digits  # noqa: F401  # isort: skip  (registers the test)



def _load_plugins() -> None:
    """Import the tests of other packages (entry points) and of ``LIECHECK_BATTERY``."""
    for ep in entry_points(group="liecheck.battery"):
        ep.load()
    for name in filter(None, (m.strip() for m in
                              os.environ.get("LIECHECK_BATTERY", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"LIECHECK_BATTERY names the module '{name}', which does not "
                              f"import: {exc}") from exc


_load_plugins()

__all__ = ["NOT_APPLICABLE", "TESTS", "FaithfulnessTest", "register_test", "tests",
           "unregister_test"]
