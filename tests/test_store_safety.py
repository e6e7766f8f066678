"""The run store cannot be corrupted or raced: damaged files are named and recomputed,
one run per directory (two real processes), .tmp files of live writers survive, a
failed run is recorded and reported, a settings mismatch names only what differs."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from liecheck.reproduce import RunConfig, run
from liecheck.runlock import RunLock, RunLocked
from liecheck.store import _HOST, CorruptStoreError, RunStore, SettingsMismatch, unit_id

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _frame(n=20):
    return pd.DataFrame({"k": np.arange(n), "v": np.random.default_rng(0).random(n)})


def _spawn(code, *args):
    """A real second process running ``code``; returns it once it printed 'ready'."""
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                         stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline().strip() == "ready"
    return p


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_truncated_unit_is_not_done_is_named_and_recomputed(tmp_path):
    s = RunStore(tmp_path)
    s.write("t", unit_id("a"), _frame(), keys=["k"])
    s.write("t", unit_id("b"), _frame().assign(k=lambda d: d.k + 100), keys=["k"])
    path = tmp_path / "tables" / "t" / f"{unit_id('a')}.parquet"
    _truncate(path)
    with pytest.raises(CorruptStoreError, match=str(path)):
        RunStore(tmp_path).read("t")               # reading names the damaged file
    with pytest.warns(UserWarning, match=path.name):
        assert not s.has("t", unit_id("a"))        # not done: computed again
    assert (path.parent / (path.name + ".corrupt")).exists() and not path.exists()
    assert s.has("t", unit_id("b"))
    assert len(s.read("t")) == 20                  # the damaged unit's rows are not counted
    s.write("t", unit_id("a"), _frame(), keys=["k"])
    assert s.has("t", unit_id("a")) and len(s.read("t")) == 40


def test_truncated_manifest_and_arrays_are_named(tmp_path):
    s = RunStore(tmp_path, settings={"n": 1})
    s.save_arrays("maps", a=np.arange(1000.0))
    _truncate(tmp_path / "arrays" / "maps.npz")
    with pytest.raises(CorruptStoreError, match="maps.npz"):
        s.load_arrays("maps")
    assert not s.arrays_ok("maps") and s.has_arrays("maps")
    assert [p.name for p in s.corrupt_files()] == ["maps.npz"]
    _truncate(tmp_path / "manifest.json")
    with pytest.raises(CorruptStoreError, match="manifest.json"):
        RunStore(tmp_path, settings={"n": 1})
    RunStore(tmp_path, settings={"n": 2}, fresh=True)     # --fresh still starts over


def test_writes_leave_no_partial_file_and_readers_see_old_or_new(tmp_path):
    s = RunStore(tmp_path)
    s.update(a=1)
    s.save_arrays("x", a=np.ones(3))
    assert json.loads((tmp_path / "manifest.json").read_text())["a"] == 1
    assert not list(tmp_path.rglob("*.tmp"))


LOCKER = """
import sys, time
from liecheck.store import RunStore
s = RunStore(sys.argv[1])
s.lock()
print("ready", flush=True)
time.sleep(60)
"""


def test_second_run_is_refused_with_pid_and_start_and_dead_lock_is_taken_over(tmp_path):
    other = _spawn(LOCKER, tmp_path)
    try:
        with pytest.raises(RunLocked, match=rf"pid {other.pid} on .*started 20\d\d-"):
            RunStore(tmp_path).lock()
        # the whole runner refuses too, before computing anything
        cfg = RunConfig(models=[], theory=False)
        with pytest.raises(RunLocked, match=f"pid {other.pid}"):
            run(cfg, tmp_path, progress=False, report=False)
    finally:
        other.kill()                               # SIGKILL: no chance to clean up
        other.wait()
        other.stdout.close()
    lock = RunLock(tmp_path).acquire()             # the dead holder's lock is taken over
    assert lock.previous["pid"] == other.pid
    lock.release()


TMP_WRITER = """
import sys, time
from pathlib import Path
from liecheck.store import _atomic_write
def write(p):
    p.write_text("partial")
    print("ready", flush=True)
    time.sleep(1.5)
    p.write_text("complete")
_atomic_write(Path(sys.argv[1]) / "out.txt", write)
print("wrote", flush=True)
"""


def test_opening_a_store_keeps_live_writers_tmp_and_removes_dead_ones(tmp_path):
    orphan = tmp_path / f".x.parquet.{_HOST}@{_dead_pid()}.0123abcd.tmp"
    orphan.write_text("left by a killed writer")
    legacy = tmp_path / f".y.parquet.{_dead_pid()}.0123abcd.tmp"     # the old naming
    legacy.write_text("x")
    writer = _spawn(TMP_WRITER, tmp_path)
    live = [p for p in tmp_path.glob(".out.txt.*.tmp")]
    assert len(live) == 1
    RunStore(tmp_path)                             # what `liecheck report` does
    assert live[0].exists()
    out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and "wrote" in out
    assert (tmp_path / "out.txt").read_text() == "complete"
    assert not legacy.exists() and not orphan.exists()


def test_failed_run_is_recorded_and_reported_with_what_is_missing(tmp_path, capsys):
    from liecheck.cli import main
    from liecheck.reproduce import ModelPlan

    cfg = RunConfig(models=[ModelPlan("no_such_model", n=1)], theory=False)
    with pytest.raises(Exception, match="no_such_model"):
        run(cfg, tmp_path, progress=False, report=False)
    st = RunStore(tmp_path).manifest()["status"]
    assert st["state"] == "failed" and "no_such_model" in st["error"]
    RunLock(tmp_path).acquire().release()          # the failed run let go of its lock
    s = RunStore(tmp_path)
    s.update(planned=[{"label": "CSC m a [0:2]", "table": "t", "unit": "u0"},
                      {"label": "CSC m a [2:4]", "table": "t", "unit": "u1"}])
    s.write("t", "u0", _frame(), keys=["k"])
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "This run failed" in page and "no_such_model" in page
    assert "1 planned units are missing" in page and "CSC m a [2:4]" in page
    assert "CSC m a [0:2]" not in page.split("planned units are missing")[1][:200]


def test_killed_run_is_reported_as_stopped(tmp_path):
    from liecheck.report import build_report

    s = RunStore(tmp_path)
    s.update(status={"state": "running", "pid": _dead_pid(), "started": "2026-01-01 00:00:00"})
    page = build_report(tmp_path).read_text()
    assert "stopped before finishing" in page


def test_settings_mismatch_names_only_the_differing_fields(tmp_path):
    methods = [f"method_{i}" for i in range(40)]
    model = {"name": "vgg16", "n": 200, "methods": methods, "note": "x" * 300}
    RunStore(tmp_path, settings={"models": [model], "seed": 0, "images": "/data"})
    changed = {**model, "methods": methods[:-1] + ["other"]}
    other = {"name": "resnet50", "n": 200, "methods": methods, "note": "y" * 300}
    with pytest.raises(SettingsMismatch) as e:
        RunStore(tmp_path, settings={"models": [changed, other], "seed": 0, "images": "/data"})
    msg = str(e.value)
    assert "models[0].methods: ['method_39'] only in the run directory, ['other'] only now" in msg
    assert "'resnet50' only now" in msg
    assert "xxxxx" not in msg and "method_0" not in msg and len(msg) < 400
