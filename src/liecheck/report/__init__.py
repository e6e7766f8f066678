"""``liecheck report RUN_DIR``: one self-contained HTML file from a run store.

The report reads only the store (tables, arrays, manifest): figures are drawn
again from the stored numbers and embedded as base64 PNG, the CSS is inlined, so
the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path
from string import Template

import pandas as pd

from ..battery import TESTS, tests
from ..battery.csc import CONVERGED
from ..battery.mechanism import fails
from ..groundtruth import plot_two_digits
from ..layer_names import label_layers
from ..numbers import fmt
from ..plots.figure import Figure, png
from ..plots.run_figures import ALL
from ..runlock import describe, holder, holder_alive
from ..store import CorruptStoreError, RunStore, atomic_write, missing_units
from .summary import column_names, images_by_model, layers_note, summary_table

__all__ = ["build_report", "figure_drawers"]

# columns shown of the theory's tables (the full tables are in the run store; each test
# of the battery says its own: liecheck.battery)
THEORY_SHOWN = {
    "simulation": ["chain", "family", "step", "median", "p25", "p75"],
    "singular": ["model", "layer", "kind", "part", "shape", "sigma1", "sigma2", "ratio"],
}
THEORY_HEADINGS = {
    "simulation": "Matrix-chain simulation (appendix B, Figure 7)",
    "singular": "Singular-value ratios per layer (Figure 3)",
}


def _shown(table: str):
    test = TESTS.get(table)
    if test is not None:
        return test.shown, test.heading or table
    return THEORY_SHOWN.get(table), THEORY_HEADINGS.get(table, table)


def figure_drawers() -> list:
    """``[(name, draw)]``: every function that draws report figures from a run store
    (each test's :meth:`~liecheck.battery.FaithfulnessTest.figures`, the theory's, then
    the ground-truth benchmark's)."""
    return ([(f"{t.name} figures", t.figures) for t in tests()]
            + [(fn.__name__, fn) for fn in ALL]
            + [("groundtruth figure", _groundtruth_figures)])


def _figure_order(f: Figure) -> int:
    """The paper's figure number (the report shows figures in the paper's order)."""
    digits = "".join(c for c in f.number.split(",")[0] if c.isdigit())
    return int(digits) if digits else 1000
# columns coloured as verdicts: red where a test flags the method, green only where none does
VERDICT_COLUMNS = ("verdict (mechanism shown)", "mechanism")
SCROLL_ROWS = 15          # a table longer than this scrolls inside its box
FIGURE_PAD = 12           # px, the figure box's padding (style.css)


def _table(df: pd.DataFrame, max_rows: int = 400) -> str:
    """``df`` as an HTML table: numbers right-aligned through :func:`fmt`, text
    left-aligned; a table wider than the page scrolls sideways (a scrollbar only
    then), one longer than :data:`SCROLL_ROWS` rows inside a box."""
    if df.empty:
        return "<p>(empty)</p>"
    more = ""
    if len(df) > max_rows:
        more = f"<p>first {max_rows} of {len(df)} rows; all rows are in the run store.</p>"
        df = df.head(max_rows)
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns}

    def cell(v):
        return html.escape(fmt(v) if isinstance(v, float) else str(v))

    def cls(c, v=None):
        if c in VERDICT_COLUMNS and isinstance(v, str) and v not in ("-", ""):
            return ' class="converges"' if fails(v) else ' class="doesnot"'
        return "" if numeric[c] else ' class="text"'
    head = "".join(f"<th{cls(c)}>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        body.append("<tr>" + "".join(f"<td{cls(c, r[c])}>{cell(r[c])}</td>"
                                     for c in df.columns) + "</tr>")
    table = (f"<table><thead><tr>{head}</tr></thead><tbody>" + "\n".join(body)
             + "</tbody></table>")
    box = "scroll" if len(df) > SCROLL_ROWS else "wide"
    return f'<div class="{box}">{table}</div>' + more


def _png_width(png: bytes) -> int:
    """Pixel width of a PNG (its IHDR chunk)."""
    return int.from_bytes(png[16:20], "big")


def _figure_html(f: Figure) -> str:
    b64 = base64.b64encode(f.png).decode()
    # the figure is as wide as its PNG (never scaled down below it on a wide page, so
    # its 9 pt labels stay 9 pt), captions wrap to that width
    width = _png_width(f.png) + 2 * FIGURE_PAD + 2
    return (f'<figure style="width: {width}px">'
            f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{b64}">'
            f"<figcaption><b>Figure {html.escape(f.number)} &middot; {html.escape(f.title)}."
            f"</b> {html.escape(f.caption)}</figcaption></figure>")


def _aggregates(tables: dict[str, pd.DataFrame]) -> str:
    """Each test's aggregate tables (medians with 99% bootstrap intervals)."""

    out = []
    for test in tests():
        df = tables.get(test.name, pd.DataFrame())
        for heading, agg in (test.aggregates(df) if not df.empty else []):
            out.append(f"<h3>{html.escape(heading)}</h3>" + _table(agg))
    return "\n".join(out)


def _groundtruth_table(store: RunStore) -> tuple[pd.DataFrame, float | None]:
    """The stored ground-truth table (empty if the run has none) and the benchmark
    model's test accuracy."""
    df = store.read("groundtruth") if "groundtruth" in store.tables() else pd.DataFrame()
    if df.empty:
        return df, None
    acc = float(df["model_accuracy"].iloc[0]) if df["model_accuracy"].notna().any() else None
    return df, acc


def _groundtruth_figures(store: RunStore) -> list[Figure]:
    """The ground-truth class-sensitivity figure (:func:`liecheck.groundtruth.plot_two_digits`)
    among the report's figures; its table is in the tables section (:func:`_groundtruth`)."""
    df, acc = _groundtruth_table(store)
    if df.empty:
        return []
    df.attrs["model_accuracy"] = acc
    acc_txt = f"{acc:.3f}" if acc is not None else "-"
    return [Figure(
        "GT", "Ground-truth class sensitivity (two digits side by side)",
        "for each image both digits' classes are explained; mass accuracy = share of the "
        "positive relevance on the explained digit, pointing = the maximum lies on it (a map "
        "without positive relevance, as LRP a1b0 gives for a negative logit, is left out of "
        "both), L1 = difference of the two classes' normalised maps up to their sign; 99% "
        "bootstrap intervals. occlusion (faithful by construction) and random (chance) are "
        f"references. Benchmark model test accuracy {acc_txt} (both digits in the top 2); "
        f"{int(df['n_images'].iloc[0])} of {int(df['n_drawn'].iloc[0])} images recognised "
        "and measured; the numbers are in the tables below.", png(plot_two_digits(df)))]


def _groundtruth(store: RunStore) -> str:
    """The ground-truth class-sensitivity table, with the benchmark model's accuracy
    next to the numbers (its figure is among the figures: :func:`_groundtruth_figures`)."""
    df, acc = _groundtruth_table(store)
    if df.empty:
        return ""
    acc_txt = f"{acc:.3f}" if acc is not None else "-"
    return (f"<h3>Ground-truth class sensitivity (Figure GT; two digits; benchmark model test "
            f"accuracy {acc_txt}, both digits in the top 2; {int(df['n_images'].iloc[0])} of "
            f"{int(df['n_drawn'].iloc[0])} images recognised and measured)</h3>" + _table(df))


def _provenance(m: dict) -> str:
    parts = []
    for name, info in m.get("models", {}).items():
        src = info.get("source", {})
        rows = {"weights": f"{src.get('kind')}: {src.get('weights')}",
                "sha256": src.get("sha256") or "-",
                "test accuracy": (f"{src['test_accuracy']:.4f}"
                                  if src.get("test_accuracy") is not None
                                  else "-"),
                "images": f"{info.get('n_images')} at {info.get('input_size')} px, "
                          f"explained class: {info.get('target')}",
                "methods": ", ".join(info.get("methods", [])),
                "experiments": ", ".join(info.get("experiments", [])),
                "CSC starts": info.get("starts"), "note": info.get("note") or "-"}
        if "settings" in src:
            rows["training"] = json.dumps(src["settings"])
            rows["training time"] = f"{src.get('train_seconds')} s"
        parts.append(f"<h3>{html.escape(name)}</h3>" + _table(
            pd.DataFrame({"field": list(rows), "value": [str(v) for v in rows.values()]})))
    prov = m.get("provenance", {})
    kv = {**prov.get("packages", {}), **prov.get("machine", {})}
    parts.append("<h3>Software and machine</h3>" + _table(
        pd.DataFrame({"field": list(kv), "value": [str(v) for v in kv.values()]})))
    t = m.get("timings", {})
    if t:
        scope = m.get("last_run_scope") or "setup and units; the command's estimate, model " \
            "training before the run and building the report not included"
        parts.append(f"<h3>Timings (s per unit, as last computed)</h3><p>Wall time of the last "
                     f"run: {m.get('last_run_seconds', '-')} s ({html.escape(scope)}). "
                     "Units resumed from an earlier run keep their earlier time.</p>"
                     + _table(pd.DataFrame({"unit": list(t), "seconds": list(t.values())})))
    parts.append("<h3>Settings</h3><pre>" + html.escape(json.dumps(m.get("settings", {}),
                                                                    indent=1)) + "</pre>")
    return "\n".join(parts)


def _status_notes(store: RunStore, m: dict) -> list[str]:
    """Warnings about a run that did not finish, and files that do not read back."""
    st = m.get("status", {})
    state = st.get("state")
    out = []
    if state == "failed":
        out.append(f"<b>This run failed</b> ({html.escape(str(st.get('finished')))}): "
                   f"{html.escape(str(st.get('error')))}. The results below are partial.")
    elif state == "running":
        h = holder(store.root)
        if holder_alive(h):
            out.append(f"<b>This run is still in progress</b> ({html.escape(describe(h))}); "
                       "the results below are partial.")
        else:
            out.append(f"<b>This run stopped before finishing</b> (started "
                       f"{html.escape(str(st.get('started')))}, pid {st.get('pid')}; killed "
                       "or crashed without a message). The results below are partial.")
    missing = missing_units(store)
    if missing:
        shown = ", ".join(html.escape(x) for x in missing[:30])
        more = f" and {len(missing) - 30} more" if len(missing) > 30 else ""
        out.append(f"<b>{len(missing)} planned units are missing</b>: {shown}{more}. Rerun the "
                   "same <code>liecheck reproduce</code> command to compute them.")
    bad = store.corrupt_files()
    if bad:
        out.append("<b>Unreadable files</b> (truncated or damaged; rerun to recompute): "
                   + ", ".join(html.escape(str(p.relative_to(store.root))) for p in bad))
    return [f'<div class="warn">{x}</div>' for x in out]


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) and return its path."""
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a liecheck run directory (no manifest.json); "
                                "run `liecheck reproduce --out DIR` first")
    store = RunStore(run_dir)
    m = store.manifest()
    tables, failed = {}, []
    for t in store.tables():
        try:
            tables[t] = store.read(t)
        except CorruptStoreError as exc:
            failed.append(f"table {t}: {exc}")
    figs = []
    for what, fn in figure_drawers():
        try:
            figs += fn(store)
        except Exception as exc:  # noqa: BLE001 - a figure that fails must not lose the rest
            failed.append(f"{what}: {type(exc).__name__}: {exc}")
    figs.sort(key=_figure_order)
    notes = _status_notes(store, m)
    for name, info in m.get("models", {}).items():
        if info.get("note") and "RANDOM" in info["note"]:
            notes.append(f'<div class="warn"><b>{html.escape(name)}</b>: '
                         f"{html.escape(info['note'])}.</div>")
    for s in m.get("skipped", []) + failed:
        notes.append(f'<div class="note">skipped: {html.escape(s)}</div>')
    verdict = summary_table(tables, images_by_model(m)).rename(columns=column_names())
    tab_html = [_groundtruth(store), _aggregates(tables)]
    for t, df in tables.items():
        if t == "groundtruth":          # shown first, by _groundtruth
            continue
        cols, heading = _shown(t)
        if cols:
            df = df[[c for c in cols if c in df.columns]]
        tab_html.append(f"<h3>{html.escape(heading)}</h3>"
                        + _table(label_layers(df)))
    models = ", ".join(f"{k} ({v.get('note') or v.get('source', {}).get('kind', '?') + ' weights'})"
                       for k, v in m.get("models", {}).items())
    css = resources.files(__package__).joinpath("style.css").read_text()
    tpl = Template(resources.files(__package__).joinpath("template.html").read_text())
    page = tpl.substitute(
        title=html.escape(run_dir.name), css=css, threshold=CONVERGED,
        subtitle=html.escape(f"Sixt, Granz & Landgraf (ICML 2020). Run {run_dir.resolve()}: "
                             f"{models}; finished {m.get('finished', '-')}."),
        notes="\n".join(notes), verdict=_table(verdict),
        layers=html.escape("Layers (liecheck's node name, the paper's in parentheses): "
                           + named) if (named := layers_note(tables)) else "",
        figures='<div class="grid">' + "\n".join(_figure_html(f) for f in figs) + "</div>",
        tables="\n".join(tab_html), provenance=_provenance(m))
    path = Path(out) if out else run_dir / "report.html"
    atomic_write(path, lambda p: p.write_text(page, encoding="utf-8"))
    return path
