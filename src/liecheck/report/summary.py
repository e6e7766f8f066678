"""The per-method verdict table shared by the terminal summary and the HTML report: one
row per (model, method), one or more columns per test of the battery (each test's
:meth:`~liecheck.battery.FaithfulnessTest.summary`), and the ``mechanism`` column: the
failures every test together shows, each named with its test, judged against the
gradient measured on the same images (:mod:`liecheck.battery.mechanism`).
"""

from __future__ import annotations

import pandas as pd

from ..battery import tests
from ..battery.mechanism import mechanisms
from ..numbers import fmt


def images_by_model(manifest: dict) -> dict[str, str]:
    """``{model: "8 at 32 px"}``: how many images each model's results rest on, from a
    run store's manifest."""
    out = {}
    for name, info in (manifest.get("models") or {}).items():
        if info.get("n_images") is not None:
            size = f" at {info['input_size']} px" if info.get("input_size") else ""
            out[name] = f"{info['n_images']}{size}"
    return out


def summary_table(tables: dict[str, pd.DataFrame], images: dict[str, str] | None = None
                  ) -> pd.DataFrame:
    """One row per (model, method): the summary columns of every test of the battery
    whose table is in ``tables`` (CSC at the first conv and its verdict, the random-logit
    SSIM, the cascade's SSIM after the last and after all layers, Figure 1's L1 of the
    class difference, and those of tests you registered). ``images``
    (:func:`images_by_model`) adds the column ``images``: how many images (and of which
    size) each row rests on."""
    parts = []
    for test in tests():
        df = tables.get(test.name, pd.DataFrame())
        part = test.summary(df) if not df.empty else None
        if part is not None and not part.empty:
            parts.append(part)
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, axis=1)
    mech = mechanisms(tables)
    if not mech.empty:
        df = df.join(mech[["mechanism"]], how="left")
    df = df.reset_index()
    if images:
        df.insert(1, "images", [images.get(m, "-") for m in df["model"]])
    if "mechanism" in df:
        df["mechanism"] = df["mechanism"].fillna("-")
    return df


def column_names() -> dict[str, str]:
    """Prose headings of :func:`summary_table`'s columns (terminal and report)."""
    out = {"model": "model", "images": "images", "method": "method",
           "mechanism": "verdict (mechanism shown)"}
    for test in tests():
        out.update(test.summary_names)
    return out


def layers_note(tables: dict[str, pd.DataFrame]) -> str:
    """One sentence per model naming the layers behind :func:`summary_table`'s columns,
    node name with the paper's name, e.g. ``cifar_net: first conv relu1 (conv1); last
    layer fc6; all layers = down to conv1.`` (empty when there is nothing to name)."""

    notes: dict[str, list[str]] = {}
    for test in tests():
        df = tables.get(test.name, pd.DataFrame())
        for model, words in (test.layers(df) if not df.empty else {}).items():
            notes.setdefault(model, []).append(words)
    return " ".join(f"{m}: {'; '.join(v)}." for m, v in notes.items())


def format_summary(df: pd.DataFrame) -> str:
    """A one-screen text rendering of :func:`summary_table` (numbers through
    :func:`liecheck.numbers.fmt`, columns left-aligned)."""

    if df.empty:
        return "(no results)"
    out = df.rename(columns=column_names())
    cells = [[fmt(v) for v in out[c]] for c in out.columns]
    widths = [max(len(str(c)), *(len(v) for v in col)) for c, col in zip(out.columns, cells)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(out.columns, widths)).rstrip()]
    for row in zip(*cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
