"""Shared look of liecheck's line plots: distinct styles for many methods, legends
outside the data, and a minimum font size.

Every text in a liecheck figure is at least :data:`MIN_FONT` points, and a legend
never covers a curve (it sits to the right of the axes). :func:`line_style` gives
method ``i`` a colour, marker and line style whose combination does not repeat for
the first ``len(COLORS) * len(MARKERS)`` methods (10 x 6 = 60).
"""

from __future__ import annotations

MIN_FONT = 9
LEGEND_IN = 2.2          # inches added to a figure's width for the legend on its right
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")


def line_style(i: int) -> dict:
    """Keyword arguments for ``ax.plot`` of the ``i``-th curve."""
    return {"color": COLORS[i % len(COLORS)],
            "marker": MARKERS[(i // len(COLORS)) % len(MARKERS)],
            "linestyle": LINESTYLES[(i // len(COLORS)) % len(LINESTYLES)]}


def legend_outside(ax, **kw):
    """Put ``ax``'s legend to the right of the axes (one column up to 14 entries)."""
    n = len(ax.get_legend_handles_labels()[1])
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                     fontsize=MIN_FONT, ncol=1 if n <= 14 else 2, frameon=False, **kw)
