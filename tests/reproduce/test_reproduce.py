"""`liecheck reproduce` end to end on a tiny configuration, resume, settings refusal."""

import json

import pandas as pd
import pytest
import torch

from liecheck.battery.csc import CONVERGED
from liecheck.cli import main
from liecheck.models import cifar_net
from liecheck.report.summary import summary_table
from liecheck.store import RunStore

METHODS = "gradient,lrp_a1b0"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("repro")
    ckpt = d / "net.pt"
    torch.save(cifar_net(seed=5).state_dict(), ckpt)     # random weights: fast, still valid
    args = ["reproduce", "--model", "cifar_net", "--weights", str(ckpt), "--n", "2",
            "--methods", METHODS, "--simulation-repeats", "2", "--out", str(d / "run")]
    assert main(args) == 0
    return d, args


@pytest.mark.slow
def test_cli_main_path_writes_every_table_and_the_report(tiny_run, capsys):
    d, _ = tiny_run
    store = RunStore(d / "run")
    assert set(store.tables()) >= {"csc", "random_logit", "sanity", "insensitivity",
                                   "simulation", "singular"}
    csc = store.read("csc")
    assert set(csc["method"]) == {"gradient", "lrp_a1b0"}
    assert csc["start"].nunique() == 5                     # the paper's 5 CIFAR start layers
    rl = store.read("random_logit")
    assert len(rl) == 2 * 2 and not rl.duplicated(["method", "image"]).any()
    m = store.manifest()
    assert m["models"]["cifar_net"]["source"]["sha256"]
    assert m["provenance"]["packages"]["torch"] == torch.__version__
    assert (d / "run" / "report.html").exists()
    # z+ converges even with random weights (paper Theorem 1), the gradient does not
    s = summary_table({t: store.read(t) for t in store.tables()}).set_index("method")
    assert s.loc["lrp_a1b0", "csc_first_conv"] >= CONVERGED
    assert s.loc["gradient", "csc_first_conv"] < 0.9
    # the verdict names the mechanism, against the gradient on the same images
    assert s.loc["lrp_a1b0", "mechanism"].startswith("rank-1 convergence (CSC at the first")
    assert s.loc["gradient", "mechanism"].startswith("reference")


@pytest.mark.slow
def test_rerun_resumes_and_changed_settings_are_refused(tiny_run, capsys):
    d, args = tiny_run
    store = RunStore(d / "run")
    before = {t: store.read(t) for t in store.tables()}
    capsys.readouterr()
    assert main(args + ["--no-report"]) == 0                  # everything already done
    assert "already done" in capsys.readouterr().out
    for t, df in before.items():
        pd.testing.assert_frame_equal(store.read(t), df)
    i = args.index("--n")
    changed = args[:i + 1] + ["3"] + args[i + 2:]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "models[0].n: 2 in the run directory, 3 now" in err and "--fresh" in err
    assert "simulation_repeats" not in err


def test_report_command_on_a_missing_run_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a liecheck run directory" in capsys.readouterr().err


def test_default_config_is_the_documented_budget():
    from liecheck.reproduce import default_config

    cfg = default_config()
    names = [p.name for p in cfg.models]
    assert names == ["cifar_net", "vgg16"]
    vgg = cfg.models[1]
    assert vgg.experiments == ("csc",) and vgg.weights is None and "RANDOM" in vgg.note
    assert json.dumps(cfg.settings())                         # settings are JSON
