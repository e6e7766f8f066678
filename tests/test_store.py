"""Run store: atomic units, resume after SIGKILL, settings mismatch, arrays."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from liecheck.store import RunStore, SettingsMismatch, unit_id

N_UNITS, ROWS = 12, 50

WRITER = textwrap.dedent(f"""
    import sys, time
    import numpy as np, pandas as pd
    from liecheck.store import RunStore, unit_id
    store = RunStore(sys.argv[1], settings={{"n": {N_UNITS}, "seed": 0}})
    for u in range({N_UNITS}):
        name = unit_id("unit", u)
        if store.has("t", name):
            continue
        rows = pd.DataFrame({{"unit": u, "row": np.arange({ROWS}),
                              "value": np.random.default_rng(u).random({ROWS})}})
        time.sleep(float(sys.argv[2]))
        store.write("t", name, rows, keys=["unit", "row"])
        print("done", u, flush=True)
""")


def _run_writer(tmp_path, delay):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(delay)],
                            stdout=subprocess.PIPE, text=True)


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    proc = _run_writer(tmp_path, delay=0.15)
    done = 0
    while done < 4:                        # wait until a few units are complete
        line = proc.stdout.readline()
        assert line, "writer ended before it was killed"
        done += line.startswith("done")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    partial = RunStore(tmp_path / "run").read("t")
    assert 4 * ROWS <= len(partial) < N_UNITS * ROWS   # killed mid-way
    resumed = _run_writer(tmp_path, delay=0.0)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    # the resumed process only did the units that were missing
    redone = {int(line.split()[1]) for line in out.splitlines()}
    assert redone == set(range(N_UNITS)) - set(partial["unit"].unique())
    df = RunStore(tmp_path / "run").read("t")
    assert len(df) == N_UNITS * ROWS
    assert not df.duplicated(["unit", "row"]).any()
    for u in range(N_UNITS):               # every unit's rows are the ones it computed
        expect = np.random.default_rng(u).random(ROWS)
        np.testing.assert_array_equal(df[df.unit == u].sort_values("row")["value"], expect)
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_settings_mismatch_names_the_field(tmp_path):
    RunStore(tmp_path, settings={"n": 200, "methods": ["a", "b"], "seed": 0})
    with pytest.raises(SettingsMismatch, match=r"n: 200 in the run directory, 2 now") as e:
        RunStore(tmp_path, settings={"n": 2, "methods": ["a", "b"], "seed": 0})
    assert "methods" not in str(e.value) and "--fresh" in str(e.value)
    RunStore(tmp_path, settings={"n": 200, "methods": ["a", "b"], "seed": 0})  # same: fine
    s = RunStore(tmp_path, settings={"n": 2, "methods": ["a"], "seed": 0}, fresh=True)
    assert s.settings["n"] == 2


def test_rewriting_a_unit_replaces_it_and_read_dedupes(tmp_path):
    s = RunStore(tmp_path)
    s.write("t", unit_id("a"), pd.DataFrame({"k": [1, 2], "v": [0.0, 0.0]}), keys=["k"])
    s.write("t", unit_id("a"), pd.DataFrame({"k": [1, 2], "v": [1.0, 1.0]}), keys=["k"])
    time.sleep(0.01)
    s.write("t", unit_id("b"), pd.DataFrame({"k": [2, 3], "v": [2.0, 2.0]}), keys=["k"])
    df = s.read("t").sort_values("k")
    assert df["k"].tolist() == [1, 2, 3] and df["v"].tolist() == [1.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="key columns"):
        s.write("t", unit_id("c"), pd.DataFrame({"v": [1.0]}), keys=["k"])


def test_arrays_and_manifest_round_trip(tmp_path):
    s = RunStore(tmp_path, settings={"seed": 1})
    a = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    s.save_arrays("maps", a=a, names=np.array(["x", "y"]))
    got = s.load_arrays("maps")
    np.testing.assert_array_equal(got["a"], a)
    assert got["names"].tolist() == ["x", "y"]
    s.update(timings={"csc": 1.5})
    s.update(timings={"report": 0.5})
    assert s.manifest()["timings"] == {"csc": 1.5, "report": 0.5}
    assert s.manifest()["settings"] == {"seed": 1}


def test_string_columns_are_stored_as_text_and_read_back(tmp_path):
    """pandas' object columns of str (method names) load without pickle, so the unit
    counts as done on resume and the report does not call the file unreadable."""
    s = RunStore(tmp_path, settings={"seed": 1})
    df = pd.DataFrame({"method": ["gradient", "lrp_z"], "score": [0.5, 0.25]})
    s.save_arrays("items", method=df["method"].to_numpy(), score=df["score"].to_numpy())
    assert s.arrays_ok("items") and s.corrupt_files() == []
    assert s.load_arrays("items")["method"].tolist() == ["gradient", "lrp_z"]
    with pytest.raises(TypeError, match="holds Python objects"):
        s.save_arrays("bad", x=np.array([{"a": 1}, None], dtype=object))


def test_fresh_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="not a liecheck run directory"):
        RunStore(tmp_path, fresh=True)
    assert (tmp_path / "precious.txt").exists()


def test_mismatch_inside_a_list_of_dicts_names_the_nested_field(tmp_path):
    RunStore(tmp_path, settings={"models": [{"name": "a", "n": 200}, {"name": "b", "n": 2}]})
    with pytest.raises(SettingsMismatch, match=r"models\[1\]\.n: 2 in the run directory, 3 now"):
        RunStore(tmp_path, settings={"models": [{"name": "a", "n": 200}, {"name": "b", "n": 3}]})
