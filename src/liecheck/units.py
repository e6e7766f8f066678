"""Units of work: what a run computes and its run store writes, one file per unit.

Per (test, model, method) the images are cut into chunks (:func:`chunks`); each chunk
is one :class:`Unit`, so a killed run loses at most the chunk in progress and the chunks
can be shared out among processes. :data:`TABLE_KEYS` names the columns that identify a
row of each table (a faithfulness test declares its tables when it is registered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Result = tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]

# table name -> the columns that identify a row
TABLE_KEYS: dict[str, list[str]] = {}


@dataclass
class Unit:
    """One unit of work: ``compute()`` (or, for a merge unit, ``merge(store)``, run
    after every other unit) returns the rows of ``table`` and the arrays to store."""

    table: str
    name: str
    label: str                     # shown in the progress bar
    compute: Callable[[], Result] | None = None
    cost: float = 1.0              # relative cost, for the progress bar and sharing out
    arrays: tuple[str, ...] = ()   # names of the arrays it stores (checked on resume)
    merge: Callable[..., Result] | None = None
    needs: tuple[tuple[str, str], ...] = ()   # (table, unit) a merge unit reads
    method: str | None = None      # the method it runs (None: theory, ground truth)

    @property
    def keys(self) -> list[str]:
        return TABLE_KEYS[self.table]


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the images ``0 ... n-1`` in consecutive chunks."""
    if size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {size}")
    return [(a, min(a + size, n)) for a in range(0, n, size)]
