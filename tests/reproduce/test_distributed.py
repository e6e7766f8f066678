"""`liecheck reproduce` under torchrun (CPU, gloo, 2 processes): the same tables as one
process; a rank killed mid-run stops the launch with a message naming it, and a rerun
with another number of processes resumes without losing or duplicating anything."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

from liecheck.models import cifar_net
from liecheck.reproduce.distributed import share
from liecheck.reproduce.experiments import KEYS
from liecheck.store import RunStore
from liecheck.units import chunks

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
N = 2

# the run of the tests: a random-weight cifar_net (fast, still a valid model), chunks
# of one image; argv: checkpoint, run directory, seconds to wait before each write
SCRIPT = f"""
import sys, time
from liecheck.reproduce import ModelPlan, RunConfig, run
from liecheck.store import RunStore
delay = float(sys.argv[3])
if delay:
    write = RunStore.write
    def slow_write(self, *a, **k):
        time.sleep(delay)
        return write(self, *a, **k)
    RunStore.write = slow_write
plan = ModelPlan("cifar_net", sys.argv[1], n={N}, size=32, methods=("gradient", "lrp_a1b0"),
                 starts="logits", experiments=("csc", "random_logit", "sanity"))
run(RunConfig([plan], theory=False, chunk_size=1), sys.argv[2], progress=False, report=False)
print("finished", flush=True)
"""


def _launch(tmp, out, nproc, delay=0.0):
    script = tmp / "run_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    cmd = [sys.executable, str(script)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(script)]
    return subprocess.Popen(cmd + [str(tmp / "net.pt"), str(out), str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)


def _tables(out):
    s = RunStore(out)
    return {t: s.read(t).sort_values(KEYS[t]).reset_index(drop=True) for t in s.tables()}


def _assert_same(a, b):
    assert set(a) == set(b) == {"csc", "random_logit", "sanity"}
    for t in a:
        x, y = a[t], b[t]
        assert len(x) == len(y) and not x.duplicated(KEYS[t]).any(), t
        for c in x.columns:
            if pd.api.types.is_float_dtype(x[c]):
                np.testing.assert_allclose(x[c], y[c], atol=1e-6, rtol=0, err_msg=f"{t}.{c}")
            else:
                assert x[c].tolist() == y[c].tolist(), f"{t}.{c}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    torch.save(cifar_net(seed=5).state_dict(), tmp / "net.pt")
    p = _launch(tmp, tmp / "one", 1)
    out, _ = p.communicate(timeout=1800)
    assert p.returncode == 0, out
    return tmp, _tables(tmp / "one")


@pytest.mark.slow
def test_two_processes_give_the_tables_of_one(reference):
    tmp, ref = reference
    assert len(ref["random_logit"]) == 2 * N and ref["csc"]["n_values"].min() > 0
    p = _launch(tmp, tmp / "two", 2)
    out, _ = p.communicate(timeout=1800)
    assert p.returncode == 0, out
    _assert_same(ref, _tables(tmp / "two"))
    st = RunStore(tmp / "two").manifest()["status"]
    assert st["state"] == "complete" and st["processes"] == 2
    ranks = {json.loads(f.read_text())["rank"] for f in (tmp / "two" / "ranks").glob("*.json")}
    assert ranks == {0, 1}                       # both ranks did work


@pytest.mark.slow
def test_killed_rank_stops_the_launch_and_a_rerun_with_one_process_resumes(reference):
    tmp, ref = reference
    out = tmp / "killed"
    p = _launch(tmp, out, 2, delay=0.4)
    state1 = out / "ranks" / "1.json"
    t0 = time.time()
    while not state1.exists():                   # rank 1 has finished a unit
        assert time.time() - t0 < 300 and p.poll() is None, p.stdout.read()
        time.sleep(0.05)
    os.kill(json.loads(state1.read_text())["pid"], signal.SIGKILL)
    log, _ = p.communicate(timeout=300)          # the other rank stops: no hang
    assert p.returncode != 0
    error = RunStore(out).manifest()["status"].get("error") or ""
    assert "rank 1 (pid" in error and "killed" in error, error   # named, and why
    partial = len(list(out.glob("tables/*/*.parquet")))
    assert 0 < partial < len(list((tmp / "one").glob("tables/*/*.parquet")))   # mid-run
    damaged = sorted(out.glob("tables/*/*.parquet"))[0]      # and one file got truncated
    damaged.write_bytes(damaged.read_bytes()[:100])
    again = _launch(tmp, out, 1)
    log, _ = again.communicate(timeout=1800)
    assert again.returncode == 0 and ("already done" in log or partial == 1), log
    assert f"{damaged} is unreadable" in log.replace("\n", "")     # named, then recomputed
    _assert_same(ref, _tables(out))


def test_share_is_deterministic_and_balanced():
    costs = [5.0, 1.0, 1.0, 3.0, 2.0, 2.0]
    parts = share(costs, 2)
    assert parts == share(costs, 2)
    assert sorted(i for p in parts for i in p) == list(range(6))
    assert [sum(costs[i] for i in p) for p in parts] == [7.0, 7.0]
    assert chunks(5, 2) == [(0, 2), (2, 4), (4, 5)]


def test_chunked_metrics_equal_the_whole_set():
    """CSC pooled from chunks (values keyed by image number) and random-logit rows of
    chunks are those of one call on all images, exactly."""
    import liecheck
    from liecheck.metrics.csc import csc, csc_rows, csc_values

    torch.manual_seed(0)
    ex = liecheck.Explainer(cifar_net(seed=1))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    whole = csc(ex, x, "lrp_a1b0", start="output", n_vectors=3)
    parts = [csc_values(ex, x[a:b], "lrp_a1b0", start="output", n_vectors=3,
                        image_ids=range(a, b)) for a, b in chunks(3, 2)]
    pd.testing.assert_frame_equal(csc_rows(parts), whole)
    other = csc_rows([csc_values(ex, x, "lrp_a1b0", start="output", n_vectors=3,
                                 image_ids=[5, 6, 7])])
    assert not other["median"].equals(whole["median"])     # the vectors follow the ids
    rl = liecheck.random_logit(ex, x, "gradient", seed=3)
    rl_parts = pd.concat([liecheck.random_logit(ex, x[a:b], "gradient", seed=3,
                                                image_ids=range(a, b))
                          for a, b in chunks(3, 2)], ignore_index=True)
    pd.testing.assert_frame_equal(rl_parts, rl)
