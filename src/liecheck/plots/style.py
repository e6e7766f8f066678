"""Shared look of liecheck's line plots: distinct styles for many methods, legends
outside the data, and a minimum font size.

Every text in a liecheck figure is at least :data:`MIN_FONT` points, and a legend
never covers a curve (it sits to the right of the axes). :func:`line_style` gives
method ``i`` a colour, marker and line style whose combination does not repeat for
the first 120 methods. Curves that lie on top of each other are named under the
figure (:func:`note_coinciding`), so a hidden curve is not read as missing.
"""

from __future__ import annotations

import textwrap

import numpy as np

MIN_FONT = 9
LEGEND_IN = 2.2          # inches added to a figure's width for the legend on its right
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")


def line_style(i: int) -> dict:
    """Keyword arguments for ``ax.plot`` of the ``i``-th curve."""
    return {"color": COLORS[i % len(COLORS)],
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[(i // 30) % len(LINESTYLES)]}


def legend_outside(ax, **kw):
    """Put ``ax``'s legend to the right of the axes (one column up to 14 entries)."""
    n = len(ax.get_legend_handles_labels()[1])
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                     fontsize=MIN_FONT, ncol=1 if n <= 14 else 2, frameon=False, **kw)


def coinciding(curves: dict[str, np.ndarray], tol: float) -> list[list[str]]:
    """Groups of curve labels whose values (same length) differ by at most ``tol`` at
    every point, in the order given; curves alone are not listed."""
    groups: list[list[str]] = []
    for label, y in curves.items():
        y = np.asarray(y, float)
        for g in groups:
            y0 = np.asarray(curves[g[0]], float)
            if y0.shape == y.shape and np.all(np.abs(y0 - y) <= tol):
                g.append(label)
                break
        else:
            groups.append([label])
    return [g for g in groups if len(g) > 1]


def note_coinciding(fig, groups: list[list[str]]) -> None:
    """Write under ``fig`` which curves are drawn over each other (call after
    ``tight_layout``; ``bbox_inches="tight"`` keeps the text)."""
    if not groups:
        return
    text = ("Drawn over each other (equal within the line width): "
            + "; ".join(" = ".join(g) for g in groups) + ".")
    width = max(40, int(fig.get_figwidth() * 72 / (0.6 * MIN_FONT)))
    fig.text(0.01, 0.0, "\n".join(textwrap.wrap(text, width)), ha="left", va="top",
             fontsize=MIN_FONT, gid="coincide-note")


def cos_axis(ax) -> None:
    """Label a log axis of ``1 - |cos|`` (inverted: converged at the top) with the
    values of ``|cos|`` (0.9, 0.99, ...), as the paper's Figure 5 does; it spans at
    least two decades so that it always has labelled ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(ax.get_ylim())
    ax.set_ylim(max(hi, 1.0), min(lo, 1e-2))         # inverted: 1 - |cos| = 1 at the bottom

    def fmt(y, _pos=None):
        if y <= 0:
            return ""
        k = -np.log10(y)
        if abs(k - round(k)) > 1e-6:
            return ""
        k = int(round(k))
        if k <= 0:
            return "0" if k == 0 else ""
        return "0." + "9" * k if k <= 6 else f"1-1e-{k}"
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.yaxis.set_minor_formatter(NullFormatter())
