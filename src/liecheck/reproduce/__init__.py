"""``liecheck reproduce``: every experiment of Sixt et al. (2020) into one run store,
then the HTML report.

The run directory is written unit by unit (see :mod:`liecheck.store`); rerunning
the same command resumes where a killed run stopped, ``fresh=True`` starts over.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..store import RunStore, provenance
from .config import (
    DEFAULT_METHODS,
    PAPER_METHODS,
    ModelPlan,
    RunConfig,
    default_config,
    paper_config,
)
from .experiments import plan_units
from .setup import prepare, raw_images
from .summary import summary_table

__all__ = [
    "DEFAULT_METHODS",
    "PAPER_METHODS",
    "ModelPlan",
    "RunConfig",
    "default_config",
    "paper_config",
    "run",
    "summary_table",
]


def run(cfg: RunConfig, out: str | Path, fresh: bool = False, progress: bool = True,
        report: bool = True) -> RunStore:
    """Compute every unit of ``cfg`` not yet in the run directory ``out``.

    Returns the :class:`~liecheck.store.RunStore`; with ``report`` the HTML report
    is built at ``out/report.html``.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    store = RunStore(out, settings=cfg.settings(), fresh=fresh)
    store.update(provenance=provenance(cfg.device), device=cfg.device, profile=cfg.profile)
    skipped: list[str] = []
    subjects = []
    for plan in cfg.models:
        t0 = time.perf_counter()
        s = prepare(plan, cfg.images, cfg.seed, cfg.device)
        subjects.append(s)
        skipped += s.skipped
        name = f"images-{plan.name}"
        if not store.has_arrays(name):
            store.save_arrays(name, raw=raw_images(s.images), names=s.images.names,
                              target=s.target.numpy())
        store.update(models={plan.name: {
            "source": s.source, "note": plan.note, "n_images": len(s.images),
            "input_size": plan.size, "target": s.target_kind,
            "methods": [m.name for m in s.methods], "experiments": list(plan.experiments),
            "starts": plan.starts, "setup_seconds": round(time.perf_counter() - t0, 2)}})
    if cfg.theory:
        try:
            import liecheck.theory  # noqa: F401
        except ImportError as exc:
            cfg.theory = False
            skipped.append(f"theory (simulation, Figure 3) unavailable: {exc}")
    units = plan_units(subjects, cfg)
    todo = [u for u in units if not store.has(u.table, u.name)]
    if len(todo) < len(units):
        print(f"resuming {out}: {len(units) - len(todo)} of {len(units)} units already done")
    bar = tqdm(total=sum(u.cost for u in todo), desc="reproduce", unit="work",
               disable=not progress, bar_format="{l_bar}{bar}| {percentage:3.0f}% "
               "[{elapsed}<{remaining}{postfix}]")
    timings = store.manifest().get("timings", {})
    for u in todo:
        bar.set_postfix_str(u.label)
        t0 = time.perf_counter()
        try:
            df, arrays = u.compute()
        except Exception as exc:  # noqa: BLE001 - one failing unit must not stop the run
            msg = f"{u.label}: failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            skipped.append(msg)
            bar.write(f"skipped {msg}")
            bar.update(u.cost)
            continue
        for name, arrs in arrays.items():
            store.save_arrays(name, **arrs)
        store.write(u.table, u.name, df, u.keys)   # written last: marks the unit done
        timings[u.label] = round(time.perf_counter() - t0, 2)
        store.update(timings={u.label: timings[u.label]})
        bar.update(u.cost)
    bar.close()
    store.update(skipped=skipped, last_run_seconds=round(time.perf_counter() - t_start, 1),
                 finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    if report:
        from ..report import build_report
        path = build_report(store.root)
        store.update(report=str(path))
    return store
