"""Model loading (seeded random, checkpoint files, torchvision names) and image data."""

import numpy as np
import pytest
import torch
from PIL import Image

from liecheck.data import load_folder, sample_photos, select
from liecheck.models import cifar_net, load


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cifar_net_matches_appendix_d():
    m = cifar_net()
    convs = [l.out_channels for l in m if isinstance(l, torch.nn.Conv2d)]
    dense = [l.out_features for l in m if isinstance(l, torch.nn.Linear)]
    assert convs == [32, 64, 128, 128] and dense == [1024, 10]
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_random_init_is_seeded():
    a, src = load("cifar_net", seed=3, verbose=False)
    b, _ = load("cifar_net", seed=3, verbose=False)
    c, _ = load("cifar_net", seed=4, verbose=False)
    assert src.kind == "random" and "seed=3" in src.weights
    assert _same_state(a, b) and not _same_state(a, c)


def test_checkpoint_roundtrip_with_checksum(tmp_path):
    trained = cifar_net(seed=7)
    path = tmp_path / "net.pt"
    torch.save(trained.state_dict(), path)
    m, src = load("cifar_net", weights=path, verbose=False)
    assert _same_state(m, trained)
    assert src.kind == "checkpoint" and len(src.sha256) == 64


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load("cifar_net", weights=tmp_path / "nope.pt", verbose=False)
    bad = tmp_path / "bad.pt"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="does not fit cifar_net"):
        load("cifar_net", weights=bad, verbose=False)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        load("alexnet")
    with pytest.raises(ValueError, match="unknown torchvision weights"):
        load("vgg16", weights="NOT_A_WEIGHT", verbose=False)


def test_sample_photos_are_imagenet_normalised():
    s = sample_photos(["astronaut", "chelsea"])
    assert s.images.shape == (2, 3, 224, 224)
    # normalised with ImageNet mean/std: values well outside [0, 1], mean near 0
    assert s.images.min() < -1 and s.images.max() > 1 and abs(s.images.mean()) < 1


def test_folder_with_wnid_subfolders_gives_labels(tmp_path):
    rng = np.random.default_rng(0)
    for wnid in ["n01440764", "n01443537"]:
        (tmp_path / wnid).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(
                tmp_path / wnid / f"{i}.JPEG")
    s = load_folder(tmp_path, size=32)
    assert s.images.shape == (4, 3, 32, 32)
    assert s.labels == [0, 0, 1, 1]
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "missing")


def test_selection_is_seeded_without_replacement():
    a, b = select(200, 200, seed=0), select(200, 50, seed=1)
    assert a[0] == 0 and sorted(a) == list(range(200))
    assert len(set(b)) == 50 and select(200, 50, seed=1) == b
    with pytest.raises(ValueError):
        select(3, 4)
