"""CLI smoke tests for `liecheck explain` and `liecheck methods`."""

import numpy as np
import pytest
from PIL import Image

from liecheck.cli import main


def test_methods_lists_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ["gradient", "lrp_a1b0", "dtd", "rectgrad", "excitation_bp"]:
        assert name in out


def test_explain_writes_grid_for_a_file_and_a_sample_photo(tmp_path):
    img = tmp_path / "img.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "grid.png"
    rc = main(["explain", str(img), "astronaut", "--model", "cifar_net",
               "--methods", "gradient,lrp_a1b0", "-o", str(out)])
    assert rc == 0
    with Image.open(out) as im:
        assert im.size[0] > 200 and im.size[1] > 100


@pytest.mark.parametrize("argv, needle", [
    (["explain", "missing.png", "--model", "cifar_net"], "image not found"),
    (["explain", "--model", "cifar_net", "--methods", "lrp_a1b1"], "unknown method"),
    (["explain", "--model", "alexnet"], "unknown model"),
])
def test_explain_bad_input_is_one_line_error(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1
