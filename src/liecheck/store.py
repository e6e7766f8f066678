"""The run store: a directory that long evaluations append to as they go.

Layout of a run directory::

    manifest.json              settings, provenance, models, timings, skipped parts
    tables/<table>/<unit>.parquet   one file per completed unit of work
    tables/<table>/_keys.json       the columns that identify a row of the table
    arrays/<name>.npz          arrays (heatmaps, ...)

Every write goes to a temporary file in the same folder and is moved into place
with ``os.replace`` (atomic on POSIX), so a process killed at any moment (even by
SIGKILL) leaves either the whole unit or nothing. A unit whose file exists is
done; resuming skips it. Reading a table concatenates its unit files and drops
duplicate keys (keeping the newest file), so nothing is lost or counted twice.

The settings a run was started with are kept in the manifest; opening the
directory with different settings raises :class:`SettingsMismatch` naming every
field that differs (``fresh=True`` starts over instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MANIFEST = "manifest.json"


class SettingsMismatch(ValueError):
    """The run directory holds results made with other settings."""


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then move the temporary file onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj: Any) -> None:
    _atomic_write(Path(path), lambda p: p.write_text(json.dumps(obj, indent=2, default=str)))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def unit_id(*parts: Any) -> str:
    """A file-safe, unique name for a unit of work from its key parts."""
    text = "|".join(str(p) for p in parts)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:80].strip("-")
    return f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def diff_settings(stored: dict, now: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two (nested) settings dictionaries."""
    out = []
    for k in sorted(set(stored) | set(now)):
        a, b = stored.get(k, "<absent>"), now.get(k, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_settings(a, b, f"{prefix}{k}.")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
                isinstance(x, dict) for x in a + b):
            for i, (x, y) in enumerate(zip(a, b)):
                out += diff_settings(x, y, f"{prefix}{k}[{i}].")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} in the run directory, {b!r} now")
    return out


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


class RunStore:
    """A run directory (see the module docstring).

    Parameters
    ----------
    root : the directory (created).
    settings : everything that determines the results (models, n, methods, seeds,
        ...); compared with the stored settings on reopening.
    fresh : delete earlier results in ``root`` and start over.
    """

    def __init__(self, root: str | Path, settings: dict | None = None, fresh: bool = False):
        self.root = Path(root)
        if fresh and self.root.exists():
            if not (self.root / MANIFEST).exists() and any(self.root.iterdir()):
                raise ValueError(f"{self.root} is not a liecheck run directory (no {MANIFEST}); "
                                 "refusing to delete it for --fresh")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.rglob(".*.tmp"):   # left by a killed writer
            tmp.unlink(missing_ok=True)
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

    # ------------------------------------------------------------ manifest
    def manifest(self) -> dict:
        p = self.root / MANIFEST
        return json.loads(p.read_text()) if p.exists() else {}

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
        """Whether the unit of work ``unit`` of ``table`` is complete."""
        return (self._table_dir(table) / f"{unit}.parquet").exists()

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
        elif json.loads(kf.read_text()) != keys:
            raise ValueError(f"table '{table}' is keyed by {json.loads(kf.read_text())}, "
                             f"not {keys}")
        _atomic_write(d / f"{unit}.parquet",
                      lambda p: df.reset_index(drop=True).to_parquet(p, index=False))

    def read(self, table: str) -> pd.DataFrame:
        """All rows of ``table``: the unit files concatenated, duplicate keys dropped
        (the most recently written wins). Empty DataFrame if the table does not exist."""
        d = self._table_dir(table)
        files = sorted(d.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
        if not files:
            return pd.DataFrame()
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        kf = d / "_keys.json"
        if kf.exists():
            keys = [k for k in json.loads(kf.read_text()) if k in df.columns]
            df = df.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)
        return df

    def tables(self) -> list[str]:
        d = self.root / "tables"
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.exists() else []

    # --------------------------------------------------------------- arrays
    def save_arrays(self, name: str, **arrays: np.ndarray) -> None:
        """Store named arrays as ``arrays/<name>.npz`` (atomically)."""
        def write(p: Path):
            with open(p, "wb") as f:
                np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
        _atomic_write(self.root / "arrays" / f"{name}.npz", write)

    def has_arrays(self, name: str) -> bool:
        return (self.root / "arrays" / f"{name}.npz").exists()

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.root / "arrays" / f"{name}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
