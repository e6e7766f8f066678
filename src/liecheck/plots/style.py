"""Shared look of liecheck's line plots: distinct styles for many methods, legends
outside the data, and a minimum font size.

Every text in a liecheck figure is at least :data:`MIN_FONT` points, and a legend
never covers a curve (it sits to the right of the axes). :func:`line_style` gives
curve ``i`` a colour, marker and line style whose combination does not repeat for
the first 120 curves; :func:`method_styles` gives each *method* the style of its
position in the method registry, so a method has the same colour and marker in
every figure and every report, whichever methods a run holds. Curves that lie on
top of each other are named under the figure (:func:`note_coinciding`), so a hidden
curve is not read as missing.
"""

from __future__ import annotations

import textwrap

import numpy as np

MIN_FONT = 9
LEGEND_IN = 2.2          # inches added to a figure's width for the legend on its right
# 29 colours: matplotlib's ten, then 19 darker or more saturated ones that are told apart
# from them (every registered method has its own colour; 29 and the 6 markers are coprime,
# so colour + marker repeat only after 174 curves, and the line style changes every 30)
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan",
          "#000075", "#800000", "#469990", "#808000", "#f032e6", "#e6194b", "#4363d8",
          "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#9a6324", "#b8860b", "#2f4f4f",
          "#6a5acd", "#dc143c", "#008b8b", "#556b2f", "#ff8c00")
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")


def line_style(i: int) -> dict:
    """Keyword arguments for ``ax.plot`` of the ``i``-th curve."""
    return {"color": COLORS[i % len(COLORS)],
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[(i // 30) % len(LINESTYLES)]}


def method_styles(methods) -> dict[str, dict]:
    """``{method name: line_style(k)}`` with ``k`` the method's position in the
    registry (:func:`liecheck.methods.method_names`: the built-ins in a fixed order,
    then registered ones), so LRP a1b0 has the same colour and marker in the default
    report, a ``liecheck csc`` report and ``liecheck spectrum``. Names that are not
    registered (peer adapters, references) follow the registry, in the order given."""
    from ..methods import method_names

    names = method_names()
    pos = {n: i for i, n in enumerate(names)}
    out, extra = {}, len(names)
    for m in dict.fromkeys(methods):
        if m in pos:
            out[m] = line_style(pos[m])
        else:
            out[m] = line_style(extra)
            extra += 1
    return out


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


def cos_tick(y: float) -> str:
    """The label of ``1 - |cos| = y`` on :func:`cos_axis`, in one format for every
    decade: the ``|cos|`` value written ``1 - 10^-k`` (mathtext), so 0.99 reads
    :math:`1-10^{-2}` and a value near float64 resolution :math:`1-10^{-14}`, never a
    mix of 0.999999 and 1-1e-14; ``|cos| = 0`` (k = 0) reads :math:`1-10^{0}`.
    Empty between decades."""
    if y <= 0:
        return ""
    k = -np.log10(y)
    if abs(k - round(k)) > 1e-6 or round(k) < 0:
        return ""
    k = int(round(k))
    return f"$1-10^{{{-k}}}$"


def cos_axis(ax, threshold: float | None = None) -> None:
    """Label a log axis of ``1 - |cos|`` (inverted: converged at the top) with the
    values of ``|cos|`` as the paper's Figure 5 does, in one format (:func:`cos_tick`);
    it spans at least two decades so that it always has labelled ticks. With
    ``threshold`` (a ``|cos|``, e.g. the verdict's 0.99) a dotted line is drawn there
    and named in the legend."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(ax.get_ylim())
    ax.set_ylim(max(hi, 1.0), min(lo, 1e-2))         # inverted: 1 - |cos| = 1 at the bottom
    if threshold is not None:
        threshold_line(ax, 1 - threshold, threshold)

    def fmt(y, _pos=None):
        return cos_tick(y)
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.yaxis.set_minor_formatter(NullFormatter())


def threshold_line(ax, y: float, cos: float):
    """The verdict's threshold as a dotted grey line at ``y`` (named in the legend)."""
    return ax.axhline(y, color="0.35", ls=":", lw=1.2, zorder=1.5, gid="threshold",
                      label=f"verdict threshold |cos| = {cos:g}")
