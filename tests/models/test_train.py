"""Training the built-in model: data split, accuracy, cache, CLI errors."""

import json

import numpy as np
import pytest
import torch

from liecheck.data.digits import digits_test_images, load_digits_split
from liecheck.train import accuracy, default_model, train_cifar_net

# one epoch on the digits already clears this (measured 0.939 for seed 0); two
# epochs (the default) reach 0.967. Chance level is 0.10.
ONE_EPOCH_THRESHOLD = 0.90


def test_digits_split_is_seeded_stratified_and_normalised():
    a, b = load_digits_split(0), load_digits_split(0)
    assert torch.equal(a.x_test, b.x_test) and np.array_equal(a.test_index, b.test_index)
    assert not np.array_equal(a.test_index, load_digits_split(1).test_index)
    assert a.x_train.shape[1:] == (3, 32, 32) and len(a.y_train) + len(a.y_test) == 1797
    assert torch.equal(a.x_train[:, 0], a.x_train[:, 2])          # grey in 3 channels
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-3
    counts = np.bincount(a.y_test.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37               # stratified: ~36 per class
    imgs = digits_test_images(4)
    assert imgs.raw[0].shape == (32, 32, 3) and imgs.raw[0].dtype == np.uint8
    assert imgs.labels == a.y_test[:4].tolist()


@pytest.mark.slow
def test_one_epoch_reaches_threshold_and_cache_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("LIECHECK_CACHE", str(tmp_path))
    model, info = train_cifar_net("digits", epochs=1, seed=0, progress=False,
                                  out=tmp_path / "m.pt")
    assert info["test_accuracy"] >= ONE_EPOCH_THRESHOLD
    s = load_digits_split(0)
    assert accuracy(model, s.x_test, s.y_test) == pytest.approx(info["test_accuracy"])
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["settings"]["epochs"] == 1 and meta["settings"]["seed"] == 0
    # default_model loads the cached file (weights_only) instead of training again
    (tmp_path / "m.pt").rename(tmp_path / "cifar_net-digits-e1-seed0.pt")
    (tmp_path / "m.json").rename(tmp_path / "cifar_net-digits-e1-seed0.json")
    cached, src, got = default_model(seed=0, epochs=1, progress=False)
    assert got["test_accuracy"] == info["test_accuracy"] and src.kind == "checkpoint"
    assert src.sha256 and src.extra["test_accuracy"] == info["test_accuracy"]
    for p, q in zip(model.state_dict().values(), cached.state_dict().values()):
        assert torch.equal(p, q)


def test_cifar10_missing_files_error_names_the_path(tmp_path, capsys):
    from liecheck.cli import main

    rc = main(["train", "cifar_net", "--data", "cifar10", "--data-dir", str(tmp_path),
               "--out", str(tmp_path / "c.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "cifar-10-batches-py") in err
