"""Loading messages (issue 15, item 5): a checkpoint that cannot be used is refused with
one sentence naming the file and what is wrong; non-finite weights warn."""

from __future__ import annotations

import pickle

import pytest
import torch

from liecheck.models import cifar_net, load


@pytest.fixture(scope="module")
def state():
    return cifar_net(seed=1).state_dict()


@pytest.mark.parametrize("name", ["model", "runs/model_final", "ckpt.safetensors",
                                  "weights.pt"])
def test_a_missing_path_is_a_missing_file_whatever_its_suffix(tmp_path, name):
    path = tmp_path / name
    for model in ("cifar_net", "vgg16"):
        with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*\(no such file\)"):
            load(model, weights=str(path), verbose=False)


def test_a_bare_unknown_name_says_both(tmp_path):
    """``NOT_A_WEIGHT`` may be meant as a weights name or as a file: both are said."""
    with pytest.raises(FileNotFoundError, match="unknown torchvision weights 'NOT_A_WEIGHT' "
                                                "for vgg16 .*no file of that name"):
        load("vgg16", weights="NOT_A_WEIGHT", verbose=False)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: lowercase_name"):
        load("vgg16", weights="lowercase_name", verbose=False)


def test_empty_file_and_directory(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt is an empty file \(0 bytes\)"):
        load("cifar_net", weights=empty, verbose=False)
    with pytest.raises(IsADirectoryError, match="is a directory, not a file"):
        load("cifar_net", weights=tmp_path, verbose=False)


def test_truncated_file(tmp_path, state):
    path = tmp_path / "net.pt"
    torch.save(state, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"net\.pt is not a readable PyTorch file"):
        load("cifar_net", weights=path, verbose=False)


def test_wrong_keys_are_listed(tmp_path, state):
    bad = dict(state)
    first = list(bad)[0]
    del bad[first]
    bad["head.weight"] = torch.zeros(2)
    bad["conv2.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bad.pt"
    torch.save(bad, path)
    with pytest.raises(ValueError) as info:
        load("cifar_net", weights=path, verbose=False)
    msg = str(info.value)
    assert "does not fit cifar_net" in msg
    assert f"1 missing keys ({first})" in msg
    assert "1 unexpected keys (head.weight)" in msg
    assert "conv2.weight (3, 3) vs (64, 32, 3, 3)" in msg


def test_only_the_first_ten_keys_are_listed(tmp_path, state):
    extra = {**state, **{f"extra{i}": torch.zeros(1) for i in range(25)}}
    path = tmp_path / "extra.pt"
    torch.save(extra, path)
    with pytest.raises(ValueError, match=r"25 unexpected keys \(extra0, .*extra9 and 15 more\)"):
        load("cifar_net", weights=path, verbose=False)


def test_non_finite_weights_warn(tmp_path, state):
    sd = {k: v.clone() for k, v in state.items()}
    sd["conv1.weight"][0, 0, 0, 0] = float("nan")
    sd["fc6.bias"][0] = float("inf")
    path = tmp_path / "nan.pt"
    torch.save(sd, path)
    with pytest.warns(UserWarning, match=r"2 tensors hold NaN or infinite values "
                                         r"\(conv1.weight, fc6.bias\)"):
        load("cifar_net", weights=path, verbose=False)


def test_code_running_pickles_are_still_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load("cifar_net", weights=path, verbose=False)


def test_pattern_files_get_the_same_messages(tmp_path):
    from liecheck.methods.patterns import PatternSet

    (tmp_path / "p.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="pattern file .* is an empty file"):
        PatternSet.load(tmp_path / "p.pt")
    with pytest.raises(FileNotFoundError, match="pattern file not found"):
        PatternSet.load(tmp_path / "q")
