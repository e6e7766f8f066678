"""The zoo (issue 24): every family builds and classifies its padded two-digit square;
training is seeded and cached (one tiny family is trained here, on few images); the
battery over the zoo gives one row per (model, method) with intervals and a mechanism;
``liecheck zoo`` resumes after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import liecheck.zoo as zoo
from liecheck.groundtruth import half_masks
from liecheck.zoo import train as zoo_train

TINY = "regnet_y"          # the cheapest family to train and to run


@pytest.mark.parametrize("family", list(zoo.FAMILIES))
def test_every_family_builds_and_classifies_its_square(family):
    fam = zoo.FAMILIES[family]
    data = zoo.zoo_images(2, fam.size, "test", seed=0)
    assert data.x.shape == (2, 3, fam.size, fam.size)
    with torch.no_grad():
        y = zoo.build(family, seed=0).eval()(data.x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_padding_keeps_each_digit_in_its_half():
    plain = zoo.zoo_images(3, 64, seed=1)
    inner = plain.x[:, :, 16:48, :]                 # the 32 x 64 picture, centred
    from liecheck.groundtruth import two_digit_images

    assert torch.equal(inner, two_digit_images(3, "test", 1).x)
    blank = -plain.mean / plain.std
    assert torch.all(plain.x[:, :, :16] == blank) and torch.all(plain.x[:, :, 48:] == blank)
    masks = half_masks(64, 64)                      # the left digit's columns are 0..31
    assert masks[0, :, :32].all() and not masks[0, :, 32:].any()


def test_unknown_family_names_the_nearest():
    with pytest.raises(ValueError, match="Did you mean mobilenet_v2"):
        zoo.check_family("mobilenet2")


def test_training_is_seeded_cached_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("LIECHECK_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo_train, "N_TRAIN", 96)
    monkeypatch.setattr(zoo_train, "N_TEST", 32)
    monkeypatch.setattr(zoo_train, "EPOCHS", {"cnn": 1, "transformer": 1})
    a, info = zoo.train_family(TINY, seed=3, progress=False)
    b, _ = zoo.train_family(TINY, seed=3, progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k               # same seed, same weights
    assert 0.0 <= info["test_accuracy"] <= 1.0 and info["settings"]["n_train"] == 96
    loaded, meta = zoo.load_family(TINY, seed=3, progress=False)   # trains and caches
    path = zoo.checkpoint(TINY, seed=3)
    assert path.exists() and path.with_suffix(".json").exists()
    assert str(tmp_path) in str(path) and meta["kind"] == "trained"
    for k, v in a.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert not loaded.training


def test_battery_returns_a_row_per_model_and_method_with_intervals(tmp_path):
    df = zoo.battery([TINY], ["gradient", "lrp_a1b0", "lrp_epsilon"], n=4, trained=False,
                     out=tmp_path / "run", progress=False)
    rows = df.set_index("method")
    assert set(rows.index) == {"gradient", "lrp_a1b0", "lrp_epsilon", "occlusion", "random"}
    for col in ("csc_logits", "csc_mid", "ssim_random_logit", "ssim_cascade_last",
                "ssim_cascade_all", "mass_accuracy", "l1_class_diff"):
        for m in ("gradient", "lrp_a1b0"):
            lo, v, hi = (rows.loc[m, f"{col}{s}"] for s in ("_low", "", "_high"))
            assert lo <= v <= hi, (col, m)
    assert rows.loc["gradient", "mechanism"].startswith("reference")
    assert rows.loc["occlusion", "mechanism"].startswith("reference")
    # z+ (lrp_a1b0) relevance vectors become parallel (the paper's Theorem 1, any weights)
    assert rows.loc["lrp_a1b0", "csc_logits"] > rows.loc["gradient", "csc_logits"]
    assert "rank-1 convergence" in rows.loc["lrp_a1b0", "mechanism"]


def _as_from_a_terminal():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _zoo(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "liecheck", "zoo", "--models", TINY, "--random", "--n", "6",
           "--methods", "gradient,gradient_x_input,lrp_z,lrp_epsilon,lrp_a1b0,excitation_bp",
           "--no-report", "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=_as_from_a_terminal)


def _units(out: Path) -> list[Path]:
    return sorted((out / "tables").glob("*/*.parquet"))


@pytest.mark.slow
def test_zoo_cli_resumes_after_ctrl_c(tmp_path):
    out = tmp_path / "run"
    proc = _zoo(out)
    deadline = time.monotonic() + 300
    while not _units(out):
        assert proc.poll() is None, "zoo ended before any unit was written"
        assert time.monotonic() < deadline, "no unit written within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; results written so far are kept" in err
    kept = {p: p.read_bytes() for p in _units(out)}
    again = _zoo(out)
    stdout, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-2000:]
    assert "already done" in stdout
    for p, b in kept.items():                   # kept units were not recomputed
        assert p.read_bytes() == b
    df = pd.read_csv(out / "zoo.csv")
    assert len(df[~df["method"].isin(["occlusion", "random"])]) == 6
    assert (out / "zoo.png").exists()


def test_batchnorm_recalibration_is_the_average_over_the_training_batches():
    """MNASNet's BatchNorm momentum (3e-4) leaves its statistics at their initial values
    after a short training; the zoo re-estimates them: with equal batches the running
    mean is the mean of the BatchNorm's input over all images and positions."""
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=3e-4)
    model = torch.nn.Sequential(conv, bn)
    x = torch.randn(128, 3, 8, 8)
    zoo_train.recalibrate_batchnorm(model, x, batch_size=64)
    with torch.no_grad():
        expected = conv(x).mean(dim=(0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert bn.momentum == 3e-4 and not model.training
    assert zoo.FAMILIES["mnasnet"].recalibrate_bn and "bnrecal" in zoo.checkpoint("mnasnet").name


def test_a_model_that_recognises_nothing_is_measured_on_the_first_images_and_says_so():
    from liecheck.zoo.run import recognised

    class Fixed(torch.nn.Module):          # always ranks classes 9 and 8 first
        def forward(self, x):
            return torch.arange(10.0).expand(len(x), 10)

    drawn = zoo.zoo_images(8, 64, "test", seed=0)
    assert not any(set(map(int, p)) == {8, 9} for p in drawn.labels)   # the seed's draw
    data, n_drawn, found = recognised(Fixed(), 64, 2, seed=0, trained=True)
    assert (n_drawn, found, len(data)) == (8, 0, 2)
    assert torch.equal(data.x, drawn.x[:2])
