"""A faithfulness test of the battery, and the registry the tools loop over.

A :class:`FaithfulnessTest` is one file (see :mod:`liecheck.battery.random_logit` for a
short one). Registered with :func:`register_test`, it is run by ``liecheck reproduce``
(its :meth:`~FaithfulnessTest.units`), shown by the report (its table, figures, summary
columns and aggregates), offered by the CLI as ``liecheck <command>`` and run by
``liecheck audit`` (its :meth:`~FaithfulnessTest.audit` verdict), with no other file
edited. Every hook has a default that does nothing, so a test implements only what it
has.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from ..units import TABLE_KEYS, Unit

NOT_APPLICABLE = "not applicable"   # an audit verdict: the test does not apply
TABLE = "_table"   # an audit row's key for the test's own rows (its evidence's input)


class FaithfulnessTest:
    """One test of the battery.

    Attributes
    ----------
    name : the experiment's and its table's name (``"random_logit"``).
    keys : the columns that identify a row of its table.
    heading : the report's heading of its table.
    command : its CLI subcommand (``"random-logit"``), or ``None`` for none.
    help : the subcommand's one-line help.
    shown : the table's columns shown in the report (``None``: all).
    walk_only : only for methods whose map is one walk (CSC reads inside the walk).
    everywhere : run by every plan by default (``False``: only by plans that name it).
    summary_names : prose headings of the columns :meth:`summary` adds.
    extra_tables : ``{table: keys}`` of further tables its units write.
    """

    name: str = ""
    keys: tuple[str, ...] = ()
    heading: str = ""
    command: str | None = None
    help: str = ""
    shown: tuple[str, ...] | None = None
    walk_only: bool = False
    everywhere: bool = True     # in every plan by default (False: only where named, e.g. a
    #                             test that needs images of two digits)
    summary_names: dict[str, str] = {}
    extra_tables: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------- liecheck reproduce
    def units(self, s, m, cfg, order: str) -> list[Unit]:
        """The units of work for subject ``s`` (model, images, plan) and method ``m``."""
        return []

    def walks(self, n: int, n_layers: int, n_starts: int, n_vectors: int) -> int:
        """Backward walks one method costs on ``n`` images (the plan line's estimate)."""
        return n

    def probe(self, ex, model, x, m, plan, cfg, n_layers: int, factor: float = 1.0) -> float:
        """Seconds per image of this test for method ``m``, timed now on the images
        ``x`` (the run's estimate; :mod:`liecheck.battery.estimate`). ``m`` may be a
        cheaper form of the run's method whose maps cost ``factor`` times less
        (:func:`~liecheck.battery.estimate.probe_method`). Default: the seconds of the
        maps of ``x`` per image times :meth:`walks` of one image."""
        from .estimate import timed

        per_map = factor * timed(lambda: ex.attribute(x, m)) / len(x)
        return per_map * self.walks(1, n_layers, plan.n_starts, cfg.n_vectors)

    def plan_words(self, plan, cfg, n_layers: int) -> str:
        """What the plan line says of one method's work beyond ``n images``."""
        return ""

    # ------------------------------------------------------------------------ the CLI
    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Options of ``liecheck <command>`` beyond the model, methods and output ones."""

    def plan_settings(self, args) -> dict:
        """``ModelPlan`` / ``RunConfig`` fields taken from those options."""
        return {}

    def write_outputs(self, store, df: pd.DataFrame, args) -> None:
        """Figures the CLI writes next to the table (``args.out``)."""

    # --------------------------------------------------------------------- the report
    def figures(self, store) -> list:
        """The report's figures (:class:`liecheck.plots.figure.Figure`) from the store."""
        return []

    def summary(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """Columns of the verdict table, indexed by ``(model, method)``."""
        return None

    def aggregates(self, df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        """The report's aggregate tables (medians with intervals): ``(heading, table)``."""
        return []

    def layers(self, df: pd.DataFrame) -> dict[str, str]:
        """``{model: words}`` naming the layers behind its summary columns."""
        return {}

    # ------------------------------------------------------- the mechanism it can show
    mechanism: str = ""     # the failure this test shows ("rank-1 convergence", ...)
    measure: str = ""       # the number it rests on, in words ("CSC at the first layer")
    short: str = ""         # the test in a word or two ("CSC", "the cascade")
    factor: float = 2.0     # how many times nearer to "no change" than the reference a
    #                         method must be (:mod:`liecheck.battery.mechanism`)

    def evidence(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """The number behind :attr:`mechanism` per ``(model, method)`` (the index):
        ``value, low, high`` (with its 99 % bootstrap interval over images) and
        ``distance, distance_low, distance_high``, the same on a scale where 0 means
        "the map did not change" (``1 - similarity``; an L1 distance as it is).
        ``None``: the test shows no mechanism."""
        return None

    # ---------------------------------------------------------------------- the audit
    audit_columns: dict[str, str] = {}   # column -> markdown heading (verdict included)
    hidden_audit_columns: tuple[str, ...] = ()   # in the table, not in the markdown
    verdict_column: str = ""             # the audit column holding the verdict
    failing: str | None = None           # the verdict that is the paper's failure (None:
    #                                      the test informs, it never fails a method)

    def audit(self, ex, model, x, m, target, seed: int, n_vectors: int) -> dict:
        """The audit row's columns for method ``m``, :attr:`verdict_column` among them,
        and under :data:`TABLE` the rows of the test's own table they come from (what
        :meth:`evidence` reads, for the mechanism verdict; optional). Raise
        ``ValueError`` / ``TypeError`` / ``RuntimeError`` when it does not apply."""
        raise NotImplementedError

    @property
    def audited(self) -> bool:
        return type(self).audit is not FaithfulnessTest.audit

    def audit_empty(self) -> dict:
        """The row's columns when the test does not apply."""
        cols = [*self.audit_columns, *self.hidden_audit_columns]
        return {c: np.nan for c in cols} | {self.verdict_column: NOT_APPLICABLE}


TESTS: dict[str, FaithfulnessTest] = {}


def register_test(test: FaithfulnessTest, overwrite: bool = False) -> FaithfulnessTest:
    """Add ``test`` to the battery (``reproduce``, the report, the CLI and the audit run
    it). A name or a CLI command that is taken is refused unless ``overwrite=True``."""
    if not isinstance(test, FaithfulnessTest) or not test.name:
        raise TypeError("register_test expects a named liecheck.battery.FaithfulnessTest")
    clash = [t.name for t in TESTS.values() if t.name != test.name and test.command
             and t.command == test.command]
    if (test.name in TESTS and TESTS[test.name] is not test and not overwrite) or clash:
        raise ValueError(f"a faithfulness test named '{test.name}' (or with the command "
                         f"'{test.command}') is registered already; pass overwrite=True")
    TESTS[test.name] = test
    TABLE_KEYS[test.name] = list(test.keys)
    for table, keys in test.extra_tables.items():
        TABLE_KEYS[table] = list(keys)
    return test


def unregister_test(name: str) -> None:
    """Remove a test from the battery (its stored tables stay readable)."""
    TESTS.pop(name, None)


def tests() -> list[FaithfulnessTest]:
    """The registered tests, in registration order."""
    return list(TESTS.values())
