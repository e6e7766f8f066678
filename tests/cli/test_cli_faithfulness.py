"""Smoke tests of `liecheck csc | sanity | random-logit` on the CIFAR net."""

import pandas as pd

from liecheck.cli import main

COMMON = ["--model", "cifar_net", "--n", "1", "--seed", "0"]


def test_csc_cli(tmp_path, capsys):
    rc = main(["csc", *COMMON, "--methods", "gradient,lrp_a1b0", "--n-vectors", "2",
               "--start", "output,relu4", "--out", str(tmp_path)])
    assert rc == 0
    df = pd.read_csv(tmp_path / "csc.csv")
    assert set(df["method"]) == {"gradient", "lrp_a1b0"}
    assert set(df["start"]) == {"output", "relu4"}
    assert (df["model"] == "cifar_net").all()
    for name in ("csc_output", "csc_output_log", "csc_relu4", "csc_histogram_first_conv",
                 "csc_starts_lrp_a1b0"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.svg").exists()


def test_sanity_and_random_logit_cli(tmp_path):
    assert main(["sanity", *COMMON, "--methods", "gradient", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "sanity.csv")
    assert list(df["layer"]) == ["fc6", "fc5", "conv4", "conv3", "conv2", "conv1"]
    assert (tmp_path / "sanity.png").exists() and (tmp_path / "sanity_grid.png").exists()
    # a run directory holds one configuration (as with reproduce): another test, another dir
    rl_dir = tmp_path / "rl"
    assert main(["random-logit", *COMMON, "--methods", "lrp_z,lrp_a1b0",
                 "--out", str(rl_dir)]) == 0
    rl = pd.read_csv(rl_dir / "random_logit.csv")
    assert len(rl) == 2 and (rl["target"] != rl["other"]).all()
    assert (rl_dir / "random_logit.svg").exists()


def test_cli_resumes_and_prints_plan_and_summary(tmp_path, capsys):
    args = ["random-logit", *COMMON, "--methods", "gradient,lrp_a1b0", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    # the first line, after the one-time training message of an empty model cache
    first = [ln for ln in out.splitlines() if not ln.startswith("training the built-in")][0]
    assert first.startswith("liecheck random-logit:") and "2 methods x 1 images" in first
    assert "estimated" in first
    assert "SSIM random logit" in out                 # the summary table
    assert (tmp_path / "manifest.json").exists()      # the run store
    assert main(args) == 0                            # again: resumes, computes nothing
    assert "2 of 2 units already done; nothing left to compute" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["csc", *COMMON, "--methods", "no_such_method", "--out", str(tmp_path)]) == 2
    assert "unknown method" in capsys.readouterr().err
