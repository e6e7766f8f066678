"""``liecheck reproduce``: every experiment of Sixt et al. (2020) into one run store,
then the HTML report.

The run directory is written unit by unit (see :mod:`liecheck.store`); rerunning
the same command resumes where a killed run stopped, ``fresh=True`` starts over.
One run writes a directory at a time (its lock); a run that fails is recorded as
failed in the manifest (``status``), with the error. Launched by ``torchrun``, the
processes share the units (see :mod:`liecheck.reproduce.distributed`).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import warnings
from pathlib import Path

from ..report import build_report
from ..report.summary import summary_table
from ..store import RunStore, missing_units, provenance
from ..units import Unit
from . import distributed as dist
from .config import (
    DEFAULT_METHODS,
    PAPER_METHODS,
    ModelPlan,
    RunConfig,
    default_config,
    paper_config,
)
from .experiments import plan_units
from .setup import load_subject, raw_images

__all__ = [
    "DEFAULT_METHODS",
    "PAPER_METHODS",
    "ModelPlan",
    "RunConfig",
    "default_config",
    "missing_units",
    "paper_config",
    "run",
    "summary_table",
]


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (torchrun sends SIGTERM to every rank when one
    rank fails)."""


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unit_done(store: RunStore, u: Unit) -> bool:
    """Whether ``u``'s file and arrays are in the store and read back."""
    if not store.has(u.table, u.name):
        return False
    for a in u.arrays:
        if not store.arrays_ok(a):
            warnings.warn(f"{store.root / 'arrays' / (a + '.npz')} is missing or unreadable; "
                          f"computing '{u.label}' again", stacklevel=2)
            return False
    return True


def run(cfg: RunConfig, out: str | Path, fresh: bool = False, progress: bool = True,
        report: bool = True, methods=None, label: str = "reproduce",
        started: float | None = None) -> RunStore:
    """Compute every unit of ``cfg`` not yet in the run directory ``out``.

    Returns the :class:`~liecheck.store.RunStore`; with ``report`` the HTML report
    is built at ``out/report.html`` (by rank 0 when launched by torchrun).
    ``methods``: compute only the units of these methods (the others of ``cfg`` are
    left as the directory holds them; ``liecheck csc`` with a subset of a run's
    methods). ``label``: the progress bar's. ``started``: the
    :func:`time.perf_counter` at which the command started (its estimate and any
    training of the built-in model are then counted in the wall time the manifest
    and the report give; default: when this call started).
    """
    ranks, device = dist.from_env(cfg.device)
    old = None
    if threading.current_thread() is threading.main_thread():
        why = " (torchrun stops every rank when one fails)" if ranks.active else ""

        def stop(signum, frame):
            raise Stopped(f"stopped by signal {signal.Signals(signum).name}{why}")
        old = signal.signal(signal.SIGTERM, stop)
    try:
        only = None if methods is None else set(methods)
        return _run(cfg, Path(out), fresh, progress, report, ranks, device, only, label,
                    time.perf_counter() if started is None else started, started is not None)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        dist.close(ranks)


def _open(cfg: RunConfig, out: Path, fresh: bool, ranks: dist.Ranks) -> RunStore:
    """Rank 0 opens (checks settings, locks) the run directory; the others follow
    once it has, or stop with its reason."""
    store, err = None, None
    if ranks.main:
        try:
            store = RunStore(out, settings=cfg.settings(), fresh=fresh)
            store.lock()
            if store._lock.previous:
                print(f"taking over {out}: its last run (pid {store._lock.previous.get('pid')}, "
                      f"started {store._lock.previous.get('started')}) stopped without "
                      "finishing")
            dist.clear(out)
            store.update(status={"state": "running", "pid": os.getpid(),
                                 "host": socket.gethostname(), "started": _now(),
                                 "processes": ranks.world, "error": None, "finished": None})
        except Exception as exc:
            err = _error(exc)
            dist.broadcast(ranks, err)
            raise
    err = dist.broadcast(ranks, err)
    if err:
        raise RuntimeError(f"rank 0 could not open {out}: {err}")
    return store if store is not None else RunStore(out)


def _run(cfg, out, fresh, progress, report, ranks, device, only, label, started,
         from_command) -> RunStore:
    store = _open(cfg, out, fresh, ranks)
    try:
        _compute(cfg, store, progress, ranks, device, only, label, started, from_command)
    except BaseException as exc:
        if ranks.main:
            extra = (f"; other ranks: {dist.not_done(out, ranks.world, 0)}" if ranks.active
                     else "")
            store.update(status={"state": "failed", "error": _error(exc) + extra,
                                 "finished": _now()})
            store.unlock()
        else:
            dist.record(out, ranks, state="failed", error=_error(exc))
        raise
    if ranks.main:
        if report:
            path = build_report(store.root)
            store.update(report=str(path))
        store.unlock()
    return store


def _prepare(cfg, store: RunStore, ranks, device, skipped: list[str]) -> list:
    subjects = []
    for plan in cfg.models:
        t0 = time.perf_counter()
        s = load_subject(plan, cfg.images, cfg.seed, device)
        subjects.append(s)
        skipped += s.skipped
        if not ranks.main:
            continue
        name = f"images-{plan.name}"
        if not store.arrays_ok(name):
            store.save_arrays(name, raw=raw_images(s.images), names=s.images.names,
                              target=s.target.numpy())
        store.update(models={plan.name: {
            "source": s.source, "note": plan.note, "n_images": len(s.images),
            "input_size": plan.size, "target": s.target_kind,
            "methods": [m.name for m in s.methods], "experiments": list(plan.experiments),
            "starts": plan.starts, "setup_seconds": round(time.perf_counter() - t0, 2)}})
    return subjects


def _compute(cfg: RunConfig, store: RunStore, progress: bool, ranks, device,
             only: set[str] | None = None, label: str = "reproduce",
             t_start: float | None = None, from_command: bool = False) -> None:
    from tqdm.auto import tqdm

    t_start = time.perf_counter() if t_start is None else t_start
    out = store.root
    skipped: list[str] = []
    # the built-in model may be trained (and cached) now: rank 0 does it, the others
    # wait and load it from the cache; any other setup runs on all ranks at once
    trains = any(p.name == "cifar_net" and p.weights is None for p in cfg.models)
    if ranks.main:
        store.update(provenance=provenance(device), device=device, profile=cfg.profile)
    if ranks.main or not trains:
        subjects = _prepare(cfg, store, ranks, device, skipped)
    dist.barrier(ranks, out, "for rank 0's setup")
    if not ranks.main and trains:
        subjects = _prepare(cfg, store, ranks, device, skipped)
    if cfg.theory:
        try:
            import liecheck.theory  # noqa: F401
        except ImportError as exc:
            cfg.theory = False
            skipped.append(f"theory (simulation, Figure 3) unavailable: {exc}")
    units = plan_units(subjects, cfg)
    if ranks.main:
        store.update(planned=[{"label": u.label, "table": u.table, "unit": u.name}
                              for u in units])
    if only is not None:                # a subset of the run's methods: theirs only
        units = [u for u in units if u.method is None or u.method in only]
    work = [u for u in units if u.merge is None]
    mine = [work[i] for i in dist.share([u.cost for u in work], ranks.world)[ranks.rank]]
    todo = [u for u in mine if not unit_done(store, u)]
    todo_cost = sum(u.cost for u in todo)
    if len(todo) < len(mine):
        who = f"rank {ranks.rank}: " if ranks.active else ""
        share = todo_cost / max(sum(u.cost for u in mine), 1e-12)
        left = (f"{len(todo)} left, about {share:.0%} of the estimate above" if todo
                else "nothing left to compute")
        print(f"{who}resuming {out}: {len(mine) - len(todo)} of {len(mine)} units already "
              f"done; {left}")
    bar = tqdm(total=todo_cost, desc=label, unit="work",
               disable=not (progress and ranks.main), bar_format="{l_bar}{bar}| "
               "{percentage:3.0f}% [{elapsed}<{remaining}{postfix}]")
    timings: dict[str, float] = store.manifest().get("timings", {})
    for u in todo:
        bar.set_postfix_str(u.label)
        t0 = time.perf_counter()
        try:
            df, arrays = u.compute()
        except Exception as exc:  # noqa: BLE001 - one failing unit must not stop the run
            msg = f"{u.label}: failed ({_error(exc)})"
            skipped.append(msg)
            bar.write(f"skipped {msg}")
            bar.update(u.cost)
            continue
        for name, arrs in arrays.items():
            store.save_arrays(name, **arrs)
        store.write(u.table, u.name, df, u.keys)   # written last: marks the unit done
        timings[u.label] = round(time.perf_counter() - t0, 2)
        if ranks.active:
            dist.record(out, ranks, state="running", timings=timings, skipped=skipped)
        else:
            store.update(timings={u.label: timings[u.label]})
        bar.update(u.cost)
    bar.close()
    if ranks.active:
        dist.record(out, ranks, state="done", timings=timings, skipped=skipped)
    dist.barrier(ranks, out, "for the other ranks' shares")
    if not ranks.main:
        return
    if ranks.active:
        merged = dist.summary(out, ranks.world)
        store.update(timings=merged["timings"])
        skipped = list(dict.fromkeys(skipped + merged["skipped"]))
    for u in units:
        if u.merge is None or unit_done(store, u):
            continue
        lacking = [n for t, n in u.needs if not store.has(t, n)]
        if lacking:
            skipped.append(f"{u.label}: not merged, {len(lacking)} of its {len(u.needs)} "
                           "chunks are missing")
            continue
        df, arrays = u.merge(store)
        for name, arrs in arrays.items():
            store.save_arrays(name, **arrs)
        store.write(u.table, u.name, df, u.keys)
    missing = missing_units(store)
    scope = ("from the command's start: its estimate and any training of the built-in "
             "model included" if from_command else "setup (loading or training the models) "
             "and the units; the command's estimate before it is not included")
    store.update(skipped=skipped, last_run_seconds=round(time.perf_counter() - t_start, 1),
                 last_run_scope=scope + "; building the report after it is not included",
                 finished=_now(),
                 status={"state": "incomplete" if missing else "complete", "finished": _now(),
                         "error": None, "missing": len(missing)})
