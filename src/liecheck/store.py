"""The run store: a directory that long evaluations append to as they go.

Layout of a run directory::

    manifest.json              settings, provenance, models, timings, status
    lock                       held (fcntl.flock) by the run writing the directory
    tables/<table>/<unit>.parquet   one file per completed unit of work
    tables/<table>/_keys.json       the columns that identify a row of the table
    arrays/<name>.npz          arrays (heatmaps, ...)

Every write goes to a temporary file in the same folder (named after its writer's
host and pid) and is moved into place with ``os.replace`` (atomic on POSIX), so a
process killed at any moment (even by SIGKILL) leaves either the whole file or
nothing. Opening a store removes only temporary files whose writer is gone.

A unit is done when its file exists *and reads back* (its parquet footer parses);
a damaged unit file is set aside as ``<unit>.parquet.corrupt`` with a warning naming
it, and counts as not done, so resuming recomputes it. A damaged manifest, table
file or array file raises :class:`CorruptStoreError` naming the file. Reading a
table concatenates its unit files (in file-name order) and drops duplicate keys
(the most recently written file wins), so nothing is lost or counted twice.

The settings a run was started with are kept in the manifest; opening the
directory with different settings raises :class:`SettingsMismatch` naming only
the fields that differ (``fresh=True`` starts over instead). Only one process
writes a run at a time: see :mod:`liecheck.runlock` and :meth:`RunStore.lock`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .runlock import RunLock, pid_alive

MANIFEST = "manifest.json"
_HOST = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40] or "host"
_TMP = re.compile(r"^\..+\.(?:(?P<host>[A-Za-z0-9-]+)@)?(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class SettingsMismatch(ValueError):
    """The run directory holds results made with other settings."""


class CorruptStoreError(ValueError):
    """A file of the run directory cannot be read back (truncated or damaged)."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then move the temporary file onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_HOST}@{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_atomic_write = atomic_write  # the name a test script imports


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write(Path(path), lambda p: p.write_text(json.dumps(obj, indent=2, default=str)))


def read_json(path: Path) -> Any:
    """The JSON in ``path``; :class:`CorruptStoreError` naming the file if it does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(
            f"{path} is corrupt (not valid JSON: {exc}); it was not written by a finished "
            "liecheck write. Delete the run directory or start over with --fresh") from None


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def unit_id(*parts: Any) -> str:
    """A file-safe, unique name for a unit of work from its key parts."""
    text = "|".join(str(p) for p in parts)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:80].strip("-")
    return f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _short(v: Any, width: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= width else r[:width - 5] + " ...]"


def diff_settings(stored: dict, now: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two (nested) settings dictionaries.

    Only differing leaves are named: lists of dictionaries are matched by their
    ``name`` field when they have one (else by position), lists of plain values
    report the items added or removed (or a changed order).
    """
    out = []
    for k in sorted(set(stored) | set(now), key=str):
        a, b = stored.get(k, "<absent>"), now.get(k, "<absent>")
        key = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_settings(a, b, key + ".")
        elif isinstance(a, list) and isinstance(b, list) and a != b:
            out += _diff_lists(a, b, key)
        elif a != b:
            out.append(f"{key}: {_short(a)} in the run directory, {_short(b)} now")
    return out


def _diff_lists(a: list, b: list, key: str) -> list[str]:
    dicts = all(isinstance(x, dict) for x in a + b)
    if dicts and len(a) == len(b) and not all("name" in x for x in a + b):
        return [d for i, (x, y) in enumerate(zip(a, b))
                for d in diff_settings(x, y, f"{key}[{i}].")]
    if dicts and all("name" in x for x in a + b):
        na, nb = [x["name"] for x in a], [x["name"] for x in b]
        out = [f"{key}: {n!r} only in the run directory" for n in na if n not in nb]
        out += [f"{key}: {n!r} only now" for n in nb if n not in na]
        for i, x in enumerate(a):
            if x["name"] in nb:
                out += diff_settings(x, b[nb.index(x["name"])], f"{key}[{i}].")
        return out
    hashable = all(isinstance(x, (str, int, float, bool, type(None))) for x in a + b)
    if hashable:
        gone, new = [x for x in a if x not in b], [x for x in b if x not in a]
        if not gone and not new:
            return [f"{key}: same items in another order"]
        parts = ([f"{_short(gone)} only in the run directory"] if gone else []) + \
                ([f"{_short(new)} only now"] if new else [])
        return [f"{key}: " + ", ".join(parts)]
    return [f"{key}: {_short(a)} in the run directory, {_short(b)} now"]


def provenance(device: str = "cpu") -> dict:
    """Versions of Python and the packages that shape results, the machine and device."""
    import torch

    from . import __version__

    vers = {"python": platform.python_version(), "liecheck": __version__,
            "torch": torch.__version__}
    for name in ("torchvision", "numpy", "scipy", "pandas", "scikit-image", "scikit-learn",
                 "matplotlib"):
        try:
            from importlib.metadata import version
            vers[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing optional package is not an error
            vers[name] = None
    dev = {"device": device, "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        dev["gpu"] = torch.cuda.get_device_name(0)
    return {"packages": vers, "machine": dev}


def remove_orphan_tmp(root: Path) -> list[Path]:
    """Delete the temporary files under ``root`` whose writer is gone (a process of
    this host that no longer runs); files of live writers or of other hosts stay."""
    gone = []
    for tmp in root.rglob(".*.tmp"):
        m = _TMP.match(tmp.name)
        if not m or (m["host"] or _HOST) != _HOST or pid_alive(int(m["pid"])):
            continue
        tmp.unlink(missing_ok=True)
        gone.append(tmp)
    return gone


def _parquet_ok(path: Path) -> bool:
    """Whether the parquet file's footer parses (a truncated file fails)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # noqa: BLE001 - any failure to parse means unreadable
        return False


def _plain_array(name: str, key: str, v) -> np.ndarray:
    """``v`` as an array that loads without pickle (object arrays of str -> text)."""
    a = np.asarray(v)
    if a.dtype == object:
        if not all(isinstance(x, str) for x in a.flat):
            kinds = sorted({type(x).__name__ for x in a.flat})
            raise TypeError(f"array '{key}' of '{name}' holds Python objects ({', '.join(kinds)}); "
                            "the run store keeps numeric and text arrays only")
        a = a.astype(str)
    return a


class RunStore:
    """A run directory (see the module docstring).

    Parameters
    ----------
    root : the directory (created).
    settings : everything that determines the results (models, n, methods, seeds,
        ...); compared with the stored settings on reopening.
    fresh : delete earlier results in ``root`` and start over (refused while another
        run holds the directory).
    """

    def __init__(self, root: str | Path, settings: dict | None = None, fresh: bool = False):
        self.root = Path(root)
        self._lock = RunLock(self.root)
        self._valid: dict[Path, tuple[int, int]] = {}    # unit files checked: (mtime, size)
        if fresh and self.root.exists():
            if not (self.root / MANIFEST).exists() and any(self.root.iterdir()):
                raise ValueError(f"{self.root} is not a liecheck run directory (no {MANIFEST}); "
                                 "refusing to delete it for --fresh")
            with RunLock(self.root):              # refuses while another run writes here
                for p in self.root.iterdir():
                    if p.name != "lock":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        remove_orphan_tmp(self.root)
        m = self.manifest()
        if settings is not None:
            settings = _jsonable(settings)
            if "settings" in m:
                diffs = diff_settings(m["settings"], settings)
                if diffs:
                    raise SettingsMismatch(
                        f"{self.root} holds results made with different settings: "
                        + "; ".join(diffs) + ". Use --fresh to start over or choose another "
                        "--out.")
            else:
                self.update(settings=settings, created=time.strftime("%Y-%m-%d %H:%M:%S"))

    # ---------------------------------------------------------------- lock
    def lock(self) -> RunLock:
        """Take the run directory's exclusive lock (held until :meth:`unlock` or the
        process ends); :class:`~liecheck.runlock.RunLocked` names the other holder."""
        return self._lock.acquire()

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock`."""
        self._lock.release()

    # ------------------------------------------------------------ manifest
    def manifest(self) -> dict:
        """The manifest (``{}`` if none); :class:`CorruptStoreError` if it is damaged."""
        p = self.root / MANIFEST
        if not p.exists():
            return {}
        m = read_json(p)
        if not isinstance(m, dict):
            raise CorruptStoreError(f"{p} is corrupt (not a JSON object)")
        return m

    def update(self, **fields) -> dict:
        """Merge ``fields`` into the manifest (dictionaries are merged one level deep)."""
        m = self.manifest()
        for k, v in _jsonable(fields).items():
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                m[k].update(v)
            else:
                m[k] = v
        write_json(self.root / MANIFEST, m)
        return m

    @property
    def settings(self) -> dict:
        return self.manifest().get("settings", {})

    # --------------------------------------------------------------- tables
    def _table_dir(self, table: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_]+", table):
            raise ValueError(f"table names are letters, digits and _, not {table!r}")
        return self.root / "tables" / table

    def has(self, table: str, unit: str) -> bool:
        """Whether the unit of work ``unit`` of ``table`` is complete: its file exists
        and reads back. A damaged file is renamed ``*.parquet.corrupt`` (with a
        warning naming it) and the unit counts as not done."""
        path = self._table_dir(table) / f"{unit}.parquet"
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if self._valid.get(path) == (st.st_mtime_ns, st.st_size):
            return True
        if _parquet_ok(path):
            self._valid[path] = (st.st_mtime_ns, st.st_size)
            return True
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        warnings.warn(f"{path} is unreadable (truncated or damaged); moved to {bad.name}, "
                      "the unit will be computed again", stacklevel=2)
        return False

    def write(self, table: str, unit: str, df: pd.DataFrame, keys: Iterable[str]) -> None:
        """Store the rows of one completed unit of work (atomically, replacing a
        previous file of the same unit). ``keys`` name the columns identifying a row."""
        keys = list(keys)
        missing = [k for k in keys if k not in df.columns]
        if missing:
            raise ValueError(f"table '{table}' rows lack the key columns {missing}")
        d = self._table_dir(table)
        kf = d / "_keys.json"
        if not kf.exists():
            write_json(kf, keys)
        elif read_json(kf) != keys:
            raise ValueError(f"table '{table}' is keyed by {read_json(kf)}, not {keys}")
        atomic_write(d / f"{unit}.parquet",
                      lambda p: df.reset_index(drop=True).to_parquet(p, index=False))

    def read(self, table: str, units: Iterable[str] | None = None) -> pd.DataFrame:
        """All rows of ``table`` (or of its ``units`` only): the unit files
        concatenated in file-name order, duplicate keys dropped (the row of the most
        recently written file wins). Empty DataFrame if the table does not exist;
        :class:`CorruptStoreError` naming the file if a unit file cannot be read."""
        d = self._table_dir(table)
        files = (list(d.glob("*.parquet")) if units is None
                 else [d / f"{u}.parquet" for u in units if (d / f"{u}.parquet").exists()])
        files = sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
        if not files:
            return pd.DataFrame()
        frames = []
        for f in files:
            try:
                frames.append(pd.read_parquet(f).assign(_file=f.name))
            except Exception as exc:  # noqa: BLE001 - name the file whatever pyarrow says
                raise CorruptStoreError(
                    f"{f} is unreadable ({type(exc).__name__}); rerun the same command to "
                    "compute its unit again") from None
        df = pd.concat(frames, ignore_index=True)
        kf = d / "_keys.json"
        if kf.exists():
            keys = [k for k in read_json(kf) if k in df.columns]
            df = df.drop_duplicates(subset=keys, keep="last")
        df = df.sort_values("_file", kind="stable")
        return df.drop(columns="_file").reset_index(drop=True)

    def tables(self) -> list[str]:
        """The tables of the run (internal ones, named ``_...``, are left out)."""
        d = self.root / "tables"
        return (sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("_"))
                if d.exists() else [])

    # --------------------------------------------------------------- arrays
    def _array_path(self, name: str) -> Path:
        return self.root / "arrays" / f"{name}.npz"

    def save_arrays(self, name: str, **arrays: np.ndarray) -> None:
        """Store named arrays as ``arrays/<name>.npz`` (atomically). Arrays of Python
        strings (pandas' object columns) are stored as fixed-width text, since the
        store reads without pickle; any other object array is refused."""
        plain = {k: _plain_array(name, k, v) for k, v in arrays.items()}

        def write(p: Path):
            with open(p, "wb") as f:
                np.savez_compressed(f, **plain)
        atomic_write(self._array_path(name), write)

    def has_arrays(self, name: str) -> bool:
        """Whether ``arrays/<name>.npz`` exists (see :meth:`arrays_ok` to check it reads)."""
        return self._array_path(name).exists()

    def arrays_ok(self, name: str) -> bool:
        """Whether ``arrays/<name>.npz`` exists and reads back completely."""
        try:
            self.load_arrays(name)
            return True
        except (FileNotFoundError, CorruptStoreError):
            return False

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays stored under ``name``; :class:`CorruptStoreError` naming the file
        if it is truncated or damaged."""
        path = self._array_path(name)
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise CorruptStoreError(
                f"{path} is unreadable ({type(exc).__name__}: {exc}); rerun the same "
                "command to compute it again") from None

    def corrupt_files(self) -> list[Path]:
        """Array and table files that do not read back (checked fully; for reports)."""
        bad = [p for p in sorted((self.root / "arrays").glob("*.npz"))
               if not self.arrays_ok(p.stem)]
        for t in sorted((self.root / "tables").glob("*/*.parquet")):
            if not _parquet_ok(t):
                bad.append(t)
        bad += sorted((self.root / "tables").glob("*/*.parquet.corrupt"))
        return bad


def missing_units(store: RunStore) -> list[str]:
    """Labels of the units the run planned (manifest ``planned``) that are not done."""
    return [p["label"] for p in store.manifest().get("planned", [])
            if not store.has(p["table"], p["unit"])]
