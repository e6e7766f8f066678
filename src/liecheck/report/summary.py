"""The per-method verdict table shared by the terminal summary and the HTML report.

A method *converges* (in the paper's sense, section 5) when the median CSC at the
output of the first conv layer, for relevance started at the logits, reaches
:data:`CONVERGED` (the paper: "all methods show convergence up to at least 0.99
cosine similarity", except LRP-z and DeepLIFT).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..layer_names import layer_label
from ..numbers import fmt

CONVERGED = 0.99


def logits_start(csc: pd.DataFrame) -> str:
    """The start at the logits: the one that records the most layers below it."""
    return csc.groupby("start")["layer"].nunique().idxmax()


def first_conv_csc(csc: pd.DataFrame) -> pd.DataFrame:
    """Median CSC at the first conv layer's output, logits start, per (model, method)."""
    if csc.empty:
        return pd.DataFrame(columns=["model", "method", "csc_first_conv", "baseline"])
    rows = []
    for (model, method), g in csc.groupby(["model", "method"], sort=False):
        g = g[g["start"] == logits_start(g)]
        conv = g[g["kind"] == "conv"].sort_values("depth")
        if conv.empty:
            continue
        r = conv.iloc[0]
        rows.append({"model": model, "method": method, "csc_first_conv": float(r["median"]),
                         "baseline": float(r["baseline"]), "first_conv": r["layer"]})
    return pd.DataFrame(rows)


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
    """One row per (model, method): CSC median at the first conv, the verdict, the
    random-logit SSIM median, the sanity SSIM medians after randomising the last
    layer (step 1) and all layers, and Figure 1's L1 of the class difference.
    ``images`` (:func:`images_by_model`) adds the column ``images``: how many images
    (and of which size) each row rests on."""
    csc = first_conv_csc(tables.get("csc", pd.DataFrame()))
    parts = [csc.set_index(["model", "method"])[["csc_first_conv"]]] if not csc.empty else []
    rl = tables.get("random_logit", pd.DataFrame())
    if not rl.empty:
        parts.append(rl.groupby(["model", "method"], sort=False)["score"].median()
                     .rename("ssim_random_logit").to_frame())
    sa = tables.get("sanity", pd.DataFrame())
    if not sa.empty:
        g = sa.groupby(["model", "method"], sort=False)
        first = sa[sa["step"] == 1].groupby(["model", "method"], sort=False)["score"].median()
        last = g.apply(lambda d: d[d["step"] == d["step"].max()]["score"].median())
        parts += [first.rename("ssim_sanity_last_layer").to_frame(),
                  last.rename("ssim_sanity_all_layers").to_frame()]
    ins = tables.get("insensitivity", pd.DataFrame())
    if not ins.empty:
        parts.append(ins.set_index(["model", "method"])[["l1"]].rename(
            columns={"l1": "l1_class_difference"}))
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, axis=1).reset_index()
    if images:
        df.insert(1, "images", [images.get(m, "-") for m in df["model"]])
    if "csc_first_conv" in df:
        df.insert(list(df.columns).index("csc_first_conv") + 1, "verdict",
                  np.where(df["csc_first_conv"].isna(), "-",
                           np.where(df["csc_first_conv"] >= CONVERGED,
                                    "converges", "does not converge")))
    return df


# prose headings of :func:`summary_table`'s columns (terminal and report)
COLUMN_NAMES = {"model": "model", "images": "images", "method": "method",
                "csc_first_conv": "CSC at first conv", "verdict": "verdict",
                "ssim_random_logit": "SSIM random logit",
                "ssim_sanity_last_layer": "SSIM last layer random",
                "ssim_sanity_all_layers": "SSIM all layers random",
                "l1_class_difference": "L1 class difference"}


def layers_note(tables: dict[str, pd.DataFrame]) -> str:
    """One sentence per model naming the layers behind :func:`summary_table`'s columns,
    node name with the paper's name, e.g. ``cifar_net: first conv relu1 (conv1); last
    layer fc6; all layers = down to conv1.`` (empty when there is nothing to name)."""

    notes: dict[str, list[str]] = {}
    csc = first_conv_csc(tables.get("csc", pd.DataFrame()))
    for model, g in (csc.groupby("model", sort=False) if not csc.empty else ()):
        firsts = list(dict.fromkeys(g["first_conv"]))
        notes.setdefault(model, []).append(
            "first conv " + ", ".join(layer_label(model, str(f)) for f in firsts))
    sa = tables.get("sanity", pd.DataFrame())
    for model, g in (sa.groupby("model", sort=False) if not sa.empty else ()):
        g = g.sort_values("step")
        first, last = str(g["layer"].iloc[0]), str(g["layer"].iloc[-1])
        notes.setdefault(model, []).append(
            f"last layer {layer_label(model, first)}; all layers = down to "
            f"{layer_label(model, last)}")
    return " ".join(f"{m}: {'; '.join(v)}." for m, v in notes.items())


def format_summary(df: pd.DataFrame) -> str:
    """A one-screen text rendering of :func:`summary_table` (numbers through
    :func:`liecheck.numbers.fmt`, columns left-aligned)."""

    if df.empty:
        return "(no results)"
    out = df.rename(columns=COLUMN_NAMES)
    cells = [[fmt(v) for v in out[c]] for c in out.columns]
    widths = [max(len(str(c)), *(len(v) for v in col)) for c, col in zip(out.columns, cells)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(out.columns, widths)).rstrip()]
    for row in zip(*cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
