"""Ctrl-C keeps the work that is done (issue 16): ``liecheck csc`` interrupted by SIGINT
after its first unit exits with 130 and a message, keeps the finished units in its run
store, and the same command then resumes, computing only what is missing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from liecheck.train import default_model

METHODS = "gradient,lrp_z,lrp_a1b0,guided_bp,deconv,excitation_bp"
N_METHODS = len(METHODS.split(","))


def _as_from_a_terminal():
    """Ctrl-C as a shell delivers it: SIGINT at its default and not blocked in the child.
    A test runner's worker may have it ignored or blocked (a library that spawned a helper
    process in it), and both are inherited across exec: the child would then never see
    the signal (seen in CI: the run finished with exit code 0)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _csc(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "liecheck", "csc", "--model", "cifar_net", "--n", "16",
           "--seed", "0", "--methods", METHODS, "--start", "paper", "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=_as_from_a_terminal)


def _signal_state(pid: int) -> str:
    """The child's blocked and ignored signal masks (for the failure message)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "(no /proc)"
    return " ".join(x for x in lines if x.startswith(("SigBlk", "SigIgn", "SigCgt")))


def _units(out: Path) -> list[Path]:
    return sorted((out / "tables" / "_csc_values").glob("*.parquet"))


def test_sigint_keeps_finished_units_and_the_rerun_resumes(tmp_path):
    default_model(seed=0)            # trained and cached before the child starts
    out = tmp_path / "run"
    proc = _csc(out)
    deadline = time.monotonic() + 300
    while not _units(out):           # wait for the first finished unit
        assert proc.poll() is None, "csc ended before any unit was written"
        assert time.monotonic() < deadline, "no unit written within 300 s"
        time.sleep(0.02)
    state = _signal_state(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    kept = _units(out)
    assert proc.returncode == 130, f"child signal masks {state}; stderr: {err[-2000:]}"
    assert "interrupted; results written so far are kept" in err
    assert 1 <= len(kept) < N_METHODS      # stopped part-way
    kept_bytes = {p.name: p.read_bytes() for p in kept}

    again = _csc(out)
    stdout, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"{len(kept)} of {N_METHODS} units already done" in stdout
    done = _units(out)
    assert len(done) == N_METHODS
    for p in done:                   # the kept units were not recomputed
        if p.name in kept_bytes:
            assert p.read_bytes() == kept_bytes[p.name]
    df = pd.read_csv(out / "csc.csv")
    assert set(df["method"]) == set(METHODS.split(","))
