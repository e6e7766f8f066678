"""One number formatter for every table liecheck prints or writes into a report.

CSC and SSIM values crowd just below 1 (0.999, 0.9999, 0.99999 mean very
different things in the paper), so a fixed number of decimals either hides the
difference or floods the table. :func:`fmt` keeps three significant digits of the
*distance to 1* for values in ``(0.9, 1)`` and four significant digits otherwise.
"""

from __future__ import annotations

import math

SIGNIFICANT = 4        # significant digits away from 1
NEAR_ONE = 0.9         # above this, the digits of 1 - |v| are what matters
MAX_DECIMALS = 12


def fmt(v) -> str:
    """Format one table cell: numbers as described in the module docstring, NaN/None as
    ``-``, booleans and strings unchanged.

    >>> fmt(0.9999), fmt(0.99999), fmt(0.123456), fmt(1234.5678), fmt(1.0)
    ('0.9999', '0.99999', '0.1235', '1235', '1')
    """
    if v is None or isinstance(v, bool | str):
        return "-" if v is None else str(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(x):
        return "-"
    if math.isinf(x) or float(x).is_integer() and abs(x) < 1e15:
        return str(int(x)) if not math.isinf(x) else str(x)
    gap = 1 - abs(x)
    if 0 < gap < 1 - NEAR_ONE:
        decimals = min(MAX_DECIMALS, -math.floor(math.log10(gap)) + 2)
        s = f"{x:.{decimals}f}".rstrip("0")
        return s if not s.endswith(".") else s[:-1]
    return f"{x:.{SIGNIFICANT}g}"
